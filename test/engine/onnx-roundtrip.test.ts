import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { DataType, decodeFloats, encodeFloats, openModel, readFloatTensor, readTensorBytes } from '../../engine/onnx/model';
import { buildModel, floatTensor } from '../../engine/onnx/build';
import { writeEditedModel } from '../../engine/onnx/write';
import { withExtraOutputs } from '../../engine/onnx/rewrite';
import { moduleWeights } from '../../engine/onnx/modules';
import { ScalpelError } from '../../engine/errors';
import { createSession } from '../../engine/session';
import { randomValues } from '../helpers/random';
import { D, H, V, Layout, referenceLogits, tinyWeights, writeTinyModel } from '../helpers/tiny-lm';

const IDS = [3, 0, 11, 7, 5];

async function runLogits(file: string, ids = IDS): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(file);
  try {
    const out = await session.run({ input_ids: new ort.Tensor('int64', BigInt64Array.from(ids.map(BigInt)), [1, ids.length]) });
    return out.logits.data as Float32Array;
  } finally {
    await session.release();
  }
}

function assertClose(actual: Float32Array, expected: number[][], tol = 1e-4): void {
  const flat = expected.flat();
  assert.equal(actual.length, flat.length);
  flat.forEach((e, i) => assert.ok(Math.abs(actual[i] - e) <= tol * Math.max(1, Math.abs(e)), `logit ${i}: ${actual[i]} vs ${e}`));
}

/** Bytes and mtime of every file in the model's folder, to prove nothing was written there. */
function snapshot(file: string): Map<string, { bytes: Buffer; mtimeMs: number }> {
  const dir = path.dirname(file);
  return new Map(fs.readdirSync(dir).map((f) => [f, { bytes: fs.readFileSync(path.join(dir, f)), mtimeMs: fs.statSync(path.join(dir, f)).mtimeMs }]));
}

function assertUnchanged(before: ReturnType<typeof snapshot>, file: string): void {
  for (const [name, { bytes, mtimeMs }] of before) {
    const p = path.join(path.dirname(file), name);
    assert.ok(fs.readFileSync(p).equals(bytes), `${name} bytes changed`);
    assert.equal(fs.statSync(p).mtimeMs, mtimeMs, `${name} mtime changed`);
  }
}

for (const external of [false, true]) {
  test(`patch one tensor, write, reload in ORT (${external ? 'external data' : 'inline'})`, async () => {
    const weights = tinyWeights(7);
    const base = writeTinyModel(weights, 'named', { external });
    const before = snapshot(base);
    assertClose(await runLogits(base), referenceLogits(weights, IDS));

    const w2 = randomValues(D * H, 99);
    const out = path.join(fs.mkdtempSync(path.join(path.dirname(base), 'out-')), 'edited.onnx');
    const result = writeEditedModel(base, out, new Map([['h.0.mlp.c_fc.weight', w2]]));
    assert.deepEqual(result.patched, ['h.0.mlp.c_fc.weight']);
    assert.equal(result.dataFiles.length, external ? 1 : 0);

    // Outputs change exactly as the new weight implies.
    assertClose(await runLogits(out), referenceLogits({ ...weights, w: w2 }, IDS));

    // Every other initializer is byte-identical; the patched one holds the new values.
    const a = openModel(base);
    const b = openModel(out);
    try {
      assert.deepEqual([...b.initializers.keys()], [...a.initializers.keys()]);
      for (const [name, t] of a.initializers) {
        if (name === 'h.0.mlp.c_fc.weight') continue;
        assert.ok(Buffer.from(readTensorBytes(b, b.initializers.get(name)!)).equals(Buffer.from(readTensorBytes(a, t))), `${name} differs`);
      }
      assert.deepEqual(readFloatTensor(b, 'h.0.mlp.c_fc.weight'), w2);
      if (external) {
        assert.equal(b.initializers.get('wte.weight')!.storage.kind, 'external');
        assert.deepEqual(b.initializers.get('wte.weight')!.storage, { kind: 'external', file: 'edited.onnx.data' });
      }
    } finally {
      a.close();
      b.close();
    }
    assertUnchanged(before, base);
    // No temporary files are left behind.
    assert.deepEqual(fs.readdirSync(path.dirname(out)).sort(), external ? ['edited.onnx', 'edited.onnx.data'] : ['edited.onnx']);
  });
}

