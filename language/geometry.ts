/**
 * What activation geometry needs from a spec: its model, its datasets by name, its probes, and one edit's patched
 * weights (its scale from the lock file when the lock matches this spec, model and catalog, else tuned
 * now), all through the same plan `scalpel apply` uses.
 */
import * as path from 'node:path';
import { Dataset, loadDataset } from '../engine/data';
import { ScalpelError } from '../engine/errors';
import { RuntimeOptions } from '../engine/runtime';
import { PlanRunner } from '../engine/edit/run';
import { CatalogComponents } from '../engine/edit/weights';
import { lockedFor, planFromAnalysis } from './plan';
import { checkedAnalysis, specFromAnalysis } from './semantic';
import { SpecProbe } from './spec';
import { AlignmentTable, alignmentTable } from '../engine/geometry/align';
import { GeometryRequest, measureGeometry } from '../engine/geometry';
import { TaggedSource } from '../engine/geometry/capture';
import { probeDirection } from '../engine/geometry/probe';
import { ProbeDefinition, catalogMetadataSha256, planProbeDefinition, probeFilePath, writeProbeFile } from '../engine/geometry/probe-file';
import { openCatalogTensors, CatalogTensors } from '../engine/catalog/read';
import { LanguageModel, openLanguageModel } from '../engine/lm';
import type { OnnxModel } from '../engine/onnx/model';
import { analyze, defaultEnv } from './checker';
import type { Code } from './diagnostics';
import { readTextFile } from '../engine/errors';

export interface SpecSubject {
  specFile: string;
  model: string;
  tokenizer?: string;
  components?: string;
  /** The model block's `context N`. */
  contextLength?: number;
  /** The spec's datasets by name, loaded relative to the spec. */
  datasets: Map<string, Dataset>;
  /** A spec dataset as geometry captures it: tagged (by its name unless `tag` is given), within its `limit N tokens`. */
  tagged(name: string, tag?: string): TaggedSource;
  /** The datasets its guards and expectations check, in declaration order (the languages of a language edit). */
  checked: string[];
  probes: SpecProbe[];
  /** What a declared probe's figures depend on, for the catalog at `catalogDir` (engine/geometry/probe-file.ts). */
  probeDefinition(probe: SpecProbe, catalogDir: string): ProbeDefinition;
  /**
   * The edit's scale by edit name, its patched initializers, and whether the scale came from the lock file;
   * a gated edit's `weights` are its paths' scale vectors and `graph` the model with those paths.
   */
  edit?: { name: string; scales: Record<string, number>; weights: Map<string, Float32Array>; fromLock: boolean; graph?: OnnxModel };
}

/** The spec's model as its model block declares it (tokenizer, context length). */
export const subjectModel = (subject: SpecSubject): LanguageModel => openLanguageModel(subject.model, { tokenizer: subject.tokenizer, contextLength: subject.contextLength });

