/** Rules on selectors: a proper `top` count, label selectors that catch broad components, empty selections. */
import type * as A from '../ast';
import type { SelectorSpec } from '../spec';
import type { ComponentInfo } from '../../engine/catalog/types';
import { CatalogIndex, bestSelectivity, selectComponents } from '../catalog';
import { diag } from '../diagnostics';
import { RuleContext, rule } from './rule';

/** Selectivity below this for every tag makes a component "broad" (it is not about one language). */
export const SPECIFIC_SELECTIVITY = 2;

/** The selectors of an edit's select statements. */
const roots = (d: A.EditDecl) => d.body.flatMap((s) => (s.kind === 'select' && s.selector ? [s.selector] : []));

/** Visits a selector tree as the checker resolves it: `top`'s filter only under a complete `top K by STAT`, marked `ranked`. */
function walk(s: A.Selector, visit: (s: A.Selector, ranked: boolean) => void, ranked = false): void {
  visit(s, ranked);
  if (s.kind === 'top' && s.k && s.stat && s.where) walk(s.where, visit, true);
  if (s.kind === 'or' || s.kind === 'minus') {
    walk(s.left, visit, ranked);
    if (s.right) walk(s.right, visit, ranked);
  }
}

export const selectorRules = [
  rule('edit', ['S307'], (d, ctx) => {
    for (const root of roots(d)) {
      walk(root, (s) => {
        if (s.kind === 'top' && s.k && s.stat && (!Number.isInteger(s.k.value) || s.k.value <= 0)) ctx.report(diag('S307', s.k.start, s.k.end, 'top needs a positive whole number'));
      });
    }
  }),

  // Under `top … by`, the ranking already picks the specific ones.
  rule('edit', ['S308'], (d, ctx) => {
    const catalog = ctx.analysis.editCatalogs.get(d);
    if (!catalog) return;
    for (const root of roots(d)) {
      walk(root, (s, ranked) => {
        const spec = ctx.analysis.selectorSpecs.get(s);
        if (s.kind === 'label' && !ranked && spec?.kind === 'label') broadLabel(s, spec, catalog, ctx);
      });
    }
  }),

  rule('edit', ['S304'], (d, ctx) => {
    for (const s of d.body) {
      if (s.kind !== 'select' || !s.selector) continue;
      const keys = ctx.analysis.selections.get(s.selector);
      if (keys && keys.length === 0 && !ctx.hasErrorIn(s)) ctx.report(diag('S304', s.selector.start, s.selector.end, 'this selector matches no component'));
    }
  }),
];

/**
 * `label /german/i` also catches components labelled for something broader ("non-English",
 * "foreign languages in general"). Warn when most matches are not specific.
 */
function broadLabel(s: A.LabelSel, spec: Extract<SelectorSpec, { kind: 'label' }>, catalog: CatalogIndex, ctx: RuleContext): void {
  const memoKey = `broad:${JSON.stringify(spec)}`;
  if (!catalog.derived.has(memoKey)) catalog.derived.set(memoKey, labelBreadth(spec, catalog, ctx));
  const found = catalog.derived.get(memoKey) as { message: string; key?: string } | undefined;
  if (found) ctx.report(diag('S308', s.start, s.end, found.message, found.key ? { replacement: JSON.stringify(found.key), key: found.key } : undefined));
}

function labelBreadth(spec: Extract<SelectorSpec, { kind: 'label' }>, catalog: CatalogIndex, ctx: RuleContext): { message: string; key?: string } | undefined {
  const tags = ctx.analysis.datasetTags;
  const infos = selectComponents(catalog, spec, (data) => tags.get(data)).map((k) => catalog.byKey.get(k)!).filter((c) => c?.selectivity);
  if (infos.length < 2) return undefined;
  const best = new Map(infos.map((c) => [c, bestSelectivity(c)?.value ?? 0]));
  const broad = infos.filter((c) => best.get(c)! < SPECIFIC_SELECTIVITY);
  if (broad.length * 2 <= infos.length) return undefined;
  // The most specific match (the first of equals), found in one pass: only it is shown.
  let top: ComponentInfo | undefined;
  for (const c of infos) if (best.get(c)! >= SPECIFIC_SELECTIVITY && (!top || best.get(c)! > best.get(top)!)) top = c;
  const ex = broad[0];
  return {
    message: `${broad.length} of ${infos.length} components matching /${spec.pattern}/${spec.flags} are broad (selectivity below ${SPECIFIC_SELECTIVITY}× for every tag), e.g. ${ex.key} "${ex.label?.text}"`
      + (top ? `; the most specific is ${top.key} "${top.label?.text}"` : ''),
    ...(top ? { key: top.key } : {}),
  };
}
