/**
 * Guards and expectations over Δloss (edited − base, per dataset), and expectations over a probe's
 * accuracy on a dataset's tokens (base model vs edited model, the probe trained on the base model).
 *
 * Loss units: `nats` (per token), `bits` (nats / ln 2), `%` (of the base loss). An accuracy is a
 * fraction from 0 to 1 and has no unit. A guard bounds |Δ|; an expectation compares Δ (or the edited
 * value) with a bound. Each result carries the measured value and the bound in its message, so a
 * failing CI log says what happened without a rerun.
 *
 * A check may also name a **goal**: the value it aims at, stricter than its bound, in the same unit
 * and compared the same way. The bound decides pass or fail; the goal is measured and reported
 * (met, or missed by how much), so a spec keeps a bound its edit meets and still says the target it misses.
 */
import { ScalpelError } from '../errors';
import { Origin } from './weights';
import { DatasetDelta } from './preview';

/** The loss units, what each means; the spec language's parser, completion and grammar test read this table. */
export const UNITS = { nats: 'natural-log loss units', bits: 'log2 loss units (1 bit = 0.693 nats)', '%': 'relative to the loss before the edit' } as const;
export type Unit = keyof typeof UNITS;
/** What a check compares: rises: Δ; falls: −Δ; moves: |Δ|; is: the edited value itself (of the loss, or of an accuracy). */
export const CHANGES = { rises: 'Δ (after − before)', falls: '−Δ (before − after)', moves: '|Δ|, either way', is: 'the value after the edit' } as const;
export type Change = keyof typeof CHANGES;
export const COMPARISONS = ['>=', '<=', '>', '<'] as const;
export type Comparison = (typeof COMPARISONS)[number];

/** The names of a table, in its order, as a tuple the parser can match keywords against. */
export const names = <K extends string>(table: Record<K, unknown>): K[] => Object.keys(table) as K[];

export interface Check {
  kind: 'guard' | 'expect';
  /** Dataset name, as the spec declares it. */
  dataset: string;
  /** Which edit the check is about (expectations name one; guards belong to the edits that keep them). */
  edit?: string;
  /** Guards are `moves <= threshold`. */
  change: Change;
  op: Comparison;
  bound: number;
  /** A loss check's unit; `fraction` for an accuracy check. */
  unit: Unit | 'fraction';
  /**
   * An accuracy check (`accuracy(PROBE.DATA)`): the probe whose accuracy on the dataset's held-out tokens is
   * compared, before and after the edit. Absent: the dataset's loss.
   */
  probe?: string;
  /** What the check aims at, in its unit and compared by `op` like the bound (stricter than it); reported, never failing the check. */
  goal?: number;
  /** The guard's name, for guards. */
  guard?: string;
  origin?: Origin;
}

/** The word that introduces a check's goal (`within 0.35 nats, goal 0.05 nats`): the parser, completion, hover and grammar read it. */
export const GOAL_KEYWORD = 'goal';

/** How a measured value stands against a check's goal. */
export interface GoalResult {
  /** The goal, in the check's unit. */
  goal: number;
  met: boolean;
  /** How far the measured value is from the goal when missed, in the check's unit (0 when met). */
  distance: number;
}

export interface CheckResult {
  check: Check;
  pass: boolean;
  /** Measured value in the check's unit (|Δ| for guards). */
  value: number;
  /** Present when the check names a goal. */
  goal?: GoalResult;
  message: string;
}

/** Whether a goal asks more than the bound of a check compared by `op`: below it for < and <=, above it for > and >=. */
export function goalIsStricter(op: Comparison, goal: number, bound: number): boolean {
  return op === '<' || op === '<=' ? goal < bound : goal > bound;
}

/** `goal 0.0500 nats met`, or `goal 0.0500 nats missed by 0.2725 nats`. */
export function goalText(g: GoalResult, unit: Unit | 'fraction'): string {
  return `goal ${fmt(g.goal, unit)} ${g.met ? 'met' : `missed by ${fmt(g.distance, unit)}`}`;
}

/** Whether a check counts as failed: its bound fails, or with `goals` (the CLI's `--goals`), it misses its goal. */
export const failing = (c: { pass: boolean; goal?: GoalResult }, goals = false): boolean => !c.pass || (goals && !!c.goal && !c.goal.met);

