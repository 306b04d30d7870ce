/**
 * A trained probe's figures on disk, so that a spec can select components by them without running
 * the model: per dataset, the held-out accuracy and the cosine of the probe's direction with every
 * catalog component's read and write vector. The file is named by a hash of what the figures depend
 * on (the probe's kind, point and datasets, and the catalog's metadata), so a changed probe or a
 * retrained catalog finds no file instead of stale figures.
 *
 *   .scalpel/probes/<hash>.json next to the spec; `scalpel geometry --spec FILE --probe NAME` writes it.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { componentKey } from '../catalog/key';
import type { DataSource } from '../data';
import { sha256File } from '../identity';
import { writeFileAtomic } from '../safetensors';
import type { AlignmentTable } from './align';
import type { ProbeKind } from './probe';

/** Version 3: read cosines are with the effective read vector (through the reader's norm γ and centring); version 2's with V[:, c] itself. */
export const PROBE_FILE_FORMAT = 'scalpel-probe/3';

/** Everything a probe's figures depend on. `catalog`: the SHA-256 of the catalog's catalog.json. */
export interface ProbeDefinition {
  kind: ProbeKind;
  point: string;
  datasets: ProbeDataset[];
  catalog: string;
}

/** A probe's dataset: its source and its token budget (`limit N tokens`; absent when the spec sets none). */
export interface ProbeDataset {
  name: string;
  source: DataSource;
  limit?: number;
}

/** A dataset of a probe's definition, its `limit` only when the spec sets one (the figures depend on it). */
export function probeDataset(name: string, source: DataSource, limit: number | undefined): ProbeDataset {
  return { name, source, ...(limit !== undefined ? { limit } : {}) };
}

/** A declared probe's definition: its datasets as the plan declares them (source, limit), `catalog` the catalog.json's SHA-256. */
export function planProbeDefinition(probe: { kind: ProbeKind; point: string; datasets: readonly string[] }, datasets: readonly { name: string; source: DataSource; limit?: number }[], catalog: string): ProbeDefinition {
  const declared = new Map(datasets.map((d) => [d.name, d] as const));
  return { kind: probe.kind, point: probe.point, datasets: probe.datasets.map((name) => probeDataset(name, declared.get(name)!.source, declared.get(name)!.limit)), catalog };
}

export interface ProbeFile {
  format: typeof PROBE_FILE_FORMAT;
  /** The probe's name in the spec that wrote it (shown in messages; not part of its identity). */
  name: string;
  definition: ProbeDefinition;
  /** Per dataset: held-out balanced accuracy on the base model. */
  accuracy: Record<string, number>;
  /** Per dataset, per module: the cosine with each component's read vector and write vector (null: a zero vector). */
  alignment: Record<string, Record<string, { read?: (number | null)[]; write?: (number | null)[] }>>;
}

function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (v && typeof v === 'object') return Object.fromEntries(Object.keys(v).sort().map((k) => [k, canonical((v as Record<string, unknown>)[k])]));
  return v;
}

/** JSON with every object's keys sorted: equal values give equal text, whatever order their keys were set in. */
export const canonicalJson = (v: unknown): string => JSON.stringify(canonical(v));

/** The hash that names everything kept on disk for a probe's definition (its figures, its base-trained probes). */
export function probeHash(definition: ProbeDefinition): string {
  return createHash('sha256').update(canonicalJson(definition)).digest('hex').slice(0, 20);
}

/** Where the figures of `definition` live for a spec in `specDir`. */
export function probeFilePath(specDir: string, definition: ProbeDefinition): string {
  return path.join(specDir, '.scalpel', 'probes', `${probeHash(definition)}.json`);
}

const round = (x: number) => (Number.isFinite(x) ? Math.round(x * 1e4) / 1e4 : null);

export function writeProbeFile(file: string, name: string, definition: ProbeDefinition, accuracy: Record<string, number>, tables: Map<string, AlignmentTable>): void {
  const alignment: ProbeFile['alignment'] = {};
  for (const [dataset, table] of tables) {
    alignment[dataset] = {};
    for (const [module, sides] of table) {
      alignment[dataset][module] = {
        ...(sides.read ? { read: Array.from(sides.read, round) } : {}),
        ...(sides.write ? { write: Array.from(sides.write, round) } : {}),
      };
    }
  }
  const body: ProbeFile = { format: PROBE_FILE_FORMAT, name, definition, accuracy, alignment };
  fs.mkdirSync(path.dirname(file), { recursive: true });
  writeFileAtomic(file, [JSON.stringify(body) + '\n']);
}

/** The file's figures, or a reason why there are none (missing, unreadable or not a probe file); never throws. */
export function readProbeFile(file: string): { figures?: ProbeFile; problem?: string } {
  let text: string;
  try {
    if (!fs.statSync(file).isFile()) return { problem: 'not a regular file' };
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return { problem: 'missing' };
  }
  try {
    const json = JSON.parse(text) as ProbeFile;
    const ok = json?.format === PROBE_FILE_FORMAT && json.alignment && typeof json.alignment === 'object' && json.accuracy && typeof json.accuracy === 'object';
    return ok ? { figures: json } : { problem: `not a ${PROBE_FILE_FORMAT} file` };
  } catch (err) {
    return { problem: `invalid JSON: ${(err as Error).message}` };
  }
}

/** A component's alignment with a dataset's direction: the larger |cosine| of its read and write vectors. */
export function alignmentScores(figures: ProbeFile, dataset: string): Map<string, number> {
  const scores = new Map<string, number>();
  const modules = figures.alignment[dataset];
  if (!modules || typeof modules !== 'object') return scores;
  for (const [module, sides] of Object.entries(modules)) {
    for (const side of [sides?.read, sides?.write]) {
      if (!Array.isArray(side)) continue;
      side.forEach((cos, c) => {
        if (typeof cos !== 'number' || !Number.isFinite(cos)) return;
        const key = componentKey(module, c);
        scores.set(key, Math.max(scores.get(key) ?? 0, Math.abs(cos)));
      });
    }
  }
  return scores;
}

/** The SHA-256 of a catalog's metadata (catalog.json), which a probe's figures name as their catalog. */
export function catalogMetadataSha256(location: string): string {
  return sha256File(location.endsWith('.json') ? location : path.join(location, 'catalog.json'));
}
