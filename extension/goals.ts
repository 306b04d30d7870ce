/**
 * How the extension words checks' goals (no `vscode` import, so tests run it directly): Test Explorer puts a
 * passing check's missed goal next to its name, and run summaries count the misses.
 */
import { formatInUnit } from '../engine/edit/checks';
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
