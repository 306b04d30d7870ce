/** The rule on edits that scale the same components (S405). */
import type * as A from '../ast';
import { CatalogIndex, selectionOrdinals } from '../catalog';
import { diag } from '../diagnostics';
import { RuleContext, rule } from './rule';

/**
 * Two edits on the same model that scale one component are alternatives: apply runs one at a time.
 * Selections are memoized arrays, so an identical selector in a later edit is the same array: it is
 * reported as a whole, and only distinct arrays are walked key by key (this keeps a 5,000-line
 * spec with large label and module selections within the typing budget).
 */
function overlaps(decls: A.Decl[], ctx: RuleContext): void {
  const edits = decls.filter((d): d is A.EditDecl => d.kind === 'edit');
  const owners = new Map<CatalogIndex, { byOrdinal: Int32Array; seenBy: Int32Array; byArray: Map<string[], number> }>();
  edits.forEach((e, ordinal) => {
    const catalog = ctx.analysis.editCatalogs.get(e);
    if (!catalog || !e.name) return;
    if (!owners.has(catalog)) {
      const n = catalog.componentCount;
      owners.set(catalog, { byOrdinal: new Int32Array(n).fill(-1), seenBy: new Int32Array(n).fill(-1), byArray: new Map() });
    }
    const { byOrdinal, seenBy, byArray } = owners.get(catalog)!;
    // Allocated on the first clash only: most edits have none. Counts, not key sets: `seenBy` already makes keys distinct.
    let clashes: Map<number, { n: number; example: string }> | undefined;
    let repeats: Map<number, number> | undefined;
    for (const s of e.body) {
      const keys = s.kind === 'select' && s.selector ? ctx.analysis.selections.get(s.selector) : undefined;
      if (!keys?.length) continue;
      const same = byArray.get(keys);
      if (same !== undefined && same !== ordinal) {
        repeats ??= new Map();
        repeats.set(same, (repeats.get(same) ?? 0) + keys.length);
        continue;
      }
      byArray.set(keys, ordinal);
      const ids = selectionOrdinals(catalog, keys);
      for (let i = 0; i < ids.length; i++) {
        const id = ids[i];
        if (seenBy[id] === ordinal) continue;
        seenBy[id] = ordinal;
        const prev = byOrdinal[id];
        if (prev < 0) byOrdinal[id] = ordinal;
        else if (prev !== ordinal) {
          clashes ??= new Map();
          const c = clashes.get(prev);
          if (c) c.n++;
          else clashes.set(prev, { n: 1, example: keys[i] });
        }
      }
    }
    if (!repeats && !clashes) return;
    const where = (prev: number) => `edit "${edits[prev].name!.text}" (line ${ctx.line(edits[prev].start)})`;
    for (const [prev, n] of repeats ?? []) {
      ctx.report(diag('S405', e.name.start, e.name.end, `edit "${e.name.text}" repeats a selector of ${where(prev)}: both scale the same ${n} component${n > 1 ? 's' : ''}, so they are alternatives (apply one at a time with --edit)`));
    }
    for (const [prev, { n, example }] of clashes ?? []) {
      ctx.report(diag('S405', e.name.start, e.name.end, `edit "${e.name.text}" scales ${n} component${n > 1 ? 's' : ''} that ${where(prev)} also scales, e.g. ${example}, so they are alternatives (apply one at a time with --edit)`));
    }
  });
}

export const overlapRules = [rule('spec', ['S405'], overlaps)];
