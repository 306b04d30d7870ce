/**
 * Reviewing a checkpoint change: which initializers differ, the numerical rank and size of each
 * change, and which catalog components explain it (least squares over the module's rank-one pieces).
 */
import { createHash } from 'node:crypto';
import { componentKey } from '../catalog/key';
import { CatalogTensors, readVector } from '../catalog/read';
import { DataType, OnnxModel, decodeFloats, readTensorBytes } from '../onnx/model';
import { ModuleWeight, moduleWeights } from '../onnx/modules';
import { WrittenGatedPath, gateText, isGateTensor, readGatedPaths } from './gate';
import { CatalogComponents } from './weights';

export interface TensorChange {
  name: string;
  status: 'changed' | 'added' | 'removed' | 'reshaped' | 'retyped';
  dims: number[];
  /** Float32 changes of 2-D tensors only. */
  rank?: number;
  /** Largest singular values of the change (at most 8). */
  singular?: number[];
  frobenius?: number;
  maxAbs?: number;
  /** ‖Δ‖ / ‖A‖. */
  relative?: number;
  explained?: { components: { key: string; label?: string; scale: number }[]; residual: number };
}

/** Top-k singular values of the (rows × cols, row-major) matrix by subspace iteration. */
export function topSingularValues(m: Float32Array | Float64Array, rows: number, cols: number, k = 8, iterations = 40): number[] {
  k = Math.min(k, rows, cols);
  // Q: cols × k, deterministic start.
  let q = new Float64Array(cols * k);
  for (let i = 0; i < q.length; i++) q[i] = Math.sin(i * 12.9898 + 1) * 43758.5453 % 1;
  const mul = (x: Float64Array) => { // M x: rows × k
    const out = new Float64Array(rows * k);
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) {
      const v = m[r * cols + c];
      if (v === 0) continue;
      for (let j = 0; j < k; j++) out[r * k + j] += v * x[c * k + j];
    }
    return out;
  };
  const mulT = (y: Float64Array) => { // Mᵀ y: cols × k
    const out = new Float64Array(cols * k);
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) {
      const v = m[r * cols + c];
      if (v === 0) continue;
      for (let j = 0; j < k; j++) out[c * k + j] += v * y[r * k + j];
    }
    return out;
  };
  const orthonormalize = (x: Float64Array, n: number) => {
    const sq = (j: number) => {
      let s = 0;
      for (let i = 0; i < n; i++) s += x[i * k + j] ** 2;
      return Math.sqrt(s);
    };
    for (let j = 0; j < k; j++) {
      const before = sq(j);
      // Twice ("twice is enough" for round-off); a column left with only noise lies in the span of
      // the earlier ones (the matrix has lower rank): it is zeroed, contributing a zero singular value.
      for (let pass = 0; pass < 2; pass++) {
        for (let p = 0; p < j; p++) {
          let dot = 0;
          for (let i = 0; i < n; i++) dot += x[i * k + j] * x[i * k + p];
          for (let i = 0; i < n; i++) x[i * k + j] -= dot * x[i * k + p];
        }
      }
      const norm = sq(j);
      const scale = norm > 1e-10 * before && norm > 0 ? 1 / norm : 0;
      for (let i = 0; i < n; i++) x[i * k + j] *= scale;
    }
  };
  orthonormalize(q, cols);
  for (let it = 0; it < iterations; it++) {
    q = mulT(mul(q));
    orthonormalize(q, cols);
  }
  // Singular values: norms of the columns of M Q after a final Rayleigh–Ritz on (MQ)ᵀ(MQ).
  const b = mul(q);
  const g = new Float64Array(k * k);
  for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) {
    let s = 0;
    for (let r = 0; r < rows; r++) s += b[r * k + i] * b[r * k + j];
    g[i * k + j] = s;
  }
  return jacobiEigenvalues(g, k).map((e) => Math.sqrt(Math.max(0, e))).sort((x, y) => y - x);
}

function jacobiEigenvalues(a: Float64Array, n: number): number[] {
  const m = Float64Array.from(a);
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) off += m[i * n + j] ** 2;
    if (off < 1e-30) break;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) {
      const apq = m[p * n + q];
      if (Math.abs(apq) < 1e-300) continue;
      const theta = (m[q * n + q] - m[p * n + p]) / (2 * apq);
      const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
      const c = 1 / Math.sqrt(t * t + 1);
      const s = t * c;
      for (let r = 0; r < n; r++) {
        const rp = m[r * n + p];
        const rq = m[r * n + q];
        m[r * n + p] = c * rp - s * rq;
        m[r * n + q] = s * rp + c * rq;
      }
      for (let r = 0; r < n; r++) {
        const pr = m[p * n + r];
        const qr = m[q * n + r];
        m[p * n + r] = c * pr - s * qr;
        m[q * n + r] = s * pr + c * qr;
      }
    }
  }
  return Array.from({ length: n }, (_, i) => m[i * n + i]);
}

