/**
 * A GPT-2-layout model of any size with a real forward pass, generated for benchmarks: the graph
 * torch.onnx.export writes for Hugging Face's GPT2LMHeadModel at opset 17 (node scopes
 * `/transformer/h.N/attn/c_attn/Gemm`, Conv1D as Gemm on flattened tokens, LayerNormalization, tied
 * `lm_head` through a Transpose of `transformer.wte.weight`), seeded random weights (std 0.02), and a
 * byte-level tokenizer.json padded to the vocabulary. Weights go inline, or to `model.onnx_data`
 * written tensor by tensor (for models over protobuf's 2 GB), so generating needs little memory.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { NodeSpec, TensorSpec, encodeNode, encodeTensor, encodeValueInfo } from '../engine/onnx/build';
import { DataType } from '../engine/onnx/model';
import { Writer } from '../engine/onnx/wire';

export interface Gpt2Shape {
  layers: number;
  dModel: number;
  heads: number;
  vocab: number;
  context: number;
}

export const GPT2_SMALL: Gpt2Shape = { layers: 12, dModel: 768, heads: 12, vocab: 50257, context: 1024 };

export function parameterCount(s: Gpt2Shape): number {
  const d = s.dModel;
  return s.vocab * d + s.context * d + s.layers * (12 * d * d + 13 * d) + 2 * d;
}

/** Writes model.onnx (+ model.onnx_data when `external`), tokenizer.json and config.json into `dir`. */
export function writeGpt2(dir: string, s: Gpt2Shape, opts: { external: boolean; seed?: number }): { file: string; bytes: number } {
  fs.mkdirSync(dir, { recursive: true });
  const d = s.dModel;
  const hd = d / s.heads;
  let state = (opts.seed ?? 1) >>> 0 || 1;
  const random = (n: number, std: number) => {
    const a = new Float32Array(n);
    // xorshift32, uniform with the given standard deviation: cheap, and a real spread of values.
    const k = std * Math.sqrt(12) / 2 ** 32;
    for (let i = 0; i < n; i++) {
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      a[i] = ((state >>> 0) - 2 ** 31) * k;
    }
    return a;
  };
  const ones = (n: number) => new Float32Array(n).fill(1);
  const dataFile = path.join(dir, 'model.onnx_data');
  const fd = opts.external ? fs.openSync(dataFile, 'w') : -1;
  let offset = 0;
  const initializers: TensorSpec[] = [];
  const weight = (name: string, dims: number[], values: Float32Array) => {
    const raw = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    if (fd < 0) {
      initializers.push({ name, dims, dataType: DataType.FLOAT, data: { raw } });
      return;
    }
    fs.writeSync(fd, raw, 0, raw.length, offset);
    initializers.push({ name, dims, dataType: DataType.FLOAT, data: { external: { location: 'model.onnx_data', offset, length: raw.length } } });
    offset += raw.length;
  };
  const int64 = (name: string, values: number[]) =>
    initializers.push({ name, dims: [values.length], dataType: DataType.INT64, data: { raw: new Uint8Array(BigInt64Array.from(values.map(BigInt)).buffer) } });
  const scalar = (name: string, v: number) => initializers.push({ name, dims: [], dataType: DataType.FLOAT, data: { raw: new Uint8Array(Float32Array.of(v).buffer) } });

  const nodes: NodeSpec[] = [];
  const op = (name: string, opType: string, inputs: string[], attributes?: NodeSpec['attributes'], outputs = 1): string => {
    const outs = Array.from({ length: outputs }, (_, i) => `${name}_output_${i}`);
    nodes.push({ name, opType, inputs, outputs: outs, attributes });
    return outs[0];
  };

  weight('transformer.wte.weight', [s.vocab, d], random(s.vocab * d, 0.02));
  weight('transformer.wpe.weight', [s.context, d], random(s.context * d, 0.01));
  int64('const_0_2', [0]);
  int64('const_2', [2]);
  int64('const_d', [d]);
  int64('const_3d', [3 * d]);
  int64('const_4d', [4 * d]);
  int64('const_heads', [s.heads, hd]);
  int64('const_flat', [-1, d]);
  int64('const_flat4', [-1, 4 * d]);
  int64('const_split', [d, d, d]);
  int64('const_axes_23', [2, 3]);
  scalar('const_scale', 1 / Math.sqrt(hd));
  scalar('const_half', 0.5);
  scalar('const_one', 1);
  scalar('const_gelu_a', 0.044715);
  scalar('const_gelu_b', Math.sqrt(2 / Math.PI));
  scalar('const_three', 3);
  // Causal mask: 0 on and below the diagonal, −10⁴ above, sliced to the sequence.
  const mask = new Float32Array(s.context * s.context);
  for (let i = 0; i < s.context; i++) for (let j = i + 1; j < s.context; j++) mask[i * s.context + j] = -1e4;
  weight('transformer.h.attn.bias', [1, 1, s.context, s.context], mask);

  let x = op('/transformer/Add', 'Add', [op('/transformer/wte/Gather', 'Gather', ['transformer.wte.weight', 'input_ids']), op('/transformer/wpe/Gather', 'Gather', ['transformer.wpe.weight', 'position_ids'])]);
  const bt = op('/transformer/Slice', 'Slice', [op('/transformer/Shape', 'Shape', ['input_ids']), 'const_0_2', 'const_2']);
  const t = op('/transformer/Slice_1', 'Slice', [op('/transformer/Shape_1', 'Shape', ['input_ids']), 'const_1_2', 'const_2']);
  int64('const_1_2', [1]);
  const shape = (name: string, tail: string) => op(`/transformer/${name}`, 'Concat', [bt, tail], [{ name: 'axis', i: 0 }]);
  const shapeD = shape('Concat_d', 'const_d');
  const shape3D = shape('Concat_3d', 'const_3d');
  const shape4D = shape('Concat_4d', 'const_4d');
  const shapeHeads = shape('Concat_heads', 'const_heads');
  const tt = op('/transformer/Concat_tt', 'Concat', [t, t], [{ name: 'axis', i: 0 }]);
  const causal = op('/transformer/Slice_mask', 'Slice', ['transformer.h.attn.bias', 'const_axes_00', tt, 'const_axes_23']);
  int64('const_axes_00', [0, 0]);

  const conv1d = (scope: string, input: string, nx: number, nf: number, out: string) => {
    weight(`${scope.slice(1).replace(/\//g, '.')}.weight`, [nx, nf], random(nx * nf, 0.02));
    weight(`${scope.slice(1).replace(/\//g, '.')}.bias`, [nf], random(nf, 0.01));
    const flat = op(`${scope}/Reshape`, 'Reshape', [input, nx === 4 * d ? 'const_flat4' : 'const_flat']);
    const y = op(`${scope}/Gemm`, 'Gemm', [flat, `${scope.slice(1).replace(/\//g, '.')}.weight`, `${scope.slice(1).replace(/\//g, '.')}.bias`], [{ name: 'alpha', f: 1 }, { name: 'beta', f: 1 }]);
    return op(`${scope}/Reshape_1`, 'Reshape', [y, out]);
  };
  const layerNorm = (scope: string, input: string) => {
    const p = scope.slice(1).replace(/\//g, '.');
    weight(`${p}.weight`, [d], ones(d));
    weight(`${p}.bias`, [d], new Float32Array(d));
    return op(`${scope}/LayerNormalization`, 'LayerNormalization', [input, `${p}.weight`, `${p}.bias`], [{ name: 'axis', i: -1 }, { name: 'epsilon', f: 1e-5 }]);
  };

  for (let l = 0; l < s.layers; l++) {
    const h = `/transformer/h.${l}`;
    const ln1 = layerNorm(`${h}/ln_1`, x);
    const qkv = conv1d(`${h}/attn/c_attn`, ln1, d, 3 * d, shape3D);
    const split = op(`${h}/attn/Split`, 'Split', [qkv, 'const_split'], [{ name: 'axis', i: 2 }], 3);
    const [q, k, v] = [0, 1, 2].map((i) => split.replace(/_0$/, `_${i}`));
    const heads = (name: string, y: string, perm: number[]) => op(`${h}/attn/Transpose_${name}`, 'Transpose', [op(`${h}/attn/Reshape_${name}`, 'Reshape', [y, shapeHeads])], [{ name: 'perm', ints: perm }]);
    const qh = heads('q', q, [0, 2, 1, 3]);
    const kh = heads('k', k, [0, 2, 3, 1]);
    const vh = heads('v', v, [0, 2, 1, 3]);
    const scores = op(`${h}/attn/Add`, 'Add', [op(`${h}/attn/Mul`, 'Mul', [op(`${h}/attn/MatMul`, 'MatMul', [qh, kh]), 'const_scale']), causal]);
    const probs = op(`${h}/attn/Softmax`, 'Softmax', [scores], [{ name: 'axis', i: -1 }]);
    const merged = op(`${h}/attn/Reshape_merge`, 'Reshape', [op(`${h}/attn/Transpose_merge`, 'Transpose', [op(`${h}/attn/MatMul_1`, 'MatMul', [probs, vh])], [{ name: 'perm', ints: [0, 2, 1, 3] }]), shapeD]);
    x = op(`${h}/Add`, 'Add', [x, conv1d(`${h}/attn/c_proj`, merged, d, d, shapeD)]);
    const ln2 = layerNorm(`${h}/ln_2`, x);
    const a = conv1d(`${h}/mlp/c_fc`, ln2, d, 4 * d, shape4D);
    // GELU, tanh form: 0.5·a·(1 + tanh(√(2/π)·(a + 0.044715·a³))).
    const inner = op(`${h}/mlp/act/Mul_1`, 'Mul', ['const_gelu_b', op(`${h}/mlp/act/Add`, 'Add', [a, op(`${h}/mlp/act/Mul`, 'Mul', ['const_gelu_a', op(`${h}/mlp/act/Pow`, 'Pow', [a, 'const_three'])])])]);
    const g = op(`${h}/mlp/act/Mul_3`, 'Mul', [op(`${h}/mlp/act/Mul_2`, 'Mul', ['const_half', a]), op(`${h}/mlp/act/Add_1`, 'Add', ['const_one', op(`${h}/mlp/act/Tanh`, 'Tanh', [inner])])]);
    x = op(`${h}/Add_1`, 'Add', [x, conv1d(`${h}/mlp/c_proj`, g, 4 * d, d, shapeD)]);
  }
  const final = layerNorm('/transformer/ln_f', x);
  const unembed = op('/lm_head/Transpose', 'Transpose', ['transformer.wte.weight'], [{ name: 'perm', ints: [1, 0] }]);
  nodes.push({ name: '/lm_head/MatMul', opType: 'MatMul', inputs: [final, unembed], outputs: ['logits'] });
  if (fd >= 0) fs.closeSync(fd);

  const graph = new Writer();
  for (const n of nodes) graph.messageField(1, encodeNode(n));
  graph.stringField(2, 'main_graph');
  for (const i of initializers) graph.messageField(5, encodeTensor(i));
  graph.messageField(11, encodeValueInfo({ name: 'input_ids', elemType: DataType.INT64, shape: ['batch', 'sequence'] }));
  graph.messageField(11, encodeValueInfo({ name: 'position_ids', elemType: DataType.INT64, shape: ['batch', 'sequence'] }));
  graph.messageField(12, encodeValueInfo({ name: 'logits', elemType: DataType.FLOAT, shape: ['batch', 'sequence', s.vocab] }));
  const model = new Writer().varintField(1, 8).stringField(2, 'pytorch').messageField(7, graph).messageField(8, new Writer().stringField(1, '').varintField(2, 17)).finish();
  const file = path.join(dir, 'model.onnx');
  fs.writeFileSync(file, model);
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ n_positions: s.context, n_embd: d, n_layer: s.layers, n_head: s.heads, vocab_size: s.vocab }) + '\n');
  writeTokenizer(path.join(dir, 'tokenizer.json'), s.vocab);
  return { file, bytes: model.length + offset };
}

/** Byte-level BPE without merges: GPT-2's 256 byte symbols, padded with unreachable tokens to the vocabulary. */
function writeTokenizer(file: string, vocabSize: number): void {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  }
  const vocab: Record<string, number> = {};
  bs.forEach((b, i) => (vocab[String.fromCodePoint(cs[i])] = b));
  for (let i = 256; i < vocabSize; i++) vocab[`<|unused_${i}|>`] = i;
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  fs.writeFileSync(file, JSON.stringify({
    version: '1.0', truncation: null, padding: null, added_tokens: [], normalizer: null, pre_tokenizer: byteLevel, post_processor: null, decoder: byteLevel,
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, vocab, merges: [] },
  }));
}
