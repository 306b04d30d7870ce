/**
 * The debugger's contributions on models as exporters write them (test/fixtures/real): HF GPT-2's fused
 * q|k|v Gemm on flattened tokens with fused biases, Llama's q/k/v/o with grouped-query heads and SwiGLU.
 * The expected numbers come from PyTorch autograd through the fixtures' own modules (lab/real_contributions.py:
 * the module's input x and r = d logit / d output along the same path, probabilities frozen, secant slopes,
 * the direct path only); here they meet the engine's contributions in an SVD basis: (x · V[:, c]) · (U[c, :] · r).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openCatalogTensors, readVector, writeVector } from '../../engine/catalog/read';
import { writeCatalog } from '../../engine/catalog/write';
import { decompose } from '../../engine/decompose';
import { openLanguageModel } from '../../engine/lm';
import { ContributionKind, TraceAnalysis } from '../../engine/trace/analysis';
import { Tracer } from '../../engine/trace/trace';

const FIXTURES = path.resolve('test/fixtures/real');

interface Expected {
  input_ids: number[];
  positions: number[];
  targets: number[];
  modules: Record<string, { x: number[][]; r: number[][] }>;
}

const KINDS: Record<string, ContributionKind> = {
  c_attn: 'value',
  v_proj: 'value',
  c_fc: 'secant',
  gate_proj: 'secant',
  up_proj: 'gated',
  c_proj: 'direct',
  o_proj: 'direct',
  down_proj: 'direct',
};

for (const layout of ['gpt2', 'gpt2-unfolded-opset14', 'gpt2-external', 'llama', 'llama-unfolded-opset14', 'llama-with-past']) {
  test(`${layout}: attention value, MLP and writer contributions equal PyTorch autograd's`, async () => {
    const family = layout.startsWith('gpt2') ? 'gpt2' : 'llama';
    const expected = JSON.parse(fs.readFileSync(path.join(FIXTURES, family, 'contributions.json'), 'utf8')) as Expected;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `scalpel-contrib-${layout}-`));
    for (const f of fs.readdirSync(path.join(FIXTURES, layout))) fs.copyFileSync(path.join(FIXTURES, layout, f), path.join(dir, f));
    const lm = openLanguageModel(dir);
    const modules = Object.keys(expected.modules);
    const { catalog, tensors } = await decompose(lm, { method: 'svd', modules });
    writeCatalog(path.join(dir, 'components'), catalog, tensors);
    const tracer = await Tracer.create(lm);
    const trace = await tracer.trace(Int32Array.from(expected.input_ids));
    const tensorsOnDisk = openCatalogTensors(path.join(dir, 'components'));
    const analysis = new TraceAnalysis(tracer, trace, tensorsOnDisk);
    const s = trace.structure;
    // Queries and keys only move the attention pattern: no linear path to a logit.
    if (family === 'llama') {
      assert.deepEqual([...s.valuePaths.values()].map((v) => [v.module, v.offset, v.width, v.writer]), [0, 1].map((i) => [`model.layers.${i}.self_attn.v_proj`, 0, 16, `model.layers.${i}.self_attn.o_proj`]));
      assert.equal(analysis.contributionKind('model.layers.0.self_attn.q_proj'), 'none');
      assert.equal(analysis.contributionKind('model.layers.1.self_attn.k_proj'), 'none');
    } else {
      assert.deepEqual([...s.valuePaths.values()].map((v) => [v.module, v.offset, v.width]), [0, 1].map((i) => [`transformer.h.${i}.attn.c_attn`, 64, 32]));
      // Gemm's C input is the module's bias, already in its product.
      assert.deepEqual(s.moduleBias.get('transformer.h.1.mlp.c_fc'), { initializer: 'transformer.h.1.mlp.c_fc.bias', fused: true });
    }
    let checked = 0;
    for (const module of modules) {
      const kind = KINDS[module.split('.').pop()!];
      assert.equal(analysis.contributionKind(module), kind, module);
      const f = analysis.factors(module)!;
      const C = f.module.components;
      expected.positions.forEach((p, i) => {
        const x = expected.modules[module].x[i];
        const r = expected.modules[module].r[i];
        const got = analysis.contributions(module, 'base', p, expected.targets[i]);
        assert.equal(got.kind, kind);
        let scale = 0;
        const want = Array.from({ length: C }, (_, c) => {
          const [v, u] = [readVector(f, c), writeVector(f, c)];
          let act = 0;
          for (let k = 0; k < f.module.dIn; k++) act += x[k] * v[k];
          let dot = 0;
          for (let j = 0; j < f.module.dOut; j++) dot += u[j] * r[j];
          scale = Math.max(scale, Math.abs(act * dot));
          return act * dot;
        });
        for (let c = 0; c < C; c++) {
          assert.ok(Math.abs(got.values![c] - want[c]) <= 1e-5 + 1e-4 * scale, `${module} @${p} component ${c}: ${got.values![c]} vs PyTorch ${want[c]}`);
        }
        assert.ok(scale > 1e-3, `${module} @${p}: the expected contributions are not all zero`);
        checked++;
      });
    }
    assert.equal(checked, modules.length * expected.positions.length);
    tensorsOnDisk.close();
    await tracer.release();
    fs.rmSync(dir, { recursive: true });
  });
}
