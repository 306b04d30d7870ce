// Fixtures exported by torch 1.13 from nn.Linear modules (lab/export_linear_fixture.py): the two ways
// real-world exports store a Linear weight. The engine must find the same modules and values in both.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as ort from 'onnxruntime-node';
import { openModel, readFloatTensor } from '../../engine/onnx/model';
import { moduleWeights } from '../../engine/onnx/modules';

const DIR = 'test/fixtures/linear-export';
const expected = JSON.parse(fs.readFileSync(`${DIR}/expected.json`, 'utf8'));

for (const [file, layout, mangled] of [['folded.onnx', 'in_out', true], ['transposed.onnx', 'out_in', false]] as const) {
  test(`torch export (${file}): module paths, layouts and weights`, async () => {
    const m = openModel(`${DIR}/${file}`);
    try {
      const mods = moduleWeights(m);
      assert.deepEqual(mods.map((x) => x.module), ['h.0.mlp.c_fc', 'h.0.mlp.c_proj', 'h.1.mlp.c_fc', 'h.1.mlp.c_proj', 'lm_head']);
      for (const x of mods) {
        assert.equal(x.layout, layout, x.module);
        assert.equal(x.initializer.startsWith('onnx::'), mangled, x.initializer);
        if (x.module !== 'lm_head') assert.deepEqual([x.dOut, x.dIn], expected.torch_weight_shapes[x.module], x.module);
      }
      // The torch weight (out, in) = (16, 8) of h.0.mlp.c_fc, read through either layout.
      const fc = mods[0];
      const w = readFloatTensor(m, fc.initializer);
      const at = (o: number, i: number) => (fc.layout === 'out_in' ? w[o * fc.dIn + i] : w[i * fc.dOut + o]);
      for (let o = 0; o < fc.dOut; o++) for (let i = 0; i < fc.dIn; i++) {
        assert.ok(Math.abs(at(o, i) - expected.c_fc_0_weight[o * fc.dIn + i]) < 1e-6);
      }
    } finally {
      m.close();
    }
    const session = await ort.InferenceSession.create(`${DIR}/${file}`);
    const ids = expected.input_ids as number[];
    const out = await session.run({ input_ids: new ort.Tensor('int64', BigInt64Array.from(ids.map(BigInt)), [1, ids.length]) });
    (out.logits.data as Float32Array).forEach((v, i) => assert.ok(Math.abs(v - expected.logits[i]) < 1e-4, `logit ${i}`));
    await session.release();
  });
}
