/**
 * Tiny synthetic causal LMs as ONNX, in the three layouts exporters produce, with weights the
 * test knows, so outputs can be checked against arithmetic done here.
 *
 *   logits = onehot(ids) · wte · W · U        (W is module h.0.mlp.c_fc, U is lm_head)
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DataType } from '../../engine/onnx/model';
import { ModelSpec, NodeSpec, TensorSpec, buildModel, floatTensor } from '../../engine/onnx/build';
import { randomValues } from './random';

export const V = 12;
export const D = 4;
export const H = 6;

export interface TinyWeights {
  wte: Float32Array; // (V, D)
  w: Float32Array; // (D, H), in_out
  u: Float32Array; // (H, V), in_out
}

export function tinyWeights(seed = 1): TinyWeights {
  return { wte: randomValues(V * D, seed), w: randomValues(D * H, seed + 1), u: randomValues(H * V, seed + 2) };
}

export type Layout =
  /** GPT-2 style: MatMul(x, h.0.mlp.c_fc.weight) with the weight stored (in, out). */
  | 'named'
  /** nn.Linear: named (out, in) weight behind a Transpose node. */
  | 'transposed'
  /** nn.Linear with constant folding: anonymous pre-transposed initializer, module only in the node scope. */
  | 'mangled'
  /** Gemm with transB = 1 on a 2-D input. */
  | 'gemm';

/** The (cols, rows) transpose of a row-major (rows, cols) matrix. */
export function transpose(m: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(m.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = m[r * cols + c];
  return out;
}

/** The frame of every test LM: input_ids → Gather(wte.weight) → x0 → `nodes` → logits over `vocab` tokens. */
export function lmSpec(vocab: number, initializers: TensorSpec[], nodes: NodeSpec[]): ModelSpec {
  return {
    nodes: [{ name: '/wte/Gather', opType: 'Gather', inputs: ['wte.weight', 'input_ids'], outputs: ['x0'] }, ...nodes],
    initializers,
    inputs: [{ name: 'input_ids', elemType: DataType.INT64, shape: ['batch', 'sequence'] }],
    outputs: [{ name: 'logits', elemType: DataType.FLOAT, shape: ['batch', 'sequence', vocab] }],
  };
}

/** A fresh temporary folder holding model.onnx and `files` (JSON, e.g. config.json); returns the folder. */
export function writeModelFolder(prefix: string, model: Buffer, files: Record<string, unknown> = {}): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  fs.writeFileSync(path.join(dir, 'model.onnx'), model);
  for (const [name, value] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), JSON.stringify(value));
  return dir;
}

export function tinyModelSpec(weights: TinyWeights, layout: Layout = 'named', external?: string): ModelSpec {
  const nodes: NodeSpec[] = [];
  const inits: TensorSpec[] = [floatTensor('wte.weight', [V, D], weights.wte)];
  if (layout === 'named') {
    inits.push(floatTensor('h.0.mlp.c_fc.weight', [D, H], weights.w));
    nodes.push({ name: '/h.0/mlp/c_fc/MatMul', opType: 'MatMul', inputs: ['x0', 'h.0.mlp.c_fc.weight'], outputs: ['x1'] });
  } else if (layout === 'transposed') {
    inits.push(floatTensor('h.0.mlp.c_fc.weight', [H, D], transpose(weights.w, D, H)));
    nodes.push({ name: '/h.0/mlp/c_fc/Transpose', opType: 'Transpose', inputs: ['h.0.mlp.c_fc.weight'], outputs: ['wt'], attributes: [{ name: 'perm', ints: [1, 0] }] });
    nodes.push({ name: '/h.0/mlp/c_fc/MatMul', opType: 'MatMul', inputs: ['x0', 'wt'], outputs: ['x1'] });
  } else if (layout === 'mangled') {
    inits.push(floatTensor('onnx::MatMul_17', [D, H], weights.w));
    nodes.push({ name: '/h.0/mlp/c_fc/MatMul', opType: 'MatMul', inputs: ['x0', 'onnx::MatMul_17'], outputs: ['x1'] });
  } else {
    inits.push(floatTensor('h.0.mlp.c_fc.weight', [H, D], transpose(weights.w, D, H)));
    inits.push({ name: 'shape2d', dims: [2], dataType: DataType.INT64, data: { raw: new Uint8Array(new BigInt64Array([-1n, BigInt(D)]).buffer) } });
    nodes.push({ name: '/h.0/mlp/c_fc/Reshape', opType: 'Reshape', inputs: ['x0', 'shape2d'], outputs: ['x0_2d'] });
    nodes.push({ name: '/h.0/mlp/c_fc/Gemm', opType: 'Gemm', inputs: ['x0_2d', 'h.0.mlp.c_fc.weight'], outputs: ['x1_2d'], attributes: [{ name: 'transB', i: 1 }] });
    inits.push({ name: 'shape3d', dims: [3], dataType: DataType.INT64, data: { raw: new Uint8Array(new BigInt64Array([1n, -1n, BigInt(H)]).buffer) } });
    nodes.push({ name: '/h.0/mlp/c_fc/Reshape_1', opType: 'Reshape', inputs: ['x1_2d', 'shape3d'], outputs: ['x1'] });
  }
  inits.push(floatTensor('lm_head.weight', [H, V], weights.u));
  nodes.push({ name: '/lm_head/MatMul', opType: 'MatMul', inputs: ['x1', 'lm_head.weight'], outputs: ['logits'] });
  const spec = lmSpec(V, inits, nodes);
  if (external) moveToExternal(spec, external);
  return spec;
}

/** Moves every float initializer's bytes into one side file (as exporters do for models over 2 GB). */
function moveToExternal(spec: ModelSpec, dataFile: string): void {
  const chunks: Buffer[] = [];
  let offset = 0;
  spec.initializers = spec.initializers.map((t) => {
    if (t.dataType !== DataType.FLOAT || !('raw' in t.data)) return t;
    const bytes = Buffer.from(t.data.raw);
    const pad = (64 - (offset % 64)) % 64; // aligned, as onnx's save_as_external_data does
    chunks.push(Buffer.alloc(pad), bytes);
    offset += pad;
    const spec2: TensorSpec = { ...t, data: { external: { location: path.basename(dataFile), offset, length: bytes.length } } };
    offset += bytes.length;
    return spec2;
  });
  fs.writeFileSync(dataFile, Buffer.concat(chunks));
}

/** Writes a tiny model (and its side file) into a fresh temporary folder; returns the model path. */
export function writeTinyModel(weights: TinyWeights, layout: Layout = 'named', opts: { external?: boolean } = {}): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scalpel-test-'));
  const file = path.join(dir, 'model.onnx');
  fs.writeFileSync(file, buildModel(tinyModelSpec(weights, layout, opts.external ? path.join(dir, 'model.onnx.data') : undefined)));
  return file;
}

/** logits[t] = wte[ids[t]] · W · U, computed here in float64. */
export function referenceLogits(weights: TinyWeights, ids: number[]): number[][] {
  return ids.map((id) => {
    const x = Array.from(weights.wte.subarray(id * D, id * D + D));
    const h = Array.from({ length: H }, (_, j) => x.reduce((a, xi, i) => a + xi * weights.w[i * H + j], 0));
    return Array.from({ length: V }, (_, v) => h.reduce((a, hj, j) => a + hj * weights.u[j * V + v], 0));
  });
}
