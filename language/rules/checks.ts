/** Rules on guards and expectations. */
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

  rule('expect', ['S505', 'S501'], (d, ctx) => {
    if (d.unit && d.change?.text === 'is' && d.unit.unit === '%') ctx.report(diag('S505', d.unit.start, d.unit.end, '"is" compares the loss itself: use nats or bits, not %'));
    if (d.bound && d.bound.value < 0) ctx.report(diag('S501', d.bound.start, d.bound.end, 'the bound must not be negative (rises/falls say the direction)'));
  }),
];
