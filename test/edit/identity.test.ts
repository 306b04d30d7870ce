/**
 * Dataset identity: two datasets with the same text (or one file under two names) are two datasets,
 * each measured and reported under its own name.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { applyPlan } from '../../engine/edit/apply';
import { PlanRunner } from '../../engine/edit/run';
import { loadPlan } from '../../language/plan';
import { writeFixture } from './fixture';

test('two datasets with identical text both get their own results', async () => {
  const fx = writeFixture();
  fs.writeFileSync(path.join(fx.dir, 'a.txt'), 'The quick brown fox jumps over the lazy dog .\n');
  fs.symlinkSync(path.join(fx.dir, 'a.txt'), path.join(fx.dir, 'b.txt'));
  const spec = path.join(fx.dir, 'twins.scalpel');
  fs.writeFileSync(spec, `model tiny from "." { components "components" }
data a = inline "Alle Menschen sind frei und gleich"
data b = inline "Alle Menschen sind frei und gleich"
data c = text "a.txt"
data d = text "b.txt"
guard g = [b, c, d] within 100 nats
edit e on tiny {
  select "h.1.mlp.c_fc:1"
  scale 0.5
  keep g
}
expect e: loss(a) moves by >= 0 nats
`);
  const runner = await PlanRunner.open(loadPlan(spec));
  try {
    const r = await applyPlan(runner, { edits: [], outFile: path.join(fx.dir, 'out.onnx') });
    assert.deepEqual(Object.keys(r.lock.metrics).sort(), ['a', 'b', 'c', 'd']);
    assert.equal(r.lock.metrics.a.delta, r.lock.metrics.b.delta, 'the same text moves the same');
    assert.equal(r.lock.metrics.c.delta, r.lock.metrics.d.delta);
    assert.ok(r.outcome!.checks.every((c) => c.pass));
  } finally {
    await runner.close();
  }
});
