import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CatalogTensors, openCatalogTensors, reconstructWeight } from '../../engine/catalog/read';
import { ModuleTensors, writeCatalog } from '../../engine/catalog/write';
import { decompose } from '../../engine/decompose';
import { CatalogComponents } from '../../engine/edit/weights';
import { tokenizeDataset } from '../../engine/evaluate';
import { labelCatalog } from '../../engine/label';
import { openLanguageModel } from '../../engine/lm';
import { readFloatTensor } from '../../engine/onnx/model';
import { SafetensorsFile } from '../../engine/safetensors';
import { TraceAnalysis } from '../../engine/trace/analysis';
import { Tracer } from '../../engine/trace/trace';
import { moduleWeights } from '../../engine/onnx/modules';
import { ScalpelError } from '../../engine/errors';
import { tinyWithCatalog } from '../debugger/helpers';

/** The same neuron decomposition twice: as `decompose` writes it (identity implicit) and with the identity stored. */
async function twoCatalogs() {
  const dir = tinyWithCatalog();
  const lm = openLanguageModel(dir);
  const d = await decompose(lm, { method: 'neuron' });
  writeCatalog(path.join(dir, 'implicit'), d.catalog, d.tensors);
  const dense: ModuleTensors[] = d.tensors.map((t, i) => {
    const m = d.catalog.modules[i];
    const n = m.components;
    const eye = new Float32Array(n * n);
    for (let k = 0; k < n; k++) eye[k * n + k] = 1;
    return { module: t.module, V: t.V ?? eye, U: t.U ?? eye };
  });
  writeCatalog(path.join(dir, 'dense'), { ...d.catalog, modules: d.catalog.modules.map(({ identity: _, ...m }) => m) }, dense);
  return { dir, lm, implicit: openCatalogTensors(path.join(dir, 'implicit')), dense: openCatalogTensors(path.join(dir, 'dense')) };
}

test('a neuron catalog stores no identity factor, and its file is what the weights take', async () => {
  const { dir, lm, implicit, dense } = await twoCatalogs();
  const names = [...SafetensorsFile.open(implicit.file.file).entries.keys()].sort();
  assert.deepEqual(implicit.catalog.modules.map((m) => [m.path, m.identity]), [['h.0.mlp.c_fc', 'U'], ['h.0.mlp.c_proj', 'V'], ['h.1.mlp.c_fc', 'U'], ['h.1.mlp.c_proj', 'V']]);
  assert.deepEqual(names, ['h.0.mlp.c_fc.V', 'h.0.mlp.c_proj.U', 'h.1.mlp.c_fc.V', 'h.1.mlp.c_proj.U']);
  const weightBytes = moduleWeights(lm.onnx).filter((w) => w.module.includes('mlp')).reduce((a, w) => a + 4 * w.dIn * w.dOut, 0);
  const size = (d: string) => fs.statSync(path.join(dir, d, 'components.safetensors')).size;
  assert.ok(size('implicit') < weightBytes + 4096, `${size('implicit')} bytes for ${weightBytes} bytes of weights`);
  assert.ok(size('dense') > size('implicit'));
  for (const w of moduleWeights(lm.onnx).filter((x) => x.module.includes('mlp'))) {
    const expected = readFloatTensor(lm.onnx, w.initializer);
    assert.deepEqual(reconstructWeight(implicit.factors(w.module)), expected);
    assert.deepEqual(reconstructWeight(dense.factors(w.module)), expected);
  }
});

test('every consumer reads an implicit identity as the stored one: edits, labels, trace activations and contributions', async () => {
  const { lm, implicit, dense } = await twoCatalogs();
  // Edits: each component's read and write vectors.
  const [ci, cd] = [new CatalogComponents(implicit), new CatalogComponents(dense)];
  for (const key of ['h.0.mlp.c_fc:5', 'h.1.mlp.c_fc:0', 'h.0.mlp.c_proj:7', 'h.1.mlp.c_proj:3']) {
    const [a, b] = [ci.get(key), cd.get(key)];
    assert.deepEqual([a.v, a.u], [b.v, b.u], key);
  }
  // Labels: statistics, contexts, output side and ablation, all equal.
  const data = ['die Würde der Mensch ist frei und alle das', 'the dignity and all man is free and the'].map((text, i) => ({
    tag: ['de', 'en'][i],
    sha256: String(i),
    data: tokenizeDataset({ name: String(i), source: 'inline', documents: [{ text: `${text} `.repeat(3), tags: {} }] }, lm.tokenizer),
  }));
  const label = async (t: CatalogTensors) => (await labelCatalog(lm, t, data, { outputTokens: 3, ablationTokens: 16 })).catalog.components;
  const [li, ld] = [await label(implicit), await label(dense)];
  assert.ok(li.some((c) => c.promotes?.length && c.ablation && c.stats));
  assert.equal(li.length, ld.length);
  for (let k = 0; k < li.length; k++) {
    assert.deepEqual(Object.keys(li[k]).sort(), Object.keys(ld[k]).sort(), li[k].key);
    for (const field of ['norm', 'promotes', 'suppresses', 'promotesVia', 'label'] as const) assert.deepEqual(li[k][field], ld[k][field], `${li[k].key} ${field}`);
    for (const tag of ['de', 'en']) {
      assert.ok(Math.abs(li[k].stats![tag].meanAbs - ld[k].stats![tag].meanAbs) <= 1e-5 * Math.max(1, ld[k].stats![tag].meanAbs), `${li[k].key} meanAbs`);
      assert.ok(Math.abs(li[k].ablation![tag] - ld[k].ablation![tag]) <= 1e-5, `${li[k].key} ablation ${li[k].ablation![tag]} vs ${ld[k].ablation![tag]}`);
    }
  }
  // Trace: component activations and contributions to a logit, per module kind (secant for c_fc, direct for c_proj).
  const tracer = await Tracer.create(lm);
  try {
    const trace = await tracer.trace(Int32Array.from(lm.tokenizer.encode('alle Mensch ist frei und die')));
    const [ai, ad] = [new TraceAnalysis(tracer, trace, implicit), new TraceAnalysis(tracer, trace, dense)];
    for (const module of ['h.0.mlp.c_fc', 'h.1.mlp.c_proj']) {
      const [xi, xd] = [ai.activations(module, 'base', 2)!, ad.activations(module, 'base', 2)!];
      assert.ok(xi.some((x) => x !== 0));
      // Equal values (a GELU of −0 is −0 in one and 0 after a sum with zeros in the other).
      const same = (a: Float32Array, b: Float32Array) => a.length === b.length && a.every((v, i) => v === b[i]);
      assert.ok(same(xi, xd), module);
      const [gi, gd] = [ai.contributions(module, 'base', 2, 7), ad.contributions(module, 'base', 2, 7)];
      assert.notEqual(gi.kind, 'none');
      assert.equal(gi.kind, gd.kind);
      assert.ok(same(gi.values!, gd.values!), module);
    }
  } finally {
    await tracer.release();
  }
});

test('an identity that does not fit the module is one clear error', async () => {
  const { dir, implicit } = await twoCatalogs();
  const file = path.join(dir, 'implicit', 'catalog.json');
  const json = JSON.parse(fs.readFileSync(file, 'utf8'));
  json.modules[0].identity = 'V'; // c_fc's hidden units are its outputs: an identity V has d_in units, not C
  fs.writeFileSync(file, JSON.stringify(json));
  assert.throws(() => openCatalogTensors(file), (e: unknown) => e instanceof ScalpelError && /modules\[0\] has an identity V of \d+ units but \d+ components/.test(e.message));
  implicit.close();
});