/** Solves G x = b (k × k, symmetric positive semi-definite) by Gaussian elimination with pivoting. */
function solve(g: number[][], b: number[]): number[] {
  const k = b.length;
  const a = g.map((row, i) => [...row, b[i]]);
  for (let c = 0; c < k; c++) {
    let p = c;
    for (let r = c + 1; r < k; r++) if (Math.abs(a[r][c]) > Math.abs(a[p][c])) p = r;
    [a[c], a[p]] = [a[p], a[c]];
    if (Math.abs(a[c][c]) < 1e-300) continue;
    for (let r = 0; r < k; r++) {
      if (r === c) continue;
      const f = a[r][c] / a[c][c];
      for (let j = c; j <= k; j++) a[r][j] -= f * a[c][j];
    }
  }
  return a.map((row, i) => (Math.abs(row[i]) < 1e-300 ? 0 : row[k] / row[i]));
}

/**
 * Which components of `mw`'s module explain delta (in the initializer's layout): the `maxComponents`
 * pieces best aligned with it, fitted jointly; scale = 1 + fitted coefficient.
 */
export function explainDelta(delta: Float32Array, mw: ModuleWeight, catalog: CatalogComponents, maxComponents: number): TensorChange['explained'] {
  const mod = catalog.tensors.catalog.modules.find((m) => m.path === mw.module);
  if (!mod) return undefined;
  const at = (i: number, j: number) => (mw.layout === 'in_out' ? delta[i * mw.dOut + j] : delta[j * mw.dIn + i]);
  let norm2 = 0;
  for (const v of delta) norm2 += v * v;
  const comps = Array.from({ length: mod.components }, (_, c) => catalog.get(componentKey(mw.module, c)));
  // ⟨Δ, v uᵀ⟩ = vᵀ Δ u, and ‖v uᵀ‖² = ‖v‖²‖u‖².
  const dot = (x: Float32Array, y: Float32Array) => x.reduce((a, xi, i) => a + xi * y[i], 0);
  const proj = comps.map((c) => {
    let s = 0;
    for (let i = 0; i < mw.dIn; i++) {
      if (c.v[i] === 0) continue;
      let row = 0;
      for (let j = 0; j < mw.dOut; j++) row += at(i, j) * c.u[j];
      s += c.v[i] * row;
    }
    const pn = Math.sqrt(dot(c.v, c.v) * dot(c.u, c.u));
    return { c, b: s, cos: pn > 0 ? s / (pn * Math.sqrt(norm2)) : 0 };
  });
  const top = proj.sort((a, b) => Math.abs(b.cos) - Math.abs(a.cos)).slice(0, maxComponents).filter((p) => Math.abs(p.cos) > 1e-3);
  if (!top.length) return { components: [], residual: 1 };
  const g = top.map((p) => top.map((q) => dot(p.c.v, q.c.v) * dot(p.c.u, q.c.u)));
  const b = top.map((p) => p.b);
  // Greedy: the fewest leading components that leave under 1e-3 of ‖Δ‖² unexplained.
  for (let n = 1; n <= top.length; n++) {
    const gs = g.slice(0, n).map((r) => r.slice(0, n));
    const x = solve(gs, b.slice(0, n));
    let fit = 0;
    for (let i = 0; i < n; i++) fit += 2 * x[i] * b[i] - x.reduce((a, xj, j) => a + x[i] * gs[i][j] * xj, 0);
    const residual = Math.sqrt(Math.max(0, norm2 - fit) / norm2);
    if (residual < 1e-3 || n === top.length) {
      return { components: top.slice(0, n).map((p, i) => ({ key: p.c.key, label: p.c.label, scale: 1 + x[i] })), residual };
    }
  }
  return undefined;
}

/** Element types diffed numerically (half types as their exact float32 values). */
const FLOATS = new Set<number>([DataType.FLOAT, DataType.FLOAT16, DataType.BFLOAT16]);

/** A gated path that B has and A does not (or has otherwise): its components, each with its scale and gate. */
export interface GatedChange {
  module: string;
  status: 'added' | 'changed' | 'removed';
  /** `key`: the catalog component whose read vector this is (with a catalog for A). */
  components: { key?: string; label?: string; scale: number; gate: string }[];
}

