/**
 * The semantic model of a checked spec: what the edits engine consumes. It is plain data with
 * absolute paths and resolved names, independent of syntax trees, ranges and LSP.
 *
 *   const spec = loadSpec('examples/remove-german.scalpel');   // throws ScalpelError on the first error
 *   const edit = spec.edits[0];
 *   const keys = editComponents(spec, edit, readCatalogMetadata(spec.models[0].components!));
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Catalog } from '../engine/catalog/types';
import { DataSource } from '../engine/data';
import { ScalpelError, fileError } from '../engine/errors';
import type { Change, Comparison, Unit } from './ast';
import { CatalogIndex, indexCatalog, selectComponents, sortKeys } from './catalog';
import { Analysis, CheckEnv, analyze, defaultEnv } from './checker';

export type { Change, Comparison, Unit } from './ast';

/** 1-based line and column of a declaration, for error messages that point into the spec. */
export interface SpecLocation {
  line: number;
  column: number;
}

export interface SpecModel {
  name: string;
  /** Absolute path of the .onnx file. */
  file: string;
  /** Absolute path of tokenizer.json (given, or the one beside the model). */
  tokenizer: string;
  /** Absolute path of the component catalog folder, when declared. */
  components?: string;
  /** The pinned SHA-256 (lower-case hex); the checker has verified that the file matches. */
  sha256?: string;
  at: SpecLocation;
}

export interface SpecDataset {
  name: string;
  /** Files are absolute. */
  source: DataSource;
  /** `limit N tokens`: score at most this many tokens. */
  maxTokens?: number;
  /** The catalog tag whose statistics describe this dataset (e.g. `de`), when known. */
  tag?: string;
  at: SpecLocation;
}

export interface SpecGuard {
  name: string;
  /** Dataset names; the guard holds when the loss of each one moves by at most the threshold. */
  datasets: string[];
  threshold: number;
  /** `%` is relative to the dataset's loss before the edit. */
  unit: Unit;
  at: SpecLocation;
}

/** Component selectors; several `select` statements of one edit are a union. */
export type SelectorSpec =
  | { kind: 'key'; key: string }
  /** fnmatch-style module glob (`moduleGlob` of engine/onnx/modules.ts). */
  | { kind: 'module'; pattern: string }
  /** Regular expression over label texts. */
  | { kind: 'label'; pattern: string; flags: string }
  /** The k components with the highest statistic, among `where` (default: all). */
  | { kind: 'top'; k: number; by: StatisticSpec; where?: SelectorSpec }
  | { kind: 'or' | 'minus'; left: SelectorSpec; right: SelectorSpec };

/** Catalog statistics; `data` and `versus` are dataset names (guards already expanded). */
export type StatisticSpec =
  | { kind: 'norm' }
  /** meanAbs on `data` over the mean of meanAbs on `versus`, or the catalog's selectivity when `versus` is absent. */
  | { kind: 'selectivity'; data: string; versus?: string[] }
  | { kind: 'activation'; data: string }
  | { kind: 'firing'; data: string };

/** A metric of a dataset, or of each dataset of a guard. */
export interface MetricSpec {
  kind: 'loss';
  target: { kind: 'dataset' | 'guard'; name: string };
}

export type ScaleSpec =
  | { kind: 'literal'; value: number }
  | {
      kind: 'tune';
      /** Inclusive search range of the scale factor. */
      range: [number, number];
      objective: 'maximize' | 'minimize';
      metric: MetricSpec;
      /** The datasets the metric is computed on (the tuning data). */
      data: string[];
    };

export interface SpecEdit {
  name: string;
  /** Name of a SpecModel. */
  model: string;
  selectors: SelectorSpec[];
  scale: ScaleSpec;
  /** Guard names that must hold after the edit. */
  keep: string[];
  at: SpecLocation;
}

export interface SpecExpectation {
  edit: string;
  metric: MetricSpec;
  /** rises/falls/moves: change of the metric (moves: absolute change); is: the value after the edit. */
  change: Change;
  comparison: Comparison;
  bound: number;
  unit: Unit;
  at: SpecLocation;
}

export interface Spec {
  /** Absolute path of the spec. */
  file: string;
  models: SpecModel[];
  datasets: SpecDataset[];
  guards: SpecGuard[];
  edits: SpecEdit[];
  expectations: SpecExpectation[];
}

/**
 * Reads, checks and returns a spec. Throws one ScalpelError with file, line and column at the
 * first error; warnings do not stop it (`scalpel check` shows them).
 */
export function loadSpec(file: string, env?: CheckEnv): Spec {
  const abs = path.resolve(file);
  let text: string;
  try {
    text = fs.readFileSync(abs, 'utf8');
  } catch (err) {
    throw fileError(err, file, 'read spec');
  }
  return loadSpecText(text, file, env);
}

