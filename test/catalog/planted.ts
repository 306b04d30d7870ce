/**
 * A small byte-level ONNX LM with one planted tag-specific MLP neuron, and tagged texts for it.
 *
 *   x0 = wte[ids];  h = Relu(x0 · c_fc);  x1 = x0 + h · c_proj;  logits = LayerNorm(x1) · lm_head
 *
 * Only the letter 'z' has a nonzero embedding in dimension 0, only c_fc's neuron PLANTED reads
 * dimension 0, and the "de" text is the only one with z's: so h.0.mlp.c_fc:PLANTED (and
 * c_proj:PLANTED, which reads that neuron) are German-specific. c_proj writes that neuron into
 * dimension 1, which only the token PROMOTED reads in the unembedding.
 */
import { buildModel, floatTensor } from '../../engine/onnx/build';
import { randomValues } from '../helpers/random';
import { lmSpec, writeModelFolder } from '../helpers/tiny-lm';

export const D = 16;
export const H = 32;
export const VOCAB = 256;
export const PLANTED = 5;
export const PROMOTED = 'Q';

export function plantedModelBytes(seed = 7): Buffer {
  const wte = randomValues(VOCAB * D, seed).map((v) => v * 0.5);
  for (let t = 0; t < VOCAB; t++) wte[t * D] = 0;
  wte['z'.charCodeAt(0) * D] = 2;
  const fc = randomValues(D * H, seed + 1).map((v) => v * 0.5);
  for (let j = 0; j < H; j++) fc[j] = 0; // row 0: nobody reads dimension 0 …
  for (let i = 0; i < D; i++) fc[i * H + PLANTED] = i === 0 ? 1.5 : 0; // … but the planted neuron, which reads only it
  const proj = randomValues(H * D, seed + 2).map((v) => v * 0.2);
  for (let i = 0; i < D; i++) proj[PLANTED * D + i] = i === 1 ? 3 : 0;
  const head = randomValues(D * VOCAB, seed + 3).map((v) => v * 0.3);
  for (let t = 0; t < VOCAB; t++) head[VOCAB + t] = 0;
  head[VOCAB + PROMOTED.charCodeAt(0)] = 5;
  const gamma = new Float32Array(D).fill(1);
  const beta = new Float32Array(D);
  const initializers = [
    floatTensor('wte.weight', [VOCAB, D], wte),
    floatTensor('h.0.mlp.c_fc.weight', [D, H], fc),
    floatTensor('h.0.mlp.c_proj.weight', [H, D], proj),
    floatTensor('ln_f.weight', [D], gamma),
    floatTensor('ln_f.bias', [D], beta),
    floatTensor('lm_head.weight', [D, VOCAB], head),
  ];
  return buildModel(lmSpec(VOCAB, initializers, [
    { name: '/h.0/mlp/c_fc/MatMul', opType: 'MatMul', inputs: ['x0', 'h.0.mlp.c_fc.weight'], outputs: ['pre'] },
    { name: '/h.0/mlp/act/Relu', opType: 'Relu', inputs: ['pre'], outputs: ['hidden'] },
    { name: '/h.0/mlp/c_proj/MatMul', opType: 'MatMul', inputs: ['hidden', 'h.0.mlp.c_proj.weight'], outputs: ['mlp_out'] },
    { name: '/h.0/Add', opType: 'Add', inputs: ['x0', 'mlp_out'], outputs: ['x1'] },
    { name: '/ln_f/LayerNormalization', opType: 'LayerNormalization', inputs: ['x1', 'ln_f.weight', 'ln_f.bias'], outputs: ['xf'], attributes: [{ name: 'axis', i: -1 }, { name: 'epsilon', f: 1e-5 }] },
    { name: '/lm_head/MatMul', opType: 'MatMul', inputs: ['xf', 'lm_head.weight'], outputs: ['logits'] },
  ]));
}

/** Writes the model plus config.json (context 32) into a fresh folder; returns the folder. */
export function writePlantedModel(): string {
  return writeModelFolder('scalpel-planted-', plantedModelBytes(), { 'config.json': { n_positions: 32 } });
}

/**
 * Pseudo-words from `letters`, documents separated by blank lines. Every z is followed by PROMOTED,
 * the token the planted neuron predicts, so that the neuron is needed where it fires: ablating it
 * hurts the "de" text and no other.
 */
export function tagText(letters: string, seed: number, chars = 1500): string {
  const r = randomValues(chars, seed);
  let out = '';
  for (let i = 0; i < chars; i++) {
    const v = (r[i] + 1) / 2;
    const letter = letters[Math.floor(v * 997) % letters.length];
    out += v < 0.15 ? ' ' : letter === 'z' ? `z${PROMOTED}` : letter;
    if (i % 300 === 299) out += '\n\n';
  }
  return out;
}

/** "de" has z's, the others none. */
export const TAG_LETTERS: Record<string, string> = { de: 'abcdeghinrstuzz', fr: 'abcdeilmnoprstu', en: 'abdefhilnorstwy' };
