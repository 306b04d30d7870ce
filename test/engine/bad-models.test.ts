/**
 * Models Scalpel cannot handle fail clearly: one line saying what and where (the tensor, the node), never a stack
 * trace, an empty module list or an onnxruntime message alone. Each row rewrites module h.1.mlp.c_fc of the edit
 * fixture the way a quantizer or an unusual exporter would, and every command meets it: eval (which runs the model as
 * it is, so quantized models evaluate), decompose, label, apply, and the debugger's launch.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { launchRuntime } from '../../debugger/launch';
import { ScalpelError } from '../../engine/errors';
import { DataType, openModel, readFloatTensor } from '../../engine/onnx/model';
import { missingModule, moduleWeights } from '../../engine/onnx/modules';
import { WeightEditor } from '../../engine/edit/weights';
import { GraphEdit, rewriteModel } from '../../engine/onnx/rewrite';
import { buildModel, floatTensor } from '../../engine/onnx/build';
import { scalpel } from '../helpers/cli';
import { D, H, writeFixture } from '../edit/fixture';

const W = 'h.1.mlp.c_fc.weight';
const NODE = '/h.1/mlp/c_fc/MatMul';
const int8 = (name: string, dims: number[]) => ({ name, dims, dataType: DataType.INT8, data: { raw: new Uint8Array(dims.reduce((a, b) => a * b, 1)).map((_, i) => (i * 37) % 255) } });
const scalar = (name: string, dataType: number, raw: Uint8Array) => ({ name, dims: [], dataType, data: { raw } });

interface BadModel {
  name: string;
  /** The rewrite of the fixture's model (given its node index of h.1.mlp.c_fc's MatMul). */
  edit: (matmul: number) => GraphEdit;
  /** The one line every command that reads the module's weight prints. */
  message: RegExp;
}

const ROWS: BadModel[] = [
  {
    name: 'int8 weights behind DequantizeLinear',
    edit: () => ({
      removeInitializers: [W],
      addInitializers: [int8(`${W}_quantized`, [D, H]), floatTensor(`${W}_scale`, [], Float32Array.of(0.01))],
      addNodes: [{ name: '/h.1/mlp/c_fc/DequantizeLinear', opType: 'DequantizeLinear', inputs: [`${W}_quantized`, `${W}_scale`], outputs: [W] }],
    }),
    message: /^initializer h\.1\.mlp\.c_fc\.weight_quantized is int8 \(quantized weights\): not supported yet; use a float32, float16 or bfloat16 export$/,
  },
  {
    name: 'dynamic quantization: MatMulInteger',
    edit: (matmul) => ({
      removeNodes: [matmul],
      removeInitializers: [W],
      addInitializers: [int8(`${W}_quantized`, [D, H]), scalar(`${W}_zero_point`, DataType.INT8, new Uint8Array(1)), floatTensor(`${W}_scale`, [], Float32Array.of(0.01))],
      addNodes: [
        { name: '/h.1/mlp/c_fc/DynamicQuantizeLinear', opType: 'DynamicQuantizeLinear', inputs: ['x1'], outputs: ['x1_q', 'x1_scale', 'x1_zp'] },
        { name: '/h.1/mlp/c_fc/MatMulInteger', opType: 'MatMulInteger', inputs: ['x1_q', `${W}_quantized`, 'x1_zp', `${W}_zero_point`], outputs: ['a1_int'] },
        { name: '/h.1/mlp/c_fc/Cast', opType: 'Cast', inputs: ['a1_int'], outputs: ['a1_float'], attributes: [{ name: 'to', i: DataType.FLOAT }] },
        { name: '/h.1/mlp/c_fc/Mul', opType: 'Mul', inputs: ['x1_scale', `${W}_scale`], outputs: ['a1_scale'] },
        { name: '/h.1/mlp/c_fc/Mul_1', opType: 'Mul', inputs: ['a1_float', 'a1_scale'], outputs: ['a1'] },
      ],
    }),
    message: /^initializer h\.1\.mlp\.c_fc\.weight_quantized is int8 \(quantized weights\): not supported yet; use a float32, float16 or bfloat16 export$/,
  },
  {
    name: 'float64 weights behind Cast',
    edit: () => ({
      removeInitializers: [W],
      addInitializers: [{ name: `${W}_f64`, dims: [D, H], dataType: DataType.DOUBLE, data: { raw: new Uint8Array(new Float64Array(D * H).fill(0.125).buffer) } }],
      addNodes: [{ name: '/h.1/mlp/c_fc/Cast', opType: 'Cast', inputs: [`${W}_f64`], outputs: [W], attributes: [{ name: 'to', i: DataType.FLOAT }] }],
    }),
    message: /^initializer h\.1\.mlp\.c_fc\.weight_f64 is float64, not float32, float16 or bfloat16$/,
  },
  {
    name: 'a 3-D weight',
    edit: () => ({
      removeInitializers: [W],
      addInitializers: [floatTensor(W, [1, D, H], new Float32Array(D * H).fill(0.125))],
    }),
    message: /MatMul \/h\.1\/mlp\/c_fc\/MatMul reads h\.1\.mlp\.c_fc\.weight of shape \[1, 8, 16\]: only 2-D weight matrices are supported$/,
  },
  {
    name: 'no module name: an anonymous weight in an unscoped node',
    edit: (matmul) => ({
      removeNodes: [matmul],
      removeInitializers: [W],
      addInitializers: [floatTensor('onnx::MatMul_7', [D, H], new Float32Array(D * H).fill(0.125))],
      addNodes: [{ name: 'MatMul_7', opType: 'MatMul', inputs: ['x1', 'onnx::MatMul_7'], outputs: ['a1'] }],
    }),
    message: /MatMul MatMul_7 reads weight onnx::MatMul_7, but neither the node's scope nor the weight's name says which module it is$/,
  },
];