/** `opts.scale`: the edit's scale, given (as the debugger's `scale` launch attribute is) rather than from the spec, its lock or a tuning run. */
export async function specSubject(specFile: string, editName: string | undefined, opts: { scale?: number; runtime?: RuntimeOptions; onStatus?: (m: string) => void; ignore?: readonly Code[] } = {}): Promise<SpecSubject> {
  const analysis = checkedAnalysis(specFile, undefined, undefined, opts.ignore);
  const plan = planFromAnalysis(analysis, specFile, editName === undefined ? [] : [editName]);
  const { probes, edits } = specFromAnalysis(analysis, path.resolve(specFile));
  const base = path.dirname(specFile);
  const datasets = new Map(plan.datasets.map((d) => [d.name, loadDataset(d.name, d.source, base)] as const));
  const named = new Set([...plan.guards.flatMap((g) => g.datasets), ...plan.expectations.map((x) => x.dataset)]);
  const checked = plan.datasets.map((d) => d.name).filter((n) => named.has(n));
  const declared = new Map(plan.datasets.map((d) => [d.name, d] as const));
  const tagged = (name: string, tag = name): TaggedSource => {
    const limit = declared.get(name)?.limit;
    return { tag, dataset: datasets.get(name)!, ...(limit !== undefined ? { maxTokens: limit } : {}) };
  };
  const probeDefinition = (p: SpecProbe, catalogDir: string): ProbeDefinition => planProbeDefinition(p, plan.datasets, catalogMetadataSha256(catalogDir));
  const subject: SpecSubject = { specFile, model: plan.model.path, tokenizer: plan.model.tokenizer, components: plan.model.components, contextLength: plan.model.contextLength, datasets, tagged, checked, probes, probeDefinition };
  if (editName === undefined) return subject;
  if (!plan.edits.some((e) => e.name === editName)) {
    throw new ScalpelError(`the spec has no edit named "${editName}" (it has ${edits.map((e) => e.name).join(', ') || 'none'})`, specFile);
  }
  const runner = await PlanRunner.open(plan, opts.runtime ?? {});
  try {
    const edit = runner.edit(editName);
    // A gated edit runs in the graph with its paths (as preview and apply do): its scales are fed into them.
    const graph = edit.gate ? { graph: runner.editor.model } : {};
    const known = opts.scale ?? ('value' in edit.scale ? edit.scale.value : lockedFor(runner)?.[editName]);
    if (known !== undefined && runner.catalog) {
      // A known scale needs no run: the weights are the edit's rank-one terms.
      const components = new CatalogComponents(runner.catalog);
      const weights = runner.editor.weights(edit.components.map((key) => ({ component: components.get(key, edit.origin), scale: known, ...(edit.gate ? { gate: edit.gate } : {}) })));
      subject.edit = { name: editName, scales: { [editName]: known }, weights, fromLock: opts.scale === undefined && !('value' in edit.scale), ...graph };
    } else {
      opts.onStatus?.(`tuning ${editName} (no lock file holds its scale for this spec, model and catalog)`);
      const outcome = await runner.run([editName], { onStatus: opts.onStatus, probes: false });
      subject.edit = { name: editName, scales: outcome.scales, weights: outcome.weights, fromLock: false, ...graph };
    }
  } finally {
    await runner.close();
  }
  return subject;
}

/**
 * Writes a declared probe's figures (accuracy and alignment per dataset) when `measureGeometry` trains it:
 * pass the result as `onProbe`. Returns the file it writes.
 */
export function probeFiguresWriter(subject: SpecSubject, probe: SpecProbe, catalogDir: string, catalog: CatalogTensors): { file: string; onProbe: NonNullable<GeometryRequest['onProbe']> } {
  const definition = subject.probeDefinition(probe, catalogDir);
  const file = probeFilePath(path.dirname(path.resolve(subject.specFile)), definition);
  return {
    file,
    onProbe: (p) => {
      if (p.point !== probe.point) return;
      const tables = new Map<string, AlignmentTable>(probe.datasets.map((d) => [d, alignmentTable(probeDirection(p.probe, d), p.access, catalog)]));
      writeProbeFile(file, probe.name, definition, Object.fromEntries(p.perTag.map((t) => [t.tag, t.base])), tables);
    },
  };
}

/**
 * Trains each probe that an `alignment(PROBE.DATA)` selector needs and that has no figures for the
 * spec's catalog yet (S604), on the base model, and writes its figures; returns the probes trained.
 * `scalpel eval`, `apply` and `geometry` call it before checking the spec, as they tune a scale the lock lacks.
 */
export async function trainMissingProbes(specFile: string, opts: { runtime?: RuntimeOptions; onStatus?: (m: string) => void; signal?: AbortSignal } = {}): Promise<string[]> {
  const abs = path.resolve(specFile);
  const analysis = analyze(readTextFile(abs, 'read spec'), defaultEnv(path.dirname(abs)));
  const missing = [...new Set(analysis.diagnostics.filter((d) => d.code === 'S604').map((d) => (d.data as { probe: string }).probe))];
  if (!missing.length) return [];
  // The spec's other errors are reported by the caller's check; only the data and the model are needed here.
  const subject = await specSubject(specFile, undefined, { ignore: ['S604'] });
  if (!subject.components) return [];
  const lm = subjectModel(subject);
  for (const name of missing) {
    const probe = subject.probes.find((p) => p.name === name)!;
    opts.onStatus?.(`training probe ${name} (${probe.kind} on ${probe.point} over ${probe.datasets.join(', ')}): alignment(${name}.…) needs its figures`);
    const catalog = openCatalogTensors(subject.components);
    try {
      const writer = probeFiguresWriter(subject, probe, subject.components, catalog);
      await measureGeometry(lm, {
        points: [probe.point], probe: probe.kind, catalog, runtime: opts.runtime, signal: opts.signal, onProbe: writer.onProbe,
        sources: probe.datasets.map((d) => subject.tagged(d)),
      });
    } finally {
      catalog.close();
    }
  }
  return missing;
}
