/**
 * Which modules read and write a capture point (`tensorAccess`), on the exporter-shaped fixtures of
 * test/fixtures/real (HF GPT-2 with Gemm on flattened tokens, Llama with RMSNorm written out, rotary, GQA; folded
 * and unfolded, float16 and bfloat16 weights, a decoder with past inputs). In both families an attention output
 * projection takes d_model inputs like the residual stream's readers (and Llama's q_proj gives d_model outputs like
 * its writers), so widths alone cannot tell them apart: the graph does.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { WeightEditor, addRankOne } from '../../engine/edit/weights';
import { ActivationCapture } from '../../engine/geometry/capture';
import { resolvePoint } from '../../engine/geometry/points';
import { openLanguageModel } from '../../engine/lm';
import { writeEditedModel } from '../../engine/onnx/write';
import { analyzeModel, effectiveReadVector, tensorAccess } from '../../engine/trace/graph';
import { normals, rng } from '../helpers/random';

const FIXTURES = path.resolve('test/fixtures/real');
const LAYOUTS = fs.readdirSync(FIXTURES).filter((d) => fs.existsSync(path.join(FIXTURES, d, 'model.onnx'))).sort();

/** Per sublayer, the projections reading the residual stream and the one writing it, by the names each exporter family uses. */
const FAMILIES: Record<string, Record<string, { reads: string[]; writes: string }>> = {
  gpt2: { attn: { reads: ['c_attn'], writes: 'c_proj' }, mlp: { reads: ['c_fc'], writes: 'c_proj' } },
  llama: { self_attn: { reads: ['q_proj', 'k_proj', 'v_proj'], writes: 'o_proj' }, mlp: { reads: ['gate_proj', 'up_proj'], writes: 'down_proj' } },
};

for (const layout of LAYOUTS) {
  test(`${layout}: a residual point is read by every later sublayer's input projections and the unembedding, written by the output projections before it`, () => {
    const lm = openLanguageModel(path.join(FIXTURES, layout));
    const s = analyzeModel(lm.onnx, lm.logitsName);
    const family = FAMILIES[layout.split('-')[0]];
    const width = s.unembed!.dIn;
    // The residual stream after each sublayer, in forward order, with the projections of that sublayer.
    const sublayers = s.blocks.flatMap((b) => b.sublayers.map((sub) => ({ block: b.name, name: sub.name, ...family[sub.name] })));
    assert.equal(sublayers.length, 2 * s.blocks.length, 'attention and MLP in every block');
    const points = [
      { name: 'embed', after: -1 },
      ...sublayers.map((sub, i) => ({ name: `${sub.block}.${sub.name}.resid`, after: i })),
      ...s.blocks.map((b, i) => ({ name: `${b.name}.resid`, after: 2 * i + 1 })),
    ];
    for (const { name, after } of points) {
      const access = tensorAccess(lm.onnx, s, resolvePoint(s, name).tensor, width);
      const readers = access.readers.map((m) => m.module);
      const writers = access.writers.map((m) => m.module);
      const expectedReaders = [...sublayers.slice(after + 1).flatMap((sub) => sub.reads.map((r) => `${sub.block}.${sub.name}.${r}`)), s.unembed!.module];
      const expectedWriters = sublayers.slice(0, after + 1).map((sub) => `${sub.block}.${sub.name}.${sub.writes}`);
      assert.deepEqual(readers, expectedReaders, `${name}'s readers`);
      assert.deepEqual(writers, expectedWriters, `${name}'s writers`);
      assert.ok(!readers.some((m) => /\.(attn\.c_proj|o_proj)$/.test(m)), `${name}: an attention output projection never reads the residual stream`);
    }
  });
}

test('a module\'s output point is written by that module and read by what its elementwise activation feeds', () => {
  const lm = openLanguageModel(path.join(FIXTURES, 'gpt2'));
  const s = analyzeModel(lm.onnx, lm.logitsName);
  const fc = s.modules.find((m) => m.module === 'transformer.h.0.mlp.c_fc')!;
  const access = tensorAccess(lm.onnx, s, resolvePoint(s, fc.module).tensor, fc.dOut);
  assert.deepEqual(access.writers.map((m) => m.module), ['transformer.h.0.mlp.c_fc']);
  assert.deepEqual(access.readers.map((m) => m.module), ['transformer.h.0.mlp.c_proj'], 'through the bias and GELU, nothing past the down projection');
});

/**
 * The folded read vector against onnxruntime: the point is moved by ε·d (a rank-one change of the weight that
 * writes it, so the move is ε·(h·a)·d at each token) and the reader's product is differenced. Along a d orthogonal
 * to the token's (centred, for LayerNorm) vector, the norm's derivative is γ ⊙ (centred) d / σ exactly, so the
 * differences over the reader's outputs c are proportional to effectiveReadVector(W[:, c]) · d. The norms' γ are
 * made random first (the GPT-2 fixture's are ones), so ignoring the gain or the centring shows.
 */
const FOLDED: { layout: string; centred: boolean }[] = [
  { layout: 'gpt2', centred: true },
  { layout: 'gpt2-unfolded-opset14', centred: true },
  { layout: 'llama', centred: false },
  { layout: 'llama-unfolded-opset14', centred: false },
];