/** The fixture with one row's rewrite applied to its model, and a spec editing h.1.mlp.c_fc. */
function badFixture(row: BadModel) {
  const fx = writeFixture();
  const m = openModel(fx.model);
  const matmul = m.nodes.findIndex((n) => n.name === NODE);
  const bytes = rewriteModel(m, row.edit(matmul));
  m.close();
  fs.writeFileSync(fx.model, bytes);
  const spec = path.join(fx.dir, 'bad.scalpel');
  fs.writeFileSync(spec, `model tiny from "." { components "components" }
data other = inline "The quick brown fox jumps over the lazy dog ."
edit e on tiny {
  select "h.1.mlp.c_fc:1"
  scale 0.5
}
`);
  return { ...fx, spec };
}

/** stderr is exactly one `scalpel: …` line whose message (after any location) matches. */
function assertOneLine(r: { code: number | null; stderr: string }, message: RegExp, what: string): void {
  assert.equal(r.code, 2, `${what}: exit code (stderr: ${r.stderr})`);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `${what}: one line, got ${r.stderr}`);
  const text = lines[0].replace(/^scalpel: (\S+: )?/, '');
  assert.match(text, message, what);
}

for (const row of ROWS) {
  test(`bad model, ${row.name}: one line naming the tensor or node, from every command`, async () => {
    const fx = badFixture(row);
    const ev = scalpel(['eval', '--model', fx.dir, '--data', 'inline:The quick brown fox', '--json'], { source: true });
    assert.equal(ev.code, 0, `eval runs the model as it is: ${ev.stderr}`);
    assertOneLine(scalpel(['decompose', '--model', fx.dir, '--method', 'svd', '--modules', 'h.1.mlp.c_fc', '-o', path.join(fx.dir, 'svd')], { source: true }), row.message, 'decompose');
    assertOneLine(scalpel(['label', '--model', fx.dir, '--components', fx.catalog, '--data', 'en=inline:The quick brown fox jumps', '--data', 'de=inline:Alle Menschen sind frei und gleich'], { source: true }), row.message, 'label');
    assertOneLine(scalpel(['apply', fx.spec, '-o', path.join(fx.dir, 'out.onnx'), '--no-measure'], { source: true }), row.message, 'apply');
    assert.ok(!fs.existsSync(path.join(fx.dir, 'out.onnx')));
    await assert.rejects(launchRuntime({ model: fx.dir, catalog: fx.catalog, input: 'The quick brown fox', scales: { 'h.1.mlp.c_fc:1': 0 } }), (err: unknown) => {
      assert.ok(err instanceof ScalpelError, String(err));
      assert.match(err.message, row.message, 'debugger launch');
      return true;
    });
    fs.rmSync(fx.dir, { recursive: true });
  });
}

test('int4 weights (MatMulNBits blocks, or int4 behind DequantizeLinear) get one "not supported yet" naming the tensor', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scalpel-int4-'));
  const file = path.join(dir, 'q4.onnx');
  const N = 6;
  const K = 16;
  fs.writeFileSync(file, buildModel({
    nodes: [
      { name: '/h.0/mlp/c_fc/MatMulNBits', opType: 'MatMulNBits', domain: 'com.microsoft', inputs: ['x', 'h.0.mlp.c_fc.weight_Q4', 'h.0.mlp.c_fc.weight_scales'], outputs: ['h'], attributes: [{ name: 'K', i: K }, { name: 'N', i: N }, { name: 'bits', i: 4 }, { name: 'block_size', i: 16 }] },
      { name: '/lm_head/DequantizeLinear', opType: 'DequantizeLinear', inputs: ['lm_head.weight_int4', 'lm_head.scale'], outputs: ['w'] },
      { name: '/lm_head/MatMul', opType: 'MatMul', inputs: ['h', 'w'], outputs: ['y'] },
    ],
    initializers: [
      { name: 'h.0.mlp.c_fc.weight_Q4', dims: [N, 1, 8], dataType: DataType.UINT8, data: { raw: new Uint8Array(N * 8) } },
      floatTensor('h.0.mlp.c_fc.weight_scales', [N], new Float32Array(N).fill(0.1)),
      { name: 'lm_head.weight_int4', dims: [N, 4], dataType: 22, data: { raw: new Uint8Array((N * 4) / 2) } },
      floatTensor('lm_head.scale', [], Float32Array.of(0.5)),
    ],
    inputs: [{ name: 'x', elemType: DataType.FLOAT, shape: [1, K] }],
    outputs: [{ name: 'y', elemType: DataType.FLOAT, shape: [1, 4] }],
  }));
  const m = openModel(file);
  try {
    assert.deepEqual(moduleWeights(m).map((w) => w.module), ['lm_head']);
    const message = /^MatMulNBits \/h\.0\/mlp\/c_fc\/MatMulNBits reads h\.0\.mlp\.c_fc\.weight_Q4 as int4 blocks \(quantized weights\): not supported yet; use a float32, float16 or bfloat16 export$/;
    assert.match(missingModule(m, 'h.0.mlp.c_fc'), message);
    assert.throws(() => new WeightEditor(m).module('h.0.mlp.c_fc'), (e: unknown) => e instanceof ScalpelError && message.test(e.message));
    assert.throws(() => readFloatTensor(m, 'lm_head.weight_int4'), (e: unknown) => e instanceof ScalpelError && e.message === 'initializer lm_head.weight_int4 is int4 (quantized weights): not supported yet; use a float32, float16 or bfloat16 export');
  } finally {
    m.close();
  }
});
