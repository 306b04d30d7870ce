import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { Command } from '../command';
import { formatTable } from '../table';
import { ScalpelError } from '../../engine/errors';
import { NOT_MEASURED, applyPlan } from '../../engine/edit/apply';
import { PlanRunner } from '../../engine/edit/run';
import { checkStatus, checksSummary, describeOutcome, goalsUsage, outcomeSummary } from '../edit-spec';
import { failing } from '../../engine/edit/checks';
import { trainMissingProbes } from '../../language/geometry';
import { loadPlan } from '../../language/plan';
import { runtimeFlags, runtimeFromFlags, runtimeUsage } from '../runtime-flags';
import { interruptible } from '../interrupt';
import { sayAssumedContext } from '../context';

const usage = `scalpel apply SPEC.scalpel [--edit NAME …] -o OUT.onnx [options]

Writes the edited checkpoint (a byte-patched copy; gated edits add their path to the graph, every
other tensor still copied as bytes; the base model is only read) and SPEC.scalpel.lock:
hashes of base model, catalog and output, the components with labels, tuned scales, the exact tuning
tokens and the loss of every dataset before and after. Without --edit every edit is applied together.
While the spec, model and catalog are unchanged, tuned scales come from the lock, so a re-run writes
the same bytes. The model and lock are written first, then every dataset is measured and the lock
completed; a model that cannot be evaluated here is still written (its lock says why it has no
metrics; exit 2). Exit 1 when a guard or expectation fails (the output is still written), or with
--goals when one misses its goal; the lock records each check's goal, whether it was met and by how much.
An output in another folder gets copies of the model folder's config.json, tokenizer.json and
Hugging Face sidecars, so it evaluates alone as measured (an existing different file is kept, and said).

  -o, --out FILE       the edited model to write
  --edit NAME          apply only this edit (repeatable)
  --lock FILE          lock file (default: SPEC.scalpel.lock)
  --retune             ignore the lock's tuned scales and tune again
  --tune-with-guards   use the kept guards as constraints while tuning
  --no-measure         write the model and its lock, evaluate nothing (scales must be
                       literal or tuned in the lock)
${goalsUsage}
${runtimeUsage}`;

export const applyCommand: Command = {
  name: 'apply',
  summary: 'write the edited model and its lock file',
  usage,
  async run(argv) {
    const { values, positionals } = parseArgs({
      args: argv,
      options: {
        out: { type: 'string', short: 'o' },
        edit: { type: 'string', multiple: true },
        lock: { type: 'string' },
        retune: { type: 'boolean', default: false },
        'tune-with-guards': { type: 'boolean', default: false },
        'no-measure': { type: 'boolean', default: false },
        goals: { type: 'boolean', default: false },
        ...runtimeFlags,
      },
      strict: true,
      allowPositionals: true,
    });
    if (positionals.length !== 1) throw new ScalpelError('apply takes one spec file');
    if (!values.out) throw new ScalpelError('apply needs -o OUT.onnx');
    await trainMissingProbes(positionals[0], { runtime: runtimeFromFlags(values), onStatus: (m) => process.stderr.isTTY && process.stderr.write(`${m}\n`) });
    const plan = loadPlan(positionals[0]);
    // The session opens when tuning or measuring needs it, so a model that cannot be evaluated is still written.
    const runner = await PlanRunner.open(plan, { ...runtimeFromFlags(values), deferSession: true });
    sayAssumedContext(runner.lm);
    try {
      const r = await interruptible((signal) => applyPlan(runner, {
        edits: values.edit ?? [],
        outFile: values.out!,
        lockFile: values.lock,
        retune: values.retune,
        guardsAsConstraints: values['tune-with-guards'],
        measure: !values['no-measure'],
        signal,
      }));
      const rel = (f: string) => path.relative(process.cwd(), f) || f;
      const beside = r.sidecars.copied.length ? ` with ${r.sidecars.copied.join(', ')} copied from the model's folder,` : '';
      for (const k of r.sidecars.kept) process.stderr.write(`scalpel: kept ${rel(k.file)}, which differs from ${rel(k.source)}: the output evaluates with the kept one\n`);
      if (!r.outcome) {
        process.stdout.write(`${outcomeSummary(r.resolved, runner).join('\n')}\n\nwrote ${rel(r.outFile)} (sha256 ${r.lock.output.sha256.slice(0, 12)}…)${beside} and ${rel(r.lockFile)}; ${r.unmeasured}\n`);
        if (r.unmeasured === NOT_MEASURED) return 0;
        process.stderr.write(`scalpel: ${rel(r.outFile)} and ${rel(r.lockFile)} are written, but ${r.unmeasured}\n`);
        return 2;
      }
      process.stdout.write(describeOutcome(r.outcome, runner) + '\n\n');
      if (r.outcome.checks.length) {
        process.stdout.write(formatTable(['', 'check'], r.outcome.checks.map((c) => [checkStatus(c), c.message])) + '\n\n' + `${checksSummary(r.outcome.checks)}\n\n`);
      }
      process.stdout.write(`wrote ${rel(r.outFile)} (sha256 ${r.lock.output.sha256.slice(0, 12)}…)${beside} and ${rel(r.lockFile)}\n`);
      const failed = r.outcome.checks.filter((c) => failing(c, values.goals));
      for (const f of failed) process.stderr.write(`scalpel: ${rel(plan.specFile!)}:${f.check.origin?.line ?? 1}:${f.check.origin?.column ?? 1}: ${f.message}\n`);
      return failed.length ? 1 : 0;
    } finally {
      await runner.close();
    }
  },
};
