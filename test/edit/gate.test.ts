import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { openCatalogTensors } from '../../engine/catalog/read';
import { loadDataset, parseDataArg } from '../../engine/data';
import { Evaluator, tokenizeDataset } from '../../engine/evaluate';
import { openLanguageModel } from '../../engine/lm';
import { openModel, readFloatTensor, readTensorBytes } from '../../engine/onnx/model';
import { writeEditedModel } from '../../engine/onnx/write';
import { diffGated, diffModels } from '../../engine/edit/diff';
import { Gate, GatedPaths, withGatedPaths } from '../../engine/edit/gate';
import { PreviewSession } from '../../engine/edit/preview';
import { SuffixSession } from '../../engine/edit/suffix';
import { CatalogComponents, ScaleTerm, WeightEditor } from '../../engine/edit/weights';
import { C, CI_HIDDEN, D, Fixture, H, VOCAB, writeFixture } from './fixture';

const IDS = [3, 17, 5, 9, 1, 22, 14, 2, 8, 30, 11, 6];

type Gated = { module: string; index: number; scale: number; gate?: Gate };

const gelu = (x: number) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));

/**
 * The fixture's forward pass in float64, written out here from its definition (fixture.ts), with gated
 * edits applied as the semantics say: y' = y + (s − 1)·gate·(x·V_c)·U_c, gate = CI or [CI > t].
 */
function referenceLogits(fx: Fixture, w: Record<string, Float32Array>, ids: number[], edits: Gated[], gates: number[] = []): number[][] {
  const matmul = (x: number[], m: Float32Array, rows: number, cols: number, transposed: boolean) =>
    Array.from({ length: cols }, (_, j) => x.reduce((acc, xi, i) => acc + xi * (transposed ? m[j * rows + i] : m[i * cols + j]), 0));
  const gatedDelta = (module: string, x: number[], y: number[]) => {
    const f = fx.factors[module];
    for (const e of edits.filter((g) => g.module === module)) {
      const c = e.index;
      const a = x.reduce((acc, xi, i) => acc + xi * f.V[i * C + c], 0);
      let ci = f.ci.bOut[c];
      for (let h = 0; h < CI_HIDDEN; h++) ci += f.ci.wOut[c * CI_HIDDEN + h] * gelu(a * f.ci.wIn[c * CI_HIDDEN + h] + f.ci.bIn[c * CI_HIDDEN + h]);
      ci = Math.min(1, Math.max(0, ci));
      const gate = !e.gate ? 1 : e.gate.kind === 'ci' ? ci : ci > e.gate.threshold ? 1 : 0;
      gates.push(gate);
      for (let j = 0; j < f.dOut; j++) y[j] += (e.scale - 1) * gate * a * f.U[c * f.dOut + j];
    }
    return y;
  };
  return ids.map((id) => {
    const x0 = Array.from(w.wte.subarray(id * D, (id + 1) * D), Number);
    const a0 = matmul(x0, w.fc0, D, H, false).map(Math.tanh);
    const m0 = gatedDelta('h.0.mlp.c_proj', a0, matmul(a0, w.proj0, H, D, true)); // stored (out, in)
    const x1 = x0.map((v, i) => v + m0[i]);
    const a1 = gatedDelta('h.1.mlp.c_fc', x1, matmul(x1, w.fc1, D, H, false)).map(Math.tanh);
    const x2 = x1.map((v, i) => v + matmul(a1, w.proj1, H, D, false)[i]);
    return matmul(x2, w.head, D, VOCAB, false);
  });
}

function fixtureWeights(fx: Fixture): Record<string, Float32Array> {
  const m = openModel(fx.model);
  try {
    const r = (n: string) => readFloatTensor(m, n);
    return { wte: r('wte.weight'), fc0: r('h.0.mlp.c_fc.weight'), proj0: r('h.0.mlp.c_proj.weight'), fc1: r('h.1.mlp.c_fc.weight'), proj1: r('h.1.mlp.c_proj.weight'), head: r('lm_head.weight') };
  } finally {
    m.close();
  }
}

/** Logits of a written model file in a fresh, plain onnxruntime session. */
async function runFile(file: string, ids: number[]): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(file);
  try {
    const out = await session.run({ input_ids: new ort.Tensor('int64', BigInt64Array.from(ids, BigInt), [1, ids.length]) });
    return out.logits.data as Float32Array;
  } finally {
    await session.release();
  }
}

function setup(fx: Fixture, edits: Gated[]) {
  const lm = openLanguageModel(fx.model, { tokenizer: 'bytes' });
  const components = new CatalogComponents(openCatalogTensors(fx.catalog));
  const terms: ScaleTerm[] = edits.map((e) => ({ component: components.get(`${e.module}:${e.index}`), scale: e.scale, gate: e.gate }));
  const paths = new GatedPaths(lm.onnx, terms.filter((t) => t.gate).map((t) => ({ component: t.component, gate: t.gate! })));
  const editor = new WeightEditor(withGatedPaths(lm.onnx, paths), paths);
  return { lm, components, terms, paths, editor };
}

