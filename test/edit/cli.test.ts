import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { openModel, readTensorBytes } from '../../engine/onnx/model';
import { scalpel } from '../helpers/cli';
import { writeFixture } from './fixture';

/** The CLI from source, run in the fixture's folder: the paths given to it are relative to that folder. */
const scalpelIn = (dir: string, ...args: string[]) => scalpel(args, { cwd: dir, source: true });

function spec(threshold: number, scale = 'scale -5'): string {
  return `# a test spec
model tiny from "." { components "components" }
data sample = inline "Alle Menschen sind frei und gleich" limit 4 tokens
data all = inline "Alle Menschen sind frei und gleich an Wuerde und Rechten geboren . Sie sind mit Vernunft und Gewissen begabt ."
data other = inline "The quick brown fox jumps over the lazy dog . The dog ."
guard tight = [other] within ${threshold} nats

edit e on tiny {
  select "h.1.mlp.c_fc:1" or "h.0.mlp.c_proj:2"
  ${scale}
  keep tight
}
expect e: loss(all) moves by >= 0 nats
`;
}

test('scalpel eval SPEC: a failing guard exits 1 and names the guard, the measured value, the bound and the line', () => {
  const fx = writeFixture();
  const file = path.join(fx.dir, 'edit.scalpel');
  fs.writeFileSync(file, spec(100));
  const ok = scalpelIn(fx.dir, 'eval', path.basename(file), '--json');
  assert.equal(ok.code, 0, ok.stderr);
  const out = JSON.parse(ok.stdout);
  assert.equal(out.pass, true);
  const moved = out.edits[0].datasets.find((d: { name: string }) => d.name === 'other').delta;
  assert.ok(Math.abs(moved) > 1e-3, `the edit moves "other" (${moved})`);

  // A threshold just below what the edit measurably does.
  const threshold = Number((Math.abs(moved) / 2).toFixed(4));
  fs.writeFileSync(file, spec(threshold));
  const junit = path.join(fx.dir, 'report.xml');
  const bad = scalpelIn(fx.dir, 'eval', path.basename(file), '--junit', 'report.xml');
  assert.equal(bad.code, 1, bad.stderr);
  const line = spec(threshold).split('\n').findIndex((l) => l.startsWith('guard tight')) + 1;
  const message = `guard tight on other: |Δloss| <= ${threshold.toFixed(4)} nats: measured ${Math.abs(moved).toFixed(4)} nats (failed)`;
  assert.ok(bad.stderr.includes(`edit.scalpel:${line}:1: ${message}`), bad.stderr);
  assert.match(bad.stdout, /FAIL\s+guard tight on other/);
  assert.match(bad.stdout, /1 of 2 checks passed/);
  const xml = fs.readFileSync(junit, 'utf8');
  assert.match(xml, /<testsuites name="edit.scalpel" tests="2" failures="1"/);
  assert.ok(xml.includes(`<failure message="${message.replace('<', '&lt;')}"/>`), xml);
});