test('an identity patch gives a byte-identical file', () => {
  const base = writeTinyModel(tinyWeights(3));
  const m = openModel(base);
  const w = readFloatTensor(m, 'h.0.mlp.c_fc.weight');
  m.close();
  const out = path.join(path.dirname(base), 'same.onnx');
  writeEditedModel(base, out, new Map([['h.0.mlp.c_fc.weight', w]]));
  assert.ok(fs.readFileSync(out).equals(fs.readFileSync(base)));
});

test('refuses to overwrite the base checkpoint, and rejects bad patches with one clear error', () => {
  const base = writeTinyModel(tinyWeights(4));
  const before = snapshot(base);
  assert.throws(() => writeEditedModel(base, base, new Map()), (e: unknown) => e instanceof ScalpelError && /refusing to overwrite the base/.test(e.message));
  const out = path.join(path.dirname(base), 'o.onnx');
  assert.throws(() => writeEditedModel(base, out, new Map([['nope', new Float32Array(1)]])), /no initializer named nope/);
  assert.throws(() => writeEditedModel(base, out, new Map([['h.0.mlp.c_fc.weight', new Float32Array(3)]])), /has 3 values, the tensor has 24/);
  assert.equal(fs.existsSync(out), false);
  assertUnchanged(before, base);
});

test('truncated and empty files give a clear error with the file name', () => {
  const base = writeTinyModel(tinyWeights(5));
  const bytes = fs.readFileSync(base);
  const cut = path.join(path.dirname(base), 'cut.onnx');
  fs.writeFileSync(cut, bytes.subarray(0, Math.floor(bytes.length * 0.6)));
  assert.throws(() => openModel(cut), (e: unknown) => e instanceof ScalpelError && e.file === cut && /not a valid ONNX model/.test(e.message) && /truncated/.test(e.message));
  const empty = path.join(path.dirname(base), 'empty.onnx');
  fs.writeFileSync(empty, '');
  assert.throws(() => openModel(empty), /the file is empty/);
  assert.throws(() => openModel(path.join(path.dirname(base), 'missing.onnx')), (e: unknown) => e instanceof ScalpelError && /no such file/.test(e.message));
  const text = path.join(path.dirname(base), 'text.onnx');
  fs.writeFileSync(text, 'hello, I am not a model\n');
  assert.throws(() => openModel(text), /not a valid ONNX model/);
});

const LAYOUTS: [Layout, string, 'in_out' | 'out_in'][] = [
  ['named', 'h.0.mlp.c_fc.weight', 'in_out'],
  ['transposed', 'h.0.mlp.c_fc.weight', 'out_in'],
  ['mangled', 'onnx::MatMul_17', 'in_out'],
  ['gemm', 'h.0.mlp.c_fc.weight', 'out_in'],
];

for (const [layout, initializer, expected] of LAYOUTS) {
  test(`module paths map to weights: ${layout} export`, async () => {
    const weights = tinyWeights(11);
    const file = writeTinyModel(weights, layout);
    assertClose(await runLogits(file), referenceLogits(weights, IDS));
    const m = openModel(file);
    try {
      const mods = moduleWeights(m);
      const fc = mods.find((x) => x.module === 'h.0.mlp.c_fc');
      assert.ok(fc, `found ${mods.map((x) => x.module)}`);
      assert.equal(fc.initializer, initializer);
      assert.equal(fc.layout, expected);
      assert.equal(fc.dIn, D);
      assert.equal(fc.dOut, H);
      assert.deepEqual(mods.map((x) => x.module).sort(), ['h.0.mlp.c_fc', 'lm_head']);
      assert.equal(mods.find((x) => x.module === 'lm_head')!.dOut, V);
    } finally {
      m.close();
    }
  });
}

