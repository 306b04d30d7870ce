/**
 * Which catalog components a direction in activation space lines up with: the cosine of the direction
 * with the read vectors V[:, c] of modules that read the capture point's space downstream of it, and with
 * the write vectors U[c, :] of modules that write into it upstream (at or before the point).
 */
import { CatalogTensors, readVector, writeVector } from '../catalog/read';
import { Capture, ModelStructure } from '../trace/graph';

export interface ComponentAlignment {
  key: string;
  /** `read`: the direction against V[:, c] (what the component responds to); `write`: against U[c, :] (what it adds). */
  side: 'read' | 'write';
  cosine: number;
  label?: string;
}

/** The `top` components by |cosine| with `direction` (a unit vector at `point`). */
export function alignComponents(direction: Float64Array, point: Capture, structure: ModelStructure, catalog: CatalogTensors, top = 5): ComponentAlignment[] {
  const order = (id: string) => structure.captures.findIndex((c) => c.id === id);
  const here = Math.max(order(point.id), structure.captures.findIndex((c) => c.tensor === point.tensor));
  const d = direction.length;
  const labels = new Map(catalog.catalog.components.map((c) => [c.key, c.label?.text]));
  const found: ComponentAlignment[] = [];
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
      return n > 0 ? s / Math.sqrt(n) : undefined;
    };
    for (let c = 0; c < m.components; c++) {
      const read = reads ? cosine(readVector(f, c)) : undefined;
      if (read !== undefined) found.push({ key: `${m.path}:${c}`, side: 'read', cosine: read });
      const write = writes ? cosine(writeVector(f, c)) : undefined;
      if (write !== undefined) found.push({ key: `${m.path}:${c}`, side: 'write', cosine: write });
    }
  }
  found.sort((a, b) => Math.abs(b.cosine) - Math.abs(a.cosine) || (a.key < b.key ? -1 : 1));
  return found.slice(0, top).map((f) => ({ ...f, ...(labels.get(f.key) ? { label: labels.get(f.key) } : {}) }));
}