/** The results whose goal was missed. */
export function missedGoals(results: readonly CheckResult[]): CheckResult[] {
  return results.filter((r) => r.goal && !r.goal.met);
}

export function inUnit(nats: number, unit: Unit, baseLoss: number): number {
  switch (unit) {
    case 'nats': return nats;
    case 'bits': return nats / Math.LN2;
    case '%': return (nats / baseLoss) * 100;
  }
}

/** `value` in `from` written in `to`; undefined where one is `%`, relative to a loss before the edit not known here. */
export function convertUnit(value: number, from: Unit, to: Unit): number | undefined {
  if (from === '%' || to === '%') return undefined;
  return inUnit(from === 'bits' ? value * Math.LN2 : value, to, NaN);
}

export function parseUnit(text: string, origin?: Origin): Unit {
  const t = text.trim().toLowerCase();
  if (t === 'nats' || t === 'nat' || t === '') return 'nats';
  if (t === 'bits' || t === 'bit') return 'bits';
  if (t === '%' || t === 'percent') return '%';
  throw new ScalpelError(`unknown unit "${text}" (use nats, bits or %)`, origin?.file, origin);
}

function compare(a: number, op: Comparison, b: number): boolean {
  switch (op) {
    case '<': return a < b;
    case '<=': return a <= b;
    case '>': return a > b;
    case '>=': return a >= b;
  }
}

/** A value in a check's unit as messages print it: `0.0500 nats`, `1.25%`, an accuracy's bare `0.9890`. */
export const formatInUnit = (v: number, unit: Unit | 'fraction'): string => (unit === 'fraction' ? v.toFixed(4) : unit === '%' ? `${v.toFixed(2)}%` : `${v.toFixed(4)} ${unit}`);
const fmt = formatInUnit;

/**
 * What a check reads of a dataset's measurement (a merged evaluation has no per-token losses): its loss, or
 * for an accuracy check the probe's accuracy on its held-out tokens, before and after.
 */
export type Measured = Pick<DatasetDelta, 'name' | 'base' | 'edited' | 'delta'>;

export function runCheck(check: Check, d: Measured): CheckResult {
  if (d.name !== check.dataset) throw new Error(`check for ${check.dataset} given results of ${d.name}`);
  const raw = check.change === 'rises' ? d.delta : check.change === 'falls' ? -d.delta : check.change === 'moves' ? Math.abs(d.delta) : d.edited;
  // An edited loss in % is relative to the base loss, like a Δ.
  const value = check.unit === 'fraction' ? raw : inUnit(raw, check.unit, d.base);
  const pass = compare(value, check.op, check.bound);
  const goal = check.goal === undefined ? undefined : goalOf(value, check.op, check.goal);
  const metric = check.probe ? 'accuracy' : 'loss';
  const what = check.change === 'is' ? metric : check.change === 'moves' ? `|Δ${metric}|` : check.change === 'falls' ? `−Δ${metric}` : `Δ${metric}`;
  const data = check.probe ? `${check.probe}.${check.dataset}` : check.dataset;
  const who = check.kind === 'guard' ? `guard ${check.guard ?? ''}${check.guard ? ' ' : ''}on ${data}` : `expect ${check.edit ? `${check.edit} ` : ''}${data}`;
  // An accuracy's message says both values: a fraction alone does not tell "kept" from "fell to chance".
  const values = check.probe ? ` (${d.base.toFixed(4)} → ${d.edited.toFixed(4)})` : '';
  const message = `${who}: ${what} ${check.op} ${fmt(check.bound, check.unit)}: measured ${fmt(value, check.unit)}${values}${pass ? '' : ' (failed)'}${goal ? `; ${goalText(goal, check.unit)}` : ''}`;
  return { check, pass, value, ...(goal ? { goal } : {}), message };
}

function goalOf(value: number, op: Comparison, goal: number): GoalResult {
  const met = compare(value, op, goal);
  return { goal, met, distance: met ? 0 : Math.abs(value - goal) };
}

/** How far a guard is violated, in its unit (0 when it holds): the penalty for constrained tuning. */
export function violation(check: Check, d: Measured): number {
  const r = runCheck(check, d);
  return r.pass ? 0 : Math.abs(r.value - check.bound);
}
