/**
 * Accuracy checks (`expect E: accuracy(PROBE.DATA) …`) in the edit engine: `PlanRunner` trains the probe on the base
 * model's activations and scores it on the base and the edited model's activations of the same held-out tokens, on
 * the tiny GPT the geometry tests use (real onnxruntime). The values are the ones the geometry engine computes by
 * hand; a bound the measured change misses fails; sharded parts carry them from shard 0.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadDataset } from '../../engine/data';
import { Check } from '../../engine/edit/checks';
import { EditPlan } from '../../engine/edit/plan';
import { PlanRunner } from '../../engine/edit/run';
import { combineParts, partEdit, resultOf, PART_FORMAT, EvalPart } from '../../engine/edit/shard';
import { ActivationCapture } from '../../engine/geometry/capture';
import { scoreProbe, trainProbe } from '../../engine/geometry/probe';
import { openLanguageModel } from '../../engine/lm';
import { openModel } from '../../engine/onnx/model';
import { tinyWithCatalog } from '../debugger/helpers';
import { scalpel } from '../helpers/cli';

/** The tiny GPT with two text datasets of ten documents each, and a plan whose edit removes every h.1.mlp.c_fc component. */
function fixture(checks: (Pick<Check, 'dataset' | 'change' | 'bound'> & Partial<Check>)[], kind: 'mean-difference' | 'logistic' = 'mean-difference'): EditPlan {
  const dir = tinyWithCatalog();
  const write = (name: string, docs: string[]) => {
    const file = path.join(dir, `${name}.txt`);
    fs.writeFileSync(file, docs.join('\n\n'));
    return { name, source: { kind: 'text' as const, file } };
  };
  const a = write('a', Array.from({ length: 10 }, (_, i) => `alle Mensch ist frei${' und die Würde'.repeat(i + 1)}`));
  const b = write('b', Array.from({ length: 10 }, (_, i) => `der Mensch ist${' frei der'.repeat(i + 1)} Würde`));
  return {
    model: { path: path.join(dir, 'model.onnx'), components: path.join(dir, 'components') },
    datasets: [a, b],
    guards: [],
    edits: [{ name: 'e', components: Array.from({ length: 16 }, (_, i) => `h.1.mlp.c_fc:${i}`), scale: { value: 0 }, keep: [] }],
    expectations: checks.map((c) => ({ kind: 'expect', edit: 'e', op: '<=', unit: 'fraction', probe: 'p', ...c })),
    probes: [{ name: 'p', kind, point: 'h.1.resid', datasets: ['a', 'b'] }],
  };
}