/** Writes the edits as `scalpel apply` does: ungated ones as weight patches, gated ones as graph paths. */
function writeGated(fx: Fixture, edits: Gated[], name: string): string {
  const { paths, editor, terms } = setup(fx, edits);
  const { patches, graph } = paths.checkpoint(editor.weights(terms));
  const out = path.join(fx.dir, name);
  writeEditedModel(fx.model, out, patches, graph);
  return out;
}

function assertClose(got: ArrayLike<number>, want: number[], tol: number, what: string) {
  assert.equal(got.length, want.length, what);
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
  assert.ok(worst <= tol, `${what}: max |diff| ${worst} > ${tol}`);
}

test('a gated edit written into the checkpoint equals the semantics computed independently, in either layout', async () => {
  const fx = writeFixture();
  const edits: Gated[] = [
    { module: 'h.1.mlp.c_fc', index: 2, scale: -3, gate: { kind: 'ci' } },
    { module: 'h.1.mlp.c_fc', index: 4, scale: 2.5, gate: { kind: 'threshold', threshold: 0.3 } },
    { module: 'h.0.mlp.c_proj', index: 1, scale: 0, gate: { kind: 'ci' } },
  ];
  const out = writeGated(fx, edits, 'gated.onnx');
  const got = await runFile(out, IDS);
  const gates: number[] = [];
  const want = referenceLogits(fx, fixtureWeights(fx), IDS, edits, gates).flat();
  assertClose(got, want, 1e-4, 'logits');
  // The edit does something, and the gate matters: the same scales ungated give other logits.
  const base = referenceLogits(fx, fixtureWeights(fx), IDS, []).flat();
  const ungated = referenceLogits(fx, fixtureWeights(fx), IDS, edits.map((e) => ({ ...e, gate: undefined }))).flat();
  assert.ok(want.some((v, i) => Math.abs(v - base[i]) > 1e-2), 'the edit changes the logits');
  assert.ok(want.some((v, i) => Math.abs(v - ungated[i]) > 1e-2), 'the gate changes the edit');
  // Gates take values strictly between 0 and 1, and both 0 and 1, on these tokens (else the test would not test them).
  assert.ok(gates.some((g) => g > 0.01 && g < 0.99) && gates.includes(0) && gates.includes(1), `gates ${gates.map((g) => g.toFixed(2)).join(' ')}`);
});

test('several gated components of a module share one batched path; untouched tensors are byte-identical', () => {
  const fx = writeFixture();
  const edits: Gated[] = [
    { module: 'h.1.mlp.c_fc', index: 0, scale: -2, gate: { kind: 'ci' } },
    { module: 'h.1.mlp.c_fc', index: 5, scale: 3, gate: { kind: 'ci' } },
  ];
  const out = writeGated(fx, edits, 'gated.onnx');
  const base = openModel(fx.model);
  const written = openModel(out);
  try {
    for (const t of base.initializers.values()) {
      assert.ok(Buffer.from(readTensorBytes(written, written.initializers.get(t.name)!)).equals(Buffer.from(readTensorBytes(base, t))), `${t.name} copied as bytes`);
    }
    const read = written.nodes.filter((n) => n.opType === 'MatMul' && n.inputs[1] === 'scalpel.gate.h.1.mlp.c_fc.V');
    assert.equal(read.length, 1, 'one read path for the module');
    assert.deepEqual(written.initializers.get('scalpel.gate.h.1.mlp.c_fc.V')!.dims, [D, 2]);
    assert.deepEqual([...readFloatTensor(written, 'scalpel.gate.h.1.mlp.c_fc.scale')], [-2, 3]);
    // The module's product is renamed and the gated add takes over its name, right after it (topological order).
    const mm = written.nodes.findIndex((n) => n.name === '/h.1/mlp/c_fc/MatMul');
    assert.deepEqual(written.nodes[mm].outputs, ['a1.ungated']);
    const add = written.nodes.findIndex((n) => n.outputs.includes('a1'));
    assert.ok(add > mm && add < written.nodes.findIndex((n) => n.name === '/h.1/mlp/act/Tanh'));
  } finally {
    base.close();
    written.close();
  }
});

test('a gate held open (threshold below 0) equals the weight edit', async () => {
  const fx = writeFixture();
  const open: Gate = { kind: 'threshold', threshold: -1 };
  const edits: Gated[] = [
    { module: 'h.1.mlp.c_fc', index: 3, scale: -4, gate: open },
    { module: 'h.0.mlp.c_proj', index: 2, scale: 0.5, gate: open },
  ];
  const gated = await runFile(writeGated(fx, edits, 'open.onnx'), IDS);
  const weight = await runFile(writeGated(fx, edits.map((e) => ({ ...e, gate: undefined })), 'weight.onnx'), IDS);
  assertClose(gated, [...weight], 1e-4, 'open gate vs weight edit');
});

