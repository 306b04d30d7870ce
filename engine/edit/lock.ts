/**
 * `spec.scalpel.lock`: what an apply produced and from what, so that a reviewer reads it as a diff
 * and a re-run reproduces the same bytes. JSON with sorted keys and one value per line; numbers
 * measured by onnxruntime are rounded to 1e-6 so float noise below that never shows as a change.
 *
 * Tuned scales are reused from the lock while the spec, base model and catalog hashes match: like
 * a package lock, the file pins the result of a search rather than repeating it.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ScalpelError, readTextFile } from '../errors';
import { modelSha256, sha256File } from '../identity';
import * as S from '../schema';
import { PreparedFile, prepareFile, writeFileAtomic } from '../safetensors';
import { GoalResult } from './checks';
import { gateText } from './gate';
import { EditOutcome, ResolvedEdits } from './run';

export const LOCK_FORMAT = 'scalpel-lock/1';

export interface LockFile {
  format: typeof LOCK_FORMAT;
  spec: { file: string; sha256: string };
  model: { file: string; sha256: string };
  catalog: { dir: string; sha256: string };
  output: { file: string; sha256: string };
  edits: string[];
  /** `gate`: how a gated edit's component is gated (`gated`, `gated where ci > T`); absent for weight edits. */
  components: { key: string; label: string | null; edit: string; scale: number; gate?: string }[];
  scales: Record<string, number>;
  tuning: {
    objective: string;
    values: Record<string, number>;
    tokens: { dataset: string; ids: number[]; text: string[]; scored: number }[];
    trace: { x: number[]; f: number }[];
    constrained: boolean;
  } | null;
  metrics: Record<string, { tokens: number; before: number; after: number; delta: number }>;
  /** Why `metrics` and `checks` are empty (written with --no-measure, or measuring failed); absent when measured. */
  unmeasured?: string;
  /** ln V: the loss of a uniform guess, against which `after` says forgotten (equal) or inverted (above); absent in older locks. */
  uniform?: number;
  /**
   * Per probe and dataset an accuracy expectation reads: the base-trained probe's accuracy on the dataset's held-out
   * tokens (a fraction) before and after the edit; absent without such expectations.
   */
  accuracy?: Record<string, Record<string, { tokens: number; before: number; after: number; delta: number }>>;
  /** `goal`: for a check that names one, the goal, whether it was met and how far it was missed (the check's unit). */
  checks: LockCheck[];
}

export interface LockCheck {
  message: string;
  pass: boolean;
  goal?: GoalResult;
}

/** Hash of a catalog folder: its catalog.json and its tensors file. */
export function catalogHash(dir: string, tensors: string): string {
  return createHash('sha256').update(sha256File(path.join(dir, 'catalog.json'))).update(sha256File(path.join(dir, tensors))).digest('hex');
}

const round = (v: number) => Math.round(v * 1e6) / 1e6;

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === 'object') return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys((v as Record<string, unknown>)[k])]));
  return v;
}

/** Sorted keys, two-space indentation (so one value per line), trailing newline. */
export function stableJson(v: unknown): string {
  return JSON.stringify(sortKeys(v), null, 2) + '\n';
}

export function buildLock(args: {
  specFile: string;
  specText: string;
  modelFile: string;
  catalogDir: string;
  catalogSha: string;
  outFile: string;
  /** The output's sha256 (hashed from its temporary before the commit). */
  outSha: string;
  lockDir: string;
  resolved: ResolvedEdits;
  /** The measurements, or why there are none. */
  measured: EditOutcome | { unmeasured: string };
  labels: Map<string, string | undefined>;
  editOf: Map<string, string>;
}): LockFile {
  const rel = (f: string) => path.relative(args.lockDir, f).split(path.sep).join('/');
  const o = args.resolved;
  const m = args.measured;
  const t = o.tuning;
  return {
    format: LOCK_FORMAT,
    spec: { file: rel(args.specFile), sha256: createHash('sha256').update(args.specText).digest('hex') },
    model: { file: rel(args.modelFile), sha256: modelSha256(args.modelFile) },
    catalog: { dir: rel(args.catalogDir), sha256: args.catalogSha },
    output: { file: rel(args.outFile), sha256: args.outSha },
    edits: o.edits,
    components: o.terms.map((term) => ({ key: term.component.key, label: args.labels.get(term.component.key) ?? null, edit: args.editOf.get(term.component.key)!, scale: term.scale, ...(term.gate ? { gate: gateText(term.gate) } : {}) })),
    scales: o.scales,
    tuning: t
      ? {
          objective: t.objective,
          values: Object.fromEntries(t.edits.map((e, i) => [e, t.values[i]])),
          tokens: t.tokens,
          trace: t.trace.map((e) => ({ x: e.x, f: round(e.f) })),
          constrained: t.constrained,
        }
      : null,
    ...('unmeasured' in m
      ? { metrics: {}, checks: [], unmeasured: m.unmeasured }
      : {
          metrics: Object.fromEntries(m.deltas.map((d) => [d.name, { tokens: d.tokens, before: round(d.base), after: round(d.edited), delta: round(d.delta) }])),
          checks: m.checks.map((c) => ({ message: c.message, pass: c.pass, ...(c.goal ? { goal: { goal: c.goal.goal, met: c.goal.met, distance: round(c.goal.distance) } } : {}) })),
          uniform: round(m.uniform),
          ...(m.accuracies.length ? { accuracy: accuracyRecord(m) } : {}),
        }),
  };
}

