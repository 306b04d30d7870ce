import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openLanguageModel } from '../../engine/lm';
import { tokenizeDataset } from '../../engine/evaluate';
import { DecomposeOptions, Decomposition, decompose } from '../../engine/decompose';
import { writeCatalog } from '../../engine/catalog/write';
import { openCatalogTensors, readCatalogMetadata, writeVector } from '../../engine/catalog/read';
import { labelCatalog, TaggedData, taggedDataset } from '../../engine/label';
import { splitDocuments, udhrDocuments } from '../../engine/data';
import { autoLabel, selectivity } from '../../engine/label/stats';
import { DataType, readFloatTensor } from '../../engine/onnx/model';
import { buildModel, floatTensor } from '../../engine/onnx/build';
import { CatalogComponents, WeightEditor } from '../../engine/edit/weights';
import { PreviewSession } from '../../engine/edit/preview';
import { randomValues } from '../helpers/random';
import { PLANTED, PROMOTED, TAG_LETTERS, tagText, writePlantedModel } from './planted';

function taggedData(lm: ReturnType<typeof openLanguageModel>): TaggedData[] {
  return Object.entries(TAG_LETTERS).map(([tag, letters], i) => ({
    tag,
    sha256: tag,
    data: tokenizeDataset({ name: tag, source: `inline:${tag}`, documents: tagText(letters, 100 + i).split('\n\n').map((text) => ({ text, tags: {} })) }, lm.tokenizer),
  }));
}

/** The planted model with a catalog decomposed by `opts`; `adjust` changes the decomposition before it is written. */
async function plantedCatalog(opts: DecomposeOptions = { method: 'neuron' }, adjust?: (d: Decomposition) => void) {
  const dir = writePlantedModel();
  const lm = openLanguageModel(dir, { tokenizer: 'bytes' });
  const d = await decompose(lm, opts);
  adjust?.(d);
  const catDir = path.join(dir, 'components');
  writeCatalog(catDir, d.catalog, d.tensors);
  return { lm, catDir, tensors: openCatalogTensors(catDir) };
}

test('labelling finds the planted German-specific neuron, names it, and finds what it promotes', async () => {
  const { lm, tensors } = await plantedCatalog();
  const data = taggedData(lm);
  const result = await labelCatalog(lm, tensors, data, { batchSize: 3 });
  tensors.close();
  // Every input position of every window (context 32, batches of 3 windows, short last windows) counted once.
  assert.deepEqual(result.catalog.datasets!.map((d) => d.tokens), data.map((d) => d.data.ids.length - 1));

  const byDe = [...result.catalog.components].filter((c) => c.module === 'h.0.mlp.c_fc').sort((a, b) => b.selectivity!.de - a.selectivity!.de);
  const planted = byDe[0];
  assert.equal(planted.key, `h.0.mlp.c_fc:${PLANTED}`);
  assert.ok(planted.selectivity!.de > 100, `planted selectivity ${planted.selectivity!.de}`);
  assert.ok(byDe[1].selectivity!.de < 3, `next best ${byDe[1].key} ${byDe[1].selectivity!.de}`);
  assert.match(planted.label!.text, /^German \((only|[\d.]+×) vs fr\/en\)$/);
  assert.equal(planted.label!.source, 'auto');
  // It fires on z's only: every top context marks a z.
  assert.equal(planted.contexts!.length, 3);
  assert.equal(new Set(planted.contexts!.map((c) => c.text)).size, 3, 'repeated contexts are shown once');
  for (const c of planted.contexts!) {
    assert.equal(c.tag, 'de');
    assert.match(c.text, /⟦z⟧/);
  }
  // Removing it hurts German (z is always followed by the token it promotes) and nothing else.
  assert.ok(planted.ablation!.de > 0.01, `ablation Δ on de ${planted.ablation!.de}`);
  assert.equal(planted.ablation!.fr, 0);
  assert.equal(result.catalog.ablationTokens, 512);
  assert.ok(result.ablationRuns > 0);
  assert.equal(planted.stats!.fr.firingRate, 0);
  assert.ok(planted.stats!.de.firingRate > 0.05);
  // Output side: c_fc's write goes through c_proj into dimension 1, which only PROMOTED reads.
  assert.equal(planted.promotesVia, 'h.0.mlp.c_proj+lm_head');
  assert.equal(planted.promotes![0].token, PROMOTED);
  const proj = result.catalog.components.find((c) => c.key === `h.0.mlp.c_proj:${PLANTED}`)!;
  assert.match(proj.label!.text, /^German/);
  assert.equal(proj.promotesVia, 'lm_head');
  assert.equal(proj.promotes![0].token, PROMOTED);
  // Its logit: the write vector 3·e1, centred (ln_f's gain is 1), through the unembedding's column for PROMOTED.
  const head = readFloatTensor(lm.onnx, 'lm_head.weight');
  const q = PROMOTED.charCodeAt(0);
  let logit = 0;
  for (let i = 0; i < 16; i++) logit += ((i === 1 ? 3 : 0) - 3 / 16) * head[i * 256 + q];
  assert.ok(Math.abs(proj.promotes![0].logit - logit) < 1e-3, `${proj.promotes![0].logit} vs ${logit}`);
  assert.equal(result.catalog.datasets!.length, 3);
  assert.ok(result.tokens > 3000);
  assert.equal(result.componentTokens, result.tokens * 64);
});

