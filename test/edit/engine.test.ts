import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { openCatalogTensors } from '../../engine/catalog/read';
import { ScalpelError } from '../../engine/errors';
import { Evaluator, tokenizeDataset } from '../../engine/evaluate';
import { loadDataset, parseDataArg } from '../../engine/data';
import { openLanguageModel } from '../../engine/lm';
import { readFloatTensor, openModel } from '../../engine/onnx/model';
import { writeEditedModel } from '../../engine/onnx/write';
import { applyPlan } from '../../engine/edit/apply';
import { runCheck } from '../../engine/edit/checks';
import { readLock, stableJson } from '../../engine/edit/lock';
import { sha256File } from '../../engine/identity';
import { EditPlan } from '../../engine/edit/plan';
import { PreviewSession, linspace, sweep } from '../../engine/edit/preview';
import { PlanRunner } from '../../engine/edit/run';
import { SuffixSession, cutGraph } from '../../engine/edit/suffix';
import { diffModels, modelSummary, topSingularValues } from '../../engine/edit/diff';
import { CatalogComponents, WeightEditor, neuronComponent } from '../../engine/edit/weights';
import { transpose } from '../helpers/tiny-lm';
import { C, Fixture, rankOne, writeFixture } from './fixture';

const TEXT = 'Alle Menschen sind frei und gleich an Wuerde und Rechten geboren. Sie sind mit Vernunft und Gewissen begabt.';

function open(fx: Fixture) {
  const lm = openLanguageModel(fx.model, { tokenizer: 'bytes' });
  const editor = new WeightEditor(lm.onnx);
  const components = new CatalogComponents(openCatalogTensors(fx.catalog));
  const ds = tokenizeDataset(loadDataset('t', parseDataArg(`inline:${TEXT}`)), lm.tokenizer);
  return { lm, editor, components, ds };
}

test('scaling by 0 subtracts exactly the rank-one piece, in either layout; other weights are untouched', () => {
  const fx = writeFixture();
  const { lm, editor, components } = open(fx);
  for (const [module, init, layout] of [['h.1.mlp.c_fc', 'h.1.mlp.c_fc.weight', 'in_out'], ['h.0.mlp.c_proj', 'h.0.mlp.c_proj.weight', 'out_in']] as const) {
    const f = fx.factors[module];
    const piece = rankOne(f, 2); // (dIn, dOut)
    const expected = layout === 'in_out' ? piece : Float64Array.from(transpose(Float32Array.from(piece), f.dIn, f.dOut));
    const base = readFloatTensor(lm.onnx, init);
    const w = editor.weights([{ component: components.get(`${module}:2`), scale: 0 }]);
    assert.deepEqual([...w.keys()], [init]);
    const got = w.get(init)!;
    for (let i = 0; i < base.length; i++) assert.ok(Math.abs(got[i] - (base[i] - expected[i])) < 1e-6, `${module}[${i}]`);
  }
});

test('scales compose: two components of one module add their pieces; one component twice is an error', () => {
  const fx = writeFixture();
  const { lm, editor, components } = open(fx);
  const f = fx.factors['h.1.mlp.c_fc'];
  const base = readFloatTensor(lm.onnx, 'h.1.mlp.c_fc.weight');
  const a = components.get('h.1.mlp.c_fc:0');
  const b = components.get('h.1.mlp.c_fc:4');
  const got = editor.weights([{ component: a, scale: 3 }, { component: b, scale: -0.5 }]).get('h.1.mlp.c_fc.weight')!;
  const pa = rankOne(f, 0);
  const pb = rankOne(f, 4);
  for (let i = 0; i < base.length; i++) assert.ok(Math.abs(got[i] - (base[i] + 2 * pa[i] - 1.5 * pb[i])) < 1e-5);
  assert.throws(
    () => editor.weights([{ component: a, scale: 0 }, { component: a, scale: 2, origin: { file: 'x.scalpel', line: 7, column: 3 } }]),
    (e: unknown) => e instanceof ScalpelError && /h\.1\.mlp\.c_fc:0 is scaled twice/.test(e.message) && e.position?.line === 7,
  );
  assert.throws(() => components.get('h.1.mlp.c_fc:99'), /does not exist: module h\.1\.mlp\.c_fc has 6 components/);
  assert.throws(() => components.get('nonsense'), /not a component key/);
});

