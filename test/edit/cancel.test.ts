/**
 * Cancellation: each long job (apply, tuning, decomposition, tracing) stopped mid-way by its AbortSignal
 * rejects with CancelledError, leaves no partial output behind, and leaves its session usable.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { interruptible } from '../../cli/interrupt';
import { decompose } from '../../engine/decompose';
import { applyPlan } from '../../engine/edit/apply';
import { lockMatchesOutput, readLock } from '../../engine/edit/lock';
import { PlanRunner } from '../../engine/edit/run';
import { CancelledError } from '../../engine/evaluate';
import { openLanguageModel } from '../../engine/lm';
import { Tracer } from '../../engine/trace/trace';
import { loadPlan } from '../../language/plan';
import { writeFixture } from './fixture';

const spec = (scale: string) => `model tiny from "." { components "components" }
data sample = inline "Alle Menschen sind frei und gleich an Wuerde und Rechten geboren ."
data other = inline "The quick brown fox jumps over the lazy dog . The dog ."
guard tight = [other] within 100 nats

edit e on tiny {
  select "h.1.mlp.c_fc:1"
  ${scale}
  keep tight
}
`;

function specFile(scale: string): { dir: string; file: string } {
  const fx = writeFixture();
  const file = path.join(fx.dir, 'e.scalpel');
  fs.writeFileSync(file, spec(scale));
  return { dir: fx.dir, file };
}

test('apply: cancelled while tuning, it writes no model, no lock and no temporary; the runner still runs', async () => {
  const { dir, file } = specFile('scale tune in [-3, 3] maximize loss(sample)');
  const before = fs.readdirSync(dir).sort();
  const runner = await PlanRunner.open(loadPlan(file));
  try {
    const stop = new AbortController();
    const out = path.join(dir, 'edited.onnx');
    const onStatus = (m: string) => m.startsWith('tuning') && stop.abort();
    await assert.rejects(applyPlan(runner, { edits: ['e'], outFile: out, signal: stop.signal, onStatus }), CancelledError);
    assert.deepEqual(fs.readdirSync(dir).sort(), before);
    const r = await applyPlan(runner, { edits: ['e'], outFile: out });
    assert.ok(fs.existsSync(r.outFile) && fs.existsSync(r.lockFile));
  } finally {
    await runner.close();
  }
});

test('apply: cancelled while measuring, it keeps the model it wrote and a lock that says it was not measured', async () => {
  const { dir, file } = specFile('scale 0');
  const before = fs.readdirSync(dir).sort();
  const runner = await PlanRunner.open(loadPlan(file));
  try {
    const stop = new AbortController();
    const statuses: string[] = [];
    const out = path.join(dir, 'edited.onnx');
    const onStatus = (m: string) => {
      statuses.push(m);
      if (m.startsWith('measuring')) stop.abort();
    };
    await assert.rejects(applyPlan(runner, { edits: ['e'], outFile: out, signal: stop.signal, onStatus }), CancelledError);
    assert.deepEqual(statuses, ['measuring sample'], 'it stopped in the first measurement');
    assert.deepEqual(fs.readdirSync(dir).sort(), [...before, 'e.scalpel.lock', 'edited.onnx'].sort(), 'the model and its lock, no temporary');
    const lock = readLock(`${file}.lock`)!;
    assert.ok(lockMatchesOutput(lock, out));
    assert.match(lock.unmeasured ?? '', /stopped before measuring/);
  } finally {
    await runner.close();
  }
});

test('tune: cancelled during the search, the run stops before measuring; the same runner then tunes to the end', async () => {
  const { file } = specFile('scale tune in [-3, 3] maximize loss(sample)');
  const runner = await PlanRunner.open(loadPlan(file));
  try {
    const stop = new AbortController();
    const statuses: string[] = [];
    const onStatus = (m: string) => {
      statuses.push(m);
      if (m.startsWith('tuning')) stop.abort();
    };
    await assert.rejects(runner.run(['e'], { signal: stop.signal, onStatus }), CancelledError);
    assert.equal(statuses.length, 1);
    assert.match(statuses[0], /^tuning e/);
    const o = await runner.run(['e']);
    assert.ok(o.tuning!.trace.length > 3 && Number.isFinite(o.scales.e));
  } finally {
    await runner.close();
  }
});

test('decompose: cancelled after the first module, it rejects before the second', async () => {
  const fx = writeFixture();
  const lm = openLanguageModel(fx.dir);
  const stop = new AbortController();
  const seen: string[] = [];
  const run = decompose(lm, {
    method: 'neuron',
    signal: stop.signal,
    onProgress: (p) => {
      seen.push(p.module);
      stop.abort();
    },
  });
  await assert.rejects(run, CancelledError);
  assert.equal(seen.length, 1);
  assert.ok((await decompose(lm, { method: 'neuron' })).catalog.modules.length > 1, 'the fixture has more than one MLP matrix');
});

test('trace: an aborted signal stops after the base run; the tracer then traces both sides', async () => {
  const fx = writeFixture();
  const lm = openLanguageModel(fx.dir);
  const weight = [...lm.onnx.initializers.keys()].find((n) => n.includes('c_fc'))!;
  const tracer = await Tracer.create(lm, { patches: new Map([[weight, new Float32Array(lm.onnx.initializers.get(weight)!.dims.reduce((a, b) => a * b, 1))]]) });
  try {
    const tokens = Int32Array.from(lm.tokenizer.encode('Alle Menschen sind frei'));
    const stop = new AbortController();
    stop.abort();
    await assert.rejects(tracer.trace(tokens, stop.signal), CancelledError);
    const t = await tracer.trace(tokens);
    assert.ok(t.hasEdit && t.recorded.base !== t.recorded.edited);
  } finally {
    await tracer.release();
  }
});

test('Ctrl-C: a SIGINT aborts the signal of the command running, and the handler goes with the command', async () => {
  const listeners = process.listenerCount('SIGINT');
  const aborted = await interruptible(async (signal) => {
    assert.equal(signal.aborted, false);
    process.emit('SIGINT');
    return signal.aborted;
  });
  assert.equal(aborted, true);
  assert.equal(process.listenerCount('SIGINT'), listeners);
});
