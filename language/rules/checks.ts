/** Rules on guards, probes and expectations. */
import { Comparison, GOAL_KEYWORD, goalIsStricter } from '../../engine/edit/checks';
import type * as A from '../ast';
import { diag } from '../diagnostics';
import { metricDef } from '../metrics';
import { RuleContext, rule } from './rule';

/**
 * A check's goal against its bound: a number of the bound's sign, in the bound's unit (or bare, as a bare
 * bound is), asking more than the bound (else every passing edit meets it, and the goal says nothing).
 */
function checkGoal(goal: A.GoalNode | undefined, op: Comparison | undefined, bound: A.Num | undefined, unit: A.UnitNode | undefined, positive: boolean, ctx: RuleContext): void {
  const g = goal?.value;
  if (!g) return;
  if (positive ? g.value <= 0 : g.value < 0) {
    ctx.report(diag('S501', g.start, g.end, positive ? `a ${GOAL_KEYWORD} must be positive` : `the ${GOAL_KEYWORD} must not be negative (rises/falls say the direction)`));
    return;
  }
  // A goal without the unit its bound has: the parser has said so.
  if (!bound || !op || (unit && !goal.unit)) return;
  if (goal.unit && goal.unit.unit !== unit?.unit) {
    ctx.report(diag('S509', goal.unit.start, goal.unit.end, `the ${GOAL_KEYWORD} is in ${goal.unit.unit} and the bound ${unit ? `in ${unit.unit}` : 'a bare number'}: write the ${GOAL_KEYWORD} ${unit ? `in ${unit.unit}` : 'as a bare number'}`));
    return;
  }
  if (!goalIsStricter(op, g.value, bound.value)) {
    const side = op === '<' || op === '<=' ? 'below' : 'above';
    const u = unit ? ` ${unit.unit}` : '';
    ctx.report(diag('S508', g.start, goal.end, `${GOAL_KEYWORD} ${g.value}${u} is not stricter than the bound ${op} ${bound.value}${u}: every edit that passes meets it (a ${GOAL_KEYWORD} of a ${op} check lies ${side} its bound)`));
  }
}

export const checkRules = [
  rule('guard', ['S506', 'S502', 'S501', 'S508', 'S509'], (d, ctx) => {
    const seen = new Set<string>();
    for (const m of d.members) {
      if (seen.has(m.text)) ctx.report(diag('S506', m.start, m.end, `"${m.text}" is already in this guard`));
      seen.add(m.text);
    }
    if (d.name && d.members.length === 0 && d.threshold) ctx.report(diag('S502', d.name.start, d.name.end, `guard "${d.name.text}" lists no dataset`));
    if (d.threshold && d.threshold.value <= 0) ctx.report(diag('S501', d.threshold.start, d.threshold.end, 'a guard threshold must be positive'));
    else checkGoal(d.goal, '<=', d.threshold, d.unit, true, ctx);
  }),

  rule('probe', ['S506', 'S601', 'S602'], (d, ctx) => {
    const seen = new Set<string>();
    for (const m of d.members) {
      if (seen.has(m.text)) ctx.report(diag('S506', m.start, m.end, `"${m.text}" is already in this probe`));
      seen.add(m.text);
    }
    if (d.point && !/^[A-Za-z_][\w]*(\.[\w]+)*$/.test(d.point.value)) {
      ctx.report(diag('S601', d.point.start, d.point.end, `"${d.point.value}" is not a capture point (h.N.resid, embed, a module path or a capture id such as h.2.mlp.c_fc.in)`));
    }
    if (d.name && d.point && seen.size < 2 && ctx.analysis.parse.text[d.end - 1] === ']') {
      ctx.report(diag('S602', d.name.start, d.name.end, `probe "${d.name.text}" tells datasets apart: list at least two`));
    }
  }),

  rule('expect', ['S505', 'S501', 'S508', 'S509', 'S605'], (d, ctx) => {
    const fraction = !!d.metric && metricDef(d.metric.fn.text)?.bound === 'fraction';
    if (fraction && d.unit) {
      ctx.report(diag('S505', d.unit.start, d.unit.end, `${d.metric!.fn.text} is a fraction of tokens from 0 to 1 and takes no unit: drop "${d.unit.unit}" (e.g. falls by >= 0.3)`));
    }
    if (fraction && d.bound && d.bound.value > 1) {
      ctx.report(diag('S605', d.bound.start, d.bound.end, `${d.metric!.fn.text} is a fraction from 0 to 1: a bound of ${d.bound.value} is outside it (write ${d.bound.value / 100} for ${d.bound.value} points)`));
    }
    if (d.unit && d.change?.text === 'is' && d.unit.unit === '%' && !fraction) ctx.report(diag('S505', d.unit.start, d.unit.end, '"is" compares the loss itself: use nats or bits, not %'));
    if (d.bound && d.bound.value < 0) ctx.report(diag('S501', d.bound.start, d.bound.end, 'the bound must not be negative (rises/falls say the direction)'));
    else if (fraction && d.goal?.value && d.goal.value.value > 1) {
      const g = d.goal.value;
      ctx.report(diag('S605', g.start, g.end, `an accuracy's ${GOAL_KEYWORD} is a fraction from 0 to 1: ${g.value} is outside it (write ${g.value / 100} for ${g.value} points)`));
    } else checkGoal(d.goal, d.comparison?.text, d.bound, d.unit, false, ctx);
  }),
];
