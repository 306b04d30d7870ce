import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { Command } from '../command';
import { ScalpelError, readTextFile } from '../../engine/errors';
import { analyze, defaultEnv } from '../../language/checker';
import { formatDiagnostic } from '../../language/diagnostics';

const usage = `scalpel check FILE.scalpel [FILE…]

Checks edit specs: syntax, names, units, files, hash pins, component keys and module paths
against the model's catalog. Prints file:line:col: severity code: message for each finding
and exits 1 when there is an error (warnings alone exit 0).

  --strict    exit 1 on warnings too`;

export const checkCommand: Command = {
  name: 'check',
  summary: 'check .scalpel edit specs (errors and warnings with codes)',
  usage,
  async run(argv) {
    const { values, positionals } = parseArgs({ args: argv, options: { strict: { type: 'boolean', default: false } }, allowPositionals: true, strict: true });
    if (positionals.length === 0) throw new ScalpelError('check needs at least one FILE.scalpel');
    const counts = { error: 0, warning: 0, info: 0 };
    for (const file of positionals) {
      const text = readTextFile(file, 'read spec');
      const a = analyze(text, defaultEnv(path.dirname(path.resolve(file))));
      for (const d of a.diagnostics) {
        counts[d.severity]++;
        process.stdout.write(formatDiagnostic(file, a.lines, d) + '\n');
      }
    }
    const plural = (n: number, w: string) => `${n} ${w}${n === 1 ? '' : 's'}`;
    process.stderr.write(`${plural(positionals.length, 'file')} checked: ${plural(counts.error, 'error')}, ${plural(counts.warning, 'warning')}\n`);
    return counts.error > 0 || (values.strict && counts.warning > 0) ? 1 : 0;
  },
};
