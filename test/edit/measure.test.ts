/**
 * `scalpel apply` writes first and measures after: with --no-measure it evaluates nothing, and a model that
 * cannot be evaluated here is still written, its failure one line and its lock complete but for the metrics.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { NOT_MEASURED } from '../../engine/edit/apply';
import { lockMatchesOutput, readLock } from '../../engine/edit/lock';
import { modelSha256 } from '../../engine/identity';
import { openModel, readFloatTensor } from '../../engine/onnx/model';
import { rewriteModel } from '../../engine/onnx/rewrite';
import { scalpel } from '../helpers/cli';
import { writeFixture } from './fixture';

function specFixture(scale = 'scale 0.5') {
  const fx = writeFixture();
  const spec = path.join(fx.dir, 'm.scalpel');
  fs.writeFileSync(spec, `model tiny from "." { components "components" }
data other = inline "The quick brown fox jumps over the lazy dog ."
guard g = [other] within 100 nats
edit e on tiny {
  select "h.1.mlp.c_fc:1"
  ${scale}
  keep g
}
`);
  return { ...fx, spec };
}

/** The fixture's model with one more node onnxruntime has no kernel for: Scalpel reads and writes it, onnxruntime cannot load it. */
function unloadable(model: string): void {
  const m = openModel(model);
  const bytes = rewriteModel(m, { addNodes: [{ name: '/extra/Custom', opType: 'NoSuchKernel', domain: 'ai.scalpel.test', inputs: ['logits'], outputs: ['extra'] }], addOutputs: [{ name: 'extra', elemType: 1 }] });
  m.close();
  fs.writeFileSync(model, bytes);
}

test('apply --no-measure writes the same model as a measured apply, and a lock complete but for the metrics', () => {
  const fx = specFixture();
  const measured = path.join(fx.dir, 'measured.onnx');
  const a = scalpel(['apply', fx.spec, '-o', measured, '--lock', path.join(fx.dir, 'measured.lock')], { source: true });
  assert.equal(a.code, 0, a.stderr);
  const quick = path.join(fx.dir, 'quick.onnx');
  const b = scalpel(['apply', fx.spec, '-o', quick, '--lock', path.join(fx.dir, 'quick.lock'), '--no-measure'], { source: true });
  assert.equal(b.code, 0, b.stderr);
  assert.equal(b.stderr, '');
  assert.match(b.stdout, /not measured \(--no-measure\)/);
  assert.equal(modelSha256(quick), modelSha256(measured), 'the same bytes');
  const [la, lb] = [readLock(path.join(fx.dir, 'measured.lock'))!, readLock(path.join(fx.dir, 'quick.lock'))!];
  assert.equal(la.unmeasured, undefined);
  assert.ok(Object.keys(la.metrics).length > 0 && la.checks.length > 0);
  assert.equal(lb.unmeasured, NOT_MEASURED);
  assert.deepEqual([lb.metrics, lb.checks], [{}, []]);
  assert.deepEqual([lb.components, lb.scales, lb.model, lb.catalog, lb.spec], [la.components, la.scales, la.model, la.catalog, la.spec]);
  assert.ok(lockMatchesOutput(lb, quick));
});

test('a model onnxruntime cannot load is still edited and written; measuring fails in one line and the lock says why', () => {
  const fx = specFixture();
  unloadable(fx.model);
  const out = path.join(fx.dir, 'out.onnx');
  const r = scalpel(['apply', fx.spec, '-o', out], { source: true });
  assert.equal(r.code, 2, r.stderr);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0], /^scalpel: \S*out\.onnx and \S*m\.scalpel\.lock are written, but measuring failed: onnxruntime cannot load .*NoSuchKernel/);
  const lock = readLock(`${fx.spec}.lock`)!;
  assert.match(lock.unmeasured!, /^measuring failed: onnxruntime cannot load/);
  assert.deepEqual(lock.metrics, {});
  assert.ok(lockMatchesOutput(lock, out));
  // The edit is in the file: W' = W + (s − 1)·V[:, 1] ⊗ U[1, :] with s = 0.5.
  const [base, edited] = [openModel(fx.model), openModel(out)];
  const w = readFloatTensor(base, 'h.1.mlp.c_fc.weight');
  const w2 = readFloatTensor(edited, 'h.1.mlp.c_fc.weight');
  const { V, U, dIn, dOut } = fx.factors['h.1.mlp.c_fc'];
  const C = V.length / dIn;
  for (let i = 0; i < dIn; i++) for (let j = 0; j < dOut; j++) assert.ok(Math.abs(w2[i * dOut + j] - (w[i * dOut + j] - 0.5 * V[i * C + 1] * U[1 * dOut + j])) < 1e-5);
  base.close();
  edited.close();
  assert.equal(scalpel(['apply', fx.spec, '-o', path.join(fx.dir, 'quick.onnx'), '--no-measure'], { source: true }).code, 0);
});

test('a tuned edit on a model that cannot be evaluated is refused in one line, and nothing is written', () => {
  const fx = specFixture('scale tune in [-2, 2] maximize loss(other)');
  unloadable(fx.model);
  const out = path.join(fx.dir, 'out.onnx');
  const r = scalpel(['apply', fx.spec, '-o', out, '--no-measure'], { source: true });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^scalpel: .*edit e tunes its scale, which evaluates the model: onnxruntime cannot load .*NoSuchKernel[^\n]*\n$/);
  assert.ok(!fs.existsSync(out) && !fs.existsSync(`${fx.spec}.lock`));
});