test('neuron-basis components sum to the weight', () => {
  const fx = writeFixture();
  const { lm, editor } = open(fx);
  const mw = editor.module('h.0.mlp.c_proj');
  const terms = Array.from({ length: mw.dOut }, (_, j) => ({ component: neuronComponent(lm.onnx, mw, 'out', j), scale: 0 }));
  const w = editor.weights(terms).get(mw.initializer)!;
  assert.ok(w.every((x) => Math.abs(x) < 1e-6), 'removing every neuron leaves zero');
});

test('preview from memory equals evaluating the written edited model; base is cached; s = 1 is the identity', async () => {
  const fx = writeFixture();
  const { lm, editor, components, ds } = open(fx);
  const comp = components.get('h.1.mlp.c_fc:1');
  const session = await PreviewSession.create(lm, editor, editor.initializers([comp]));
  const plain = await Evaluator.create(lm);
  const base = await plain.evaluate(ds);
  assert.ok(Math.abs((await session.base(ds)).loss - base.loss) < 1e-5);
  assert.equal(await session.base(ds), await session.base(ds), 'cached');
  const identity = await session.delta(ds, editor.weights([{ component: comp, scale: 1 }]));
  assert.ok(Math.abs(identity.delta) < 1e-6);

  const w = editor.weights([{ component: comp, scale: -2 }]);
  const d = await session.delta(ds, w);
  assert.ok(Math.abs(d.delta) > 1e-3, `the edit changes the loss (${d.delta})`);
  const out = path.join(fx.dir, 'edited.onnx');
  writeEditedModel(lm.file, out, w);
  const written = await Evaluator.create(openLanguageModel(out, { tokenizer: 'bytes' }));
  const ref = await written.evaluate(ds);
  assert.ok(Math.abs(d.edited - ref.loss) < 1e-5, `${d.edited} vs ${ref.loss}`);
  ref.perToken.forEach((v, i) => assert.ok(Math.abs(d.perToken[i] - (v - base.perToken[i])) < 1e-4));

  const rows = await sweep(session, [ds], linspace(-1, 1, 5), (s) => editor.weights([{ component: comp, scale: s }]));
  assert.deepEqual(rows.map((r) => r.scale), [-1, -0.5, 0, 0.5, 1]);
  assert.ok(Math.abs(rows[4].deltas[0].delta) < 1e-6);
  await Promise.all([session.release(), plain.release(), written.release()]);
});

test('reusing base activations before the edited layer gives the full graph results', async () => {
  const fx = writeFixture();
  const { lm, editor, components, ds } = open(fx);
  const comp = components.get('h.1.mlp.c_fc:3');
  const inits = editor.initializers([comp]);
  const cut = cutGraph(lm.onnx, inits);
  assert.deepEqual(cut.frontier, ['x1'], 'the residual stream after block 0 is all the suffix reads');
  const full = await PreviewSession.create(lm, editor, inits);
  const suffix = await SuffixSession.create(lm, editor, inits, { batchSize: 2 });
  for (const s of [0, -3, 2.5]) {
    const w = editor.weights([{ component: comp, scale: s }]);
    const a = await full.delta(ds, w);
    const b = await suffix.delta(ds, w);
    assert.ok(Math.abs(a.edited - b.edited) < 1e-5, `scale ${s}: ${a.edited} vs ${b.edited}`);
  }
  await full.release();
  await suffix.release();
});

test('a guard fails with the measured value and the bound in its message; units convert', () => {
  const d = { name: 'fr', source: 'x', tokens: 10, base: 2, edited: 2.1, delta: 0.1, perToken: new Float32Array() };
  const g = runCheck({ kind: 'guard', guard: 'others', dataset: 'fr', change: 'moves', op: '<=', bound: 0.05, unit: 'nats' }, d);
  assert.equal(g.pass, false);
  assert.match(g.message, /guard others on fr: \|Δloss\| <= 0\.0500 nats: measured 0\.1000 nats \(failed\)/);
  assert.equal(runCheck({ kind: 'guard', dataset: 'fr', change: 'moves', op: '<=', bound: 6, unit: '%' }, d).pass, true);
  const bits = runCheck({ kind: 'expect', edit: 'e', dataset: 'fr', change: 'rises', op: '>=', bound: 0.2, unit: 'bits' }, d);
  assert.ok(Math.abs(bits.value - 0.1 / Math.LN2) < 1e-12);
  assert.equal(bits.pass, false);
});