test('ablation Δloss equals the weight edit at scale 0, evaluated on its own on the same tokens', async () => {
  const { lm, tensors } = await plantedCatalog();
  const data = taggedData(lm);
  const tokens = 100;
  const result = await labelCatalog(lm, tensors, data, { ablationTokens: tokens });
  const editor = new WeightEditor(lm.onnx);
  const components = new CatalogComponents(tensors);
  const keys = [`h.0.mlp.c_fc:${PLANTED}`, 'h.0.mlp.c_fc:3', `h.0.mlp.c_proj:${PLANTED}`, 'h.0.mlp.c_proj:11'];
  const picked = keys.map((k) => components.get(k));
  const session = await PreviewSession.create(lm, editor, editor.initializers(picked));
  try {
    for (const c of picked) {
      const recorded = result.catalog.components.find((x) => x.key === c.key)!.ablation!;
      for (const { tag, data: ds } of data) {
        const head = { ...ds, ids: ds.ids.subarray(0, tokens + 1), documentStarts: ds.documentStarts.filter((s) => s <= tokens) };
        const delta = (await session.delta(head, editor.weights([{ component: c, scale: 0 }]))).delta;
        assert.ok(Math.abs(recorded[tag] - delta) <= 1e-4 + 1e-3 * Math.abs(delta), `${c.key} on ${tag}: recorded ${recorded[tag]}, weight edit ${delta}`);
      }
    }
  } finally {
    await session.release();
    tensors.close();
  }
});

test('human labels survive re-labelling; auto labels are replaced', async () => {
  const { lm, catDir, tensors } = await plantedCatalog({ method: 'neuron' }, (d) => {
    d.catalog.components[0].label = { text: 'my own words', source: 'human' };
    d.catalog.components[1].label = { text: 'stale', source: 'auto' };
  });
  const result = await labelCatalog(lm, tensors, taggedData(lm));
  tensors.close();
  writeCatalog(catDir, result.catalog);
  const back = readCatalogMetadata(catDir);
  assert.deepEqual(back.components[0].label, { text: 'my own words', source: 'human' });
  assert.ok(back.components[0].autoLabel && back.components[0].autoLabel.source === 'auto');
  assert.notEqual(back.components[1].label!.text, 'stale');
  assert.deepEqual(back.components[1].label, back.components[1].autoLabel);
  assert.ok(fs.existsSync(path.join(catDir, 'components.safetensors')));
});

test('label rules: single tag, group, unselective, inactive', () => {
  const s = (m: Record<string, number>, rate = 0.5) => Object.fromEntries(Object.entries(m).map(([t, v]) => [t, { meanAbs: v, firingRate: v > 0 ? rate : 0 }]));
  assert.equal(autoLabel(s({ de: 9.4, fr: 1, es: 1, it: 1, en: 1 }), 1000).text, 'German (9.4× vs fr/es/it/en)');
  assert.equal(autoLabel(s({ de: 5, fr: 4.5, es: 4.8, it: 5.2, en: 1 }), 1000).text, 'non-English (it, de, es, fr)');
  assert.match(autoLabel(s({ de: 1.2, fr: 1, es: 1, it: 1, en: 1 }), 1000).text, /^unselective \(max 1\.2× de\)$/);
  assert.equal(autoLabel(s({ de: 0, fr: 0 }), 1000).text, 'inactive');
  assert.equal(autoLabel(s({ xx: 8, yy: 1 }), 1000).text, 'xx (8.0× vs yy)');
  const sel = selectivity({ de: 4, fr: 1, en: 3 });
  assert.equal(sel.de, 2);
  assert.equal(sel.fr, 0.2857142857142857);
  // Confidence grows with the ratio and with the data.
  assert.ok(autoLabel(s({ de: 20, fr: 1 }), 1000).confidence! > autoLabel(s({ de: 4, fr: 1 }), 1000).confidence!);
  assert.ok(autoLabel(s({ de: 20, fr: 1 }), 1000).confidence! > autoLabel(s({ de: 20, fr: 1 }), 50).confidence!);
});

