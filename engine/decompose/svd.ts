/**
 * Singular value decomposition by one-sided Jacobi (Hestenes) rotations, in float64.
 *
 * Chosen over an eigen-decomposition of AᵀA because it never squares the condition number: small
 * singular triplets stay accurate, which the residual test (≤ 1e-5 relative) depends on.
 */

export interface Svd {
  /** Rows m, columns n of A; k = min(m, n) triplets, largest first. */
  m: number;
  n: number;
  k: number;
  s: Float64Array;
  /** Left vectors, k of length m: u[i] is a Float64Array(m). */
  u: Float64Array[];
  /** Right vectors, k of length n. */
  v: Float64Array[];
}

/** SVD of the row-major (m, n) matrix `a`: a = Σ s[i] u[i] v[i]ᵀ. */
export function svd(a: ArrayLike<number>, m: number, n: number, opts: { maxSweeps?: number } = {}): Svd {
  if (a.length !== m * n) throw new Error(`svd: ${a.length} values for a ${m}×${n} matrix`);
  // Rotate the columns of B = A (or Aᵀ when A is wide) so that k = min(m, n) columns are orthogonalised.
  const wide = n > m;
  const rows = wide ? n : m;
  const k = wide ? m : n;
  const cols: Float64Array[] = [];
  for (let j = 0; j < k; j++) {
    const c = new Float64Array(rows);
    for (let i = 0; i < rows; i++) c[i] = wide ? a[j * n + i] : a[i * n + j];
    cols.push(c);
  }
  const rot: Float64Array[] = [];
  for (let j = 0; j < k; j++) {
    const r = new Float64Array(k);
    r[j] = 1;
    rot.push(r);
  }
  const maxSweeps = opts.maxSweeps ?? 60;
  const eps = 1e-15;
  for (let sweep = 0; sweep < maxSweeps; sweep++) {
    let rotated = false;
    for (let p = 0; p < k - 1; p++) {
      const bp = cols[p];
      for (let q = p + 1; q < k; q++) {
        const bq = cols[q];
        let alpha = 0, beta = 0, gamma = 0;
        for (let i = 0; i < rows; i++) {
          const x = bp[i], y = bq[i];
          alpha += x * x;
          beta += y * y;
          gamma += x * y;
        }
        if (gamma === 0 || Math.abs(gamma) <= eps * Math.sqrt(alpha * beta)) continue;
        rotated = true;
        const zeta = (beta - alpha) / (2 * gamma);
        const t = Math.sign(zeta || 1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const c = 1 / Math.sqrt(1 + t * t);
        const s = c * t;
        for (let i = 0; i < rows; i++) {
          const x = bp[i], y = bq[i];
          bp[i] = c * x - s * y;
          bq[i] = s * x + c * y;
        }
        const rp = rot[p], rq = rot[q];
        for (let i = 0; i < k; i++) {
          const x = rp[i], y = rq[i];
          rp[i] = c * x - s * y;
          rq[i] = s * x + c * y;
        }
      }
    }
    if (!rotated) break;
  }
  // B·R = [σ_j b̂_j]: B = Σ σ_j b̂_j r_jᵀ where r_j is column j of R (stored as rot[j]).
  const order = cols.map((c, j) => {
    let sq = 0;
    for (let i = 0; i < rows; i++) sq += c[i] * c[i];
    return { j, s: Math.sqrt(sq) };
  }).sort((x, y) => y.s - x.s);
  const s = new Float64Array(k);
  const left: Float64Array[] = [];
  const right: Float64Array[] = [];
  order.forEach(({ j, s: sigma }, i) => {
    s[i] = sigma;
    const b = cols[j];
    const unit = new Float64Array(rows);
    if (sigma > 0) for (let t = 0; t < rows; t++) unit[t] = b[t] / sigma;
    // For a tall A the rotated columns are left vectors; for a wide one they are right vectors of A.
    if (wide) {
      left.push(rot[j]);
      right.push(unit);
    } else {
      left.push(unit);
      right.push(rot[j]);
    }
  });
  return { m, n, k, s, u: left, v: right };
}

/** Products with a fixed (m, n) matrix A, for the truncated SVD: X row-major (n, l) or (m, l), in float64. */
export interface MatrixProducts {
  /** A · X, X (n, l) → (m, l). */
  times(x: Float64Array, l: number): Promise<Float64Array>;
  /** Aᵀ · X, X (m, l) → (n, l). */
  timesTransposed(x: Float64Array, l: number): Promise<Float64Array>;
}

export interface TruncatedSvdOptions {
  /** Extra columns of the sketch beyond k (default max(10, k/2)). */
  oversample?: number;
  /** Subspace (power) iterations, each one product with A and one with Aᵀ (default 4). */
  iterations?: number;
  seed?: number;
}

/**
 * The top `k` singular triplets of the row-major (m, n) matrix `a`, by randomized subspace iteration
 * (Halko, Martinsson & Tropp 2011, algorithms 4.4 and 5.1): a Gaussian sketch Y = A·Ω of l = k + p columns,
 * q rounds of Q ← orth(A·orth(Aᵀ·Q)), then the small factor B = Qᵀ·A through a QR of Bᵀ and a Jacobi SVD of its
 * l × l triangle. Its cost is O(m·n·l·q) in the products (`products`, run by onnxruntime in `decompose`), not
 * O(m·n·min(m, n)) per sweep as the full SVD; the singular values converge as (σ_{l+1}/σ_j)^(2q+1), so a decaying
 * spectrum is found to float precision, a flat one (random weights) approximately. Falls back to the full
 * decomposition when the sketch would not be much smaller than it.
 */
export async function truncatedSvd(a: ArrayLike<number>, m: number, n: number, k: number, products: MatrixProducts, opts: TruncatedSvdOptions = {}): Promise<Svd> {
  if (a.length !== m * n) throw new Error(`svd: ${a.length} values for a ${m}×${n} matrix`);
  const full = Math.min(m, n);
  const l = Math.min(full, k + (opts.oversample ?? Math.max(10, Math.ceil(k / 2))));
  if (2 * l >= full) return truncate(svd(a, m, n), k);
  const gauss = gaussian(opts.seed ?? 1);
  const omega = new Float64Array(n * l).map(gauss);
  // Intermediate bases need only be well conditioned (the next step re-orthonormalizes): one Gram–Schmidt pass.
  const iterations = opts.iterations ?? 4;
  let q = orthonormalize(await products.times(omega, l), m, l, { passes: iterations ? 1 : 2 });
  for (let it = 0; it < iterations; it++) {
    const z = orthonormalize(await products.timesTransposed(q, l), n, l, { passes: 1 });
    q = orthonormalize(await products.times(z, l), m, l, { passes: it === iterations - 1 ? 2 : 1 });
  }
  // Bᵀ = Aᵀ·Q = Q₂·R (n × l, l × l), so A ≈ Q·Rᵀ·Q₂ᵀ, and Rᵀ = U_r·S·V_rᵀ gives A ≈ (Q·U_r)·S·(Q₂·V_r)ᵀ.
  const r = new Float64Array(l * l);
  const q2 = orthonormalize(await products.timesTransposed(q, l), n, l, { r, passes: 2 });
  const rt = new Float64Array(l * l);
  for (let i = 0; i < l; i++) for (let j = 0; j < l; j++) rt[i * l + j] = r[j * l + i];
  const small = svd(rt, l, l);
  const lift = (basis: Float64Array, rows: number, vectors: Float64Array[]) => vectors.slice(0, k).map((w) => {
    const out = new Float64Array(rows);
    for (let i = 0; i < rows; i++) {
      let s = 0;
      for (let c = 0; c < l; c++) s += basis[i * l + c] * w[c];
      out[i] = s;
    }
    return out;
  });
  return { m, n, k: Math.min(k, l), s: small.s.slice(0, k), u: lift(q, m, small.u), v: lift(q2, n, small.v) };
}

function truncate(d: Svd, k: number): Svd {
  const kk = Math.min(k, d.k);
  return { ...d, k: kk, s: d.s.slice(0, kk), u: d.u.slice(0, kk), v: d.v.slice(0, kk) };
}

/**
 * Orthonormal columns of the row-major (rows, l) matrix x, in place, by modified Gram–Schmidt, run twice
 * where orthogonality to float precision matters (once is not enough when columns are nearly dependent, as
 * power iterations make them); `r` receives the l × l upper triangle with x = Q·R. A column that vanishes is left at zero.
 */
function orthonormalize(x: Float64Array, rows: number, l: number, opts: { passes: number; r?: Float64Array }): Float64Array {
  const r = opts.r;
  // Column by column on contiguous copies of the columns.
  const cols = Array.from({ length: l }, (_, c) => {
    const v = new Float64Array(rows);
    for (let i = 0; i < rows; i++) v[i] = x[i * l + c];
    return v;
  });
  for (let c = 0; c < l; c++) {
    const v = cols[c];
    for (let pass = 0; pass < opts.passes; pass++) {
      for (let p = 0; p < c; p++) {
        const u = cols[p];
        let dot = 0;
        for (let i = 0; i < rows; i++) dot += u[i] * v[i];
        for (let i = 0; i < rows; i++) v[i] -= dot * u[i];
        if (r) r[p * l + c] += dot;
      }
    }
    let norm = 0;
    for (let i = 0; i < rows; i++) norm += v[i] * v[i];
    norm = Math.sqrt(norm);
    if (r) r[c * l + c] = norm;
    for (let i = 0; i < rows; i++) v[i] = norm > 0 ? v[i] / norm : 0;
  }
  for (let c = 0; c < l; c++) for (let i = 0; i < rows; i++) x[i * l + c] = cols[c][i];
  return x;
}

/** Standard normal values from a seeded xorshift generator (Box–Muller), so decompositions are reproducible. */
function gaussian(seed: number): () => number {
  let state = seed >>> 0 || 1;
  const uniform = () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return ((state >>> 0) + 0.5) / 2 ** 32;
  };
  return () => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
}
