import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { loadDataset, parseDataArg } from '../../engine/data';
import { ScalpelError } from '../../engine/errors';
import { Evaluator, batchSizeFor, lossHead, tokenizeDataset } from '../../engine/evaluate';
import { modelSha256, sha256File } from '../../engine/identity';
import { openLanguageModel } from '../../engine/lm';
import { rewriteModel } from '../../engine/onnx/rewrite';
import { sessionGraph } from '../../engine/session';

const DEMO = 'models/polyglot';

/** Per-token NLL computed here from raw logits of a plain session on the unmodified model. */
async function referenceLosses(modelFile: string, ids: Int32Array, ctx: number): Promise<Float64Array> {
  const session = await ort.InferenceSession.create(modelFile);
  const out = new Float64Array(ids.length - 1);
  try {
    for (let s = 0; s < ids.length - 1; s += ctx) {
      const win = ids.subarray(s, Math.min(ids.length - 1, s + ctx));
      const r = await session.run({ input_ids: new ort.Tensor('int64', BigInt64Array.from(Array.from(win, BigInt)), [1, win.length]) });
      const logits = r.logits.data as Float32Array;
      const v = r.logits.dims[2];
      for (let t = 0; t < win.length; t++) {
        const row = logits.subarray(t * v, t * v + v);
        let max = -Infinity;
        for (const x of row) max = Math.max(max, x);
        let sum = 0;
        for (const x of row) sum += Math.exp(x - max);
        out[s + t] = max + Math.log(sum) - row[ids[s + t + 1]];
      }
    }
  } finally {
    await session.release();
  }
  return out;
}

test('engine loss equals a reference computed from the logits, for any batch size', async () => {
  const lm = openLanguageModel(DEMO);
  // 300 tokens: two full windows of 128 and a partial one, so batches need padding.
  const ds = tokenizeDataset(loadDataset('de', parseDataArg('udhr:deu')), lm.tokenizer, 300);
  assert.equal(ds.ids.length, 300);
  assert.equal(ds.ids[0], lm.tokenizer.bos);
  const ref = await referenceLosses(lm.file, ds.ids, lm.contextLength);
  const refMean = ref.reduce((a, b) => a + b, 0) / ref.length;
  for (const batchSize of [1, 2, 8]) {
    const ev = await Evaluator.create(lm, { batchSize });
    const r = await ev.evaluate(ds);
    await ev.release();
    assert.equal(r.tokens, 299);
    ref.forEach((x, i) => assert.ok(Math.abs(r.perToken[i] - x) < 1e-3, `batch ${batchSize}, token ${i}: ${r.perToken[i]} vs ${x}`));
    assert.ok(Math.abs(r.loss - refMean) < 1e-4, `mean ${r.loss} vs ${refMean}`);
  }
});

test('the demo model has learned every language (far below the uniform loss)', async () => {
  const lm = openLanguageModel(DEMO);
  const ev = await Evaluator.create(lm);
  const uniform = Math.log(ev.vocabSize);
  for (const code of ['deu', 'fra', 'spa', 'ita', 'eng']) {
    const r = await ev.evaluate(tokenizeDataset(loadDataset(code, parseDataArg(`udhr:${code}`)), lm.tokenizer, 512));
    assert.ok(r.loss < 0.75 * uniform, `${code}: ${r.loss} vs uniform ${uniform}`);
  }
  await ev.release();
});

test('cancellation stops an evaluation between batches', async () => {
  const lm = openLanguageModel(DEMO);
  const ev = await Evaluator.create(lm, { batchSize: 1 });
  const ds = tokenizeDataset(loadDataset('en', parseDataArg('udhr:eng')), lm.tokenizer);
  const controller = new AbortController();
  let batches = 0;
  await assert.rejects(
    ev.evaluate(ds, { signal: controller.signal, onProgress: () => ++batches === 2 && controller.abort() }),
    /cancelled/,
  );
  assert.equal(batches, 2);
  await ev.release();
});