test('label rules with ablation: a language is named only where removing the component hurts it most', () => {
  const s = (m: Record<string, number>) => Object.fromEntries(Object.entries(m).map(([t, v]) => [t, { meanAbs: v, firingRate: 0.5 }]));
  const fires = s({ de: 9.4, fr: 1, es: 1, it: 1, en: 1 });
  assert.equal(autoLabel(fires, 1000, { de: 0.05, fr: 0.001, es: 0, it: -0.002, en: 0 }).text, 'German (9.4× vs fr/es/it/en)');
  // Fires on German but is not needed for it, or hurts the others as much.
  assert.equal(autoLabel(fires, 1000, { de: 0.0002, fr: 0, es: 0, it: 0, en: 0 }).text, 'active on de, not causal (9.4× vs fr/es/it/en)');
  assert.equal(autoLabel(fires, 1000, { de: 0.05, fr: 0.06, es: 0.05, it: 0.05, en: 0.05 }).text, 'active on de, not causal (9.4× vs fr/es/it/en)');
  assert.doesNotMatch(autoLabel(fires, 1000, { de: 0, fr: 0, es: 0, it: 0, en: 0 }).text, /German/);
  // Unselective and inactive labels name no tag, so ablation leaves them as they are.
  assert.match(autoLabel(s({ de: 1.2, fr: 1 }), 1000, { de: 0.3, fr: 0 }).text, /^unselective/);
});

test('with CI functions in the catalog, statistics are of causal importance, computed as SPD defines it', async () => {
  const C = 32, h = 3;
  const ci = { wIn: randomValues(C * h, 1).map((v) => v * 3), bIn: randomValues(C * h, 2), wOut: randomValues(C * h, 3).map((v) => v * 2), bOut: randomValues(C, 4).map((v) => v + 0.3) };
  const { lm, tensors } = await plantedCatalog({ method: 'neuron', modules: ['h.0.mlp.c_fc'] }, (d) => {
    d.tensors[0].extra = [
      { name: 'h.0.mlp.c_fc.ci.w_in', shape: [C, h], data: ci.wIn }, { name: 'h.0.mlp.c_fc.ci.b_in', shape: [C, h], data: ci.bIn },
      { name: 'h.0.mlp.c_fc.ci.w_out', shape: [C, h], data: ci.wOut }, { name: 'h.0.mlp.c_fc.ci.b_out', shape: [C], data: ci.bOut },
    ];
  });
  const data = taggedData(lm);
  const result = await labelCatalog(lm, tensors, data);
  tensors.close();
  assert.equal(result.catalog.statsMeasure, 'ci');
  assert.equal(result.catalog.firingThreshold, 0.5);
  // Reference: the module input is wte[token], a = x · V[:, c] = x · W[:, c] for the neuron basis.
  const wte = readFloatTensor(lm.onnx, 'wte.weight');
  const w = readFloatTensor(lm.onnx, 'h.0.mlp.c_fc.weight');
  const gelu = (x: number) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
  let fractional = 0;
  let tied = 0;
  for (let c = 0; c < C; c++) {
    const peak: Record<string, number> = {};
    for (const [ti, tag] of ['de', 'fr', 'en'].entries()) {
      const ids = data[ti].data.ids;
      let sum = 0, fired = 0;
      for (let t = 0; t < ids.length - 1; t++) {
        let a = 0;
        for (let i = 0; i < 16; i++) a += wte[ids[t] * 16 + i] * w[i * C + c];
        let pre = ci.bOut[c];
        for (let k = 0; k < h; k++) pre += ci.wOut[c * h + k] * gelu(a * ci.wIn[c * h + k] + ci.bIn[c * h + k]);
        const g = Math.min(1, Math.max(0, pre));
        peak[tag] = Math.max(peak[tag] ?? 0, g);
        sum += g;
        if (g > 0.5) fired++;
      }
      const stats = result.catalog.components[c].stats![tag];
      if (stats.meanAbs > 0.01 && stats.meanAbs < 0.99) fractional++;
      assert.ok(Math.abs(stats.meanAbs - sum / (ids.length - 1)) < 1e-3 * Math.max(1, stats.meanAbs), `${c} ${tag}: ${stats.meanAbs} vs ${sum / (ids.length - 1)}`);
      assert.ok(Math.abs(stats.firingRate - fired / (ids.length - 1)) < 2e-3, `${c} ${tag}: ${stats.firingRate} vs ${fired / (ids.length - 1)}`);
    }
    // Where several tags reach the same peak (CI saturates at 1), the first context is from the one the
    // component is most active on, not from the tag read first.
    const info = result.catalog.components[c];
    const top = Math.max(...Object.values(peak));
    const atPeak = Object.keys(peak).filter((t) => peak[t] === top);
    if (top > 0 && atPeak.length > 1) {
      tied++;
      const expected = atPeak.sort((x, y) => info.stats![y].meanAbs - info.stats![x].meanAbs)[0];
      assert.equal(info.contexts![0].tag, expected, `component ${c}: peak ${top} in ${atPeak.join(', ')}`);
    }
  }
  assert.ok(tied >= 3, `only ${tied} components with a peak shared by several tags`);
  assert.ok(fractional >= 10, `only ${fractional} (component, tag) pairs with CI strictly between 0 and 1`);
});

