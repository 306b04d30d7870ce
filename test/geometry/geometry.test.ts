import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openCatalogTensors } from '../../engine/catalog/read';
import { Dataset } from '../../engine/data';
import { neuronComponent, WeightEditor } from '../../engine/edit/weights';
import { ScalpelError } from '../../engine/errors';
import { CancelledError } from '../../engine/evaluate';
import { openLanguageModel } from '../../engine/lm';
import { alignComponents } from '../../engine/geometry/align';
import { Activations, ActivationCapture } from '../../engine/geometry/capture';
import { measureGeometry } from '../../engine/geometry';
import { Moments, pca, project } from '../../engine/geometry/pca';
import { resolvePoint, splitSentences } from '../../engine/geometry/points';
import { specSubject } from '../../language/geometry';
import { loadPlan } from '../../language/plan';
import { applyPlan } from '../../engine/edit/apply';
import { PlanRunner } from '../../engine/edit/run';
import { probeDirection, scoreProbe, trainProbe } from '../../engine/geometry/probe';
import { analyzeModel, effectiveReadVector, tensorAccess } from '../../engine/trace/graph';
import { Tracer, captured } from '../../engine/trace/trace';
import { tinyWithCatalog } from '../debugger/helpers';
import { normals } from '../helpers/random';

/** Synthetic activations: `perTag` rows per tag, tag t shifted by `shift` along axis t, the rest noise. */
function synthetic(tags: string[], perTag: number, d: number, shift: number, seed = 7): Activations {
  const g = normals(seed);
  const n = tags.length * perTag;
  const a: Activations = {
    point: { id: 'synthetic', kind: 'residual', tensor: 'synthetic' }, width: d, tags, rows: new Float32Array(n * d), count: n,
    tag: new Int32Array(n), document: new Int32Array(n), position: new Int32Array(n), token: new Int32Array(n), heldout: new Uint8Array(n),
    moments: new Moments(), tokens: tags.map(() => perTag),
  };
  for (let r = 0; r < n; r++) {
    const t = Math.floor(r / perTag);
    for (let j = 0; j < d; j++) a.rows[r * d + j] = g() + (j === t ? shift : 0);
    a.tag[r] = t;
    a.document[r] = r % perTag;
    a.heldout[r] = r % 3 === 0 ? 1 : 0;
    a.moments.add(a.rows.subarray(r * d, (r + 1) * d));
  }
  return a;
}

test('sentences split at end punctuation and blank lines, keeping each leading space, covering the text', () => {
  const text = 'Alle Menschen sind frei. Sie haben Rechte!  "Wirklich?" fragt er…\n\nNeuer Absatz ohne Punkt\nund weiter. 3.5 bleibt eins.';
  const s = splitSentences(text);
  assert.deepEqual(s.map((x) => x.text.trim()), ['Alle Menschen sind frei.', 'Sie haben Rechte!', '"Wirklich?"', 'fragt er…', 'Neuer Absatz ohne Punkt\nund weiter.', '3.5 bleibt eins.']);
  assert.equal(s.map((x) => x.text).join(''), text, 'the pieces are the text, in order');
  assert.equal(s[1].text[0], ' ', 'a sentence keeps its leading space');
  assert.deepEqual(splitSentences('  \n '), []);
  assert.deepEqual(splitSentences(text), s, 'deterministic');
});