test('an accuracy check reads the base-trained probe\'s true-positive rate on each dataset\'s held-out tokens, base vs edited; it fails when the change misses its bound', async () => {
  const plan = fixture([{ dataset: 'a', change: 'moves', bound: 1 }, { dataset: 'b', change: 'moves', bound: 1 }]);
  const runner = await PlanRunner.open(plan);
  let o;
  try {
    o = await runner.run(['e']);
  } finally {
    await runner.close();
  }
  // The same figures from the geometry engine directly: capture both models, train on the base, score both.
  const lm = openLanguageModel(plan.model.path);
  const sources = plan.datasets.map((d) => ({ tag: d.name, dataset: loadDataset(d.name, d.source, '/') }));
  const rows = async (patches?: Map<string, Float32Array>) => {
    const capture = await ActivationCapture.create(lm, ['h.1.resid'], { patches });
    try {
      return [...(await capture.datasets(sources)).values()][0];
    } finally {
      await capture.release();
    }
  };
  const base = await rows();
  const probe = await trainProbe(base, 'mean-difference');
  const before = scoreProbe(probe, base);
  const after = scoreProbe(probe, await rows(o.weights));
  assert.deepEqual(o.accuracies, ['a', 'b'].map((name, t) => ({
    probe: 'p', name, tokens: before.perTag[t].positives,
    base: before.perTag[t].truePositiveRate, edited: after.perTag[t].truePositiveRate, delta: after.perTag[t].truePositiveRate - before.perTag[t].truePositiveRate,
  })));
  assert.ok(o.accuracies.every((a) => a.tokens > 0 && a.base >= 0 && a.base <= 1 && a.edited >= 0 && a.edited <= 1));
  const moved = Math.max(...o.accuracies.map((a) => Math.abs(a.delta)));
  assert.ok(moved > 0.01, `removing the MLP's first layer moves what the probe reads (largest |Δ| ${moved})`);
  assert.deepEqual(o.checks.map((c) => [c.check.dataset, c.pass, c.value]), o.accuracies.map((a) => [a.name, true, Math.abs(a.delta)]));

  // Bounds just below and just above the change each dataset measured: the first fails, the second holds.
  const [a, b] = o.accuracies;
  const worst = Math.abs(a.delta) >= Math.abs(b.delta) ? a : b;
  const tight = fixture([{ dataset: worst.name, change: 'moves', bound: Math.abs(worst.delta) / 2 }, { dataset: worst.name, change: 'is', op: '>=', bound: worst.edited + 0.001 }, { dataset: worst.name, change: 'is', op: '>=', bound: worst.edited - 0.001 }, { dataset: worst.name, change: 'moves', bound: 1, goal: Math.abs(worst.delta) / 2 }]);
  const r2 = await PlanRunner.open(tight);
  try {
    const checks = (await r2.run(['e'])).checks;
    assert.deepEqual(checks.map((c) => c.pass), [false, false, true, true]);
    // A goal is a bare fraction too: reported as missed by how much, the bound alone decides.
    assert.deepEqual(checks[3].goal, { goal: Math.abs(worst.delta) / 2, met: false, distance: Math.abs(worst.delta) / 2 });
    assert.ok(checks[3].message.endsWith(`; goal ${(Math.abs(worst.delta) / 2).toFixed(4)} missed by ${(Math.abs(worst.delta) / 2).toFixed(4)}`), checks[3].message);
    assert.equal(checks[0].message, `expect e p.${worst.name}: |Δaccuracy| <= ${(Math.abs(worst.delta) / 2).toFixed(4)}: measured ${Math.abs(worst.delta).toFixed(4)} (${worst.base.toFixed(4)} → ${worst.edited.toFixed(4)}) (failed)`);
    assert.equal(checks[1].value, worst.edited);
  } finally {
    await r2.close();
  }
});

