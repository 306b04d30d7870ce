/**
 * Sharded evaluation of a spec: shard I of N measures batch b of every dataset when b mod N = I and
 * writes a part (plain JSON); merging all N parts gives exactly the unsharded result. Exactly, bit for
 * bit: a part holds per-window loss sums (each computed in the very batch the unsharded run uses), and
 * the merge adds them in window order with the evaluator's own reduction (`meanOfWindows`). A part
 * holds no time or host, so a retried shard writes the same bytes.
 */
import * as fs from 'node:fs';
import { ScalpelError, readTextFile } from '../errors';
import { Shard, meanOfWindows } from '../evaluate';
import { sha256File } from '../identity';
import { Check, CheckResult, runCheck } from './checks';
import { gateText } from './gate';
import { datasetKey } from './preview';
import { EditOutcome, PlanRunner, ProbeAccuracy } from './run';

export const PART_FORMAT = 'scalpel-eval-part/1';

/** One dataset of one edit: window sums of base and edited loss, null for windows other shards measure. */
export interface PartDataset {
  name: string;
  source: string;
  tokens: number;
  /** SHA-256 of the dataset's token ids: every shard must have read the same data. */
  sha256: string;
  base: (number | null)[];
  edited: (number | null)[];
}

export interface PartEdit {
  edits: string[];
  scales: Record<string, number>;
  components: string[];
  /** Gated components' gates, as the spec writes them, by component key. */
  gates: Record<string, string>;
  /** The uniform loss ln V of the model's vocabulary. */
  uniform: number;
  /** The tuning record as `scalpel eval --json` prints it (null for literal scales). */
  tuning: { objective: string; values: number[]; fromLock: boolean; tokens: unknown; evaluations: number } | null;
  /** Lines a front end prints above the metrics (what was edited and how it was tuned). */
  summary: string[];
  /** The checks to run on the merged measurements. */
  checks: Check[];
  datasets: PartDataset[];
  /** The probe accuracies accuracy checks read, measured whole by shard 0 (absent in the other shards' parts, and without such checks). */
  accuracies?: ProbeAccuracy[];
}

export interface EvalPart {
  format: typeof PART_FORMAT;
  spec: string;
  specSha256: string;
  /** SHA-256 of the lock file the tuned scales may come from (null: none, or not read). */
  lockSha256: string | null;
  shard: Shard;
  batchSize: number;
  edits: PartEdit[];
}

/** A merged edit: what the checks read and front ends print. */
export interface MergedEdit {
  edits: string[];
  scales: Record<string, number>;
  components: string[];
  gates: Record<string, string>;
  uniform: number;
  tuning: PartEdit['tuning'];
  summary: string[];
  deltas: { name: string; source: string; tokens: number; base: number; edited: number; delta: number }[];
  accuracies: ProbeAccuracy[];
  checks: CheckResult[];
}

export interface MergedEval {
  spec: string;
  edits: MergedEdit[];
}

/** `I/N`, or `N` with I from JOB_COMPLETION_INDEX (set by a Kubernetes Indexed Job). */
export function parseShard(text: string, env: NodeJS.ProcessEnv = process.env): Shard {
  const m = /^(?:(\d+)\/)?(\d+)$/.exec(text.trim());
  const usage = `--shard takes I/N (shard I of N, from 0), or N with I from JOB_COMPLETION_INDEX; not "${text}"`;
  if (!m) throw new ScalpelError(usage);
  const count = Number(m[2]);
  let index: number;
  if (m[1] !== undefined) index = Number(m[1]);
  else {
    const fromEnv = env.JOB_COMPLETION_INDEX;
    if (fromEnv === undefined) throw new ScalpelError(`--shard ${text} takes the shard index from JOB_COMPLETION_INDEX, which is not set (give --shard I/${count})`);
    if (!/^\d+$/.test(fromEnv)) throw new ScalpelError(`JOB_COMPLETION_INDEX is "${fromEnv}", not a shard index`);
    index = Number(fromEnv);
  }
  if (count < 1) throw new ScalpelError(usage);
  if (index >= count) throw new ScalpelError(`shard index ${index} is out of range for ${count} shards (0 to ${count - 1})`);
  return { index, count };
}

export function lockSha256(lockFile: string): string | null {
  return fs.existsSync(lockFile) ? sha256File(lockFile) : null;
}

const nullable = (sums: Float64Array) => Array.from(sums, (v) => (Number.isNaN(v) ? null : v));

/** One edit's outcome (measured with `shard`, or whole) as a part's entry. */
export function partEdit(runner: PlanRunner, o: EditOutcome, summary: string[]): PartEdit {
  return {
    edits: o.edits,
    scales: o.scales,
    components: o.terms.map((t) => t.component.key),
    gates: Object.fromEntries(o.terms.filter((t) => t.gate).map((t) => [t.component.key, gateText(t.gate!)])),
    uniform: o.uniform,
    tuning: o.tuning ? { objective: o.tuning.objective, values: o.tuning.values, fromLock: o.tuning.fromLock, tokens: o.tuning.tokens, evaluations: o.tuning.trace.length } : null,
    summary,
    checks: runner.checksFor(o.edits.map((e) => runner.edit(e))),
    datasets: o.deltas.map((d) => ({
      name: d.name,
      source: d.source,
      tokens: d.tokens,
      sha256: datasetKey(runner.dataset(d.name)),
      base: nullable(d.windowSums.base),
      edited: nullable(d.windowSums.edited),
    })),
    ...(o.accuracies.length ? { accuracies: o.accuracies } : {}),
  };
}

