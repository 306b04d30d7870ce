/**
 * Guards and expectations over Δloss (edited − base, per dataset).
 *
 * Units: `nats` (per token), `bits` (nats / ln 2), `%` (of the base loss). A guard bounds |Δ|;
 * an expectation compares Δ (or the edited loss) with a bound. Each result carries the measured
 * value and the bound in its message, so a failing CI log says what happened without a rerun.
 */
import { ScalpelError } from '../errors';
import { Origin } from './weights';
import { DatasetDelta } from './preview';

/** The loss units, what each means; the spec language's parser, completion and grammar test read this table. */
export const UNITS = { nats: 'natural-log loss units', bits: 'log2 loss units (1 bit = 0.693 nats)', '%': 'relative to the loss before the edit' } as const;
export type Unit = keyof typeof UNITS;
/** What a check compares: rises: Δ; falls: −Δ; moves: |Δ|; is: the edited loss itself. */
export const CHANGES = { rises: 'Δloss (after − before)', falls: '−Δloss', moves: '|Δloss|, either way', is: 'the loss after the edit' } as const;
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
  unit: Unit;
  /** The guard's name, for guards. */
  guard?: string;
  origin?: Origin;
}

export interface CheckResult {
  check: Check;
  pass: boolean;
  /** Measured value in the check's unit (|Δ| for guards). */
  value: number;
  message: string;
}

export function inUnit(nats: number, unit: Unit, baseLoss: number): number {
  switch (unit) {
    case 'nats': return nats;
    case 'bits': return nats / Math.LN2;
    case '%': return (nats / baseLoss) * 100;
  }
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

const fmt = (v: number, unit: Unit) => (unit === '%' ? `${v.toFixed(2)}%` : `${v.toFixed(4)} ${unit}`);

/** What a check reads of a dataset's measurement (a merged evaluation has no per-token losses). */
export type Measured = Pick<DatasetDelta, 'name' | 'base' | 'edited' | 'delta'>;

export function runCheck(check: Check, d: Measured): CheckResult {
  if (d.name !== check.dataset) throw new Error(`check for ${check.dataset} given results of ${d.name}`);
  const nats = check.change === 'rises' ? d.delta : check.change === 'falls' ? -d.delta : check.change === 'moves' ? Math.abs(d.delta) : d.edited;
  // An edited loss in % is relative to the base loss, like a Δ.
  const value = inUnit(nats, check.unit, d.base);
  const pass = compare(value, check.op, check.bound);
  const what = check.change === 'is' ? 'loss' : check.change === 'moves' ? '|Δloss|' : check.change === 'falls' ? '−Δloss' : 'Δloss';
  const who = check.kind === 'guard' ? `guard ${check.guard ?? ''}${check.guard ? ' ' : ''}on ${check.dataset}` : `expect ${check.edit ? `${check.edit} ` : ''}${check.dataset}`;
  const message = `${who}: ${what} ${check.op} ${fmt(check.bound, check.unit)}: measured ${fmt(value, check.unit)}${pass ? '' : ' (failed)'}`;
  return { check, pass, value, message };
}

/** How far a guard is violated, in its unit (0 when it holds): the penalty for constrained tuning. */
export function violation(check: Check, d: Measured): number {
  const r = runCheck(check, d);
  return r.pass ? 0 : Math.abs(r.value - check.bound);
}
