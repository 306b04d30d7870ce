/**
 * A small two-block byte-level LM as ONNX (residual MLP blocks, GELU-free so any ORT runs it), with
 * one module stored (in, out) and one (out, in) behind a Transpose, plus a random component
 * catalog for it. Everything lands in a fresh temporary folder.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildModel, floatTensor, NodeSpec, TensorSpec } from '../../engine/onnx/build';
import { writeCatalog } from '../../engine/catalog/write';
import { CATALOG_FORMAT } from '../../engine/catalog/types';
import { randomValues } from '../helpers/random';
import { lmSpec, writeModelFolder } from '../helpers/tiny-lm';

export const VOCAB = 256;
export const D = 8;
export const H = 16;
export const C = 6;
/** Hidden units of each component's causal-importance MLP. */
export const CI_HIDDEN = 3;

export interface Fixture {
  dir: string;
  model: string;
  catalog: string;
  /** Catalog factors by module: V (dIn, C), U (C, dOut), and CI MLPs (C, CI_HIDDEN) with output bias (C). */
  factors: Record<string, { V: Float32Array; U: Float32Array; dIn: number; dOut: number; ci: { wIn: Float32Array; bIn: Float32Array; wOut: Float32Array; bOut: Float32Array } }>;
}

export function writeFixture(): Fixture {
  const scaled = (n: number, seed: number, s: number) => randomValues(n, seed).map((v) => v * s);
  const wte = scaled(VOCAB * D, 11, 1);
  const fc0 = scaled(D * H, 12, 0.8); // h.0.mlp.c_fc, in_out
  const proj0 = scaled(H * D, 13, 0.5); // h.0.mlp.c_proj, stored (out, in) = (D, H)
  const fc1 = scaled(D * H, 14, 0.8);
  const proj1 = scaled(H * D, 15, 0.5);
  const head = scaled(D * VOCAB, 16, 0.4);
  const inits: TensorSpec[] = [
    floatTensor('wte.weight', [VOCAB, D], wte),
    floatTensor('h.0.mlp.c_fc.weight', [D, H], fc0),
    floatTensor('h.0.mlp.c_proj.weight', [D, H], proj0),
    floatTensor('h.1.mlp.c_fc.weight', [D, H], fc1),
    floatTensor('h.1.mlp.c_proj.weight', [H, D], proj1),
    floatTensor('lm_head.weight', [D, VOCAB], head),
  ];
  const nodes: NodeSpec[] = [
    { name: '/h.0/mlp/c_fc/MatMul', opType: 'MatMul', inputs: ['x0', 'h.0.mlp.c_fc.weight'], outputs: ['a0'] },
    { name: '/h.0/mlp/act/Tanh', opType: 'Tanh', inputs: ['a0'], outputs: ['g0'] },
    { name: '/h.0/mlp/c_proj/Transpose', opType: 'Transpose', inputs: ['h.0.mlp.c_proj.weight'], outputs: ['p0t'], attributes: [{ name: 'perm', ints: [1, 0] }] },
    { name: '/h.0/mlp/c_proj/MatMul', opType: 'MatMul', inputs: ['g0', 'p0t'], outputs: ['m0'] },
    { name: '/h.0/Add', opType: 'Add', inputs: ['x0', 'm0'], outputs: ['x1'] },
    { name: '/h.1/mlp/c_fc/MatMul', opType: 'MatMul', inputs: ['x1', 'h.1.mlp.c_fc.weight'], outputs: ['a1'] },
    { name: '/h.1/mlp/act/Tanh', opType: 'Tanh', inputs: ['a1'], outputs: ['g1'] },
    { name: '/h.1/mlp/c_proj/MatMul', opType: 'MatMul', inputs: ['g1', 'h.1.mlp.c_proj.weight'], outputs: ['m1'] },
    { name: '/h.1/Add', opType: 'Add', inputs: ['x1', 'm1'], outputs: ['x2'] },
    { name: '/lm_head/MatMul', opType: 'MatMul', inputs: ['x2', 'lm_head.weight'], outputs: ['logits'] },
  ];
  const dir = writeModelFolder('scalpel-edit-', buildModel(lmSpec(VOCAB, inits, nodes)), { 'config.json': { n_positions: 16 }, 'tokenizer.json': wordTokenizer() });
  const model = path.join(dir, 'model.onnx');

  const modules = [
    { path: 'h.0.mlp.c_proj', initializer: 'h.0.mlp.c_proj.weight', layout: 'out_in' as const, dIn: H, dOut: D },
    { path: 'h.1.mlp.c_fc', initializer: 'h.1.mlp.c_fc.weight', layout: 'in_out' as const, dIn: D, dOut: H },
  ];
  const factors: Fixture['factors'] = {};
  modules.forEach((m, i) => {
    const ci = { wIn: scaled(C * CI_HIDDEN, 60 + i, 3), bIn: randomValues(C * CI_HIDDEN, 70 + i), wOut: randomValues(C * CI_HIDDEN, 80 + i), bOut: randomValues(C, 90 + i).map((v) => v * 0.5 + 0.3) };
    factors[m.path] = { V: randomValues(m.dIn * C, 40 + i), U: randomValues(C * m.dOut, 50 + i), dIn: m.dIn, dOut: m.dOut, ci };
  });
  const catalog = path.join(dir, 'components');
  writeCatalog(
    catalog,
    {
      format: CATALOG_FORMAT,
      model: { file: '../model.onnx', sha256: '' },
      method: { name: 'test' },
      tensors: 'components.safetensors',
      modules: modules.map((m) => ({ ...m, components: C })),
      components: modules.flatMap((m) => Array.from({ length: C }, (_, c) => ({ key: `${m.path}:${c}`, module: m.path, index: c, label: { text: `component ${c} of ${m.path}`, source: 'human' as const } }))),
    },
    modules.map((m) => {
      const { V, U, ci } = factors[m.path];
      const shape = [C, CI_HIDDEN];
      const extra = [
        { name: `${m.path}.ci.w_in`, shape, data: ci.wIn },
        { name: `${m.path}.ci.b_in`, shape, data: ci.bIn },
        { name: `${m.path}.ci.w_out`, shape, data: ci.wOut },
        { name: `${m.path}.ci.b_out`, shape: [C], data: ci.bOut },
      ];
      return { module: m.path, V, U, extra };
    }),
  );
  return { dir, model, catalog, factors };
}

