/**
 * Which catalog components a direction in activation space lines up with: the cosine of the direction
 * with the read vectors V[:, c] of modules that read the capture point's space downstream of it, and with
 * the write vectors U[c, :] of modules that write into it upstream (at or before the point).
 */
import { componentKey } from '../catalog/key';
import { CatalogTensors, readVector, writeVector } from '../catalog/read';
import { Capture, ModelStructure } from '../trace/graph';

export interface ComponentAlignment {
  key: string;
  /** `read`: the direction against V[:, c] (what the component responds to); `write`: against U[c, :] (what it adds). */
  side: 'read' | 'write';
  cosine: number;
  label?: string;
}

/** Per module, the cosine of `direction` with each component's read vector (modules reading the point downstream) and write vector (modules writing it upstream); NaN for a zero vector. */
export type AlignmentTable = Map<string, { read?: Float64Array; write?: Float64Array }>;

/** Every catalog component's cosine with `direction` (a unit vector at `point`), per module and side. */
export function alignmentTable(direction: Float64Array, point: Capture, structure: ModelStructure, catalog: CatalogTensors): AlignmentTable {
  const order = (id: string) => structure.captures.findIndex((c) => c.id === id);
  const here = Math.max(order(point.id), structure.captures.findIndex((c) => c.tensor === point.tensor));
  const d = direction.length;
  const table: AlignmentTable = new Map();
  for (const m of catalog.catalog.modules) {
    const reads = m.dIn === d && order(`${m.path}.in`) > here;
    const writes = m.dOut === d && order(`${m.path}.out`) >= 0 && order(`${m.path}.out`) <= here;
    if (!reads && !writes) continue;
    const f = catalog.factors(m.path);
    const cosine = (x: Float32Array) => {
      let s = 0, n = 0;
      for (let i = 0; i < d; i++) {
        s += x[i] * direction[i];
        n += x[i] * x[i];
      }
      return n > 0 ? s / Math.sqrt(n) : NaN;
    };
    const side = (vector: (c: number) => Float32Array) => Float64Array.from({ length: m.components }, (_, c) => cosine(vector(c)));
    table.set(m.path, { ...(reads ? { read: side((c) => readVector(f, c)) } : {}), ...(writes ? { write: side((c) => writeVector(f, c)) } : {}) });
  }
  return table;
}

/** The `top` components by |cosine| with `direction` (a unit vector at `point`). */
export function alignComponents(direction: Float64Array, point: Capture, structure: ModelStructure, catalog: CatalogTensors, top = 5): ComponentAlignment[] {
  const labels = new Map(catalog.catalog.components.map((c) => [c.key, c.label?.text]));
  const found: ComponentAlignment[] = [];
  for (const [module, sides] of alignmentTable(direction, point, structure, catalog)) {
    for (const side of ['read', 'write'] as const) {
      sides[side]?.forEach((cosine, c) => {
        if (!Number.isNaN(cosine)) found.push({ key: componentKey(module, c), side, cosine });
      });
    }
  }
  found.sort((a, b) => Math.abs(b.cosine) - Math.abs(a.cosine) || (a.key < b.key ? -1 : 1));
  return found.slice(0, top).map((f) => ({ ...f, ...(labels.get(f.key) ? { label: labels.get(f.key) } : {}) }));
}