for (const { layout, centred } of FOLDED) {
  test(`${layout}: the effective read vector is the reader's derivative along the point (finite differences through onnxruntime), not V[:, c] itself`, async () => {
    const dir = withRandomNormGains(layout);
    const lm = openLanguageModel(dir);
    const s = analyzeModel(lm.onnx, lm.logitsName);
    const width = s.unembed!.dIn;
    const editor = new WeightEditor(lm.onnx);
    const random = normals(7);
    const sublayers = s.blocks.flatMap((b) => b.sublayers.map((sub) => ({ name: `${b.name}.${sub.name}`, sub })));
    const text = { tag: 't', dataset: { name: 't', source: 'inline:t', documents: [{ text: 'the cat sat on the mat and looked at the dog', tags: {} }] } };
    const row = 5;
    for (const [i, { name, sub }] of sublayers.entries()) {
      // The point after sublayer i; its reader with nothing computed in between: the next sublayer's first input projection, or the unembedding.
      const point = resolvePoint(s, `${name}.resid`);
      const access = tensorAccess(lm.onnx, s, point.tensor, width);
      const writer = sub.modules[sub.modules.length - 1];
      const next = sublayers[i + 1]?.sub.modules[0] ?? s.unembed!;
      assert.ok(access.readers.includes(next) && access.readSteps.has(next.module), `${next.module} reads ${name}.resid through its norm`);
      const capture = async (patches?: Map<string, Float32Array>) => {
        const c = await ActivationCapture.create(lm, [point.id, next.module], { patches });
        try {
          const got = await c.datasets([text], { maxPerTag: 64, heldoutFraction: 0 });
          return [...got.values()].map((a) => a.rows.slice(row * a.width, (row + 1) * a.width));
        } finally {
          await c.release();
        }
      };
      const [x] = await capture();
      // d: random with a mean (so centring matters), orthogonal to the token's vector as its norm sees it.
      const d = Float32Array.from({ length: width }, () => random() + 0.7);
      const seen = centred ? centre(x) : x;
      const along = dot(d, seen) / dot(seen, seen);
      for (let k = 0; k < width; k++) d[k] -= along * seen[k];
      const a = Float32Array.from({ length: writer.dIn }, () => random());
      const moved = async (eps: number) => {
        const w = editor.baseWeight(writer.initializer).slice();
        addRankOne(w, writer, a, d, eps);
        return (await capture(new Map([[writer.initializer, w]])))[1];
      };
      const eps = 1e-3;
      const [plus, minus] = [await moved(eps), await moved(-eps)];
      const measured = Float64Array.from(plus, (p, c) => p - minus[c]);
      const weight = editor.baseWeight(next.initializer);
      const column = (c: number) => Float32Array.from({ length: next.dIn }, (_, r) => (next.layout === 'in_out' ? weight[r * next.dOut + c] : weight[c * next.dIn + r]));
      const predicted = (fold: (v: Float32Array) => Float32Array) => Float64Array.from({ length: next.dOut }, (_, c) => dot(fold(column(c)), d));
      // The move at the token is (h·a)·ε·d, of either sign.
      const folded = Math.abs(cosine(measured, predicted((v) => effectiveReadVector(v, access.readSteps.get(next.module)))));
      const raw = Math.abs(cosine(measured, predicted((v) => v)));
      const gainOnly = Math.abs(cosine(measured, predicted((v) => effectiveReadVector(v, access.readSteps.get(next.module)!.filter((st) => st.kind === 'gain')))));
      assert.ok(folded > 0.9999, `${name}.resid → ${next.module}: folded cosine ${folded}`);
      assert.ok(raw < 0.99, `${name}.resid → ${next.module}: the raw V[:, c] would not do (cosine ${raw})`);
      if (centred) assert.ok(gainOnly < 0.99, `${name}.resid → ${next.module}: nor γ without centring (cosine ${gainOnly})`);
    }
  });
}

/** A copy of a fixture whose norms' γ are random in [0.3, 1.7] (written by the engine's writer, bytes otherwise untouched). */
function withRandomNormGains(layout: string): string {
  const src = path.join(FIXTURES, layout);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scalpel-gains-'));
  for (const f of ['config.json', 'tokenizer.json']) fs.copyFileSync(path.join(src, f), path.join(dir, f));
  const lm = openLanguageModel(src);
  const gains = new Map<string, Float32Array>();
  const uniform = rng(3);
  for (const [name, t] of lm.onnx.initializers) {
    if (t.dims.length === 1 && /(ln_\w+|norm)\.weight$/.test(name)) gains.set(name, Float32Array.from({ length: t.dims[0] }, () => 0.3 + 1.4 * uniform()));
  }
  // The GPT-2 export shares one all-ones γ among its norms (through Identity nodes), so they all get the same random one.
  assert.ok(gains.size >= 1, `${layout}: a norm's γ`);
  writeEditedModel(lm.file, path.join(dir, 'model.onnx'), gains);
  return dir;
}

function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  return dot(a, b) / Math.sqrt(dot(a, a) * dot(b, b));
}

function centre(x: Float32Array): Float32Array {
  const mean = x.reduce((s, v) => s + v, 0) / x.length;
  return x.map((v) => v - mean);
}
