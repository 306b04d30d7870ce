/**
 * From a checker's analysis to the semantic model (spec.ts): what the edit plan (plan.ts) is made of.
 *
 *   const spec = loadSpec('examples/remove-german.scalpel');   // throws ScalpelError on the first error
 *   const keys = spec.edits[0].components;                       // resolved by the checker, in catalog order
 */
import { PROBE_WORDS, ProbeWord } from '../engine/geometry/probe';
import * as path from 'node:path';
import { ScalpelError, readTextFile } from '../engine/errors';
import type { GoalNode, Unit } from './ast';
import { sortKeys } from './catalog';
import type { Analysis, CheckEnv } from './analysis';
import { analyze, defaultEnv } from './checker';
import type { Code } from './diagnostics';
import type { MetricSpec, SelectorSpec, Spec, SpecLocation } from './spec';

/**
 * Reads, checks and returns a spec. Throws one ScalpelError with file, line and column at the
 * first error; warnings do not stop it (`scalpel check` shows them).
 */
export function loadSpec(file: string, env?: CheckEnv): Spec {
  return specFromAnalysis(checkedAnalysis(file, undefined, env), path.resolve(file));
}

/**
 * The analysis of a spec without errors: `text` as an editor holds it (perhaps unsaved), else the file's.
 * `file` locates the spec and its relative paths. Throws one ScalpelError at the first error.
 */
export function checkedAnalysis(file: string, text?: string, env?: CheckEnv, ignore: readonly Code[] = []): Analysis {
  const abs = path.resolve(file);
  const analysis = analyze(text ?? readTextFile(abs, 'read spec'), env ?? defaultEnv(path.dirname(abs)));
  const first = analysis.diagnostics.find((d) => d.severity === 'error' && !ignore.includes(d.code));
  if (first) {
    const p = analysis.lines.position(first.start);
    throw new ScalpelError(`${first.code}: ${first.message}`, file, { line: p.line + 1, column: p.character + 1 });
  }
  return analysis;
}

/** The semantic model of an analysis without errors (parts that failed to check are left out). */
export function specFromAnalysis(a: Analysis, file: string): Spec {
  const at = (offset: number): SpecLocation => {
    const p = a.lines.position(offset);
    return { line: p.line + 1, column: p.character + 1 };
  };
  const spec: Spec = { file, models: [], datasets: [], guards: [], probes: [], edits: [], expectations: [] };
  for (const d of a.parse.file.decls) {
    if (d.kind === 'model' && d.name) {
      const m = a.models.get(d.name.text);
      if (!m?.file || !m.tokenizer) continue;
      const pin = d.props.find((p) => p.key.text === 'sha256')?.value?.value.toLowerCase();
      spec.models.push({ name: d.name.text, file: m.file, tokenizer: m.tokenizer, ...(m.components ? { components: m.components } : {}), ...(pin ? { sha256: pin } : {}), ...(m.contextLength ? { contextLength: m.contextLength } : {}), at: at(d.start) });
    } else if (d.kind === 'data' && d.name) {
      const source = a.datasetSources.get(d.name.text);
      if (!source) continue;
      const tag = a.datasetTags.get(d.name.text);
      spec.datasets.push({ name: d.name.text, source, ...(d.limit ? { maxTokens: d.limit.value } : {}), ...(tag ? { tag } : {}), at: at(d.start) });
    } else if (d.kind === 'guard' && d.name && d.threshold && d.unit) {
      spec.guards.push({ name: d.name.text, datasets: [...new Set(d.members.map((m) => m.text))], threshold: d.threshold.value, unit: d.unit.unit, ...goalOf(d.goal), at: at(d.start) });
    } else if (d.kind === 'probe' && d.name && d.probe && d.point) {
      spec.probes.push({ name: d.name.text, kind: PROBE_WORDS[d.probe.text as ProbeWord], point: d.point.value, datasets: [...new Set(d.members.map((m) => m.text))], at: at(d.start) });
    } else if (d.kind === 'edit' && d.name && d.model) {
      const selects = d.body.flatMap((s) => (s.kind === 'select' && s.selector ? [s.selector] : []));
      const selectors = selects.map((n) => a.selectorSpecs.get(n)).filter((x): x is SelectorSpec => !!x);
      const catalog = a.editCatalogs.get(d);
      const components = catalog ? sortKeys(catalog, new Set(selects.flatMap((n) => a.selections.get(n) ?? []))) : [];
      const scale = d.body.find((s) => s.kind === 'scale');
      const scaleSpec = scale?.kind === 'scale' ? a.scaleSpecs.get(scale) : undefined;
      if (!scaleSpec) continue;
      const keep = d.body.flatMap((s) => (s.kind === 'keep' ? s.guards.map((g) => g.text) : []));
      spec.edits.push({ name: d.name.text, model: d.model.text, selectors, components, scale: scaleSpec, keep: [...new Set(keep)], at: at(d.start) });
    } else if (d.kind === 'expect' && d.edit && d.metric && d.change && d.comparison && d.bound) {
      const metric = a.metricSpecs.get(d.metric);
      // A loss bound has its unit, an accuracy (a fraction) none: anything else is an error the checker reported.
      if (!metric || (metric.kind === 'loss') !== !!d.unit) continue;
      spec.expectations.push({ edit: d.edit.text, metric, change: d.change.text, comparison: d.comparison.text, bound: d.bound.value, ...(d.unit ? { unit: d.unit.unit } : {}), ...goalOf(d.goal), at: at(d.start) });
    }
  }
  return spec;
}

/** A goal as the semantic model's optional field (its unit is the bound's: the checker says so otherwise). */
const goalOf = (g: GoalNode | undefined): { goal?: number } => (g?.value ? { goal: g.value.value } : {});

/** The dataset names a metric target stands for (a guard's datasets, or the one dataset). */
export function targetDatasets(spec: Spec, target: MetricSpec['target']): string[] {
  if (target.kind === 'dataset') return [target.name];
  return spec.guards.find((g) => g.name === target.name)?.datasets ?? [];
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
