/**
 * A probe trained on the base model, on disk, so that an accuracy check (`expect E: accuracy(PROBE.DATA) …`) captures
 * only the edited model in later runs: the probe's weights and biases, and its held-out scores on the base model.
 * The file is named by the probe's definition hash (probe-file.ts) and a hash of the base model's identity (its bytes,
 * tokenizer and context length, and the documents of the probe's datasets), so that any change retrains it.
 *
 *   .scalpel/probes/<definition hash>.base-<identity hash>.json next to the spec; `PlanRunner` writes and reads it.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../safetensors';
import { canonicalJson, probeHash, ProbeDefinition } from './probe-file';
import { Probe, ProbeScore, PROBE_KINDS } from './probe';

export const BASE_PROBE_FORMAT = 'scalpel-base-probe/1';

/** What a probe trained on the base model depends on beyond its definition. */
export interface BaseIdentity {
  /** `modelSha256` of the model file. */
  model: string;
  /** SHA-256 of the tokenizer.json (`bytes` for a tokenizer given as bytes). */
  tokenizer: string;
  contextLength: number;
  /** Per probe dataset, `datasetHash` of its documents. */
  data: Record<string, string>;
}

export interface BaseProbeFile {
  format: typeof BASE_PROBE_FORMAT;
  /** The probe's name in the spec that wrote it (shown in messages; not part of its identity). */
  name: string;
  definition: ProbeDefinition;
  base: BaseIdentity;
  probe: { kind: Probe['kind']; point: string; tags: string[]; weights: number[][]; bias: number[] };
  /** The probe's scores on the base model's held-out rows (JSON writes NaN as null). */
  score: ProbeScore;
}

/** Where the base-trained probe of `definition` on the model `base` names lives for a spec in `specDir`. */
export function baseProbePath(specDir: string, definition: ProbeDefinition, base: BaseIdentity): string {
  const identity = createHash('sha256').update(canonicalJson(base)).digest('hex').slice(0, 20);
  return path.join(specDir, '.scalpel', 'probes', `${probeHash(definition)}.base-${identity}.json`);
}

export function writeBaseProbe(file: string, name: string, definition: ProbeDefinition, base: BaseIdentity, probe: Probe, score: ProbeScore): void {
  const body: BaseProbeFile = {
    format: BASE_PROBE_FORMAT, name, definition, base,
    probe: { kind: probe.kind, point: probe.point, tags: probe.tags, weights: probe.weights.map((w) => Array.from(w)), bias: probe.bias },
    score,
  };
  fs.mkdirSync(path.dirname(file), { recursive: true });
  writeFileAtomic(file, [JSON.stringify(body) + '\n']);
}

const nan = (x: unknown) => (typeof x === 'number' ? x : NaN);

/**
 * The probe and its base scores in `file`, when it holds them for `definition` and `base`; undefined when it is
 * missing or anything else (a stale, foreign or damaged file is retrained, never an error).
 */
export function readBaseProbe(file: string, definition: ProbeDefinition, base: BaseIdentity): { probe: Probe; score: ProbeScore } | undefined {
  let json: BaseProbeFile;
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8')) as BaseProbeFile;
  } catch {
    return undefined;
  }
  const p = json?.probe;
  const tags = definition.datasets.map((d) => d.name);
  const vector = (v: unknown): v is number[] => Array.isArray(v) && v.every((x) => typeof x === 'number' && Number.isFinite(x));
  const ok =
    json?.format === BASE_PROBE_FORMAT &&
    canonicalJson(json.definition) === canonicalJson(definition) &&
    canonicalJson(json.base) === canonicalJson(base) &&
    p && PROBE_KINDS.includes(p.kind) && p.kind === definition.kind && p.point === definition.point &&
    canonicalJson(p.tags) === canonicalJson(tags) &&
    Array.isArray(p.weights) && p.weights.length === tags.length && p.weights.every((w) => vector(w) && w.length > 0 && w.length === p.weights[0].length) &&
    vector(p.bias) && p.bias.length === tags.length &&
    Array.isArray(json.score?.perTag) && json.score.perTag.length === tags.length && json.score.perTag.every((t, i) => t?.tag === tags[i] && typeof t.positives === 'number');
  if (!ok) return undefined;
  return {
    probe: { kind: p.kind, point: p.point, tags: p.tags, weights: p.weights.map((w) => Float64Array.from(w)), bias: p.bias },
    score: {
      rows: nan(json.score.rows),
      accuracy: nan(json.score.accuracy),
      perTag: json.score.perTag.map((t) => ({ tag: t.tag, balanced: nan(t.balanced), truePositiveRate: nan(t.truePositiveRate), trueNegativeRate: nan(t.trueNegativeRate), positives: t.positives })),
    },
  };
}