function plan(fx: Fixture, scale: EditPlan['edits'][number]['scale'], specFile: string): EditPlan {
  return {
    specFile,
    specText: fs.readFileSync(specFile, 'utf8'),
    model: { path: fx.model, tokenizer: 'bytes', components: fx.catalog },
    datasets: [
      { name: 'tune', source: parseDataArg(`inline:${TEXT}`), limit: 4 },
      { name: 'all', source: parseDataArg(`inline:${TEXT}`) },
      { name: 'other', source: parseDataArg('inline:The quick brown fox jumps over the lazy dog.') },
    ],
    guards: [{ name: 'keep_other', datasets: ['other'], threshold: 10, unit: 'nats' }],
    edits: [{ name: 'e', components: ['h.1.mlp.c_fc:1', 'h.0.mlp.c_proj:0'], scale, keep: ['keep_other'] }],
    expectations: [{ kind: 'expect', edit: 'e', dataset: 'tune', change: 'rises', op: '>=', bound: 0, unit: 'nats' }],
  };
}

test('apply: s = 1 writes a byte-identical model; the base is untouched', async () => {
  const fx = writeFixture();
  const spec = path.join(fx.dir, 'one.scalpel');
  fs.writeFileSync(spec, '# scale 1\n');
  const before = sha256File(fx.model);
  const runner = await PlanRunner.open(plan(fx, { value: 1 }, spec));
  const out = path.join(fx.dir, 'same.onnx');
  const r = await applyPlan(runner, { edits: [], outFile: out });
  await runner.close();
  assert.ok(fs.readFileSync(out).equals(fs.readFileSync(fx.model)));
  assert.equal(r.lock.output.sha256, before);
  assert.equal(sha256File(fx.model), before);
});

test('apply tunes on the limited tokens only, writes a byte-stable lock, and a re-run reproduces the output hash', async () => {
  const fx = writeFixture();
  const spec = path.join(fx.dir, 'tuned.scalpel');
  fs.writeFileSync(spec, '# tuned\n');
  const base = sha256File(fx.model);
  const p = plan(fx, { tune: { low: -4, high: 4, objective: 'maximize', datasets: ['tune'] } }, spec);
  const runner = await PlanRunner.open(p);
  const out = path.join(fx.dir, 'out.onnx');
  const r1 = await applyPlan(runner, { edits: ['e'], outFile: out });
  const lockText = fs.readFileSync(`${spec}.lock`, 'utf8');
  const lock = readLock(`${spec}.lock`)!;
  assert.equal(stableJson(JSON.parse(lockText)), lockText, 'round trip is byte-identical');
  assert.equal(lock.tuning!.tokens[0].scored, 4);
  assert.equal(lock.tuning!.tokens[0].ids.length, 5);
  assert.equal(String.fromCharCode(...lock.tuning!.tokens[0].ids), TEXT.slice(0, 5));
  assert.ok(lock.tuning!.trace.length > 5);
  const s = lock.tuning!.values.e;
  assert.ok(s >= -4 && s <= 4);
  // The tuned scale is at least as good as any grid point on the tuning objective: the loss, counted
  // up to the uniform loss; among scales that reach it, the one nearest 1.
  const tune = runner.dataset('tune');
  const uniform = Math.log(runner.session.vocabSize);
  const fAt = async (x: number) => Math.min(uniform, (await runner.session.evaluate(tune, runner.editor.weights(r1.resolved.terms.map((t) => ({ ...t, scale: x }))))).loss);
  const best = await fAt(s);
  for (const x of linspace(-4, 4, 17)) {
    const fx = await fAt(x);
    assert.ok(best >= fx - 1e-6, `grid point ${x} beats the tuned ${s}`);
    if (fx >= uniform) assert.ok(Math.abs(s - 1) <= Math.abs(x - 1) + 1e-2, `${x} reaches uniform with a smaller change than ${s}`);
  }
  assert.equal(lock.components.length, 2);
  assert.equal(lock.components[0].label, 'component 1 of h.1.mlp.c_fc');
  assert.deepEqual(Object.keys(lock.metrics).sort(), ['all', 'other', 'tune']);
  assert.equal(lock.model.sha256, base);

  const r2 = await applyPlan(runner, { edits: ['e'], outFile: path.join(fx.dir, 'out2.onnx') });
  await runner.close();
  assert.equal(r2.resolved.tuning!.fromLock, true);
  assert.equal(sha256File(path.join(fx.dir, 'out2.onnx')), r1.lock.output.sha256);
  assert.equal(sha256File(fx.model), base, 'base untouched');
  const out2 = openModel(path.join(fx.dir, 'out2.onnx'));
  assert.ok(readFloatTensor(out2, 'h.1.mlp.c_fc.weight').some((v, i) => v !== readFloatTensor(runner.lm.onnx, 'h.1.mlp.c_fc.weight')[i]));
  out2.close();
});