test('scalpel eval/apply SPEC: a missed goal is reported with its distance and fails only with --goals', () => {
  const fx = writeFixture();
  const file = path.join(fx.dir, 'goals.scalpel');
  // A goal far below what the edit moves "other" by (missed), and one the expectation clears (met).
  fs.writeFileSync(file, spec(100).replace('within 100 nats', 'within 100 nats, goal 0.0001 nats').replace('moves by >= 0 nats', 'moves by >= 0 nats, goal 0.0001 nats'));
  const json = scalpelIn(fx.dir, 'eval', path.basename(file), '--json');
  assert.equal(json.code, 0, json.stderr);
  const out = JSON.parse(json.stdout);
  const moved = Math.abs(out.edits[0].datasets.find((d: { name: string }) => d.name === 'other').delta);
  const all = Math.abs(out.edits[0].datasets.find((d: { name: string }) => d.name === 'all').delta);
  assert.ok(moved > 1e-3 && all > 1e-3, `the edit moves both datasets (${moved}, ${all})`);
  const [guard, expectation] = out.edits[0].checks;
  assert.deepEqual({ pass: guard.pass, goal: guard.goal.goal, met: guard.goal.met }, { pass: true, goal: 0.0001, met: false });
  assert.ok(Math.abs(guard.goal.distance - (moved - 0.0001)) < 1e-9, `distance ${guard.goal.distance} = |Δ| − goal`);
  assert.deepEqual(expectation.goal, { goal: 0.0001, met: true, distance: 0 });
  assert.deepEqual(out.goals, { set: 2, missed: 1 });
  assert.equal(out.pass, true);

  const table = scalpelIn(fx.dir, 'eval', path.basename(file));
  assert.equal(table.code, 0, table.stderr);
  assert.match(table.stdout, new RegExp(`pass, goal missed\\s+guard tight on other: .*measured ${moved.toFixed(4)} nats; goal 0\\.0001 nats missed by ${(moved - 0.0001).toFixed(4)} nats`));
  assert.match(table.stdout, /2 of 2 checks passed, 1 of 2 goals met \(1 missed\) in/);
  assert.equal(table.stderr, '');

  const strict = scalpelIn(fx.dir, 'eval', path.basename(file), '--goals', '--junit', 'goals.xml');
  assert.equal(strict.code, 1, strict.stderr);
  const line = fs.readFileSync(file, 'utf8').split('\n').findIndex((l) => l.startsWith('guard tight')) + 1;
  assert.match(strict.stderr, new RegExp(`^scalpel: goals\\.scalpel:${line}:1: guard tight on other: .*goal 0\\.0001 nats missed by`));
  assert.equal(strict.stderr.trim().split('\n').length, 1, 'one line: the met goal is no failure');
  assert.match(fs.readFileSync(path.join(fx.dir, 'goals.xml'), 'utf8'), /tests="2" failures="1"/);
  const lenient = scalpelIn(fx.dir, 'eval', path.basename(file), '--junit', 'lenient.xml');
  const xml = fs.readFileSync(path.join(fx.dir, 'lenient.xml'), 'utf8');
  assert.equal(lenient.code, 0);
  assert.match(xml, /tests="2" failures="0"/);
  assert.match(xml, /<system-out>guard tight on other: .*missed by .*<\/system-out>/);

  // Goals all met: --goals passes.
  fs.writeFileSync(file, spec(100).replace('within 100 nats', 'within 100 nats, goal 99 nats'));
  assert.equal(scalpelIn(fx.dir, 'eval', path.basename(file), '--goals').code, 0);

  // apply: the same verdicts, and the lock records goal, met and distance.
  fs.writeFileSync(file, spec(100).replace('within 100 nats', 'within 100 nats, goal 0.0001 nats'));
  const applied = scalpelIn(fx.dir, 'apply', path.basename(file), '-o', 'goals.onnx');
  assert.equal(applied.code, 0, applied.stderr);
  assert.match(applied.stdout, /2 of 2 checks passed, 0 of 1 goal met \(1 missed\)/);
  const lock = JSON.parse(fs.readFileSync(`${file}.lock`, 'utf8'));
  const locked = lock.checks.find((c: { message: string }) => c.message.startsWith('guard tight'));
  assert.equal(locked.pass, true);
  assert.equal(locked.goal.goal, 0.0001);
  assert.equal(locked.goal.met, false);
  assert.ok(Math.abs(locked.goal.distance - (moved - 0.0001)) < 1e-5, `lock distance ${locked.goal.distance}`);
  assert.equal(lock.checks.find((c: { message: string }) => c.message.startsWith('expect')).goal, undefined, 'a check without a goal records none');
  assert.equal(scalpelIn(fx.dir, 'apply', path.basename(file), '-o', 'goals.onnx', '--goals').code, 1);
});

test('scalpel eval SPEC: spec errors are one line with a location, no stack', () => {
  const fx = writeFixture();
  const file = path.join(fx.dir, 'broken.scalpel');
  fs.writeFileSync(file, spec(1).replace('keep tight', 'keep nothing_here'));
  const r = scalpelIn(fx.dir, 'eval', file);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^scalpel: .*broken\.scalpel:\d+:\d+: .*nothing_here/);
  assert.equal(r.stderr.trim().split('\n').length, 1);
});

