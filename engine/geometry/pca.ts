/**
 * Principal components from streamed moments: rows are added one at a time into a running sum and
 * sum of outer products (float64, shifted by the first row for accuracy), so memory is d² whatever
 * the number of tokens; the top components come from subspace iteration on the covariance, which
 * checks for cancellation between sweeps.
 */
import { CancelledError } from '../evaluate';
import { svd } from '../decompose/svd';

export class Moments {
  count = 0;
  dimension = 0;
  private shift = new Float64Array(0);
  private sum = new Float64Array(0);
  /** Upper triangle (i ≤ j) of Σ (x − shift)(x − shift)ᵀ, row-major d × d. */
  private outer = new Float64Array(0);
  private scratch = new Float64Array(0);

  add(row: ArrayLike<number>): void {
    const d = row.length;
    if (!this.count) {
      this.dimension = d;
      this.shift = Float64Array.from(row);
      this.sum = new Float64Array(d);
      this.outer = new Float64Array(d * d);
      this.scratch = new Float64Array(d);
    } else if (d !== this.dimension) {
      throw new Error(`moments: a row of ${d} values after rows of ${this.dimension}`);
    }
    const x = this.scratch;
    for (let i = 0; i < d; i++) x[i] = row[i] - this.shift[i];
    for (let i = 0; i < d; i++) {
      const xi = x[i];
      if (xi === 0) continue;
      this.sum[i] += xi;
      const o = i * d;
      for (let j = i; j < d; j++) this.outer[o + j] += xi * x[j];
    }
    this.count++;
  }

  mean(): Float64Array {
    return Float64Array.from(this.sum, (s, i) => this.shift[i] + s / Math.max(1, this.count));
  }

  /** The covariance (divided by n − 1), full d × d. */
  covariance(): Float64Array {
    const d = this.dimension;
    const n = this.count;
    const c = new Float64Array(d * d);
    if (n < 2) return c;
    for (let i = 0; i < d; i++) {
      for (let j = i; j < d; j++) {
        const v = (this.outer[i * d + j] - (this.sum[i] * this.sum[j]) / n) / (n - 1);
        c[i * d + j] = v;
        c[j * d + i] = v;
      }
    }
    return c;
  }
}

export interface Pca {
  mean: Float64Array;
  /** k unit vectors of length d, largest variance first; each one's largest entry is positive. */
  components: Float64Array[];
  /** Variance along each component. */
  variances: number[];
  /** Each component's share of the total variance (the trace of the covariance). */
  explained: number[];
}

/** The top `k` principal components of the moments. */
export function pca(m: Moments, k: number, opts: { signal?: AbortSignal; sweeps?: number } = {}): Pca {
  const d = m.dimension;
  const kk = Math.max(1, Math.min(k, d));
  const cov = m.covariance();
  let trace = 0;
  for (let i = 0; i < d; i++) trace += cov[i * d + i];
  // Subspace iteration with a few guard vectors (faster convergence of the k wanted), orthonormalised every sweep.
  const p = Math.min(d, kk + 4);
  let q: Float64Array[] = Array.from({ length: p }, (_, j) => Float64Array.from({ length: d }, (_, i) => Math.sin(1 + i * 12.9898 + j * 78.233) * 43758.5453 % 1));
  q = orthonormal(q);
  const sweeps = opts.sweeps ?? 200;
  for (let s = 0; s < sweeps; s++) {
    if (opts.signal?.aborted) throw new CancelledError();
    const next = q.map((v) => multiply(cov, v, d));
    const moved = orthonormal(next);
    let change = 0;
    for (let j = 0; j < kk; j++) change = Math.max(change, 1 - Math.abs(dot(moved[j], q[j])));
    q = moved;
    if (change < 1e-12) break;
  }
  // Rayleigh–Ritz: the eigenvectors of Qᵀ C Q (p × p, symmetric PSD, so its SVD is its eigendecomposition).
  const small = new Float64Array(p * p);
  const cq = q.map((v) => multiply(cov, v, d));
  for (let a = 0; a < p; a++) for (let b = 0; b < p; b++) small[a * p + b] = dot(q[a], cq[b]);
  const e = svd(small, p, p);
  const components: Float64Array[] = [];
  const variances: number[] = [];
  for (let j = 0; j < kk; j++) {
    const v = new Float64Array(d);
    for (let a = 0; a < p; a++) for (let i = 0; i < d; i++) v[i] += e.u[j][a] * q[a][i];
    let big = 0;
    for (let i = 0; i < d; i++) if (Math.abs(v[i]) > Math.abs(v[big])) big = i;
    if (v[big] < 0) for (let i = 0; i < d; i++) v[i] = -v[i];
    components.push(v);
    variances.push(e.s[j]);
  }
  return { mean: m.mean(), components, variances, explained: variances.map((v) => (trace > 0 ? v / trace : 0)) };
}

/** Coordinates of `count` rows of width d along the components: count × k, row-major. */
export function project(p: Pca, rows: Float32Array, count: number): Float64Array {
  const d = p.mean.length;
  const k = p.components.length;
  const out = new Float64Array(count * k);
  for (let r = 0; r < count; r++) {
    for (let j = 0; j < k; j++) {
      const c = p.components[j];
      let s = 0;
      for (let i = 0; i < d; i++) s += (rows[r * d + i] - p.mean[i]) * c[i];
      out[r * k + j] = s;
    }
  }
  return out;
}

function multiply(m: Float64Array, v: Float64Array, d: number): Float64Array {
  const out = new Float64Array(d);
  for (let i = 0; i < d; i++) {
    let s = 0;
    const o = i * d;
    for (let j = 0; j < d; j++) s += m[o + j] * v[j];
    out[i] = s;
  }
  return out;
}

export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/** Modified Gram–Schmidt; a vector that vanishes against the earlier ones is replaced by a unit axis. */
function orthonormal(vs: Float64Array[]): Float64Array[] {
  const out: Float64Array[] = [];
  for (const v0 of vs) {
    const v = Float64Array.from(v0);
    for (let pass = 0; pass < 2; pass++) for (const u of out) {
      const c = dot(v, u);
      for (let i = 0; i < v.length; i++) v[i] -= c * u[i];
    }
    let n = Math.sqrt(dot(v, v));
    if (n < 1e-300) {
      v.fill(0);
      v[out.length % v.length] = 1;
      n = 1;
    }
    for (let i = 0; i < v.length; i++) v[i] /= n;
    out.push(v);
  }
  return out;
}
