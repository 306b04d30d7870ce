/**
 * Apply: write the edited checkpoint (byte-patched copy, atomic; the base file is only read) and
 * its lock file. With an unchanged spec, model and catalog, the lock's tuned scales are reused, so
 * the output's bytes (and hash) are reproduced.
 *
 * The model and a lock without measurements are written as soon as the scales are settled (tuning is
 * the only step before them that evaluates); then every dataset is measured and the lock rewritten with
 * the metrics and checks. A model that cannot be evaluated here is still written: its lock says why it
 * holds no metrics (`unmeasured`), as does one written with `measure: false`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ScalpelError } from '../errors';
import { CancelledError } from '../evaluate';
import { MODEL_SIDECARS } from '../lm';
import { writeEditedModel } from '../onnx/write';
import { checkOutputPath, sameFile } from '../atomic';
import { modelSha256 } from '../identity';
import { PreparedFile, writeFileAtomic } from '../safetensors';
import { LockFile, buildLock, catalogHash, lockedScales, prepareLock, readLock, writeLock } from './lock';
import { EditOutcome, PlanRunner, ResolvedEdits, RunOptions } from './run';

export interface ApplyResult {
  resolved: ResolvedEdits;
  /** The measurements; undefined when not measured (`unmeasured` says why). */
  outcome: EditOutcome | undefined;
  unmeasured?: string;
  lock: LockFile;
  outFile: string;
  lockFile: string;
  sidecars: Sidecars;
}

/** The model folder's sidecars beside an output in another folder: those copied, and existing different ones kept. */
export interface Sidecars {
  copied: string[];
  kept: { file: string; source: string }[];
}

export interface ApplyOptions extends RunOptions {
  edits: string[];
  outFile: string;
  lockFile?: string;
  retune?: boolean;
  /** false: write the model and its lock, measure nothing. */
  measure?: boolean;
}

/** The lock's reason for holding no metrics when written with `measure: false`. */
export const NOT_MEASURED = 'not measured (--no-measure)';

export function lockFileFor(specFile: string): string {
  return `${specFile}.lock`;
}

export async function applyPlan(runner: PlanRunner, opts: ApplyOptions): Promise<ApplyResult> {
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
  const resolved = await runner.resolve(opts.edits, { ...opts, locked });
  // The write below is synchronous: a cancel that came while tuning stops here, before any file exists.
  if (opts.signal?.aborted) throw new CancelledError();
  // Ungated edits are byte patches of their weights; gated ones add their paths to the graph.
  const { patches, graph } = runner.gates.checkpoint(resolved.weights);
  const labels = new Map(catalog.components.map((c) => [c.key, c.label?.text]));
  // The edits applied, not every edit of the spec: another edit may select the same component.
  const applied = new Set(resolved.edits);
  const editOf = new Map(plan.edits.filter((e) => applied.has(e.name)).flatMap((e) => e.components.map((k) => [k, e.name] as const)));
  const lockFor = (outSha: string, measured: EditOutcome | { unmeasured: string }) => {
    const lock = buildLock({
      specFile: plan.specFile!, specText: plan.specText!, modelFile: runner.lm.file, catalogDir: catalog.dir, catalogSha, outFile, outSha,
      lockDir: path.dirname(lockFile), resolved, measured, labels, editOf,
    });
    // Scales reused from the lock keep the search that found them, so an unchanged re-run rewrites the same lock.
    if (resolved.tuning?.fromLock && lock.tuning && previous?.tuning) lock.tuning.trace = previous.tuning.trace;
    return lock;
  };
  const pending = opts.measure === false ? NOT_MEASURED : 'not measured: apply stopped before measuring';
  let lock: LockFile | undefined;
  let lockWrite: PreparedFile | undefined;
  try {
    // The lock is hashed from the model's fsynced temporary and committed right after it: one rename apart.
    writeEditedModel(runner.lm.file, outFile, patches, graph, {
      protect: inputs,
      beforeCommit: (tempModel) => {
        lock = lockFor(modelSha256(tempModel), { unmeasured: pending });
        lockWrite = prepareLock(lockFile, lock);
      },
    });
    lockWrite!.commit();
  } catch (err) {
    lockWrite?.abort();
    throw err;
  }
  const sidecars = copySidecars(runner.lm.file, plan.model.tokenizer, outFile);
  if (opts.measure === false) return { resolved, outcome: undefined, unmeasured: NOT_MEASURED, lock: lock!, outFile, lockFile, sidecars };
  let outcome: EditOutcome;
  try {
    outcome = await runner.measure(resolved, opts);
  } catch (err) {
    // Cancelled while measuring: the model and its lock ("apply stopped before measuring") are committed as they are.
    if (err instanceof CancelledError || !(err instanceof ScalpelError)) throw err;
    const unmeasured = `measuring failed: ${err.message}`;
    lock = lockFor(lock!.output.sha256, { unmeasured });
    writeLock(lockFile, lock);
    return { resolved, outcome: undefined, unmeasured, lock, outFile, lockFile, sidecars };
  }
  lock = lockFor(lock!.output.sha256, outcome);
  writeLock(lockFile, lock);
  return { resolved, outcome, lock, outFile, lockFile, sidecars };
}

/**
 * Copies the sidecars of the model's folder (and the spec's tokenizer as tokenizer.json) beside an output in
 * another folder, so that the output evaluates alone as apply measured it. An existing file is never replaced:
 * one with the same bytes is left, a different one kept and reported.
 */
function copySidecars(modelFile: string, tokenizer: string | undefined, outFile: string): Sidecars {
  const from = path.dirname(modelFile);
  const to = path.dirname(outFile);
  const result: Sidecars = { copied: [], kept: [] };
  if (sameFile(from, to)) return result;
  for (const name of MODEL_SIDECARS) {
    if (name === 'tokenizer.json' && tokenizer === 'bytes') continue;
    const source = path.resolve(name === 'tokenizer.json' && tokenizer ? tokenizer : path.join(from, name));
    if (!fs.existsSync(source)) continue;
    const file = path.join(to, name);
    const bytes = fs.readFileSync(source);
    if (fs.existsSync(file) || isLink(file)) {
      if (!sameBytes(file, bytes)) result.kept.push({ file, source });
      continue;
    }
    writeFileAtomic(file, [bytes]);
    result.copied.push(name);
  }
  return result;
}

function isLink(file: string): boolean {
  try {
    return fs.lstatSync(file).isSymbolicLink();
  } catch {
    return false;
  }
}

function sameBytes(file: string, bytes: Buffer): boolean {
  try {
    return fs.readFileSync(file).equals(bytes);
  } catch {
    return false;
  }
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