/** `loadSpec` of a spec's text as an editor holds it (perhaps unsaved); `file` locates it and its relative paths. */
export function loadSpecText(text: string, file: string, env?: CheckEnv): Spec {
  const abs = path.resolve(file);
  const analysis = analyze(text, env ?? defaultEnv(path.dirname(abs)));
  const first = analysis.diagnostics.find((d) => d.severity === 'error');
  if (first) {
    const p = analysis.lines.position(first.start);
    throw new ScalpelError(`${first.code}: ${first.message}`, file, { line: p.line + 1, column: p.character + 1 });
  }
  return specFromAnalysis(analysis, abs);
}

/** The semantic model of an analysis without errors (parts that failed to check are left out). */
export function specFromAnalysis(a: Analysis, file: string): Spec {
  const at = (offset: number): SpecLocation => {
    const p = a.lines.position(offset);
    return { line: p.line + 1, column: p.character + 1 };
  };
  const spec: Spec = { file, models: [], datasets: [], guards: [], edits: [], expectations: [] };
  for (const d of a.parse.file.decls) {
    if (d.kind === 'model' && d.name) {
      const m = a.models.get(d.name.text);
      if (!m?.file || !m.tokenizer) continue;
      const pin = d.props.find((p) => p.key.text === 'sha256')?.value?.value.toLowerCase();
      spec.models.push({ name: d.name.text, file: m.file, tokenizer: m.tokenizer, ...(m.components ? { components: m.components } : {}), ...(pin ? { sha256: pin } : {}), at: at(d.start) });
    } else if (d.kind === 'data' && d.name) {
      const source = a.datasetSources.get(d.name.text);
      if (!source) continue;
      const tag = a.datasetTags.get(d.name.text);
      spec.datasets.push({ name: d.name.text, source, ...(d.limit ? { maxTokens: d.limit.value } : {}), ...(tag ? { tag } : {}), at: at(d.start) });
    } else if (d.kind === 'guard' && d.name && d.threshold && d.unit) {
      spec.guards.push({ name: d.name.text, datasets: [...new Set(d.members.map((m) => m.text))], threshold: d.threshold.value, unit: d.unit.unit, at: at(d.start) });
    } else if (d.kind === 'edit' && d.name && d.model) {
      const selectors = d.body.flatMap((s) => (s.kind === 'select' && s.selector ? [a.selectorSpecs.get(s.selector)].filter((x): x is SelectorSpec => !!x) : []));
      const scale = d.body.find((s) => s.kind === 'scale');
      const scaleSpec = scale?.kind === 'scale' ? a.scaleSpecs.get(scale) : undefined;
      if (!scaleSpec) continue;
      const keep = d.body.flatMap((s) => (s.kind === 'keep' ? s.guards.map((g) => g.text) : []));
      spec.edits.push({ name: d.name.text, model: d.model.text, selectors, scale: scaleSpec, keep: [...new Set(keep)], at: at(d.start) });
    } else if (d.kind === 'expect' && d.edit && d.metric && d.change && d.comparison && d.bound && d.unit) {
      const metric = a.metricSpecs.get(d.metric);
      if (!metric) continue;
      spec.expectations.push({ edit: d.edit.text, metric, change: d.change.text, comparison: d.comparison.text, bound: d.bound.value, unit: d.unit.unit, at: at(d.start) });
    }
  }
  return spec;
}

/** The dataset names a metric target stands for (a guard's datasets, or the one dataset). */
export function targetDatasets(spec: Spec, target: MetricSpec['target']): string[] {
  if (target.kind === 'dataset') return [target.name];
  return spec.guards.find((g) => g.name === target.name)?.datasets ?? [];
}

/** Resolves one selector against a catalog to component keys (sorted by module order, then index). */
export function resolveSelector(spec: Spec, selector: SelectorSpec, catalog: (Catalog & { dir: string }) | CatalogIndex): string[] {
  const index = 'byKey' in catalog ? catalog : indexCatalog(catalog);
  const tags = new Map(spec.datasets.map((d) => [d.name, d.tag]));
  return selectComponents(index, selector, (d) => tags.get(d));
}

/** The union of an edit's selectors, resolved against its model's catalog. */
export function editComponents(spec: Spec, edit: SpecEdit, catalog: (Catalog & { dir: string }) | CatalogIndex): string[] {
  const index = 'byKey' in catalog ? catalog : indexCatalog(catalog);
  const all = new Set<string>();
  for (const s of edit.selectors) for (const k of resolveSelector(spec, s, index)) all.add(k);
  return sortKeys(index, all);
}

/**
 * A loss tolerance in nats: `bits` converts by ln 2, `%` is relative to the loss before the edit.
 * E.g. a guard `within 5 %` on a dataset at 2.0 nats allows 0.1 nats.
 */
export function toleranceNats(bound: number, unit: Unit, baselineNats: number): number {
  if (unit === 'nats') return bound;
  if (unit === 'bits') return bound * Math.LN2;
  return (bound / 100) * baselineNats;
}
