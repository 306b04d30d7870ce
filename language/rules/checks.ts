/** Rules on guards, probes and expectations. */
import { diag } from '../diagnostics';
import { rule } from './rule';

export const checkRules = [
  rule('guard', ['S506', 'S502', 'S501'], (d, ctx) => {
    const seen = new Set<string>();
    for (const m of d.members) {
      if (seen.has(m.text)) ctx.report(diag('S506', m.start, m.end, `"${m.text}" is already in this guard`));
      seen.add(m.text);
    }
    if (d.name && d.members.length === 0 && d.threshold) ctx.report(diag('S502', d.name.start, d.name.end, `guard "${d.name.text}" lists no dataset`));
    if (d.threshold && d.threshold.value <= 0) ctx.report(diag('S501', d.threshold.start, d.threshold.end, 'a guard threshold must be positive'));
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

  rule('expect', ['S505', 'S501'], (d, ctx) => {
    if (d.unit && d.change?.text === 'is' && d.unit.unit === '%') ctx.report(diag('S505', d.unit.start, d.unit.end, '"is" compares the loss itself: use nats or bits, not %'));
    if (d.bound && d.bound.value < 0) ctx.report(diag('S501', d.bound.start, d.bound.end, 'the bound must not be negative (rises/falls say the direction)'));
  }),
];
