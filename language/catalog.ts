/**
 * Component catalogs as the language sees them: metadata only (catalog.json through
 * `readCatalogMetadata`), indexed once, cached per folder and re-read when catalog.json changes.
 * No ONNX session and no tensor bytes are ever touched here: typing features must stay fast.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readCatalogMetadata } from '../engine/catalog/read';
import { componentKey, componentsByKey, parseComponentKey } from '../engine/catalog/key';
import { Catalog, CatalogModule, ComponentInfo } from '../engine/catalog/types';
import { moduleGlob } from '../engine/onnx/modules';
import type { SelectorSpec } from './spec';
import { compileLabelRegex } from './regex';
import { statistic } from './statistics';

export interface CatalogIndex {
  dir: string;
  catalog: Catalog & { dir: string };
  modules: Map<string, CatalogModule>;
  /** Components with metadata, by key. A key without metadata is still valid if its index is in range. */
  byKey: Map<string, ComponentInfo>;
  /** Tags that have statistics (e.g. `de`, `fr`), sorted. */
  tags: string[];
  /** Selector results, memoized by the selector's canonical JSON: a one-character edit re-resolves one selector. */
  memo: Map<string, string[]>;
  /** Other per-catalog results the checker derives (e.g. label breadth), memoized the same way. */
  derived: Map<string, unknown>;
  /** Dense ordinal of a component: its module's offset plus its index. */
  moduleOffsets: Map<string, number>;
  componentCount: number;
  /** Ordinals of memoized selections, so that overlap checks run on integers. */
  ordinals: WeakMap<string[], Int32Array>;
}

export function indexCatalog(catalog: Catalog & { dir: string }): CatalogIndex {
  const modules = new Map(catalog.modules.map((m) => [m.path, m]));
  const byKey = componentsByKey(catalog);
  const tags = new Set<string>();
  for (const c of catalog.components) if (c.stats) for (const t of Object.keys(c.stats)) tags.add(t);
  const moduleOffsets = new Map<string, number>();
  let componentCount = 0;
  for (const m of catalog.modules) {
    moduleOffsets.set(m.path, componentCount);
    componentCount += m.components;
  }
  return { dir: catalog.dir, catalog, modules, byKey, tags: [...tags].sort(), memo: new Map(), derived: new Map(), moduleOffsets, componentCount, ordinals: new WeakMap() };
}

/** Dense ordinals of a selection's keys (cached per memoized selection array). */
export function selectionOrdinals(index: CatalogIndex, keys: string[]): Int32Array {
  let ids = index.ordinals.get(keys);
  if (!ids) {
    ids = Int32Array.from(keys, (k) => {
      const p = parseComponentKey(k)!;
      return index.moduleOffsets.get(p.module)! + p.index;
    });
    index.ordinals.set(keys, ids);
  }
  return ids;
}

export function keyExists(index: CatalogIndex, key: string): boolean {
  if (index.byKey.has(key)) return true;
  const k = parseComponentKey(key);
  const m = k && index.modules.get(k.module);
  return !!m && k!.index < m.components;
}

/** Every component key of a module, in index order. */
export function moduleKeys(m: CatalogModule): string[] {
  return Array.from({ length: m.components }, (_, i) => componentKey(m.path, i));
}

/**
 * The component keys a selector picks, sorted by module order then index. Unknown keys and
 * modules pick nothing (the checker reports them). `top` ranks by the statistic, highest first,
 * ties by key order, skipping components the statistic is unknown for.
 */
export function selectComponents(index: CatalogIndex, sel: SelectorSpec, tagOf: (data: string) => string | undefined): string[] {
  const memoKey = selectorKey(sel, tagOf);
  const hit = index.memo.get(memoKey);
  if (hit) return hit;
  const result = sortKeys(index, compute(index, sel, tagOf));
  index.memo.set(memoKey, result);
  return result;
}

/** A canonical string of a selector; dataset names enter with their tags, which can change while the catalog stays. */
function selectorKey(sel: SelectorSpec, tagOf: (data: string) => string | undefined): string {
  switch (sel.kind) {
    case 'key': return `k${JSON.stringify(sel.key)}`;
    case 'module': return `m${JSON.stringify(sel.pattern)}`;
    case 'label': return `l${JSON.stringify(sel.pattern)}/${sel.flags}`;
    case 'top': {
      const s = sel.by;
      const data = (d: string) => `${d}=${tagOf(d)}`;
      const probe = s.probe ? `${s.probe.file}@${s.probe.stamp}.` : '';
      const stat = `${s.kind}(${probe}${s.data === undefined ? '' : data(s.data)}${s.versus ? ` vs ${s.versus.map(data).join(',')}` : ''})`;
      return `t${sel.k}:${stat}${sel.where ? `[${selectorKey(sel.where, tagOf)}]` : ''}`;
    }
    default: return `${sel.kind}(${selectorKey(sel.left, tagOf)},${selectorKey(sel.right, tagOf)})`;
  }
}

