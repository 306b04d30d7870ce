import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { Command } from '../command';
import { ScalpelError } from '../../engine/errors';
import { combineParts, partJson, readPart, resultOf } from '../../engine/edit/shard';
import { writeFileAtomic } from '../../engine/safetensors';
import { goalsUsage, report } from '../edit-spec';

const usage = `scalpel merge PART… [--json] [--junit FILE] [--goals] [--out FILE]

Combines the parts of a sharded spec evaluation (scalpel eval SPEC --shard I/N --out PART, one per
shard) and reports it exactly as the unsharded scalpel eval SPEC would: the same numbers, checks,
table or JSON, JUnit and exit code (1 when a check fails). A folder stands for the part-*.json in it.

  --json               machine-readable results
  --junit FILE         also write JUnit XML (one testcase per check)
${goalsUsage}
  --out FILE           also write the merged part (byte for byte what eval SPEC --out FILE writes)`;

export const mergeCommand: Command = {
  name: 'merge',
  summary: 'combine the parts of a sharded spec evaluation',
  usage,
  async run(argv) {
    const started = performance.now();
    const { values, positionals } = parseArgs({
      args: argv,
      options: { json: { type: 'boolean', default: false }, junit: { type: 'string' }, goals: { type: 'boolean', default: false }, out: { type: 'string' } },
      strict: true,
      allowPositionals: true,
    });
    const files = positionals.flatMap((p) =>
      fs.existsSync(p) && fs.statSync(p).isDirectory() ? fs.readdirSync(p).filter((f) => /^part-.*\.json$/.test(f)).sort().map((f) => path.join(p, f)) : [p],
    );
    if (!files.length) throw new ScalpelError('merge needs the parts to combine (files, or a folder of part-*.json)');
    const merged = combineParts(files.map((file) => ({ file, part: readPart(file) })));
    if (values.out) writeFileAtomic(values.out, [partJson(merged)]);
    return report(resultOf(merged), { json: values.json, junit: values.junit, goals: values.goals, seconds: (performance.now() - started) / 1000 });
  },
};