/**
 * Writes `name` into the fixture's folder: a spec with one edit (h.1.mlp.c_fc:1 at half scale) that keeps a loose
 * guard on an English sentence; `data` declarations go before the guard. Returns the spec's path.
 */
export function writeSpec(fx: Fixture, name: string, data = ''): string {
  const spec = path.join(fx.dir, name);
  fs.writeFileSync(spec, `model tiny from "." { components "components" }
${data}data other = inline "The quick brown fox jumps over the lazy dog ."
guard g = [other] within 100 nats
edit e on tiny {
  select "h.1.mlp.c_fc:1"
  scale 0.5
  keep g
}
`);
  return spec;
}

export const WORDS = 'Alle Menschen sind frei und gleich an Wuerde Rechten geboren . Sie mit Vernunft Gewissen begabt The quick brown fox jumps over the lazy dog'.split(' ');

/** A whitespace word-level tokenizer.json with exactly VOCAB entries (the words above, then fillers). */
function wordTokenizer() {
  const vocab: Record<string, number> = { '[UNK]': 0 };
  for (const w of WORDS) vocab[w] ??= Object.keys(vocab).length;
  for (let i = Object.keys(vocab).length; i < VOCAB; i++) vocab[`w${i}`] = i;
  return { version: '1.0', truncation: null, padding: null, added_tokens: [], normalizer: null, pre_tokenizer: { type: 'Whitespace' }, post_processor: null, decoder: null, model: { type: 'WordLevel', vocab, unk_token: '[UNK]' } };
}

/** (d_in, d_out) matrix of component c, from the catalog factors, in float64. */
export function rankOne(f: Fixture['factors'][string], c: number): Float64Array {
  const out = new Float64Array(f.dIn * f.dOut);
  for (let i = 0; i < f.dIn; i++) for (let j = 0; j < f.dOut; j++) out[i * f.dOut + j] = f.V[i * C + c] * f.U[c * f.dOut + j];
  return out;
}