test('a component that barely fires is inactive, however lopsided its means', () => {
  const stats = { de: { meanAbs: 1e-4, firingRate: 0.001 }, fr: { meanAbs: 0, firingRate: 0 } };
  assert.equal(autoLabel(stats, 1000).text, 'inactive');
  assert.match(autoLabel({ ...stats, de: { meanAbs: 1e-4, firingRate: 0.01 } }, 1000).text, /^German \(only vs fr\)$/);
});

test('lm_head components promote the tokens of their own largest write entries', async () => {
  const { lm, tensors } = await plantedCatalog({ method: 'svd', modules: ['lm_head'], rank: 4 });
  const result = await labelCatalog(lm, tensors, taggedData(lm), { outputTokens: 3 });
  const f = tensors.factors('lm_head');
  tensors.close();
  for (let c = 0; c < 4; c++) {
    const row = Array.from(writeVector(f, c));
    const order = row.map((v, i) => [v, i]).sort((a, b) => b[0] - a[0]);
    const info = result.catalog.components[c];
    assert.equal(info.promotesVia, 'lm_head');
    assert.deepEqual(info.promotes!.map((p) => p.token), order.slice(0, 3).map(([, i]) => lm.tokenizer.tokenText(i)));
    assert.deepEqual(info.suppresses!.map((p) => p.token), order.slice(-3).reverse().map(([, i]) => lm.tokenizer.tokenText(i)));
  }
});

/**
 * Meta's reference naming (`attention.wq`, `feed_forward.w1/w2/w3`, `output`): no name says which module is a
 * query or an up-projection, so output-side statistics must read it from the graph.
 */
function metaStyleModel(dir: string): void {
  const [D, H, V] = [8, 16, 256];
  const w = (name: string, dims: number[], seed: number) => floatTensor(name, dims, randomValues(dims[0] * dims[1], seed).map((v) => v * 0.3));
  const mm = (module: string, input: string, output: string) => ({ name: `/${module.replaceAll('.', '/')}/MatMul`, opType: 'MatMul', inputs: [input, `${module}.weight`], outputs: [output] });
  const op = (opType: string, inputs: string[], output: string, attributes?: { name: string; i?: number; ints?: number[] }[]) => ({ name: `/layers.0/${opType}_${output}`, opType, inputs, outputs: [output], attributes });
  const a = 'layers.0.attention';
  const f = 'layers.0.feed_forward';
  fs.writeFileSync(path.join(dir, 'model.onnx'), buildModel({
    initializers: [
      w('tok_embeddings.weight', [V, D], 1), w(`${a}.wq.weight`, [D, D], 2), w(`${a}.wk.weight`, [D, D], 3), w(`${a}.wv.weight`, [D, D], 4), w(`${a}.wo.weight`, [D, D], 5),
      w(`${f}.w1.weight`, [D, H], 6), w(`${f}.w3.weight`, [D, H], 7), w(`${f}.w2.weight`, [H, D], 8), w('output.weight', [D, V], 9),
      floatTensor('norm.weight', [D], new Float32Array(D).fill(1)), floatTensor('norm.bias', [D], new Float32Array(D)),
    ],
    inputs: [{ name: 'input_ids', elemType: DataType.INT64, shape: ['batch', 'sequence'] }],
    outputs: [{ name: 'logits', elemType: DataType.FLOAT, shape: ['batch', 'sequence', V] }],
    nodes: [
      { name: '/tok_embeddings/Gather', opType: 'Gather', inputs: ['tok_embeddings.weight', 'input_ids'], outputs: ['x0'] },
      mm(`${a}.wq`, 'x0', 'q'), mm(`${a}.wk`, 'x0', 'k'), mm(`${a}.wv`, 'x0', 'v'),
      op('Transpose', ['k'], 'kt', [{ name: 'perm', ints: [0, 2, 1] }]), op('MatMul', ['q', 'kt'], 'scores'), op('Softmax', ['scores'], 'probs', [{ name: 'axis', i: -1 }]),
      op('MatMul', ['probs', 'v'], 'mixed'), mm(`${a}.wo`, 'mixed', 'att'), op('Add', ['x0', 'att'], 'x1'),
      mm(`${f}.w1`, 'x1', 'gate'), mm(`${f}.w3`, 'x1', 'up'), op('Sigmoid', ['gate'], 'sg'), op('Mul', ['gate', 'sg'], 'silu'), op('Mul', ['silu', 'up'], 'hidden'),
      mm(`${f}.w2`, 'hidden', 'ff'), op('Add', ['x1', 'ff'], 'x2'),
      { name: '/norm/LayerNormalization', opType: 'LayerNormalization', inputs: ['x2', 'norm.weight', 'norm.bias'], outputs: ['xf'], attributes: [{ name: 'axis', i: -1 }, { name: 'epsilon', f: 1e-5 }] },
      mm('output', 'xf', 'logits'),
    ],
  }));
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ n_positions: 32 }));
}