test('accuracy checks: the probe is trained once per runner, left out with probes: false, measured by shard 0 alone and merged exactly', async () => {
  const plan = fixture([{ dataset: 'a', change: 'falls', op: '>=', bound: 0 }], 'logistic');
  const runner = await PlanRunner.open(plan);
  try {
    const statuses: string[] = [];
    const whole = await runner.run(['e'], { onStatus: (m) => statuses.push(m) });
    const again = await runner.run(['e'], { onStatus: (m) => statuses.push(m) });
    assert.equal(statuses.filter((m) => m.startsWith('training probe p')).length, 1, statuses.join('\n'));
    assert.deepEqual(again.accuracies, whole.accuracies, 'the same probe, the same tokens');
    const preview = await runner.run(['e'], { probes: false });
    assert.deepEqual([preview.accuracies, preview.checks], [[], []]);

    const part = (o: typeof whole, shard: { index: number; count: number }): EvalPart => ({
      format: PART_FORMAT, spec: 'x', specSha256: '', lockSha256: null, shard, batchSize: 1, edits: [partEdit(runner, o, [])],
    });
    const shards = [];
    for (let index = 0; index < 2; index++) shards.push(part(await runner.run(['e'], { shard: { index, count: 2 } }), { index, count: 2 }));
    assert.equal(shards[0].edits[0].accuracies?.length, 2, 'shard 0 measures the accuracies whole');
    assert.equal(shards[1].edits[0].accuracies, undefined, 'the other shards do not');
    // Merged in either order, the parts give the unsharded part's bytes.
    const merged = combineParts([{ part: shards[1], file: '1' }, { part: shards[0], file: '0' }]);
    assert.equal(JSON.stringify(merged), JSON.stringify(part(whole, { index: 0, count: 1 })));
    const result = resultOf(merged);
    assert.deepEqual(result.edits[0].checks.map((c) => c.message), whole.checks.map((c) => c.message));
    assert.throws(() => resultOf({ ...merged, edits: [{ ...merged.edits[0], accuracies: undefined }] }), /a check reads probe p's accuracy on dataset a, which the part did not measure/);
  } finally {
    await runner.close();
  }
});

test('a probe the plan does not declare, or a point the model lacks, is one error naming the probe', async () => {
  const missing = fixture([{ dataset: 'a', change: 'moves', bound: 1 }]);
  const r1 = await PlanRunner.open({ ...missing, probes: [] });
  try {
    await assert.rejects(r1.run(['e']), /a check reads probe "p", which the plan does not declare/);
  } finally {
    await r1.close();
  }
  const plan = fixture([{ dataset: 'a', change: 'moves', bound: 1 }]);
  const r2 = await PlanRunner.open({ ...plan, probes: [{ ...plan.probes![0], point: 'h.7.resid' }] });
  try {
    await assert.rejects(r2.run(['e']), /^ScalpelError: probe p: no capture point "h\.7\.resid"/);
  } finally {
    await r2.close();
  }
});

/** The fixture as a spec file beside the tiny GPT, with `expects` as its accuracy expectations. */
function specFile(expects: string, gated = false): { dir: string; spec: string } {
  const dir = tinyWithCatalog({ ci: gated });
  fs.writeFileSync(path.join(dir, 'a.txt'), Array.from({ length: 10 }, (_, i) => `alle Mensch ist frei${' und die Würde'.repeat(i + 1)}`).join('\n\n'));
  fs.writeFileSync(path.join(dir, 'b.txt'), Array.from({ length: 10 }, (_, i) => `der Mensch ist${' frei der'.repeat(i + 1)} Würde`).join('\n\n'));
  const spec = path.join(dir, 'probe.scalpel');
  fs.writeFileSync(spec, `model tiny from "." { components "components" }
data a = text "a.txt"
data b = text "b.txt"
guard loose = [a, b] within 100 nats
probe p = linear on "h.1.resid" over [a, b]
edit e on tiny {
  select module "h.1.mlp.c_fc"
  scale ${gated ? '-30 gated' : '0'}
  keep loose
}
${expects}`);
  return { dir, spec };
}

test('scalpel eval SPEC with accuracy expectations: JSON with each probe accuracy and check, exit 1 naming the failed one and its line', () => {
  const { spec } = specFile('expect e: accuracy(p.loose) moves by <= 1\n');
  const ok = scalpel(['eval', spec, '--json'], { source: true });
  assert.equal(ok.code, 0, ok.stderr);
  const out = JSON.parse(ok.stdout);
  const [edit] = out.edits;
  assert.deepEqual(edit.accuracy.map((a: { probe: string; dataset: string }) => `${a.probe}.${a.dataset}`), ['p.a', 'p.b']);
  const b = edit.accuracy.find((a: { dataset: string }) => a.dataset === 'b');
  assert.ok(b.tokens > 0 && Math.abs(b.after - b.before - b.delta) < 1e-12 && b.delta < -0.1, JSON.stringify(b));
  const checks = edit.checks.filter((c: { probe?: string }) => c.probe === 'p');
  assert.deepEqual(checks.map((c: { dataset: string; unit: string; pass: boolean; line: number }) => [c.dataset, c.unit, c.pass, c.line]), [['a', 'fraction', true, 11], ['b', 'fraction', true, 11]]);
  assert.equal(checks[1].value, Math.abs(b.delta));
  assert.deepEqual(fs.readdirSync(path.join(path.dirname(spec), '.scalpel', 'probes')).filter((f) => /^[0-9a-f]{20}\.base-[0-9a-f]{20}\.json$/.test(f)).length, 1, 'the base-trained probe is kept');

  // "falls by >= 0.9" is more than the edit takes from b: exit 1, the check and its numbers (the kept probe's) on stderr at its line.
  fs.writeFileSync(spec, fs.readFileSync(spec, 'utf8').replace('expect e: accuracy(p.loose) moves by <= 1', 'expect e: accuracy(p.b) falls by >= 0.9'));
  const bad = scalpel(['eval', spec], { source: true });
  assert.equal(bad.code, 1, bad.stderr);
  const message = `expect e p.b: −Δaccuracy >= 0.9000: measured ${(-b.delta).toFixed(4)} (${b.before.toFixed(4)} → ${b.after.toFixed(4)}) (failed)`;
  assert.ok(bad.stderr.includes(`probe.scalpel:11:1: ${message}`), bad.stderr);
  assert.match(bad.stdout, /probe\s+dataset\s+held-out tokens\s+accuracy before\s+after\s+Δ/);
  assert.match(bad.stdout, /FAIL\s+expect e p\.b/);
});

test('scalpel check: an accuracy bound in nats, one above 1, and a probe\'s unknown dataset are errors with their location', () => {
  const { spec } = specFile('expect e: accuracy(p.a) falls by >= 0.3 nats\nexpect e: accuracy(p.b) falls by >= 30\nexpect e: accuracy(p.c) falls by >= 0.3\n');
  const r = scalpel(['check', spec], { source: true });
  assert.equal(r.code, 1);
  const lines = r.stdout.split('\n').filter((l) => / error /.test(l)).map((l) => l.replace(/^.*probe\.scalpel:/, ''));
  assert.deepEqual(lines, [
    '11:41: error S505: accuracy is a fraction of tokens from 0 to 1 and takes no unit: drop "nats" (e.g. falls by >= 0.3)',
    '12:37: error S605: accuracy is a fraction from 0 to 1: a bound of 30 is outside it (write 0.3 for 30 points)',
    '13:22: error S101: unknown name "c": expected a dataset or a guard (did you mean "a"?)',
  ]);
});

test('scalpel apply of a gated edit: the lock records each accuracy before and after, and the written checkpoint reads as the gated graph did', async () => {
  const { dir, spec } = specFile('expect e: accuracy(p.b) moves by <= 1\n', true);
  const out = path.join(dir, 'edited.onnx');
  const r = scalpel(['apply', spec, '-o', out], { source: true });
  assert.equal(r.code, 0, r.stderr);
  const lock = JSON.parse(fs.readFileSync(`${spec}.lock`, 'utf8'));
  assert.deepEqual(Object.keys(lock.accuracy), ['p']);
  assert.deepEqual(Object.keys(lock.accuracy.p), ['a', 'b']);
  const b = lock.accuracy.p.b;
  assert.ok(Math.abs(b.delta) > 0.01, `the gated edit moves what the probe reads on b (${JSON.stringify(b)})`);
  assert.ok(lock.checks.some((c: { message: string; pass: boolean }) => c.pass && c.message.startsWith('expect e p.b: |Δaccuracy| <= 1.0000: measured ')));
  // The probe trained on the base model, scored on the written checkpoint's activations: the lock's "after".
  const sources = ['a', 'b'].map((n) => ({ tag: n, dataset: loadDataset(n, { kind: 'text', file: path.join(dir, `${n}.txt`) }, dir) }));
  const rows = async (model: string) => {
    const capture = await ActivationCapture.create(openLanguageModel(model, { tokenizer: path.join(dir, 'tokenizer.json') }), ['h.1.resid']);
    try {
      return [...(await capture.datasets(sources)).values()][0];
    } finally {
      await capture.release();
    }
  };
  const base = await rows(path.join(dir, 'model.onnx'));
  const probe = await trainProbe(base, 'mean-difference');
  const written = scoreProbe(probe, await rows(out)).perTag[1];
  assert.ok(Math.abs(written.truePositiveRate - b.after) < 1e-6, `written ${written.truePositiveRate}, lock ${b.after}`);
});

test('a dataset\'s limit N tokens bounds what the probe is trained and scored on, as scalpel geometry captures it', async () => {
  const plan = fixture([{ dataset: 'b', change: 'moves', bound: 1 }]);
  const tokens = async (p: EditPlan) => {
    const runner = await PlanRunner.open(p);
    try {
      return (await runner.run(['e'])).accuracies.map((a) => a.tokens);
    } finally {
      await runner.close();
    }
  };
  const whole = await tokens(plan);
  const limited = await tokens({ ...plan, datasets: plan.datasets.map((d) => (d.name === 'b' ? { ...d, limit: 60 } : d)) });
  assert.equal(limited[0], whole[0], 'a is read whole');
  assert.ok(limited[1] > 0 && limited[1] < whole[1], `b's held-out tokens within 60: ${limited[1]} of ${whole[1]}`);
});

test('the base-trained probe is kept beside the spec: a later runner captures only the edited model and measures the same; a changed limit, kind, data, catalog or model retrains', async () => {
  const fresh = fixture([{ dataset: 'a', change: 'moves', bound: 1 }]);
  const dir = path.dirname(fresh.model.path);
  const plan: EditPlan = { ...fresh, specFile: path.join(dir, 'kept.scalpel') };
  const kept = () => (fs.existsSync(path.join(dir, '.scalpel', 'probes')) ? fs.readdirSync(path.join(dir, '.scalpel', 'probes')).filter((f) => f.includes('.base-')).sort() : []);
  const run = async (p: EditPlan) => {
    const statuses: string[] = [];
    const runner = await PlanRunner.open(p);
    try {
      const o = await runner.run(['e'], { onStatus: (m) => statuses.push(m) });
      return { accuracies: o.accuracies, trained: statuses.some((m) => m.startsWith('training probe p')), reused: statuses.some((m) => /^probe p \(mean-difference on h\.1\.resid\): trained on the base model by an earlier run \(\.scalpel\/probes\/[0-9a-f]{20}\.base-[0-9a-f]{20}\.json\)$/.test(m)) };
    } finally {
      await runner.close();
    }
  };
  /** What a runner without a spec file (which keeps nothing) measures: the figures a fresh training gives. */
  const trainedNow = async (p: EditPlan) => (await run({ ...p, specFile: undefined })).accuracies;

  const first = await run(plan);
  assert.deepEqual([first.trained, first.reused], [true, false]);
  assert.equal(kept().length, 1, 'one file kept');
  const second = await run(plan);
  assert.deepEqual([second.trained, second.reused], [false, true], 'the second runner trains nothing');
  assert.deepEqual(second.accuracies, first.accuracies, 'the same probe, the same figures, exactly');
  assert.equal(fs.readdirSync(path.join(dir, '.scalpel', 'probes')).filter((f) => f.endsWith('.tmp')).length, 0);

  const limited: EditPlan = { ...plan, datasets: plan.datasets.map((d) => (d.name === 'b' ? { ...d, limit: 60 } : d)) };
  const l1 = await run(limited);
  assert.equal(l1.trained, true, 'a changed limit retrains');
  assert.notEqual(l1.accuracies[1].tokens, first.accuracies[1].tokens);
  assert.equal((await run(limited)).trained, false);
  assert.equal((await run(plan)).trained, false, 'both kept side by side');
  assert.equal(kept().length, 2);

  const logistic: EditPlan = { ...plan, probes: [{ ...plan.probes![0], kind: 'logistic' }] };
  const statuses: string[] = [];
  const r = await PlanRunner.open(logistic);
  try {
    await r.run(['e'], { onStatus: (m) => statuses.push(m) });
  } finally {
    await r.close();
  }
  assert.ok(statuses.some((m) => m.startsWith('training probe p (logistic')), 'a changed kind retrains');

  // A damaged file is trained again and rewritten, not an error.
  const file = path.join(dir, '.scalpel', 'probes', kept().find((f) => !fs.readFileSync(path.join(dir, '.scalpel', 'probes', f), 'utf8').includes('"logistic"') && !fs.readFileSync(path.join(dir, '.scalpel', 'probes', f), 'utf8').includes('"limit"'))!);
  fs.writeFileSync(file, '{"format":"scalpel-base-probe/1","probe":');
  const damaged = await run(plan);
  assert.equal(damaged.trained, true);
  assert.deepEqual(damaged.accuracies, first.accuracies);
  assert.equal((await run(plan)).reused, true, 'rewritten');

  // The documents of a dataset: the same source, other text.
  fs.appendFileSync(path.join(dir, 'a.txt'), '\n\nalle Würde und die Würde ist frei');
  const data = await run(plan);
  assert.equal(data.trained, true, 'changed data retrains');
  assert.deepEqual(data.accuracies, await trainedNow(plan));

  // The catalog (its catalog.json): another label.
  const catalogFile = path.join(dir, 'components', 'catalog.json');
  const catalog = JSON.parse(fs.readFileSync(catalogFile, 'utf8'));
  catalog.components[0].label.text = 'relabelled';
  fs.writeFileSync(catalogFile, JSON.stringify(catalog));
  assert.equal((await run(plan)).trained, true, 'a changed catalog retrains');
  assert.equal((await run(plan)).trained, false);

  // The model's bytes: h.0's MLP output weights tripled in place (the temporary copy's file, still a valid model).
  const onnx = openModel(plan.model.path);
  const w = onnx.initializers.get('h.0.mlp.c_proj.weight')!;
  onnx.close();
  const bytes = fs.readFileSync(plan.model.path);
  for (let o = w.byteOffset; o < w.byteOffset + w.byteLength; o += 4) bytes.writeFloatLE(3 * bytes.readFloatLE(o), o);
  fs.writeFileSync(plan.model.path, bytes);
  const model = await run(plan);
  assert.equal(model.trained, true, 'changed model bytes retrain');
  assert.notDeepEqual(model.accuracies.map((a) => a.base), data.accuracies.map((a) => a.base), 'the new model reads otherwise');
  assert.deepEqual(model.accuracies, await trainedNow(plan));
  assert.equal((await run(plan)).reused, true);
});
