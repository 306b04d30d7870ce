/**
 * Apply: write the edited checkpoint (byte-patched copy, atomic; the base file is only read) and
 * its lock file. With an unchanged spec, model and catalog, the lock's tuned scales are reused, so
 * the output's bytes (and hash) are reproduced.
 */
import * as path from 'node:path';
import { ScalpelError } from '../errors';
import { writeEditedModel } from '../onnx/write';
import { checkOutputPath } from '../atomic';
import { modelSha256 } from '../identity';
import { PreparedFile } from '../safetensors';
import { LockFile, buildLock, catalogHash, lockedScales, prepareLock, readLock } from './lock';
import { EditOutcome, PlanRunner, RunOptions } from './run';

export interface ApplyResult {
  outcome: EditOutcome;
  lock: LockFile;
  outFile: string;
  lockFile: string;
}

export function lockFileFor(specFile: string): string {
  return `${specFile}.lock`;
}

export async function applyPlan(runner: PlanRunner, opts: RunOptions & { edits: string[]; outFile: string; lockFile?: string; retune?: boolean }): Promise<ApplyResult> {
  const plan = runner.plan;
  if (!plan.specFile || plan.specText === undefined) throw new ScalpelError('apply needs a spec file (its text is hashed into the lock)');
  if (!runner.catalog) throw new ScalpelError('apply needs a component catalog', plan.specFile);
  const lockFile = path.resolve(opts.lockFile ?? lockFileFor(plan.specFile));
  const outFile = path.resolve(opts.outFile);
  const catalog = runner.catalog.catalog;
  const catalogSha = catalogHash(catalog.dir, catalog.tensors ?? 'components.safetensors');
  // Refused before any work: the output may be none of the inputs, nor the lock.
  const inputs = inputFiles(runner, lockFile);
  checkOutputPath(outFile, inputs, opts.outFile);
  checkOutputPath(lockFile, inputs.filter((i) => i.file !== lockFile));
  const previous = readLock(lockFile);
  const locked = opts.retune ? undefined : opts.locked ?? lockedScales(previous, plan.specText, modelSha256(runner.lm.file), catalogSha);
  const outcome = await runner.run(opts.edits, { ...opts, locked });
  // Ungated edits are byte patches of their weights; gated ones add their paths to the graph.
  const { patches, graph } = runner.gates.checkpoint(outcome.weights);
  const labels = new Map(catalog.components.map((c) => [c.key, c.label?.text]));
  // The edits applied, not every edit of the spec: another edit may select the same component.
  const applied = new Set(outcome.edits);
  const editOf = new Map(plan.edits.filter((e) => applied.has(e.name)).flatMap((e) => e.components.map((k) => [k, e.name] as const)));
  let lock: LockFile | undefined;
  let lockWrite: PreparedFile | undefined;
  try {
    // The lock is hashed from the model's fsynced temporary and committed right after it: one rename apart.
    writeEditedModel(runner.lm.file, outFile, patches, graph, {
      protect: inputs,
      beforeCommit: (tempModel) => {
        lock = buildLock({
          specFile: plan.specFile!, specText: plan.specText!, modelFile: runner.lm.file, catalogDir: catalog.dir, catalogSha, outFile, outSha: modelSha256(tempModel),
          lockDir: path.dirname(lockFile), outcome, labels, editOf,
        });
        // Scales reused from the lock keep the search that found them, so an unchanged re-run rewrites the same lock.
        if (outcome.tuning?.fromLock && lock.tuning && previous?.tuning) lock.tuning.trace = previous.tuning.trace;
        lockWrite = prepareLock(lockFile, lock);
      },
    });
    lockWrite!.commit();
  } catch (err) {
    lockWrite?.abort();
    throw err;
  }
  return { outcome, lock: lock!, outFile, lockFile };
}

/** Every file an apply reads, or writes besides the model: none may be the output. */
function inputFiles(runner: PlanRunner, lockFile: string): { file: string; what: string }[] {
  const plan = runner.plan;
  const catalog = runner.catalog!.catalog;
  const files = [
    { file: plan.specFile!, what: 'spec' },
    { file: lockFile, what: 'lock file' },
    { file: runner.lm.file, what: 'base checkpoint' },
    { file: path.join(catalog.dir, 'catalog.json'), what: 'catalog' },
    { file: path.join(catalog.dir, catalog.tensors ?? 'components.safetensors'), what: 'catalog tensors' },
  ];
  const tokenizer = plan.model.tokenizer ?? path.join(path.dirname(runner.lm.file), 'tokenizer.json');
  if (tokenizer !== 'bytes') files.push({ file: tokenizer, what: 'tokenizer' });
  for (const d of plan.datasets) if (d.source.kind === 'text' || d.source.kind === 'jsonl') files.push({ file: d.source.file, what: `data file of ${d.name}` });
  return files.map((f) => ({ ...f, file: path.resolve(f.file) }));
}