test('output-side statistics follow the graph, not module names: queries and keys write nothing, values write through the output projection, up-projections through the down-projection, a SwiGLU gate has no fixed direction', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scalpel-meta-'));
  metaStyleModel(dir);
  const lm = openLanguageModel(dir, { tokenizer: 'bytes' });
  const d = await decompose(lm, { method: 'svd', modules: ['layers.*', 'output'], rank: 2 });
  const catDir = path.join(dir, 'components');
  writeCatalog(catDir, d.catalog, d.tensors);
  const tensors = openCatalogTensors(catDir);
  const result = await labelCatalog(lm, tensors, taggedData(lm), { ablationTokens: 0, outputTokens: 2 });
  tensors.close();
  const via = Object.fromEntries(result.catalog.modules.map((m) => [m.path, result.catalog.components.find((c) => c.module === m.path)!.promotesVia]));
  assert.deepEqual(via, {
    'layers.0.attention.wq': undefined,
    'layers.0.attention.wk': undefined,
    'layers.0.attention.wv': 'layers.0.attention.wo+output',
    'layers.0.attention.wo': 'output',
    'layers.0.feed_forward.w1': undefined,
    'layers.0.feed_forward.w3': 'layers.0.feed_forward.w2+output',
    'layers.0.feed_forward.w2': 'output',
    output: 'output',
  });
  fs.rmSync(dir, { recursive: true });
});

test('confidence is low for a selective component that never clearly fires', () => {
  const hum = { de: { meanAbs: 0.2, firingRate: 0 }, fr: { meanAbs: 0.01, firingRate: 0.004 } };
  const fires = { de: { meanAbs: 0.2, firingRate: 0.3 }, fr: { meanAbs: 0.01, firingRate: 0.004 } };
  assert.match(autoLabel(hum, 1000).text, /^German/);
  assert.equal(autoLabel(hum, 1000).confidence, 0);
  assert.equal(autoLabel(fires, 1000).confidence, 0.95);
});

test('labelling datasets: UDHR sources are tagged by language; --split keeps only the non-held-out articles', () => {
  const lm = openLanguageModel(writePlantedModel(), { tokenizer: 'bytes' });
  const whole = taggedDataset('udhr:deu', lm);
  const part = taggedDataset('udhr:deu', lm, { split: 0.5 });
  assert.equal(whole.tag, 'de');
  assert.equal(part.tag, 'de');
  assert.equal(part.split, 'train part of splitDocuments(0.5, seed 0)');
  const { train, heldout } = splitDocuments(udhrDocuments('deu'), 0.5);
  assert.ok(train.length > 10 && heldout.length > 10);
  assert.equal(part.data.documentStarts.length, train.length);
  assert.notEqual(part.sha256, whole.sha256);
  assert.equal(taggedDataset('german=udhr:deu', lm).tag, 'german');
  assert.throws(() => taggedDataset('udhr:xyz', lm), /unknown UDHR code "xyz"/);
});
