/**
 * A resolved edit plan: what a spec means once names, selectors and files are resolved. The spec
 * language produces it (language/plan.ts); tests and benchmarks build it directly.
 */
import type { Catalog } from '../catalog/types';
import { DataSource } from '../data';
import { Check, Unit } from './checks';
import type { Gate } from './gate';
import type { ProbeKind } from '../geometry/probe';
import { Origin } from './weights';

export interface PlanDataset {
  name: string;
  source: DataSource;
  /** Tokens scored at most (the spec's `limit N tokens`). */
  limit?: number;
  origin?: Origin;
}

export interface PlanGuard {
  name: string;
  datasets: string[];
  /** |Δloss| must stay at or below this. */
  threshold: number;
  unit: Unit;
  /** What |Δloss| should stay under, stricter than the threshold: reported, not enforced (checks.ts). */
  goal?: number;
  origin?: Origin;
}

/** A probe that accuracy checks read (`Check.probe`): one direction per dataset at a capture point, trained on the base model. */
export interface PlanProbe {
  name: string;
  kind: ProbeKind;
  /** A capture point name (`h.2.resid`), resolved against the model's graph when the probe runs. */
  point: string;
  /** The datasets it tells apart (plan dataset names), each captured within its `limit`, as `scalpel geometry` does. */
  datasets: string[];
  origin?: Origin;
}

export interface PlanTune {
  low: number;
  high: number;
  /** `toward`: minimize |loss − toward|; maximizing stops counting at the uniform loss. */
  objective: 'maximize' | 'minimize' | 'toward';
  /** The loss `toward` aims at: `uniform` (ln V of the model's vocabulary) or nats. */
  toward?: 'uniform' | number;
  /** The datasets whose mean edited loss is the objective: their tokens are the only tuning data. */
  datasets: string[];
  origin?: Origin;
}

export interface PlanEdit {
  name: string;
  /** Component keys, in selection order; every one is scaled by the edit's one scale. */
  components: string[];
  scale: { value: number } | { tune: PlanTune };
  /** Scale the components only where they are causally important (gate.ts); absent: the weights change. */
  gate?: Gate;
  /** Guard names this edit keeps. */
  keep: string[];
  origin?: Origin;
}

export interface EditPlan {
  /** The spec file (absolute) and its text, for the lock's hash. */
  specFile?: string;
  specText?: string;
  /** `catalog`: the metadata of `components` when the caller has read it already (the spec checker has). */
  /** `contextLength`: the spec's `context N`; without it the model's own (config.json, position table). */
  model: { path: string; tokenizer?: string; components?: string; contextLength?: number; catalog?: Catalog & { dir: string }; origin?: Origin };
  datasets: PlanDataset[];
  guards: PlanGuard[];
  edits: PlanEdit[];
  expectations: Check[];
  /** The probes accuracy expectations name (absent: none). */
  probes?: PlanProbe[];
}

/** A guard's checks: |Δloss| of each of its datasets at most its threshold. */
export function guardChecks(guard: PlanGuard, edit?: string): Check[] {
  return guard.datasets.map((dataset) => ({ kind: 'guard', dataset, edit, change: 'moves', op: '<=', bound: guard.threshold, unit: guard.unit, ...(guard.goal === undefined ? {} : { goal: guard.goal }), guard: guard.name, origin: guard.origin }));
}