test('any intermediate tensor can be added as a graph output', async () => {
  const weights = tinyWeights(21);
  const file = writeTinyModel(weights, 'transposed', { external: true });
  const m = openModel(file);
  let session: ort.InferenceSession;
  try {
    session = await createSession(m, withExtraOutputs(m, ['x0', 'x1']));
    assert.throws(() => withExtraOutputs(m, ['no_such_tensor']), /no tensor named no_such_tensor/);
  } finally {
    m.close();
  }
  const out = await session.run({ input_ids: new ort.Tensor('int64', BigInt64Array.from(IDS.map(BigInt)), [1, IDS.length]) });
  await session.release();
  assert.deepEqual(out.x1.dims, [1, IDS.length, H]);
  IDS.forEach((id, t) => {
    for (let j = 0; j < H; j++) {
      let expected = 0;
      for (let i = 0; i < D; i++) expected += weights.wte[id * D + i] * weights.w[i * H + j];
      assert.ok(Math.abs((out.x1.data as Float32Array)[t * H + j] - expected) < 1e-5);
    }
  });
  assertClose(out.logits.data as Float32Array, referenceLogits(weights, IDS));
});

test('float16 and bfloat16 weights read exactly and are written rounded once, to nearest even', () => {
  const half = (x: number) => decodeFloats(encodeFloats(Float32Array.of(x), DataType.FLOAT16), DataType.FLOAT16)[0];
  const bf = (x: number) => decodeFloats(encodeFloats(Float32Array.of(x), DataType.BFLOAT16), DataType.BFLOAT16)[0];
  assert.equal(half(1), 1);
  assert.equal(half(0.1), 0.0999755859375);
  assert.equal(half(65504), 65504);
  assert.equal(half(70000), Infinity);
  assert.equal(half(-(2 ** -24)), -(2 ** -24), 'the smallest subnormal');
  assert.equal(half(2 ** -26), 0);
  assert.equal(half(1 + 2 ** -11), 1, 'a tie rounds to the even neighbour');
  assert.equal(half(1 + 3 * 2 ** -11), 1 + 2 ** -9);
  assert.equal(half(1.5 * 2 ** -24), 2 * 2 ** -24, 'a subnormal tie rounds to even');
  assert.ok(Number.isNaN(half(NaN)));
  assert.equal(bf(1 + 2 ** -8), 1);
  assert.equal(bf(1 + 3 * 2 ** -8), 1 + 2 ** -6);
  assert.equal(bf(-3.140625), -3.140625);
  // Every float16 value survives the float32 round trip: an identity edit writes the same bytes.
  const all = new Uint16Array(65536).map((_, i) => i);
  const back = new Uint16Array(encodeFloats(decodeFloats(new Uint8Array(all.buffer), DataType.FLOAT16), DataType.FLOAT16).buffer);
  for (let i = 0; i < 65536; i++) if ((i & 0x7c00) !== 0x7c00 || !(i & 0x3ff)) assert.equal(back[i], i, `float16 bits ${i.toString(16)}`);
});

test('quantized weights get one clear "not supported yet" naming the tensor', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scalpel-int8-'));
  const file = path.join(dir, 'q.onnx');
  fs.writeFileSync(file, buildModel({
    nodes: [{ name: '/fc/DequantizeLinear', opType: 'DequantizeLinear', inputs: ['fc.weight_quantized', 'scale'], outputs: ['w'] }, { name: '/fc/MatMul', opType: 'MatMul', inputs: ['x', 'w'], outputs: ['y'] }],
    initializers: [{ name: 'fc.weight_quantized', dims: [2, 2], dataType: DataType.INT8, data: { raw: new Uint8Array(4) } }, floatTensor('scale', [], Float32Array.of(0.5))],
    inputs: [{ name: 'x', elemType: DataType.FLOAT, shape: [1, 2] }],
    outputs: [{ name: 'y', elemType: DataType.FLOAT, shape: [1, 2] }],
  }));
  const m = openModel(file);
  try {
    const [fc] = moduleWeights(m);
    assert.equal(fc.module, 'fc');
    assert.throws(() => readFloatTensor(m, fc.initializer), (e: unknown) => e instanceof ScalpelError && e.message === 'initializer fc.weight_quantized is int8 (quantized weights): not supported yet; use a float32, float16 or bfloat16 export');
  } finally {
    m.close();
  }
});
