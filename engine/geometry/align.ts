/**
 * Which catalog components a direction in activation space lines up with: the cosine of the direction
 * with the effective read vectors of the modules that read the capture point's tensor (V[:, c] through the
 * norm's γ and centring on the way, `effectiveReadVector`: what the module responds to at the point) and with
 * the write vectors U[c, :] of the modules that write it, both read from the graph (`tensorAccess`).
 */
import { componentKey } from '../catalog/key';
import { CatalogTensors, readVector, writeVector } from '../catalog/read';
import { TensorAccess, effectiveReadVector } from '../trace/graph';

export interface ComponentAlignment {
  key: string;
  /** `read`: the direction against V[:, c] as the point sees it (what the component responds to); `write`: against U[c, :] (what it adds). */
  side: 'read' | 'write';
  cosine: number;
  label?: string;
}

/** Per module, the cosine of `direction` with each component's read vector (modules reading the point) and write vector (modules writing it); NaN for a zero vector. */
export type AlignmentTable = Map<string, { read?: Float64Array; write?: Float64Array }>;

/** Every catalog component's cosine with `direction` (a unit vector at a point that `access`'s modules read and write), per module and side. */
export function alignmentTable(direction: Float64Array, access: TensorAccess, catalog: CatalogTensors): AlignmentTable {
  const readers = new Set(access.readers.map((m) => m.module));
  const writers = new Set(access.writers.map((m) => m.module));
  const d = direction.length;
  const table: AlignmentTable = new Map();
  for (const m of catalog.catalog.modules) {
    const reads = readers.has(m.path) && m.dIn === d;
    const writes = writers.has(m.path) && m.dOut === d;
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
    const steps = access.readSteps.get(m.path);
    table.set(m.path, { ...(reads ? { read: side((c) => effectiveReadVector(readVector(f, c), steps)) } : {}), ...(writes ? { write: side((c) => writeVector(f, c)) } : {}) });
  }
  return table;
}

/** The `top` components by |cosine| with `direction` (a unit vector at a point that `access`'s modules read and write). */
export function alignComponents(direction: Float64Array, access: TensorAccess, catalog: CatalogTensors, top = 5): ComponentAlignment[] {
  const labels = new Map(catalog.catalog.components.map((c) => [c.key, c.label?.text]));
  const found: ComponentAlignment[] = [];
  for (const [module, sides] of alignmentTable(direction, access, catalog)) {
    for (const side of ['read', 'write'] as const) {
      sides[side]?.forEach((cosine, c) => {
        if (!Number.isNaN(cosine)) found.push({ key: componentKey(module, c), side, cosine });
      });
    }
  }
  found.sort((a, b) => Math.abs(b.cosine) - Math.abs(a.cosine) || (a.key < b.key ? -1 : 1));
  return found.slice(0, top).map((f) => ({ ...f, ...(labels.get(f.key) ? { label: labels.get(f.key) } : {}) }));
}