function accuracyRecord(m: EditOutcome): NonNullable<LockFile['accuracy']> {
  const out: NonNullable<LockFile['accuracy']> = {};
  for (const a of m.accuracies) (out[a.probe] ??= {})[a.name] = { tokens: a.tokens, before: round(a.base), after: round(a.edited), delta: round(a.delta) };
  return out;
}

export function writeLock(file: string, lock: LockFile): void {
  writeFileAtomic(file, [stableJson(lock)]);
}

/** The lock written to its temporary, to be committed right after the model it describes. */
export function prepareLock(file: string, lock: LockFile): PreparedFile {
  return prepareFile(file, [stableJson(lock)]);
}

/**
 * Whether `output` is the file the lock describes: the model is renamed into place just before its
 * lock, so a crash between the two renames leaves a pair that this detects (and a re-run repairs).
 */
export function lockMatchesOutput(lock: LockFile, output: string): boolean {
  try {
    return modelSha256(output) === lock.output.sha256;
  } catch {
    return false;
  }
}

export function readLock(file: string): LockFile | undefined {
  if (!fs.existsSync(file)) return undefined;
  const text = readTextFile(file, 'read lock file');
  let json: LockFile;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ScalpelError(`invalid lock file: ${(err as Error).message}`, file);
  }
  if (json?.format !== LOCK_FORMAT) throw new ScalpelError(`not a Scalpel lock file (format ${JSON.stringify(json?.format)}, expected "${LOCK_FORMAT}")`, file);
  const problem = lockProblem(json);
  if (problem) throw new ScalpelError(`invalid lock file: ${problem}`, file);
  return json;
}

/** What is wrong with a parsed lock's fields (their types), or undefined. */
export function lockProblem(json: unknown): string | undefined {
  return LOCK_SCHEMA(json, '');
}

const fileSha = (name: string) => S.object({ [name]: S.string, sha256: S.string });

/** A lock may be edited by hand or come from a pull request: its types are checked before any use (the review page shows them). */
const LOCK_SCHEMA = S.object({}, {
  spec: fileSha('file'), model: fileSha('file'), catalog: fileSha('dir'), output: fileSha('file'),
  edits: S.array(S.string),
  components: S.array(S.object({ key: S.string, edit: S.string, scale: S.number }, { label: S.string, gate: S.string })),
  scales: S.record(S.number),
  tuning: S.object({}, {
    objective: S.string, values: S.record(S.number), constrained: S.boolean,
    tokens: S.array(S.object({ dataset: S.string, ids: S.array(S.integer(0, 2 ** 31)), text: S.array(S.string), scored: S.integer(0, Number.MAX_SAFE_INTEGER) })),
    trace: S.array(S.object({ x: S.array(S.number), f: S.number })),
  }),
  metrics: S.record(S.object({ tokens: S.integer(0, Number.MAX_SAFE_INTEGER), before: S.number, after: S.number, delta: S.number })),
  uniform: S.number,
  accuracy: S.record(S.record(S.object({ tokens: S.integer(0, Number.MAX_SAFE_INTEGER), before: S.number, after: S.number, delta: S.number }))),
  unmeasured: S.string,
  checks: S.array(S.object({ message: S.string, pass: S.boolean }, { goal: S.object({ goal: S.number, met: S.boolean, distance: S.number }) })),
});

/** The lock's tuned scales, when it was made from this very spec, model and catalog. */
export function lockedScales(lock: LockFile | undefined, specText: string, modelSha: string, catalogSha: string): Record<string, number> | undefined {
  if (!lock?.tuning) return undefined;
  const specSha = createHash('sha256').update(specText).digest('hex');
  if (lock.spec?.sha256 !== specSha || lock.model?.sha256 !== modelSha || lock.catalog?.sha256 !== catalogSha) return undefined;
  return lock.tuning.values;
}
