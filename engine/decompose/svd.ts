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
