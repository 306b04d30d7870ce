import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fork } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { CancelRequest, CatalogView, EvaluateResult, GeometryData, Job, JobResult, PreviewResult, ReviewResult, WorkerMessage } from '../../extension/protocol';
import { failedChecks, goalDescription, missedGoalsNote } from '../../extension/goals';
import { outline } from '../../extension/outline';
import { writeFixture } from '../edit/fixture';

/** Runs one job in the extension's model worker (from source), as extension/jobs.ts does; `cancel`: cancelled right after it is sent. */
function runJob(job: Job, cancel = false): Promise<{ result?: JobResult; error?: Extract<WorkerMessage, { type: 'error' }>; status: string[] }> {
  return new Promise((resolve, reject) => {
    const child = fork(path.resolve('extension/worker.ts'), [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const status: string[] = [];
    child.on('message', (m: WorkerMessage) => {
      if (m.type === 'status') status.push(m.message);
      else if (m.type === 'result') resolve({ result: m.result, status });
      else resolve({ error: m, status });
    });
    child.on('error', reject);
    child.on('exit', (code) => code && reject(new Error(`worker exited with ${code}`)));
    child.send(job);
    if (cancel) child.send({ kind: 'cancel' } satisfies CancelRequest);
  });
}

const SPEC = (scale: string) => `model tiny from "." { components "components" }
data sample = inline "Alle Menschen sind frei und gleich" limit 4 tokens
data all = inline "Alle Menschen sind frei und gleich an Wuerde und Rechten geboren ."
data other = inline "The quick brown fox jumps over the lazy dog . The dog ."
guard tight = [other] within 100 nats

edit e on tiny {
  select "h.1.mlp.c_fc:1" or "h.0.mlp.c_proj:2"
  ${scale}
  keep tight
}
expect e: loss(all) moves by >= 0 nats
`;

test('worker preview: Δloss per dataset, a sweep through the base model, and the per-token heatmap', async () => {
  const fx = writeFixture();
  const spec = path.join(fx.dir, 'e.scalpel');
  fs.writeFileSync(spec, SPEC('scale -2'));
  const { result, error, status } = await runJob({ kind: 'preview', spec, sweepPoints: 4, sweepTokens: 1000, heatmapTokens: 5 });
  assert.equal(error, undefined);
  const r = result as PreviewResult;
  assert.equal(r.edit, 'e');
  assert.equal(r.scale, -2);
  assert.deepEqual(r.components.map((c) => c.key).sort(), ['h.0.mlp.c_proj:2', 'h.1.mlp.c_fc:1']);
  const other = r.datasets.find((d) => d.name === 'other')!;
  assert.ok(Math.abs(other.delta) > 1e-4, 'the edit changes the loss');
  assert.ok(Math.abs(other.edited - other.base - other.delta) < 1e-9);
  assert.equal(other.role, 'off-target');
  assert.deepEqual(other.thresholds, [{ guard: 'tight', nats: 100 }]);
  // Sweep: -2 .. 1, with the edit's own scale; at scale 1 the model is the base model.
  assert.deepEqual(r.sweep.map((s) => s.scale), [-2, -1, 0, 1]);
  assert.ok(Math.abs(r.sweep.find((s) => s.scale === 1)!.deltas.other) < 1e-5);
  assert.ok(Math.abs(r.sweep.find((s) => s.scale === -2)!.deltas.other - other.delta) < 1e-5, 'the sweep at the edit scale matches the measurement');
  assert.equal(r.heatmap.other.length, 5);
  assert.equal(r.checks.length, 2);
  assert.ok(r.checks.every((c) => c.pass && c.line), JSON.stringify(r.checks));
  assert.ok(status.some((s) => s.startsWith('sweeping')));
});

test('worker: goals reach the panels and Test Explorer: each check\'s goal, a guard\'s goal in nats, the lock\'s goal for Review', async () => {
  const fx = writeFixture();
  const spec = path.join(fx.dir, 'e.scalpel');
  fs.writeFileSync(spec, SPEC('scale -2').replace('within 100 nats', 'within 100 nats, goal 0.0001 nats').replace('moves by >= 0 nats', 'moves by >= 0 nats, goal 0.0001 nats'));
  const r = (await runJob({ kind: 'preview', spec, sweepPoints: 3, sweepTokens: 8, heatmapTokens: 1 })).result as PreviewResult;
  const other = r.datasets.find((d) => d.name === 'other')!;
  assert.deepEqual(other.thresholds, [{ guard: 'tight', nats: 100, goalNats: 0.0001 }]);
  const [guard, expectation] = r.checks;
  assert.ok(Math.abs(other.delta) > 1e-3, `the edit moves "other" by ${other.delta}`);
  assert.equal(guard.pass, true);
  assert.equal(guard.goal?.met, false);
  assert.ok(Math.abs(guard.goal!.distance - (Math.abs(other.delta) - 0.0001)) < 1e-9);
  assert.deepEqual(expectation.goal, { goal: 0.0001, met: true, distance: 0 });
  // Test Explorer's wording: beside the guard's name, the miss; beside the expectation's, that it was met.
  assert.equal(goalDescription([guard]), `goal 0.0001 nats missed: other by ${(Math.abs(other.delta) - 0.0001).toFixed(4)} nats`);
  assert.equal(goalDescription([expectation]), 'goal met');
  assert.equal(goalDescription([{ ...expectation, goal: undefined }]), undefined);
  assert.equal(missedGoalsNote(r.checks), ', 1 missed its goal');
  assert.equal(missedGoalsNote([expectation]), '');
  // scalpel.testing.failOnMissedGoal: the guard that passed but missed fails, with the goal and its distance; a met goal does not.
  assert.deepEqual(failedChecks(r.checks, false), []);
  assert.deepEqual(failedChecks(r.checks, true), [guard]);
  assert.match(guard.message, /measured .*; goal 0\.0001 nats missed by \d/);
  assert.equal(failedChecks([{ ...expectation, pass: false }], false).length, 1, 'a failed bound fails either way');

  const out = path.join(fx.dir, 'out.onnx');
  assert.equal((await runJob({ kind: 'apply', spec, out, edits: [] })).error, undefined);
  const review = (await runJob({ kind: 'review', spec })).result as ReviewResult;
  assert.equal(review.checks[0].goal?.met, false);
  assert.ok(review.checks[0].goal!.distance > 0);
});

test('worker preview of the unsaved text of an editor: measured as typed, errors located in it', async () => {
  const fx = writeFixture();
  const spec = path.join(fx.dir, 'e.scalpel');
  fs.writeFileSync(spec, SPEC('scale -2'));
  const job = { kind: 'preview', spec, sweepPoints: 3, sweepTokens: 8, heatmapTokens: 1 } as const;
  const r = (await runJob({ ...job, text: SPEC('scale 0.5') })).result as PreviewResult;
  assert.equal(r.scale, 0.5, 'the text, not the file on disk');
  const { error } = await runJob({ ...job, text: SPEC('scale 0.5').replace('keep tight', 'keep nothing_here') });
  assert.equal(error?.file, spec);
  assert.equal(error?.line, 10);
  assert.match(error!.message, /nothing_here/);
});

test('worker evaluate reports every check with its line; catalog lists the components', async () => {
  const fx = writeFixture();
  const spec = path.join(fx.dir, 'e.scalpel');
  const text = SPEC('scale 0.5');
  fs.writeFileSync(spec, text);
  const r = (await runJob({ kind: 'evaluate', spec })).result as EvaluateResult;
  const items = outline(text);
  assert.deepEqual(items.map((i) => [i.kind, i.label, i.line]), [['data', 'sample', 2], ['data', 'all', 3], ['data', 'other', 4], ['guard', 'tight', 5], ['edit', 'e', 7], ['expect', 'e: loss(all) moves by >= 0 nats', 12]]);
  // The check lines are the outline's lines: that is how Test Explorer items get their results.
  assert.deepEqual(r.checks.map((c) => [c.kind, c.line]), [['guard', 5], ['expect', 12]]);
  const cat = (await runJob({ kind: 'catalog', spec })).result as CatalogView;
  assert.ok(cat.components.some((c) => c.key === 'h.1.mlp.c_fc:1'));
});

test('worker errors are one line with the spec location; review without an apply says what to do', async () => {
  const fx = writeFixture();
  const spec = path.join(fx.dir, 'bad.scalpel');
  fs.writeFileSync(spec, SPEC('scale 1').replace('keep tight', 'keep nothing_here'));
  const { error } = await runJob({ kind: 'preview', spec, sweepPoints: 3, sweepTokens: 8, heatmapTokens: 5 });
  assert.ok(error);
  assert.equal(error.file, spec);
  assert.equal(error.line, 10);
  assert.match(error.message, /nothing_here/);
  assert.doesNotMatch(error.message, /\n/);
  const r = await runJob({ kind: 'review', spec });
  assert.match(r.error!.message, /no lock file: apply the spec first/);
});

test('worker apply writes the model and lock; review measures the weight diff', async () => {
  const fx = writeFixture();
  const spec = path.join(fx.dir, 'e.scalpel');
  fs.writeFileSync(spec, SPEC('scale 0'));
  const out = path.join(fx.dir, 'out.onnx');
  const a = await runJob({ kind: 'apply', spec, out, edits: [] });
  assert.equal(a.error, undefined);
  assert.ok(fs.existsSync(out) && fs.existsSync(`${spec}.lock`));
  const r = (await runJob({ kind: 'review', spec })).result as ReviewResult;
  assert.deepEqual(r.edits, ['e']);
  assert.deepEqual(r.weights.map((w) => w.initializer).sort(), ['h.0.mlp.c_proj.weight', 'h.1.mlp.c_fc.weight']);
  for (const w of r.weights) assert.ok(w.changed > 0 && w.relFrobenius > 0 && w.maxAbs > 0, JSON.stringify(w));
  assert.deepEqual(r.metrics.map((m) => m.name).sort(), ['all', 'other', 'sample']);
});

test('worker apply cancelled by the extension: the job stops with "cancelled" and writes no file', async () => {
  const fx = writeFixture();
  const spec = path.join(fx.dir, 'e.scalpel');
  fs.writeFileSync(spec, SPEC('scale 0'));
  const before = fs.readdirSync(fx.dir).sort();
  const { result, error } = await runJob({ kind: 'apply', spec, out: path.join(fx.dir, 'edited.onnx'), edits: [] }, true);
  assert.equal(result, undefined);
  assert.equal(error?.message, 'cancelled');
  assert.deepEqual(fs.readdirSync(fx.dir).sort(), before);
});

test('worker geometry: every block output for the checked datasets, base and edited, ready for the panel', async () => {
  const fx = writeFixture();
  const spec = path.join(fx.dir, 'e.scalpel');
  fs.writeFileSync(spec, SPEC('scale -2'));
  const { result, error, status } = await runJob({ kind: 'geometry', spec, edit: 'e', text: 'Alle Menschen sind frei . The dog .', maxPerTag: 100 });
  assert.equal(error, undefined, error?.message);
  const r = result as GeometryData;
  assert.deepEqual(r.tags, ['all', 'other'], "the guard's and the expectation's datasets, in declaration order");
  assert.equal(r.edit, 'e');
  assert.equal(r.scale, -2);
  assert.deepEqual(r.points.map((p) => p.point), ['embed', 'h.0.resid', 'h.1.resid']);
  for (const p of r.points) assert.equal(p.edited!.coords.length, r.rows.tag.length);
  assert.equal(r.dimensions, 3, 'three components per point, for the panel\'s PC1–PC3 planes and 3-D view');
  for (const p of r.points) assert.ok(p.explained.length === 3 && [...p.base.coords, ...p.edited!.coords].every((c) => c.length === 3), p.point);
  assert.equal(r.sentences?.length, 2);
  assert.ok(r.rows.heldout.some((h) => h === 1) && r.rows.heldout.some((h) => h === 0), 'one-document datasets are held out by position');
  assert.ok(status.some((s) => s.startsWith('probe')));
});

test('worker geometry from a debugger stop: its capture point added in forward order and shown first, its scale (nothing tuned), its token marked', async () => {
  const fx = writeFixture();
  const spec = path.join(fx.dir, 'e.scalpel');
  fs.writeFileSync(spec, SPEC('scale tune in [-4, 1] maximize loss(sample)'));
  const { result, error, status } = await runJob({ kind: 'geometry', spec, edit: 'e', maxPerTag: 100, point: 'h.0.mlp.c_fc', scale: -1.25, mark: { tag: 'other', document: 0, position: 3 } });
  assert.equal(error, undefined, error?.message);
  const r = result as GeometryData;
  assert.deepEqual(r.points.map((p) => p.point), ['embed', 'h.0.mlp.c_fc', 'h.0.resid', 'h.1.resid']);
  assert.equal(r.initialPoint, 'h.0.mlp.c_fc');
  assert.equal(r.scale, -1.25);
  assert.ok(!status.some((s) => /tuning/.test(s)), status.join('\n'));
  assert.deepEqual({ ...r.marked, token: undefined }, { tag: 'other', document: 0, position: 3, token: undefined });
  for (const p of r.points) assert.equal(p.marked?.edited?.length, r.dimensions, p.point);
});

test('worker geometry: a dataset\'s `limit N tokens` bounds the tokens captured, so the rows kept are the smaller of it and maxPerTag', async () => {
  const fx = writeFixture();
  const spec = path.join(fx.dir, 'e.scalpel');
  const rows = (r: GeometryData, tag: string) => r.rows.tag.filter((t) => r.tags[t] === tag).length;
  fs.writeFileSync(spec, SPEC('scale -2'));
  const whole = (await runJob({ kind: 'geometry', spec, maxPerTag: 100 })).result as GeometryData;
  fs.writeFileSync(spec, SPEC('scale -2').replace('Rechten geboren ."', 'Rechten geboren ." limit 6 tokens'));
  const limited = (await runJob({ kind: 'geometry', spec, maxPerTag: 100 })).result as GeometryData;
  assert.ok(whole.tokens.all > 6, `${whole.tokens.all} tokens without a limit`);
  assert.deepEqual([limited.tokens.all, rows(limited, 'all')], [6, 6]);
  assert.equal(limited.tokens.other, whole.tokens.other, 'a dataset without a limit is captured whole');
  const fewer = (await runJob({ kind: 'geometry', spec, maxPerTag: 4 })).result as GeometryData;
  assert.deepEqual([fewer.tokens.all, rows(fewer, 'all')], [6, 4]);
});

test('worker evaluate measures accuracy expectations (Test Explorer items by line, with the numbers); a preview leaves them out', async () => {
  const fx = writeFixture();
  const spec = path.join(fx.dir, 'e.scalpel');
  const text = `${SPEC('scale -2')}probe p = linear on "h.1.resid" over [all, other]
expect e: accuracy(p.all) moves by <= 1
expect e: accuracy(p.other) moves by < 0
`;
  fs.writeFileSync(spec, text);
  const r = (await runJob({ kind: 'evaluate', spec })).result as EvaluateResult;
  const expects = outline(text).filter((i) => i.kind === 'expect');
  assert.deepEqual(expects.map((i) => [i.label, i.line]), [['e: loss(all) moves by >= 0 nats', 12], ['e: accuracy(p.all) moves by <= 1', 14], ['e: accuracy(p.other) moves by < 0', 15]]);
  const probeChecks = r.checks.filter((c) => c.line === 14 || c.line === 15);
  assert.deepEqual(probeChecks.map((c) => [c.dataset, c.unit, c.pass]), [['all', 'fraction', true], ['other', 'fraction', false]]);
  assert.match(probeChecks[1].message, /^expect e p\.other: \|Δaccuracy\| < 0\.0000: measured \d\.\d{4} \(\d\.\d{4} → \d\.\d{4}\) \(failed\)$/);
  const preview = (await runJob({ kind: 'preview', spec, sweepPoints: 2, sweepTokens: 8, heatmapTokens: 1 })).result as PreviewResult;
  assert.deepEqual(preview.checks.map((c) => c.line), [5, 12]);
});
