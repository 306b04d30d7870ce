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
import * as path from 'node:path';
import { resolvePoint } from '../../engine/geometry/points';
import { openLanguageModel } from '../../engine/lm';
import { analyzeModel, tensorAccess } from '../../engine/trace/graph';

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
