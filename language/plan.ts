/**
 * A checked spec turned into the edit engine's plan (engine/edit/plan.ts): the one path from a spec's
 * text to the engine, shared by `scalpel eval/apply`, the debugger, the extension and the benches.
 * The checker resolves selectors once; the plan reuses its keys and its catalog metadata.
 *
 *   const plan = loadPlan('examples/remove-german.scalpel');          // the file's text
 *   const plan = loadPlan(file, editor.getText());                      // unsaved text: no disk read
 */
import * as path from 'node:path';
import { ScalpelError } from '../engine/errors';
import { Check } from '../engine/edit/checks';
import { lockFileFor } from '../engine/edit/apply';
import { catalogHash, lockedScales, readLock } from '../engine/edit/lock';
import { modelSha256 } from '../engine/identity';
import { EditPlan } from '../engine/edit/plan';
import { PlanRunner } from '../engine/edit/run';
import type { Analysis, CheckEnv } from './analysis';
import { checkedAnalysis, specFromAnalysis, targetDatasets } from './semantic';

/** Reads (unless `text` is given), checks and plans a spec; one ScalpelError at the first error. */
export function loadPlan(file: string, text?: string, env?: CheckEnv): EditPlan {
  return planFromAnalysis(checkedAnalysis(file, text, env), file);
}

/** The plan of an analysis without errors (`checkedAnalysis`); `file` is the spec's path; `only`: plan these edits alone. */
export function planFromAnalysis(analysis: Analysis, file: string, only?: readonly string[]): EditPlan {
  const spec = specFromAnalysis(analysis, path.resolve(file));
  const origin = (at: { line: number; column: number }) => ({ file: spec.file, ...at });
  const used = [...new Set(spec.edits.map((e) => e.model))];
  if (used.length > 1) {
    const second = spec.edits.find((e) => e.model === used[1])!;
    throw new ScalpelError(`all edits of a spec must edit one model (${used[0]} and ${used[1]} here)`, spec.file, second.at);
  }
  const model = spec.models.find((m) => m.name === used[0]) ?? spec.models[0];
  if (!model) throw new ScalpelError('the spec declares no model', spec.file);
  const catalog = analysis.models.get(model.name)?.catalog?.catalog;
  const edits = spec.edits.filter((e) => !only || only.includes(e.name)).map((e) => {
    if (!model.components) throw new ScalpelError(`edit ${e.name} selects components but model ${model.name} declares no components`, spec.file, e.at);
    if (!e.components.length) throw new ScalpelError(`edit ${e.name} selects no components in ${model.components}`, spec.file, e.at);
    const s = e.scale;
    const scale = s.kind === 'literal'
      ? { value: s.value }
      : { tune: { low: s.range[0], high: s.range[1], objective: s.objective, ...(s.toward ? { toward: s.toward.kind === 'uniform' ? ('uniform' as const) : s.toward.nats } : {}), datasets: s.data, origin: origin(e.at) } };
    return { name: e.name, components: e.components, scale, ...(s.gate ? { gate: s.gate } : {}), keep: e.keep, origin: origin(e.at) };
  });
  const expectations: Check[] = spec.expectations.flatMap((x) => {
    const metric = x.metric.kind === 'accuracy' ? { probe: x.metric.probe, unit: 'fraction' as const } : { unit: x.unit! };
    return targetDatasets(spec, x.metric.target).map((dataset) => ({ kind: 'expect' as const, edit: x.edit, dataset, change: x.change, op: x.comparison, bound: x.bound, ...metric, ...(x.goal === undefined ? {} : { goal: x.goal }), origin: origin(x.at) }));
  });
  // The probes accuracy expectations read; the others run in `scalpel geometry` and alignment selectors.
  const read = new Set(expectations.flatMap((c) => (c.probe ? [c.probe] : [])));
  const probes = spec.probes.filter((p) => read.has(p.name)).map((p) => ({ name: p.name, kind: p.kind, point: p.point, datasets: p.datasets, origin: origin(p.at) }));
  return {
    specFile: spec.file,
    specText: analysis.parse.text,
    model: { path: model.file, tokenizer: model.tokenizer, components: model.components, ...(model.contextLength ? { contextLength: model.contextLength } : {}), ...(catalog ? { catalog } : {}), origin: origin(model.at) },
    datasets: spec.datasets.map((d) => ({ name: d.name, source: d.source, limit: d.maxTokens, origin: origin(d.at) })),
    guards: spec.guards.map((g) => ({ name: g.name, datasets: g.datasets, threshold: g.threshold, unit: g.unit, ...(g.goal === undefined ? {} : { goal: g.goal }), origin: origin(g.at) })),
    edits,
    expectations,
    ...(probes.length ? { probes } : {}),
  };
}

/** Tuned scales from the spec's lock file, when it was written for this spec, model and catalog. */
export function lockedFor(runner: PlanRunner, lockFile?: string): Record<string, number> | undefined {
  const plan = runner.plan;
  if (!plan.specFile || plan.specText === undefined || !runner.catalog) return undefined;
  const c = runner.catalog.catalog;
  return lockedScales(readLock(lockFile ?? lockFileFor(plan.specFile)), plan.specText, modelSha256(runner.lm.file), catalogHash(c.dir, c.tensors ?? 'components.safetensors'));
}