test('two edits that share a component are alternatives: each runs alone, together they are refused before tuning, and the lock names the edit applied', async () => {
  const fx = writeFixture();
  const spec = path.join(fx.dir, 'alternatives.scalpel');
  fs.writeFileSync(spec, '# two alternatives\n');
  const p = plan(fx, { value: 0 }, spec);
  const other = { ...p.edits[0], name: 'other', components: ['h.1.mlp.c_fc:1', 'h.1.mlp.c_fc:3'], scale: { tune: { low: -4, high: 4, objective: 'maximize' as const, datasets: ['tune'] } } };
  const runner = await PlanRunner.open({ ...p, edits: [p.edits[0], other] });
  try {
    let evaluations = 0;
    await assert.rejects(runner.run([], { onStatus: () => evaluations++ }), (e: unknown) => e instanceof ScalpelError && /edits e and other both scale h\.1\.mlp\.c_fc:1/.test(e.message) && /--edit e or --edit other/.test(e.message));
    assert.equal(evaluations, 0, 'refused before tuning or measuring');
    for (const name of ['e', 'other']) assert.deepEqual((await runner.run([name])).edits, [name]);
    const r = await applyPlan(runner, { edits: ['e'], outFile: path.join(fx.dir, 'e.onnx') });
    assert.deepEqual(r.lock.components.map((c) => [c.key, c.edit]), [['h.1.mlp.c_fc:1', 'e'], ['h.0.mlp.c_proj:0', 'e']]);
  } finally {
    await runner.close();
  }
});

test('PlanRunner: unknown guard, unknown edit and a catalog-less model are ScalpelErrors', async () => {
  const fx = writeFixture();
  const spec = path.join(fx.dir, 's.scalpel');
  fs.writeFileSync(spec, '\n');
  const p = plan(fx, { value: 0 }, spec);
  await assert.rejects(PlanRunner.open({ ...p, model: { ...p.model, components: undefined } }), /declares no component catalog/);
  const runner = await PlanRunner.open({ ...p, edits: [{ ...p.edits[0], keep: ['nope'] }] });
  await assert.rejects(runner.run([]), /keeps an unknown guard "nope"/);
  await assert.rejects(runner.run(['zzz']), /no edit named "zzz"/);
  await runner.close();
  void C;
});

test('diff: a two-component edit shows up as a rank-2 change explained by exactly those components and scales', () => {
  const fx = writeFixture();
  const { lm, editor, components } = open(fx);
  const w = editor.weights([
    { component: components.get('h.1.mlp.c_fc:2'), scale: -1.5 },
    { component: components.get('h.1.mlp.c_fc:5'), scale: 0.25 },
  ]);
  const out = path.join(fx.dir, 'edited.onnx');
  writeEditedModel(lm.file, out, w);
  const a = openModel(fx.model);
  const b = openModel(out);
  const changes = diffModels(a, b, openCatalogTensors(fx.catalog));
  assert.deepEqual(changes.map((c) => c.name), ['h.1.mlp.c_fc.weight']);
  const c = changes[0];
  assert.equal(c.rank, 2);
  const got = Object.fromEntries(c.explained!.components.map((x) => [x.key, x.scale]));
  assert.deepEqual(Object.keys(got).sort(), ['h.1.mlp.c_fc:2', 'h.1.mlp.c_fc:5']);
  assert.ok(Math.abs(got['h.1.mlp.c_fc:2'] + 1.5) < 1e-3 && Math.abs(got['h.1.mlp.c_fc:5'] - 0.25) < 1e-3, JSON.stringify(got));
  assert.ok(c.explained!.residual < 1e-3);
  assert.deepEqual(diffModels(a, a), []);
  // The textconv summary differs in exactly the changed tensor's line.
  const sa = modelSummary(a).split('\n');
  const sb = modelSummary(b).split('\n');
  assert.deepEqual(sa.filter((l, i) => l !== sb[i]).map((l) => l.split(' ')[0]), ['h.1.mlp.c_fc.weight']);
  a.close();
  b.close();
});

test('topSingularValues matches a matrix with known singular values', () => {
  // M = 3 e1 f1ᵀ + 0.5 e2 f2ᵀ (orthonormal e, f).
  const rows = 5, cols = 7;
  const m = new Float64Array(rows * cols);
  m[0 * cols + 1] = 3;
  m[3 * cols + 4] = 0.5;
  const sv = topSingularValues(m, rows, cols, 4);
  assert.ok(Math.abs(sv[0] - 3) < 1e-9 && Math.abs(sv[1] - 0.5) < 1e-9 && sv[2] < 1e-9, String(sv));
});
