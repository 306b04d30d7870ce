/**
 * Apply: write the edited checkpoint (byte-patched copy, atomic; the base file is only read) and
 * its lock file. With an unchanged spec, model and catalog, the lock's tuned scales are reused, so
 * the output's bytes (and hash) are reproduced.
 */
import * as path from 'node:path';
import { ScalpelError } from '../errors';
import { writeEditedModel } from '../onnx/write';
import { modelSha256 } from '../identity';
import { LockFile, buildLock, catalogHash, lockedScales, readLock, writeLock } from './lock';
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
  const previous = readLock(lockFile);
  const locked = opts.retune ? undefined : opts.locked ?? lockedScales(previous, plan.specText, modelSha256(runner.lm.file), catalogSha);
  const outcome = await runner.run(opts.edits, { ...opts, locked });
  // Ungated edits are byte patches of their weights; gated ones add their paths to the graph.
  const { patches, graph } = runner.gates.checkpoint(outcome.weights);
  writeEditedModel(runner.lm.file, outFile, patches, graph);
  const labels = new Map(catalog.components.map((c) => [c.key, c.label?.text]));
  // The edits applied, not every edit of the spec: another edit may select the same component.
  const applied = new Set(outcome.edits);
  const editOf = new Map(plan.edits.filter((e) => applied.has(e.name)).flatMap((e) => e.components.map((k) => [k, e.name] as const)));
  const lock = buildLock({
    specFile: plan.specFile,
    specText: plan.specText,
    modelFile: runner.lm.file,
    catalogDir: catalog.dir,
    catalogSha,
    outFile,
    lockDir: path.dirname(lockFile),
    outcome,
    labels,
    editOf,
  });
  // Scales reused from the lock keep the search that found them, so an unchanged re-run rewrites the same lock.
  if (outcome.tuning?.fromLock && lock.tuning && previous?.tuning) lock.tuning.trace = previous.tuning.trace;
  writeLock(lockFile, lock);
  return { outcome, lock, outFile, lockFile };
}