test('streamed moments give the covariance, and PCA finds a planted direction with its share of variance', () => {
  const d = 6;
  const g = normals(3);
  const planted = Float64Array.from([3, -4, 0, 0, 12, 0].map((v) => v / 13));
  const m = new Moments();
  const rows: number[][] = [];
  for (let r = 0; r < 4000; r++) {
    const along = 5 * g();
    const row = Array.from({ length: d }, (_, j) => 100 + along * planted[j] + 0.5 * g());
    rows.push(row);
    m.add(row);
  }
  // Covariance by the textbook two-pass formula.
  const mean = Array.from({ length: d }, (_, j) => rows.reduce((s, r) => s + r[j], 0) / rows.length);
  const cov = m.covariance();
  for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) {
    const want = rows.reduce((s, r) => s + (r[i] - mean[i]) * (r[j] - mean[j]), 0) / (rows.length - 1);
    assert.ok(Math.abs(cov[i * d + j] - want) < 1e-9 * Math.max(1, Math.abs(want)), `cov[${i},${j}] ${cov[i * d + j]} vs ${want}`);
  }
  const p = pca(m, 2);
  const cos = Math.abs(p.components[0].reduce((s, v, i) => s + v * planted[i], 0));
  assert.ok(cos > 0.999, `first component vs planted direction: cosine ${cos}`);
  assert.ok(Math.abs(p.components[0].reduce((s, v, i) => s + v * p.components[1][i], 0)) < 1e-9, 'components are orthogonal');
  // Variance 25 along the plant, 0.25 per axis of noise: its share is 25.25 / (25 + 6·0.25).
  assert.ok(Math.abs(p.explained[0] - 25.25 / 26.5) < 0.03, `explained ${p.explained}`);
  const xy = project(p, Float32Array.from(rows[0]), 1);
  const want = rows[0].reduce((s, v, i) => s + (v - p.mean[i]) * p.components[0][i], 0);
  assert.ok(Math.abs(xy[0] - want) < 1e-4, `${xy[0]} vs ${want}`); // float32 rows near 100: ~1e-5 rounding
  const controller = new AbortController();
  controller.abort();
  assert.throws(() => pca(m, 2, { signal: controller.signal }), CancelledError);
});

for (const kind of ['logistic', 'mean-difference'] as const) {
  test(`${kind} probes separate shifted tags on held-out rows, and not shuffled ones`, async () => {
    const tags = ['de', 'fr', 'en'];
    const a = synthetic(tags, 300, 8, 3);
    const probe = await trainProbe(a, kind);
    const s = scoreProbe(probe, a);
    assert.equal(s.rows, a.heldout.reduce((x, y) => x + y, 0));
    for (const t of s.perTag) assert.ok(t.balanced > 0.9, `${t.tag}: ${t.balanced}`);
    assert.ok(s.accuracy > 0.85, `accuracy ${s.accuracy}`);
    // Each tag's direction points along its own axis.
    tags.forEach((tag, t) => {
      const dir = probeDirection(probe, tag);
      const best = dir.reduce((bi, v, i) => (v > dir[bi] ? i : bi), 0);
      assert.equal(best, t, `${tag}'s direction is along axis ${best}`);
    });
    // No signal: the same rows with tags shuffled (a fixed permutation) give chance.
    const shuffled = synthetic(tags, 300, 8, 0);
    const chance = scoreProbe(await trainProbe(shuffled, kind), shuffled);
    for (const t of chance.perTag) assert.ok(Math.abs(t.balanced - 0.5) < 0.12, `${t.tag} without signal: ${t.balanced}`);
  });
}

test('a probe needs two tags and training rows for each', async () => {
  const one = synthetic(['de'], 20, 4, 1);
  await assert.rejects(trainProbe(one, 'logistic'), /at least two tagged datasets/);
  const a = synthetic(['de', 'fr'], 20, 4, 1);
  for (let i = 0; i < a.count; i++) if (a.tag[i] === 1) a.heldout[i] = 1;
  await assert.rejects(trainProbe(a, 'mean-difference'), /no training rows for tag fr/);
});

function docs(texts: string[], lang: string): Dataset {
  return { name: lang, source: `inline:${lang}`, documents: texts.map((text) => ({ text, tags: { lang } })) };
}

