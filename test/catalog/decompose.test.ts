import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { svd } from '../../engine/decompose/svd';
import { decompose } from '../../engine/decompose';
import { writeCatalog } from '../../engine/catalog/write';
import { openCatalogTensors, reconstructWeight } from '../../engine/catalog/read';
import { openLanguageModel } from '../../engine/lm';
import { readFloatTensor } from '../../engine/onnx/model';
import { randomValues } from '../helpers/random';
import { tinyWeights, writeTinyModel } from '../helpers/tiny-lm';
import { writePlantedModel } from './planted';

function relError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / den);
}

function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

for (const [m, n, label] of [[40, 24, 'tall'], [24, 40, 'wide'], [17, 17, 'square']] as const) {
  test(`Jacobi SVD of a ${label} ${m}×${n} matrix: orthonormal vectors, sorted values, exact reconstruction`, () => {
    const a = randomValues(m * n, m * 7 + n);
    const d = svd(a, m, n);
    assert.equal(d.k, Math.min(m, n));
    for (let i = 1; i < d.k; i++) assert.ok(d.s[i - 1] >= d.s[i]);
    for (let i = 0; i < d.k; i++) {
      for (let j = 0; j <= i; j++) {
        assert.ok(Math.abs(dot(d.u[i], d.u[j]) - (i === j ? 1 : 0)) < 1e-10);
        assert.ok(Math.abs(dot(d.v[i], d.v[j]) - (i === j ? 1 : 0)) < 1e-10);
      }
    }
    const back = new Float64Array(m * n);
    for (let c = 0; c < d.k; c++) for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) back[i * n + j] += d.s[c] * d.u[c][i] * d.v[c][j];
    assert.ok(relError(back, a) < 1e-12, `error ${relError(back, a)}`);
  });
}

test('SVD of a rank-3 matrix has three nonzero singular values; a diagonal one gives its entries', () => {
  const l = randomValues(30 * 3, 1), r = randomValues(3 * 20, 2);
  const a = new Float64Array(30 * 20);
  for (let i = 0; i < 30; i++) for (let j = 0; j < 20; j++) for (let k = 0; k < 3; k++) a[i * 20 + j] += l[i * 3 + k] * r[k * 20 + j];
  const d = svd(a, 30, 20);
  assert.ok(d.s[2] > 1e-3 && d.s[3] < 1e-12 * d.s[0], `s = ${Array.from(d.s.slice(0, 5))}`);
  const diag = new Float64Array(16);
  [3, -5, 1, 2].forEach((v, i) => (diag[i * 4 + i] = v));
  assert.deepEqual(Array.from(svd(diag, 4, 4).s).map((x) => Math.round(x * 1e9) / 1e9), [5, 3, 2, 1]);
});

for (const layout of ['named', 'transposed'] as const) {
  test(`neuron and SVD catalogs (+ residual) reconstruct the ${layout === 'named' ? 'in_out' : 'out_in'} weights to 1e-5`, async () => {
    const file = writeTinyModel(tinyWeights(3), layout);
    const lm = openLanguageModel(file, { tokenizer: 'bytes', contextLength: 8 });
    for (const [method, rank] of [['neuron', undefined], ['svd', undefined], ['svd', 2]] as const) {
      const d = await decompose(lm, { method, rank, modules: ['h.0.mlp.c_fc'] });
      const dir = path.join(path.dirname(file), `${method}-${rank}`);
      writeCatalog(dir, d.catalog, d.tensors);
      const ct = openCatalogTensors(dir);
      const f = ct.factors('h.0.mlp.c_fc');
      const w = readFloatTensor(lm.onnx, f.module.initializer);
      assert.ok(relError(reconstructWeight(f), w) <= 1e-5, `${method} rank ${rank}: ${relError(reconstructWeight(f), w)}`);
      assert.equal(d.catalog.method.name, method);
      if (method === 'neuron') assert.equal(f.module.components, 6);
      if (rank === 2) {
        // Without the residual, a rank-2 truncation misses exactly the smaller singular values (Eckart–Young).
        const s = svd(readFloatTensor(lm.onnx, f.module.initializer), f.module.layout === 'in_out' ? 4 : 6, f.module.layout === 'in_out' ? 6 : 4).s;
        const tail = Math.sqrt(s.slice(2).reduce((x, y) => x + y * y, 0) / s.reduce((x, y) => x + y * y, 0));
        assert.ok(Math.abs(relError(reconstructWeight(f, false), w) - tail) < 1e-5);
        assert.equal(f.module.components, 2);
      }
      ct.close();
    }
  });
}

test('neuron basis pairs the MLP: c_fc reads with its columns, c_proj writes with its rows', async () => {
  const lm = openLanguageModel(writePlantedModel(), { tokenizer: 'bytes' });
  const d = await decompose(lm, { method: 'neuron' });
  assert.deepEqual(d.catalog.modules.map((m) => [m.path, m.components, m.hasResidual]), [['h.0.mlp.c_fc', 32, false], ['h.0.mlp.c_proj', 32, false]]);
  const [fc, proj] = d.tensors;
  const wProj = readFloatTensor(lm.onnx, 'h.0.mlp.c_proj.weight');
  assert.deepEqual(proj.U, wProj);
  // The identity side is implicit, not stored: U for c_fc (its hidden units are outputs), V for c_proj.
  assert.deepEqual([fc.U, proj.V], [undefined, undefined]);
  assert.deepEqual(d.catalog.modules.map((m) => m.identity), ['U', 'V']);
  assert.equal(d.catalog.components[5].key, 'h.0.mlp.c_fc:5');
  await assert.rejects(decompose(lm, { method: 'neuron', modules: ['nothing.*'] }), /no weight matrix matches nothing\.\*/);
});
