import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GemmSessions } from '../../engine/decompose/products';
import { Svd, svd, truncatedSvd } from '../../engine/decompose/svd';

let state = 3;
const uniform = () => {
  state ^= state << 13;
  state ^= state >>> 17;
  state ^= state << 5;
  return (state >>> 0) / 2 ** 32 - 0.5;
};

/** A (m, n) matrix with singular values `spectrum(i)` on random orthonormal vectors (Gram–Schmidt of noise). */
function matrix(m: number, n: number, spectrum: (i: number) => number): Float32Array {
  const k = Math.min(m, n);
  const basis = (rows: number) => {
    const out: Float64Array[] = [];
    while (out.length < k) {
      const v = Float64Array.from({ length: rows }, uniform);
      for (const u of out) {
        const d = u.reduce((s, x, i) => s + x * v[i], 0);
        for (let i = 0; i < rows; i++) v[i] -= d * u[i];
      }
      const norm = Math.hypot(...v);
      out.push(v.map((x) => x / norm));
    }
    return out;
  };
  const [us, vs] = [basis(m), basis(n)];
  const a = new Float32Array(m * n);
  for (let c = 0; c < k; c++) for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) a[i * n + j] += spectrum(c) * us[c][i] * vs[c][j];
  return a;
}

const dot = (x: Float64Array, y: Float64Array) => x.reduce((s, v, i) => s + v * y[i], 0);

function orthonormal(vectors: Float64Array[]): number {
  let worst = 0;
  vectors.forEach((x, i) => vectors.forEach((y, j) => (worst = Math.max(worst, Math.abs(dot(x, y) - (i === j ? 1 : 0))))));
  return worst;
}

test('the truncated SVD finds the top triplets of the full decomposition (decaying spectrum), through onnxruntime products', async () => {
  const gemm = await GemmSessions.create({ threads: 1 });
  try {
    for (const [m, n] of [[48, 160], [160, 48]]) {
      const a = matrix(m, n, (i) => 0.85 ** i);
      const full = svd(a, m, n);
      const k = 6;
      const t: Svd = await truncatedSvd(a, m, n, k, gemm.of(a, m, n));
      assert.equal(t.k, k);
      for (let i = 0; i < k; i++) {
        assert.ok(Math.abs(t.s[i] - full.s[i]) <= 1e-5 * full.s[0], `${m}×${n} σ${i}: ${t.s[i]} vs ${full.s[i]}`);
        assert.ok(Math.abs(dot(t.u[i], full.u[i])) > 1 - 1e-5, `${m}×${n} u${i}: ${dot(t.u[i], full.u[i])}`);
        assert.ok(Math.abs(dot(t.v[i], full.v[i])) > 1 - 1e-5, `${m}×${n} v${i}`);
        // The pair keeps the sign relation: A·v = σ·u.
        let av = 0;
        for (let r = 0; r < m; r++) for (let c = 0; c < n; c++) av += t.u[i][r] * a[r * n + c] * t.v[i][c];
        assert.ok(Math.abs(av - t.s[i]) < 1e-5, `uᵀAv ${av} vs σ ${t.s[i]}`);
      }
      assert.ok(orthonormal(t.u) < 1e-9 && orthonormal(t.v) < 1e-9);
    }
  } finally {
    await gemm.release();
  }
});

test('on a flat spectrum the estimates are orthonormal, ordered and never above the true values; a small matrix is decomposed fully', async () => {
  const gemm = await GemmSessions.create({ threads: 1 });
  try {
    const [m, n] = [64, 200];
    const a = Float32Array.from({ length: m * n }, uniform);
    const full = svd(a, m, n);
    const t = await truncatedSvd(a, m, n, 8, gemm.of(a, m, n));
    assert.ok(orthonormal(t.u) < 1e-9 && orthonormal(t.v) < 1e-9);
    for (let i = 0; i < 8; i++) {
      assert.ok(t.s[i] <= full.s[i] * (1 + 1e-6), `σ${i} ${t.s[i]} above ${full.s[i]}`);
      assert.ok(t.s[i] >= 0.9 * full.s[i], `σ${i} ${t.s[i]} far below ${full.s[i]}`);
      if (i) assert.ok(t.s[i] <= t.s[i - 1]);
    }
    // k + oversampling near min(m, n): the full Jacobi decomposition, cut to k.
    const small = await truncatedSvd(a, m, n, 30, gemm.of(a, m, n));
    assert.deepEqual(Array.from(small.s), Array.from(full.s.slice(0, 30)));
  } finally {
    await gemm.release();
  }
});
