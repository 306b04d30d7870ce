import * as fs from 'node:fs';
import { parseArgs } from 'node:util';
import { Command } from '../command';
import { ScalpelError, fileError, readTextFile } from '../../engine/errors';
import { formatDiagnostic, LineIndex } from '../../language/diagnostics';
import { format } from '../../language/format';
import { parse } from '../../language/parser';

const usage = `scalpel fmt [--check | --stdout] FILE.scalpel [FILE…]

Formats edit specs in place (one canonical layout; comments are kept). A file with syntax
errors is left alone and its errors are printed.

  --check     change nothing; list files that are not formatted and exit 1 if any
  --stdout    print the formatted text instead of writing the files`;

export const fmtCommand: Command = {
  name: 'fmt',
  summary: 'format .scalpel edit specs',
  usage,
  async run(argv) {
    const { values, positionals } = parseArgs({
      args: argv,
      options: { check: { type: 'boolean', default: false }, stdout: { type: 'boolean', default: false } },
      allowPositionals: true,
      strict: true,
    });
    if (positionals.length === 0) throw new ScalpelError('fmt needs at least one FILE.scalpel');
    if (values.check && values.stdout) throw new ScalpelError('fmt takes --check or --stdout, not both');
    let failed = false;
    for (const file of positionals) {
      const text = readTextFile(file, 'read spec');
      const parsed = parse(text);
      const out = format(text, parsed);
      if (out === undefined) {
        const lines = new LineIndex(text);
        for (const d of parsed.diagnostics) process.stderr.write(formatDiagnostic(file, lines, d) + '\n');
        failed = true;
        continue;
      }
      if (values.stdout) process.stdout.write(out);
      else if (out !== text) {
        if (values.check) {
          process.stdout.write(`${file}\n`);
          failed = true;
        } else {
          try {
            fs.writeFileSync(file, out);
          } catch (err) {
            throw fileError(err, file, 'write spec');
          }
        }
      }
    }
    return failed ? 1 : 0;
  },
};