function compute(index: CatalogIndex, sel: SelectorSpec, tagOf: (data: string) => string | undefined): Iterable<string> {
  switch (sel.kind) {
    case 'key':
      return keyExists(index, sel.key) ? [sel.key] : [];
    case 'module': {
      const re = moduleGlob(sel.pattern);
      return [...index.modules.values()].filter((m) => re.test(m.path)).flatMap(moduleKeys);
    }
    case 'label': {
      const re = compileLabelRegex(sel.pattern, sel.flags);
      if (typeof re === 'string') return [];
      return index.catalog.components.filter((c) => c.label && re.test(c.label.text)).map((c) => c.key);
    }
    case 'top': {
      const pool = sel.where ? selectComponents(index, sel.where, tagOf) : index.catalog.components.map((c) => c.key);
      const scored: { key: string; v: number }[] = [];
      for (const key of pool) {
        const v = statistic(index.byKey.get(key), sel.by, tagOf);
        if (v !== undefined && !Number.isNaN(v)) scored.push({ key, v });
      }
      const order = keyOrder(index);
      scored.sort((a, b) => b.v - a.v || order(a.key, b.key));
      return scored.slice(0, Math.max(0, Math.floor(sel.k))).map((s) => s.key);
    }
    case 'or':
      return new Set([...selectComponents(index, sel.left, tagOf), ...selectComponents(index, sel.right, tagOf)]);
    case 'minus': {
      const drop = new Set(selectComponents(index, sel.right, tagOf));
      return selectComponents(index, sel.left, tagOf).filter((k) => !drop.has(k));
    }
  }
}

/** A key's place in catalog order: its module's position, then its index (a key of an unknown module sorts as the first module). */
function keyPlace(index: CatalogIndex): (key: string) => { module: number; index: number } {
  let modOrder = index.derived.get('moduleOrder') as Map<string, number> | undefined;
  if (!modOrder) index.derived.set('moduleOrder', (modOrder = new Map([...index.modules.keys()].map((m, i) => [m, i]))));
  const order = modOrder;
  return (key) => {
    const k = parseComponentKey(key)!;
    return { module: order.get(k.module) ?? 0, index: k.index };
  };
}

function keyOrder(index: CatalogIndex): (a: string, b: string) => number {
  const place = keyPlace(index);
  return (a, b) => {
    const pa = place(a);
    const pb = place(b);
    return pa.module - pb.module || pa.index - pb.index;
  };
}

/** Keys in catalog order: module order, then index. Each key is parsed once, and a list already in order is not sorted. */
export function sortKeys(index: CatalogIndex, keys: Iterable<string>): string[] {
  const list = [...keys];
  const place = keyPlace(index);
  const places = list.map(place);
  const compare = (a: number, b: number) => places[a].module - places[b].module || places[a].index - places[b].index;
  let sorted = true;
  for (let i = 1; i < places.length && sorted; i++) sorted = compare(i - 1, i) <= 0;
  if (sorted) return list;
  const order = Array.from(list, (_, i) => i).sort(compare);
  return order.map((i) => list[i]);
}

/** Per-folder cache of catalog indexes; an entry is re-read when catalog.json's size or mtime changes. */
export class CatalogCache {
  private readonly entries = new Map<string, { stamp: string; index?: CatalogIndex; error?: string }>();

  get(dir: string): { index?: CatalogIndex; error?: string } {
    const file = dir.endsWith('.json') ? dir : path.join(dir, 'catalog.json');
    let stamp: string;
    try {
      const st = fs.statSync(file);
      stamp = `${st.size}:${st.mtimeMs}`;
    } catch {
      stamp = 'missing';
    }
    const cached = this.entries.get(dir);
    if (cached && cached.stamp === stamp) return cached;
    let entry: { stamp: string; index?: CatalogIndex; error?: string };
    try {
      entry = { stamp, index: indexCatalog(readCatalogMetadata(dir)) };
    } catch (err) {
      entry = { stamp, error: (err as Error).message };
    }
    this.entries.set(dir, entry);
    return entry;
  }

  /** Forgets one folder (on a file-change notification) or everything. */
  invalidate(dir?: string): void {
    if (dir === undefined) this.entries.clear();
    else this.entries.delete(dir);
  }
}

/** Labelled components, most selective first, with lower-cased labels: built once per catalog for label search. */
export function labelIndex(index: CatalogIndex): { lower: string; component: ComponentInfo }[] {
  let found = index.derived.get('labels') as { lower: string; component: ComponentInfo }[] | undefined;
  if (!found) {
    const best = (c: ComponentInfo) => bestSelectivity(c)?.value ?? 0;
    found = index.catalog.components
      .filter((c) => c.label)
      .map((c) => ({ lower: c.label!.text.toLowerCase(), component: c, best: best(c) }))
      .sort((x, y) => y.best - x.best)
      .map(({ lower, component }) => ({ lower, component }));
    index.derived.set('labels', found);
  }
  return found;
}

/** A short description of a component for completion details: label, then its best selectivity. */
export function componentSummary(c: ComponentInfo | undefined): string {
  if (!c) return 'no metadata';
  const parts: string[] = [];
  if (c.label) parts.push(c.label.text);
  const best = bestSelectivity(c);
  if (best) parts.push(`sel ${best.value.toFixed(1)}× ${best.tag}`);
  return parts.join(' · ') || 'unlabelled';
}

/** The highest selectivity of a component and its tag (the first of equals); one allocation, as checks call it per match. */
export function bestSelectivity(c: ComponentInfo): { tag: string; value: number } | undefined {
  const sel = c.selectivity;
  let tag: string | undefined;
  let value = 0;
  for (const t in sel) {
    if (tag === undefined || sel[t] > value) {
      tag = t;
      value = sel[t];
    }
  }
  return tag === undefined ? undefined : { tag, value };
}