test('scalpel apply SPEC -o OUT: writes model and lock; a re-run reproduces the hash and the lock bytes', () => {
  const fx = writeFixture();
  const file = path.join(fx.dir, 'tuned.scalpel');
  fs.writeFileSync(file, spec(100, 'scale tune in [-3, 3] maximize loss(sample)'));
  const baseBytes = fs.readFileSync(fx.model);
  const a = scalpelIn(fx.dir, 'apply', path.basename(file), '-o', 'a.onnx');
  assert.equal(a.code, 0, a.stderr);
  assert.match(a.stdout, /tuned: maximize loss\(sample\) on 4 tokens of sample "Menschen sind frei und"/);
  const lock1 = fs.readFileSync(`${file}.lock`, 'utf8');
  const b = scalpelIn(fx.dir, 'apply', path.basename(file), '-o', 'b.onnx');
  assert.equal(b.code, 0, b.stderr);
  assert.match(b.stdout, /tuned scale from the lock file/);
  assert.ok(fs.readFileSync(path.join(fx.dir, 'a.onnx')).equals(fs.readFileSync(path.join(fx.dir, 'b.onnx'))));
  const lock2 = fs.readFileSync(`${file}.lock`, 'utf8');
  // docs/edits.md's table of lock keys names exactly the keys a lock has (`unmeasured` only a lock written unmeasured,
  // `accuracy` only one with accuracy expectations: test/edit/accuracy.test.ts).
  const table = fs.readFileSync(path.join(__dirname, '..', '..', 'docs', 'edits.md'), 'utf8').split('## Apply and the lock file')[1].split('\n\n')[2];
  const documented = [...table.matchAll(/^\| ([^|]+) \|/gm)].flatMap((m) => [...m[1].matchAll(/`(\w+)`/g)].map((k) => k[1]));
  assert.deepEqual(documented.filter((k) => k !== 'unmeasured' && k !== 'accuracy').sort(), Object.keys(JSON.parse(lock1)).sort());
  assert.equal(lock2.replace('"file": "b.onnx"', '"file": "a.onnx"'), lock1, 'same lock but for the output name');
  assert.ok(fs.readFileSync(fx.model).equals(baseBytes), 'base model untouched');
});

test('scalpel apply of a gated edit tuned toward a loss: the gate is in the written graph, the tuned loss is the target, the lock says so', () => {
  const fx = writeFixture();
  const file = path.join(fx.dir, 'gated.scalpel');
  // First the loss a gated scale of -3 reaches on the tuning data, then a spec that tunes toward it.
  fs.writeFileSync(file, spec(100, 'scale -3 gated where ci > 0.2'));
  const probe = scalpelIn(fx.dir, 'eval', path.basename(file), '--json');
  assert.equal(probe.code, 0, probe.stderr);
  const target = JSON.parse(probe.stdout).edits[0].datasets.find((d: { name: string }) => d.name === 'sample').after;
  fs.writeFileSync(file, spec(100, `scale tune in [-6, 1] loss(sample) toward ${target.toFixed(4)} nats gated where ci > 0.2`));
  const out = path.join(fx.dir, 'gated.onnx');
  const r = scalpelIn(fx.dir, 'apply', path.basename(file), '-o', path.basename(out));
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /2 components \(gated where ci > 0\.2\)/);
  assert.match(r.stdout, new RegExp(`tuned: loss\\(sample\\) toward ${target.toFixed(4)} nats on 4 tokens`));
  assert.match(r.stdout, /uniform loss ln V = 5\.5452 nats \(V = 256\)/);
  const lock = JSON.parse(fs.readFileSync(`${file}.lock`, 'utf8'));
  assert.ok(Math.abs(lock.metrics.sample.after - target) < 1e-3, `tuned to ${lock.metrics.sample.after}, target ${target}`);
  assert.equal(lock.uniform, Number(Math.log(256).toFixed(6)));
  assert.deepEqual(lock.components.map((c: { key: string; gate: string }) => [c.key, c.gate]), [['h.0.mlp.c_proj:2', 'gated where ci > 0.2'], ['h.1.mlp.c_fc:1', 'gated where ci > 0.2']]);
  // The written model has both modules' gated paths and no patched weight.
  const base = openModel(fx.model);
  const written = openModel(out);
  try {
    assert.deepEqual([...written.initializers.keys()].filter((n) => n.endsWith('.scale')), ['scalpel.gate.h.0.mlp.c_proj.scale', 'scalpel.gate.h.1.mlp.c_fc.scale']);
    for (const t of base.initializers.values()) assert.ok(Buffer.from(readTensorBytes(written, written.initializers.get(t.name)!)).equals(Buffer.from(readTensorBytes(base, t))), t.name);
  } finally {
    base.close();
    written.close();
  }
});