test('captured rows are the tensors the tracer records at the same positions (real onnxruntime), and an edit moves them', async () => {
  const dir = tinyWithCatalog();
  const lm = openLanguageModel(dir);
  const text = 'alle Mensch ist frei und die Würde der Mensch ist';
  const sources = [{ tag: 'a', dataset: docs([text], 'a') }, { tag: 'b', dataset: docs(['die Würde', 'der Mensch ist frei'], 'b') }];
  const capture = await ActivationCapture.create(lm, ['h.1.resid', 'h.0.mlp.c_fc']);
  const got = await capture.datasets(sources);
  await capture.release();
  const tracer = await Tracer.create(lm);
  const ids = [lm.tokenizer.bos!, ...lm.tokenizer.encode(text)];
  const trace = await tracer.trace(Int32Array.from(ids));
  const a = got.get('h.1.resid')!;
  const structure = tracer.structure;
  const block = resolvePoint(structure, 'h.1.resid');
  assert.equal(block.tensor, structure.blocks[1].sublayers[1].residualAfter);
  const rowsOfA = [...a.tag].filter((t) => t === 0).length;
  assert.equal(rowsOfA, ids.length - 1, 'every token that is an input: all but the last of the stream');
  for (let p = 0; p < ids.length - 1; p++) {
    const want = captured(trace, 'base', block, p);
    const row = a.rows.subarray(p * a.width, (p + 1) * a.width);
    assert.equal(a.position[p], p);
    assert.equal(a.token[p], ids[p]);
    for (let j = 0; j < a.width; j++) assert.ok(Math.abs(row[j] - want[j]) < 1e-5, `position ${p}, ${j}: ${row[j]} vs ${want[j]}`);
  }
  const fc = got.get('h.0.mlp.c_fc')!;
  assert.equal(fc.point.kind, 'module-out');
  assert.equal(fc.width, structure.modules.find((m) => m.module === 'h.0.mlp.c_fc')!.dOut);
  await tracer.release();

  const editor = new WeightEditor(lm.onnx);
  const patches = editor.weights([{ component: neuronComponent(lm.onnx, editor.module('h.1.mlp.c_proj'), 'in', 2), scale: 0 }]);
  const editedCapture = await ActivationCapture.create(lm, ['h.1.resid', 'h.0.mlp.c_fc'], { patches });
  const edited = await editedCapture.datasets(sources);
  await editedCapture.release();
  const e = edited.get('h.1.resid')!;
  assert.deepEqual([...e.token], [...a.token], 'the same tokens in the same order');
  let moved = 0;
  for (let i = 0; i < a.rows.length; i++) moved = Math.max(moved, Math.abs(a.rows[i] - e.rows[i]));
  assert.ok(moved > 1e-4, 'the edit changes the residual stream after its block');
  const before = edited.get('h.0.mlp.c_fc')!;
  assert.deepEqual([...before.rows], [...fc.rows], 'and nothing upstream of it');
});

test('a text\'s sentences give one row each, at the sentence\'s last token', async () => {
  const lm = openLanguageModel(tinyWithCatalog());
  const capture = await ActivationCapture.create(lm, ['h.1.resid']);
  const text = 'alle Mensch ist frei . die Würde der Mensch . und die Würde';
  const got = (await capture.sentences(text)).get('h.1.resid')!;
  const tracer = await Tracer.create(lm);
  const ids = [lm.tokenizer.bos!, ...lm.tokenizer.encode(text)];
  const trace = await tracer.trace(Int32Array.from(ids));
  assert.deepEqual(got.sentences, ['alle Mensch ist frei .', 'die Würde der Mensch .', 'und die Würde']);
  assert.equal(got.count, 3);
  assert.equal(got.position[2], ids.length - 1, 'the last sentence ends at the last token');
  for (let s = 0; s < 3; s++) {
    const want = captured(trace, 'base', resolvePoint(tracer.structure, 'h.1.resid'), got.position[s]);
    for (let j = 0; j < got.width; j++) assert.ok(Math.abs(got.rows[s * got.width + j] - want[j]) < 1e-5);
  }
  await capture.release();
  await tracer.release();
});

test('unknown capture points are one clear error naming the choices', async () => {
  const lm = openLanguageModel(tinyWithCatalog());
  await assert.rejects(ActivationCapture.create(lm, ['h.9.resid']), (e: Error) => e instanceof ScalpelError && /no capture point "h\.9\.resid": use embed, h\.0\.resid, h\.1\.resid/.test(e.message));
});