test('one preview session serves every scale of a gated edit: its losses equal the written model, s = 1 is the base', async () => {
  const fx = writeFixture();
  const edits: Gated[] = [{ module: 'h.1.mlp.c_fc', index: 2, scale: 1, gate: { kind: 'ci' } }];
  const { lm, editor, paths, terms } = setup(fx, edits);
  const ds = tokenizeDataset(loadDataset('t', parseDataArg('inline:Alle Menschen sind frei und gleich an Wuerde und Rechten geboren.')), lm.tokenizer);
  const preview = await PreviewSession.create(lm, editor, paths.scaleTensors);
  const suffix = await SuffixSession.create(lm, editor, paths.scaleTensors);
  try {
    const base = await preview.base(ds);
    assert.equal((await preview.evaluate(ds, editor.weights(terms))).loss, base.loss, 's = 1 is the identity');
    for (const s of [-6, 0, 3]) {
      const w = editor.weights([{ ...terms[0], scale: s }]);
      const fromPreview = await preview.evaluate(ds, w);
      const fromSuffix = await suffix.evaluate(ds, w);
      const file = path.join(fx.dir, `s${s}.onnx`);
      writeEditedModel(fx.model, file, new Map(), paths.graphEdit(w));
      const ev = await Evaluator.create(openLanguageModel(file, { tokenizer: 'bytes' }));
      const written = await ev.evaluate(ds);
      await ev.release();
      assert.ok(Math.abs(fromPreview.loss - written.loss) < 1e-5, `s = ${s}: preview ${fromPreview.loss} vs written ${written.loss}`);
      assert.ok(Math.abs(fromSuffix.loss - written.loss) < 1e-5, `s = ${s}: suffix ${fromSuffix.loss} vs written ${written.loss}`);
      assert.ok(Math.abs(written.loss - base.loss) > 1e-4, `s = ${s} changes the loss`);
    }
  } finally {
    await preview.release();
    await suffix.release();
  }
});

test('a component without a CI function cannot be gated; alternative edits share or split slots', () => {
  const fx = writeFixture();
  const { lm, components } = setup(fx, []);
  const c = components.get('h.1.mlp.c_fc:1');
  assert.throws(() => new GatedPaths(lm.onnx, [{ component: { ...c, ci: undefined }, gate: { kind: 'ci' } }]), /has no causal-importance function/);
  // Alternative edits may gate one component alike (one slot) or differently (two).
  assert.equal(new GatedPaths(lm.onnx, [{ component: c, gate: { kind: 'ci' } }, { component: c, gate: { kind: 'ci' } }]).modules[0].components.length, 1);
  assert.equal(new GatedPaths(lm.onnx, [{ component: c, gate: { kind: 'ci' } }, { component: c, gate: { kind: 'threshold', threshold: 0.5 } }]).modules[0].components.length, 2);
});

test('scalpel diff reads a gated checkpoint back: each gated path with its components, scales and gates; weight edits beside it', async () => {
  const fx = writeFixture();
  const edits: Gated[] = [
    { module: 'h.1.mlp.c_fc', index: 4, scale: -2, gate: { kind: 'ci' } },
    { module: 'h.1.mlp.c_fc', index: 1, scale: 0.5, gate: { kind: 'threshold', threshold: 0.25 } },
    { module: 'h.0.mlp.c_proj', index: 3, scale: 0 },
  ];
  const out = writeGated(fx, edits, 'mixed.onnx');
  const a = openModel(fx.model);
  const b = openModel(out);
  const catalog = openCatalogTensors(fx.catalog);
  try {
    assert.deepEqual(diffGated(a, b, catalog), [
      {
        module: 'h.1.mlp.c_fc',
        status: 'added',
        components: [
          { key: 'h.1.mlp.c_fc:4', label: 'component 4 of h.1.mlp.c_fc', scale: -2, gate: 'gated' },
          { key: 'h.1.mlp.c_fc:1', label: 'component 1 of h.1.mlp.c_fc', scale: 0.5, gate: 'gated where ci > 0.25' },
        ],
      },
    ]);
    assert.deepEqual(diffGated(b, b, catalog), []);
    // The gated path's tensors are not listed as added initializers; the ungated edit is a changed weight it explains.
    const changes = diffModels(a, b, catalog);
    assert.deepEqual(changes.map((c) => [c.name, c.status]), [['h.0.mlp.c_proj.weight', 'changed']]);
    assert.equal(changes[0].explained!.components[0].key, 'h.0.mlp.c_proj:3');
  } finally {
    a.close();
    b.close();
    catalog.close();
  }
});