/** Gated paths (gate.ts) that differ between A and B, their components found in A's catalog by read vector. */
export function diffGated(a: OnnxModel, b: OnnxModel, catalog?: CatalogTensors): GatedChange[] {
  const [pa, pb] = [readGatedPaths(a), readGatedPaths(b)];
  const same = (x: WrittenGatedPath, y: WrittenGatedPath) =>
    x.components.length === y.components.length &&
    x.components.every((c, j) => c.scale === y.components[j].scale && gateText(c.gate) === gateText(y.components[j].gate) && c.v.every((v, i) => v === y.components[j].v[i]));
  const identify = (p: WrittenGatedPath) => {
    const factors = catalog?.catalog.modules.some((m) => m.path === p.module) ? catalog.factors(p.module) : undefined;
    return p.components.map((c) => {
      let key: string | undefined;
      if (factors) {
        for (let k = 0; k < factors.module.components && key === undefined; k++) {
          const v = readVector(factors, k);
          if (v.length === c.v.length && v.every((x, i) => x === c.v[i])) key = componentKey(p.module, k);
        }
      }
      const label = key ? catalog!.catalog.components.find((x) => x.key === key)?.label?.text : undefined;
      return { ...(key ? { key } : {}), ...(label ? { label } : {}), scale: c.scale, gate: gateText(c.gate) };
    });
  };
  const out: GatedChange[] = [];
  for (const p of pb) {
    const before = pa.find((x) => x.module === p.module);
    if (!before || !same(before, p)) out.push({ module: p.module, status: before ? 'changed' : 'added', components: identify(p) });
  }
  for (const p of pa) if (!pb.some((x) => x.module === p.module)) out.push({ module: p.module, status: 'removed', components: identify(p) });
  return out;
}

/** Initializers that differ; those of gated paths are left to `diffGated`. */
export function diffModels(a: OnnxModel, b: OnnxModel, catalog?: CatalogTensors, maxComponents = 8): TensorChange[] {
  const out: TensorChange[] = [];
  const modules = new Map(moduleWeights(a).map((m) => [m.initializer, m]));
  const components = catalog ? new CatalogComponents(catalog) : undefined;
  for (const [name, ta] of a.initializers) {
    if (isGateTensor(name)) continue;
    const tb = b.initializers.get(name);
    if (!tb) {
      out.push({ name, status: 'removed', dims: ta.dims });
      continue;
    }
    if (ta.dataType !== tb.dataType) {
      out.push({ name, status: 'retyped', dims: tb.dims });
      continue;
    }
    if (ta.dims.join() !== tb.dims.join()) {
      out.push({ name, status: 'reshaped', dims: tb.dims });
      continue;
    }
    const xa = readTensorBytes(a, ta);
    const xb = readTensorBytes(b, tb);
    if (Buffer.compare(xa, xb) === 0) continue;
    const change: TensorChange = { name, status: 'changed', dims: ta.dims };
    if (FLOATS.has(ta.dataType)) {
      const fa = ta.dataType === DataType.FLOAT ? new Float32Array(xa.buffer, xa.byteOffset, xa.byteLength / 4) : decodeFloats(xa, ta.dataType);
      const fb = tb.dataType === DataType.FLOAT ? new Float32Array(xb.buffer, xb.byteOffset, xb.byteLength / 4) : decodeFloats(xb, tb.dataType);
      const d = new Float32Array(fa.length);
      let n2 = 0;
      let a2 = 0;
      let max = 0;
      for (let i = 0; i < d.length; i++) {
        d[i] = fb[i] - fa[i];
        n2 += d[i] * d[i];
        a2 += fa[i] * fa[i];
        max = Math.max(max, Math.abs(d[i]));
      }
      change.frobenius = Math.sqrt(n2);
      change.maxAbs = max;
      change.relative = a2 > 0 ? Math.sqrt(n2 / a2) : Infinity;
      if (ta.dims.length === 2) {
        const sv = topSingularValues(d, ta.dims[0], ta.dims[1]);
        change.singular = sv;
        // float32 rounding of W + Δ leaves noise near ε‖W‖; a direction counts when it stands above both.
        const floor = Math.max(sv[0] * 1e-3, 1e-6 * Math.sqrt(a2));
        change.rank = sv.filter((s) => s > floor).length;
        const mw = modules.get(name);
        if (mw && components) change.explained = explainDelta(d, mw, components, maxComponents);
      }
    }
    out.push(change);
  }
  for (const [name, tb] of b.initializers) if (!a.initializers.has(name) && !isGateTensor(name)) out.push({ name, status: 'added', dims: tb.dims });
  return out;
}

/** One line per initializer (name, type, shape, content hash): for a git textconv driver. */
export function modelSummary(m: OnnxModel): string {
  const lines = [`onnx ir ${m.irVersion}, opsets ${m.opsets.map((o) => `${o.domain || 'ai.onnx'} ${o.version}`).join(', ')}; ${m.nodes.length} nodes, ${m.initializers.size} initializers`];
  lines.push(`inputs: ${m.inputs.map((i) => i.name).join(', ')}; outputs: ${m.outputs.map((o) => o.name).join(', ')}`);
  const ops = new Map<string, number>();
  for (const n of m.nodes) ops.set(n.opType, (ops.get(n.opType) ?? 0) + 1);
  lines.push(`ops: ${[...ops].sort().map(([k, v]) => `${k}×${v}`).join(' ')}`);
  for (const t of [...m.initializers.values()].sort((x, y) => (x.name < y.name ? -1 : 1))) {
    const sha = createHash('sha256').update(readTensorBytes(m, t)).digest('hex').slice(0, 16);
    lines.push(`${t.name} ${t.dtype} [${t.dims.join(', ')}] sha256:${sha}`);
  }
  return lines.join('\n') + '\n';
}