/** A part's bytes: keys in the order they are built (so a merged part prints as an unsharded one), no time, no host. */
export function partJson(part: EvalPart): string {
  return JSON.stringify(part, null, 1) + '\n';
}

export function readPart(file: string): EvalPart {
  const text = readTextFile(file, 'read evaluation part');
  let part: EvalPart;
  try {
    part = JSON.parse(text);
  } catch (err) {
    throw new ScalpelError(`not a JSON evaluation part: ${(err as Error).message}`, file);
  }
  if (part?.format !== PART_FORMAT) throw new ScalpelError(`not an evaluation part (format ${JSON.stringify(part?.format)}, expected ${PART_FORMAT}): write one with scalpel eval SPEC --shard I/N --out FILE`, file);
  return part;
}

/** Everything but the shard's own measurements: identical in every part of one evaluation. */
function identity(part: EvalPart): string {
  return JSON.stringify({ ...part, shard: part.shard.count, edits: part.edits.map((e) => ({ ...e, accuracies: undefined, datasets: e.datasets.map((d) => ({ ...d, base: d.base.length, edited: d.edited.length })) })) });
}

/**
 * The N parts of one evaluation combined into the part of shard 0/1 (byte for byte what an unsharded
 * `--shard 0/1` run writes), after checking they belong together and cover every window once.
 */
export function combineParts(parts: { part: EvalPart; file: string }[]): EvalPart {
  if (!parts.length) throw new ScalpelError('nothing to merge: give the parts written by scalpel eval SPEC --shard I/N --out FILE');
  const [first] = parts;
  const count = first.part.shard.count;
  const byIndex = new Map<number, string>();
  for (const { part, file } of parts) {
    if (identity(part) !== identity(first.part)) {
      const what = part.specSha256 !== first.part.specSha256 ? 'another spec text' : part.lockSha256 !== first.part.lockSha256 ? 'another lock file' : part.shard.count !== count ? `${part.shard.count} shards, not ${count}` : 'other options, data or tuned scales';
      throw new ScalpelError(`this part does not belong with ${first.file}: ${what}`, file);
    }
    const seen = byIndex.get(part.shard.index);
    if (seen) throw new ScalpelError(`shard ${part.shard.index}/${count} given twice (also ${seen})`, file);
    byIndex.set(part.shard.index, file);
  }
  const missing = Array.from({ length: count }, (_, i) => i).filter((i) => !byIndex.has(i));
  if (missing.length) throw new ScalpelError(`shard${missing.length > 1 ? 's' : ''} ${missing.join(', ')} of ${count} missing: merge needs every part`, first.file);
  const zero = parts.find((p) => p.part.shard.index === 0)!.part;
  const edits = first.part.edits.map((e, ei) => ({
    ...e,
    datasets: e.datasets.map((d, di) => {
      const pick = (side: 'base' | 'edited') =>
        d[side].map((_, w) => {
          const owner = parts.find((p) => p.part.edits[ei].datasets[di][side][w] !== null);
          if (!owner) throw new ScalpelError(`no part measured window ${w} of ${d.name}`, first.file);
          return owner.part.edits[ei].datasets[di][side][w];
        });
      return { ...d, base: pick('base'), edited: pick('edited') };
    }),
    accuracies: zero.edits[ei].accuracies,
  }));
  return { ...first.part, shard: { index: 0, count: 1 }, edits };
}

/** A complete part (shard 0/1, or combined) measured and checked: the spec's result. */
export function resultOf(part: EvalPart, file?: string): MergedEval {
  if (part.shard.count !== 1) throw new ScalpelError(`this is shard ${part.shard.index} of ${part.shard.count}: merge all ${part.shard.count} parts`, file);
  return {
    spec: part.spec,
    edits: part.edits.map((e) => {
      const deltas = e.datasets.map((d) => {
        const sums = (side: 'base' | 'edited') => {
          if (d[side].some((v) => v === null)) throw new ScalpelError(`dataset ${d.name} has unmeasured windows`, file);
          return d[side] as number[];
        };
        const base = meanOfWindows(sums('base'), d.tokens);
        const edited = meanOfWindows(sums('edited'), d.tokens);
        return { name: d.name, source: d.source, tokens: d.tokens, base, edited, delta: edited - base };
      });
      const accuracies = e.accuracies ?? [];
      const checks = e.checks.map((c) => {
        const d = c.probe ? accuracies.find((a) => a.probe === c.probe && a.name === c.dataset) : deltas.find((x) => x.name === c.dataset);
        if (!d) throw new ScalpelError(`a check reads ${c.probe ? `probe ${c.probe}'s accuracy on ` : ''}dataset ${c.dataset}, which the part did not measure`, file);
        return runCheck(c, d);
      });
      return { edits: e.edits, scales: e.scales, components: e.components, gates: e.gates, uniform: e.uniform, tuning: e.tuning, summary: e.summary, deltas, accuracies, checks };
    }),
  };
}
