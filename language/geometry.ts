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

export interface SpecSubject {
  specFile: string;
  model: string;
  tokenizer?: string;
  components?: string;
  /** The spec's datasets by name, loaded relative to the spec. */
  datasets: Map<string, Dataset>;
  /** The datasets its guards and expectations check, in declaration order (the languages of a language edit). */
  checked: string[];
  probes: SpecProbe[];
  /** The edit's scale by edit name, its patched initializers, and whether the scale came from the lock file. */
  edit?: { name: string; scales: Record<string, number>; weights: Map<string, Float32Array>; fromLock: boolean };
}

export async function specSubject(specFile: string, editName: string | undefined, opts: { runtime?: RuntimeOptions; onStatus?: (m: string) => void } = {}): Promise<SpecSubject> {
  const analysis = checkedAnalysis(specFile);
  const plan = planFromAnalysis(analysis, specFile);
  const { probes } = specFromAnalysis(analysis, path.resolve(specFile));
  const base = path.dirname(specFile);
  const datasets = new Map(plan.datasets.map((d) => [d.name, loadDataset(d.name, d.source, base)] as const));
  const named = new Set([...plan.guards.flatMap((g) => g.datasets), ...plan.expectations.map((x) => x.dataset)]);
  const checked = plan.datasets.map((d) => d.name).filter((n) => named.has(n));
  const subject: SpecSubject = { specFile, model: plan.model.path, tokenizer: plan.model.tokenizer, components: plan.model.components, datasets, checked, probes };
  if (editName === undefined) return subject;
  if (!plan.edits.some((e) => e.name === editName)) {
    throw new ScalpelError(`the spec has no edit named "${editName}" (it has ${plan.edits.map((e) => e.name).join(', ') || 'none'})`, specFile);
  }
  const runner = await PlanRunner.open(plan, opts.runtime ?? {});
  try {
    const edit = runner.edit(editName);
    if (edit.gate) {
      // The capture feeds patched weights; a gated edit is a graph path, which it cannot feed yet.
      throw new ScalpelError(`edit "${editName}" is gated: geometry captures ungated edits only so far (drop "gated" from a copy of the edit to see its ungated counterpart)`, specFile);
    }
    const known = 'value' in edit.scale ? edit.scale.value : lockedFor(runner)?.[editName];
    if (known !== undefined && runner.catalog) {
      // A known scale needs no run: the weights are the edit's rank-one terms.
      const components = new CatalogComponents(runner.catalog);
      const weights = runner.editor.weights(edit.components.map((key) => ({ component: components.get(key, edit.origin), scale: known })));
      subject.edit = { name: editName, scales: { [editName]: known }, weights, fromLock: !('value' in edit.scale) };
    } else {
      opts.onStatus?.(`tuning ${editName} (no lock file holds its scale for this spec, model and catalog)`);
      const outcome = await runner.run([editName], { onStatus: opts.onStatus });
      subject.edit = { name: editName, scales: outcome.scales, weights: outcome.weights, fromLock: false };
    }
  } finally {
    await runner.close();
  }
  return subject;
}
