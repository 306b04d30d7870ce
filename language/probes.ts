/**
 * A spec's probes as the checker sees them: where a declared probe's trained figures would be for a
 * catalog (engine/geometry/probe-file.ts), and, once `scalpel geometry --spec FILE --probe NAME` has
 * written them, each component's alignment with a dataset's direction. Files are re-read when their
 * size or mtime changes; a catalog's metadata is hashed once per catalog index.
 */
import * as fs from 'node:fs';
import type { ProbeKind } from '../engine/geometry/probe';
import { ProbeDataset, ProbeDefinition, ProbeFile, alignmentScores, catalogMetadataSha256, probeFilePath, readProbeFile } from '../engine/geometry/probe-file';

export interface ProbeFigures {
  file: string;
  /** `size:mtime` of the file, undefined when there is none: part of the selector memo's key. */
  stamp?: string;
  figures?: ProbeFile;
  problem?: string;
}

/** `index`: the edit's catalog index (catalog.ts), whose `derived` memo keeps the metadata's hash per catalog read. */
export function probeDefinition(index: { catalog: { dir: string }; derived: Map<string, unknown> }, kind: ProbeKind, point: string, datasets: ProbeDataset[]): ProbeDefinition {
  let sha = index.derived.get('sha256') as string | undefined;
  if (sha === undefined) {
    try {
      sha = catalogMetadataSha256(index.catalog.dir);
    } catch {
      sha = 'unreadable';
    }
    index.derived.set('sha256', sha);
  }
  return { kind, point, datasets, catalog: sha };
}

const files = new Map<string, ProbeFigures & { scores: Map<string, Map<string, number>> }>();

function stampOf(file: string): string | undefined {
  try {
    const st = fs.statSync(file);
    return `${st.size}:${st.mtimeMs}`;
  } catch {
    return undefined;
  }
}

/** The figures of `definition` for a spec in `specDir`, from the cache while the file is unchanged. */
export function probeFigures(specDir: string, definition: ProbeDefinition): ProbeFigures {
  return entry(probeFilePath(specDir, definition));
}

function entry(file: string): ProbeFigures & { scores: Map<string, Map<string, number>> } {
  const stamp = stampOf(file);
  const hit = files.get(file);
  if (hit && hit.stamp === stamp) return hit;
  const read = stamp === undefined ? { problem: 'missing' } : readProbeFile(file);
  const found = { file, stamp, ...read, scores: new Map<string, Map<string, number>>() };
  files.set(file, found);
  return found;
}

/**
 * A component's alignment with `dataset`'s direction in the probe file, or undefined when unknown. `probe.stamp` is
 * the one the checker read when it resolved the selector: while it still names the cached figures, no component
 * stats the file again.
 */
export function alignmentOf(probe: { file: string; stamp?: string }, dataset: string, key: string): number | undefined {
  const cached = files.get(probe.file);
  const e = cached && cached.stamp === probe.stamp ? cached : entry(probe.file);
  if (!e.figures) return undefined;
  let scores = e.scores.get(dataset);
  if (!scores) e.scores.set(dataset, (scores = alignmentScores(e.figures, dataset)));
  return scores.get(key);
}
