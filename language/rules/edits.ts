/** Rules on an edit's statements: one scale, something selected, a proper range, kept guards. */
import type * as A from '../ast';
import { diag } from '../diagnostics';
import { rule } from './rule';

const statements = <K extends A.EditStmt['kind']>(d: A.EditDecl, kind: K) => d.body.filter((s): s is Extract<A.EditStmt, { kind: K }> => s.kind === kind);

export const editRules = [
  rule('edit', ['S401', 'S402'], (d, ctx) => {
    const scales = statements(d, 'scale');
    const at = d.name ?? d;
    if (d.block && scales.length === 0) ctx.report(diag('S401', at.start, at.end, 'edit has no scale (add e.g. "scale 0")'));
    for (const extra of scales.slice(1)) ctx.report(diag('S401', extra.start, extra.end, 'an edit has one scale; this is a second one'));
    if (d.block && statements(d, 'select').length === 0) ctx.report(diag('S402', at.start, at.end, 'edit selects no components (add a select statement)'));
  }),

  rule('edit', ['S407', 'S404', 'S403'], (d, ctx) => {
    const sc = statements(d, 'scale')[0];
    if (!sc?.value) return;
    const method = ctx.analysis.editCatalogs.get(d)?.catalog.method.name;
    if (sc.gate && (method === 'neuron' || method === 'svd')) {
      ctx.report(diag('S407', sc.gate.keyword.start, sc.gate.keyword.end, `a ${method} catalog has no causal-importance functions to gate by (an SPD catalog has)`));
    }
    if (!('kind' in sc.value)) {
      if (sc.value.value === 1) ctx.report(diag('S404', sc.value.start, sc.value.end, 'scale 1 leaves the components as they are'));
      return;
    }
    const { low, high } = sc.value;
    if (low && high && !(low.value < high.value)) ctx.report(diag('S403', low.start, high.end, `the range [${low.value}, ${high.value}] is empty: write the lower end first`));
  }),

  rule('edit', ['S503', 'S504'], (d, ctx) => {
    const { symbols, editTargets } = ctx.analysis;
    const targets = editTargets.get(d) ?? new Set<string>();
    const keeps = statements(d, 'keep');
    for (const g of keeps.flatMap((k) => k.guards)) {
      const sym = symbols.get(g.text);
      if (sym?.kind !== 'guard') continue;
      const inside = (sym.decl as A.GuardDecl).members.map((m) => m.text).filter((m) => targets.has(m));
      if (inside.length) ctx.report(diag('S503', g.start, g.end, `guard "${g.text}" contains ${inside.map((x) => `"${x}"`).join(', ')}, which this edit targets: the guard would forbid the edit's own effect`));
    }
    if (d.block && keeps.length === 0 && d.name) {
      const candidates = [...symbols.values()].filter((s) => s.kind === 'guard' && !(s.decl as A.GuardDecl).members.some((m) => targets.has(m.text))).map((s) => s.name);
      ctx.report(diag('S504', d.name.start, d.name.end, `edit "${d.name.text}" keeps no guard: nothing protects the other datasets`, { guards: candidates }));
    }
  }),
];
