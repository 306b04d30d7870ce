/**
 * How the extension words checks' goals (no `vscode` import, so tests run it directly): Test Explorer puts a
 * passing check's missed goal next to its name, fails it under `scalpel.testing.failOnMissedGoal`, and run
 * summaries count the misses.
 */
import { failing, formatInUnit } from '../engine/edit/checks';
import type { CheckView } from './protocol';

/** `, 2 missed their goals` after a count of checks passed (nothing when every goal is met). */
export function missedGoalsNote(checks: CheckView[]): string {
  const missed = checks.filter((c) => c.goal && !c.goal.met).length;
  return missed ? `, ${missed} missed ${missed === 1 ? 'its goal' : 'their goals'}` : '';
}

/** `goal 0.0500 nats missed: spanish by 0.2725 nats`, or `goal met`; undefined for checks without a goal. */
export function goalDescription(checks: CheckView[]): string | undefined {
  const withGoal = checks.filter((c) => c.goal);
  if (!withGoal.length) return undefined;
  const missed = withGoal.filter((c) => !c.goal!.met);
  if (!missed.length) return `goal met`;
  return `goal ${formatInUnit(missed[0].goal!.goal, missed[0].unit)} missed: ${missed.map((c) => `${c.dataset} by ${formatInUnit(c.goal!.distance, c.unit)}`).join(', ')}`;
}

/**
 * The checks that fail a Test Explorer item: those whose bound fails, and with `failOnMissedGoal` (the CLI's
 * `--goals`) those that miss their goal; each one's message says the measured value, the goal and the distance.
 */
export function failedChecks(checks: CheckView[], failOnMissedGoal: boolean): CheckView[] {
  return checks.filter((c) => failing(c, failOnMissedGoal));
}
