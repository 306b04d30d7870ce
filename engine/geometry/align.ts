/**
 * Which catalog components a direction in activation space lines up with: the cosine of the direction
 * with the read vectors V[:, c] of modules that read the capture point's space downstream of it, and with
 * the write vectors U[c, :] of modules that write into it upstream (at or before the point).
 */
import { CatalogTensors } from '../catalog/read';
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
    const { V, U } = catalog.factors(m.path);
    const C = m.components;
    for (let c = 0; c < C; c++) {
      if (reads) {
        let s = 0, n = 0;
        for (let i = 0; i < d; i++) {
          const v = V[i * C + c];
          s += v * direction[i];
          n += v * v;
        }
        if (n > 0) found.push({ key: `${m.path}:${c}`, side: 'read', cosine: s / Math.sqrt(n) });
      }
      if (writes) {
        let s = 0, n = 0;
        for (let j = 0; j < d; j++) {
          const u = U[c * d + j];
          s += u * direction[j];
          n += u * u;
        }
        if (n > 0) found.push({ key: `${m.path}:${c}`, side: 'write', cosine: s / Math.sqrt(n) });
      }
    }
  }
  found.sort((a, b) => Math.abs(b.cosine) - Math.abs(a.cosine) || (a.key < b.key ? -1 : 1));
  return found.slice(0, top).map((f) => ({ ...f, ...(labels.get(f.key) ? { label: labels.get(f.key) } : {}) }));
}