test('a direction equal to a component\'s effective read vector aligns with that component first (cosine 1), for the modules that read the point only', async () => {
  const dir = tinyWithCatalog();
  const lm = openLanguageModel(dir);
  const catalog = openCatalogTensors(path.join(dir, 'components'));
  const structure = analyzeModel(lm.onnx, lm.logitsName);
  const point = resolvePoint(structure, 'h.0.resid');
  // The tiny catalog is the neuron basis by input (V = I): component 3 of every module reads axis 3 of its input.
  const d = structure.modules.find((m) => m.module === 'h.1.mlp.c_fc')!.dIn;
  const access = tensorAccess(lm.onnx, structure, point.tensor, d);
  const axis = Float32Array.from({ length: d }, (_, i) => (i === 3 ? 1 : 0));
  // What c_fc's component 3 responds to at the point: axis 3 through ln_2's γ and centring.
  const seen = effectiveReadVector(axis, access.readSteps.get('h.1.mlp.c_fc'));
  const norm = Math.hypot(...seen);
  const direction = Float64Array.from(seen, (x) => x / norm);
  const top = alignComponents(direction, access, catalog, 8);
  assert.equal(top[0].key, 'h.1.mlp.c_fc:3');
  assert.equal(top[0].side, 'read');
  assert.ok(Math.abs(top[0].cosine - 1) < 1e-6, `cosine ${top[0].cosine}`);
  assert.ok(Math.abs(direction[3] - 1) > 1e-3, 'the norm changes the direction: it is not the axis itself');
  // h.1's attention output projection also takes d inputs and has a component 3, but its input is the heads' mixture.
  assert.ok(top.every((t) => !t.key.startsWith('h.0.') && !(t.key.startsWith('h.1.attn.c_proj') && t.side === 'read')));
  catalog.close();
});

/** The tiny model with a catalog, one neuron of h.1's MLP zeroed, and two tags of ten growing documents each. */
function tinyEditedTwoTags() {
  const dir = tinyWithCatalog();
  const lm = openLanguageModel(dir);
  const editor = new WeightEditor(lm.onnx);
  const patches = editor.weights([{ component: neuronComponent(lm.onnx, editor.module('h.1.mlp.c_proj'), 'in', 2), scale: 0 }]);
  const a = Array.from({ length: 10 }, (_, i) => `alle Mensch ist frei${' und die Würde'.repeat(i + 1)}`);
  const b = Array.from({ length: 10 }, (_, i) => `der Mensch ist${' frei der'.repeat(i + 1)} Würde`);
  return { dir, lm, patches, sources: [{ tag: 'a', dataset: docs(a, 'a') }, { tag: 'b', dataset: docs(b, 'b') }] };
}

test('measureGeometry: coordinates for base and edited rows, probe accuracy on both, sentence path, JSON-safe', async () => {
  const { dir, lm, patches, sources } = tinyEditedTwoTags();
  const r = await measureGeometry(lm, {
    points: ['h.0.resid', 'h.1.resid'], sources,
    patches, text: 'alle Mensch . der Mensch ist frei .', probe: 'mean-difference', catalog: openCatalogTensors(path.join(dir, 'components')),
  });
  assert.deepEqual(r.tags, ['a', 'b']);
  assert.equal(r.hasEdit, true);
  const n = r.rows.tag.length;
  for (const p of r.points) {
    assert.equal(p.base.coords.length, n);
    assert.equal(p.edited!.coords.length, n);
    assert.ok(p.base.coords.every((c) => c.length === 2 && c.every(Number.isFinite)));
    assert.equal(p.text!.base.coords.length, 2);
    assert.ok(p.probe.perTag.every((t) => t.base >= 0 && t.base <= 1 && t.edited !== undefined && t.editedRetrained !== undefined));
    assert.ok(p.explained[0] >= p.explained[1]);
  }
  assert.deepEqual(r.sentences, ['alle Mensch .', 'der Mensch ist frei .']);
  assert.deepEqual(r.points[0].base.coords, r.points[0].edited!.coords, 'h.0 is upstream of the edit in h.1');
  assert.notDeepEqual(r.points[1].base.coords, r.points[1].edited!.coords);
  assert.equal(r.points[0].probe.perTag[0].aligned.length > 0, true);
  assert.deepEqual(JSON.parse(JSON.stringify(r)), r);
});

