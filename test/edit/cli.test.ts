import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { writeFixture } from './fixture';

// The CLI from source (the bundle is rebuilt by `npm test` in parallel with other test files).
function scalpel(cwd: string, ...args: string[]) {
  const main = path.resolve('cli/main.ts');
  const r = spawnSync(process.execPath, ['--import', 'tsx', main, ...args], { encoding: 'utf8', cwd: process.cwd() });
  void cwd;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

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
  const ok = scalpel(fx.dir, 'eval', file, '--json');
  assert.equal(ok.code, 0, ok.stderr);
  const out = JSON.parse(ok.stdout);
  assert.equal(out.pass, true);
  const moved = out.edits[0].datasets.find((d: { name: string }) => d.name === 'other').delta;
  assert.ok(Math.abs(moved) > 1e-3, `the edit moves "other" (${moved})`);

  // A threshold just below what the edit measurably does.
  const threshold = Number((Math.abs(moved) / 2).toFixed(4));
  fs.writeFileSync(file, spec(threshold));
  const junit = path.join(fx.dir, 'report.xml');
  const bad = scalpel(fx.dir, 'eval', file, '--junit', junit);
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

test('scalpel eval SPEC: spec errors are one line with a location, no stack', () => {
  const fx = writeFixture();
  const file = path.join(fx.dir, 'broken.scalpel');
  fs.writeFileSync(file, spec(1).replace('keep tight', 'keep nothing_here'));
  const r = scalpel(fx.dir, 'eval', file);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^scalpel: .*broken\.scalpel:\d+:\d+: .*nothing_here/);
  assert.equal(r.stderr.trim().split('\n').length, 1);
});

test('scalpel apply SPEC -o OUT: writes model and lock; a re-run reproduces the hash and the lock bytes', () => {
  const fx = writeFixture();
  const file = path.join(fx.dir, 'tuned.scalpel');
  fs.writeFileSync(file, spec(100, 'scale tune in [-3, 3] maximize loss(sample)'));
  const baseBytes = fs.readFileSync(fx.model);
  const a = scalpel(fx.dir, 'apply', file, '-o', path.join(fx.dir, 'a.onnx'));
  assert.equal(a.code, 0, a.stderr);
  assert.match(a.stdout, /tuned: maximize loss\(sample\) on 4 tokens of sample "Menschen sind frei und"/);
  const lock1 = fs.readFileSync(`${file}.lock`, 'utf8');
  const b = scalpel(fx.dir, 'apply', file, '-o', path.join(fx.dir, 'b.onnx'));
  assert.equal(b.code, 0, b.stderr);
  assert.match(b.stdout, /tuned scale from the lock file/);
  assert.ok(fs.readFileSync(path.join(fx.dir, 'a.onnx')).equals(fs.readFileSync(path.join(fx.dir, 'b.onnx'))));
  const lock2 = fs.readFileSync(`${file}.lock`, 'utf8');
  assert.equal(lock2.replace('"file": "b.onnx"', '"file": "a.onnx"'), lock1, 'same lock but for the output name');
  assert.ok(fs.readFileSync(fx.model).equals(baseBytes), 'base model untouched');
});