test('a tokenizer that does not match the model is refused with one clear error', async () => {
  await assert.rejects(Evaluator.create(openLanguageModel(DEMO, { tokenizer: 'bytes' })), (e: unknown) =>
    e instanceof ScalpelError && /tokenizer bytes has 256 tokens but the model predicts 4096: wrong tokenizer/.test(e.message),
  );
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scalpel-tok-'));
  const bad = path.join(dir, 'tokenizer.json');
  fs.writeFileSync(bad, '{"model": ');
  assert.throws(() => openLanguageModel(DEMO, { tokenizer: bad }), (e: unknown) => e instanceof ScalpelError && e.file === bad && /not a tokenizer.json/.test(e.message));
  fs.writeFileSync(bad, '{"version": "1.0"}');
  assert.throws(() => openLanguageModel(DEMO, { tokenizer: bad }), /has no "model" section/);
  assert.throws(() => openLanguageModel(DEMO, { tokenizer: path.join(dir, 'missing.json') }), /cannot read tokenizer: no such file/);
});

/** The demo model with every weight moved to a side file: the graph's external references point into a copy of the original file. */
function externalDataCopy(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scalpel-ext-'));
  const lm = openLanguageModel(DEMO);
  fs.writeFileSync(path.join(dir, 'model.onnx'), rewriteModel(lm.onnx, { referenceInline: { location: 'model.onnx_data', minBytes: 1024 } }));
  fs.copyFileSync(lm.file, path.join(dir, 'model.onnx_data'));
  for (const f of ['tokenizer.json', 'config.json']) fs.copyFileSync(path.join(DEMO, f), path.join(dir, f));
  return dir;
}

test('sessions read weights from the model files: the graph handed to onnxruntime holds none, and side files load', async () => {
  const lm = openLanguageModel(DEMO);
  const graph = sessionGraph(lm.onnx, lossHead(lm.onnx, lm.logitsName));
  assert.equal(graph.folder, path.dirname(lm.file));
  assert.ok(graph.bytes.length < 0.05 * lm.onnx.size, `${graph.bytes.length} bytes of graph for a ${lm.onnx.size}-byte model`);
  const dir = externalDataCopy();
  const ext = openLanguageModel(dir);
  assert.ok(ext.onnx.size < 0.05 * lm.onnx.size && [...ext.onnx.initializers.values()].some((t) => t.storage.kind === 'external'));
  const ds = tokenizeDataset(loadDataset('de', parseDataArg('udhr:deu')), lm.tokenizer, 300);
  const [a, b] = [await Evaluator.create(lm), await Evaluator.create(ext)];
  assert.deepEqual(Array.from((await b.evaluate(ds)).perToken), Array.from((await a.evaluate(ds)).perToken));
  await a.release();
  await b.release();
  fs.rmSync(dir, { recursive: true });
});

test('a model\'s identity covers its external data: changing one byte of the side file changes the hash', () => {
  const dir = externalDataCopy();
  const file = path.join(dir, 'model.onnx');
  assert.equal(modelSha256(DEMO + '/model.onnx'), sha256File(DEMO + '/model.onnx'), 'a model without side files hashes as its file');
  const before = modelSha256(file);
  assert.notEqual(before, sha256File(file));
  const data = path.join(dir, 'model.onnx_data');
  const fd = fs.openSync(data, 'r+');
  fs.writeSync(fd, Buffer.from([0x5a]), 0, 1, Math.floor(fs.fstatSync(fd).size / 2));
  fs.closeSync(fd);
  assert.notEqual(modelSha256(file), before);
  fs.rmSync(dir, { recursive: true });
});

test('the default batch fits the logits in the memory budget', () => {
  assert.equal(batchSizeFor(128, 4096), 8);
  assert.equal(batchSizeFor(1024, 50257), 1);
  assert.equal(batchSizeFor(1024, 50257, 4 * 2 ** 30), 8);
  assert.equal(batchSizeFor(256, 32000, 512 * 2 ** 20), Math.floor((512 * 2 ** 20) / (8 * 256 * 32000)));
});