test('a marked token is projected at every point, base and edited, as if sampled, and changes nothing else', async () => {
  const { lm, patches, sources } = tinyEditedTwoTags();
  const run = (maxPerTag: number, mark?: { tag: string; document: number; position: number }) => measureGeometry(lm, {
    points: ['h.0.resid', 'h.1.resid'], sources, patches, probe: 'mean-difference', maxPerTag, mark,
  });
  const mark = { tag: 'b', document: 7, position: 5 };
  const [marked, plain, whole] = [await run(3, mark), await run(3), await run(1000)];
  // Every row kept: the marked token is one of them, with the coordinates the mark got (PCA comes from every token either way).
  const row = whole.rows.tag.findIndex((t, i) => whole.tags[t] === 'b' && whole.rows.document[i] === 7 && whole.rows.position[i] === 5);
  assert.ok(row >= 0);
  assert.deepEqual(marked.marked, { ...mark, token: whole.rows.token[row] });
  marked.points.forEach((p, i) => assert.deepEqual(p.marked, { base: whole.points[i].base.coords[row], edited: whole.points[i].edited!.coords[row] }, p.point));
  const without = (r: typeof marked) => ({ rows: r.rows, tokens: r.tokens, points: r.points.map((p) => ({ ...p, marked: undefined })) });
  assert.deepEqual(without(marked), without(plain), 'the sample and the probes are those of the same run without a mark');
  assert.equal((await run(3, { tag: 'c', document: 0, position: 0 })).marked, undefined, 'a tag not captured marks nothing');
});

test('a gated edit is captured through its gated graph: the same activations as the checkpoint scalpel apply writes, upstream untouched', { timeout: 180000 }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scalpel-geometry-gated-'));
  const demo = path.resolve('models/polyglot');
  const spec = path.join(dir, 'gated.scalpel');
  fs.writeFileSync(spec, `model demo from "${demo}" {
  components "${demo}/components"
}
data german = udhr "deu"
data english = udhr "eng"
guard others = [english] within 5 nats
edit g on demo {
  select top 1 by selectivity(german) where top 16 by firing(german)
  scale -30 gated
  keep others
}
`);
  const subject = await specSubject(spec, 'g');
  assert.ok(subject.edit?.graph, 'a gated edit brings the graph with its paths');
  assert.ok([...subject.edit!.weights.keys()].every((k) => k.startsWith('scalpel.gate.')), 'its patches are the paths\' scale vectors');
  const sources = [{ tag: 'de', dataset: { name: 'de', source: 'inline', documents: [{ text: 'Alle Menschen sind frei und gleich an Würde und Rechten geboren. Sie sind mit Vernunft und Gewissen begabt.', tags: {} }] } }];
  const rowsAt = async (lm: ReturnType<typeof openLanguageModel>, opts: Parameters<typeof ActivationCapture.create>[2] = {}) => {
    const capture = await ActivationCapture.create(lm, ['h.1.resid', 'h.3.resid'], opts);
    try {
      const m = await capture.datasets(sources, { maxPerTag: 1000 });
      return [...m.values()].map((a) => a.rows);
    } finally {
      await capture.release();
    }
  };
  const lm = openLanguageModel(demo);
  const [baseUp, baseDown] = await rowsAt(lm);
  const [gatedUp, gatedDown] = await rowsAt(lm, { patches: subject.edit!.weights, graph: subject.edit!.graph });
  const plan = loadPlan(spec);
  const runner = await PlanRunner.open(plan, {});
  const out = path.join(dir, 'edited.onnx');
  try {
    await applyPlan(runner, { edits: ['g'], outFile: out });
  } finally {
    await runner.close();
  }
  const [writtenUp, writtenDown] = await rowsAt(openLanguageModel(out, { tokenizer: path.join(demo, 'tokenizer.json') }));
  const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
  assert.equal(maxDiff(gatedUp, baseUp), 0, 'h.1.resid is upstream of the gated module');
  assert.ok(maxDiff(gatedDown, baseDown) > 0.1, `the gated edit moves h.3.resid (max |Δ| ${maxDiff(gatedDown, baseDown)})`);
  assert.ok(maxDiff(gatedDown, writtenDown) < 1e-4, `as the written checkpoint does (max |Δ| ${maxDiff(gatedDown, writtenDown)})`);
  assert.equal(maxDiff(writtenUp, baseUp), 0);
});
