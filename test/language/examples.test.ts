/**
 * The shipped examples open clean (no error and no warning from the checker; information notes are fine) and keep
 * their word: `scalpel eval` on the demo model passes every guard and expectation. A failure names each failing
 * check with what it measured against its bound.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { analyze, defaultEnv } from '../../language/checker';
import { formatDiagnostic } from '../../language/diagnostics';

const EXAMPLES = path.join(__dirname, '..', '..', 'examples');
const CLI = path.join(__dirname, '..', '..', 'cli', 'main.ts');
const names = fs.readdirSync(EXAMPLES).filter((f) => f.endsWith('.scalpel')).sort();

test('the flagship examples are there', () => {
  for (const name of ['remove-german.scalpel', 'remove-french.scalpel']) assert.ok(names.includes(name), `examples/${name}`);
});

for (const name of names) {
  test(`examples/${name} has no errors or warnings`, () => {
    const file = path.join(EXAMPLES, name);
    const a = analyze(fs.readFileSync(file, 'utf8'), defaultEnv(EXAMPLES));
    assert.deepEqual(a.diagnostics.filter((d) => d.severity !== 'info').map((d) => formatDiagnostic(name, a.lines, d)), []);
  });
}

interface Report {
  pass: boolean;
  edits: { checks: { pass: boolean; message: string; line?: number }[] }[];
}

for (const name of names) {
  test(`scalpel eval examples/${name} passes every check`, () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', CLI, 'eval', path.join(EXAMPLES, name), '--json', '--threads', '1'], { encoding: 'utf8' });
    assert.ok(r.stdout, `no report (exit ${r.status}): ${r.stderr}`);
    const report = JSON.parse(r.stdout) as Report;
    const checks = report.edits.flatMap((e) => e.checks);
    assert.ok(checks.length > 0, 'the example checks something');
    const failed = checks.filter((c) => !c.pass).map((c) => `line ${c.line}: ${c.message}`);
    assert.deepEqual(failed, [], `examples/${name} fails ${failed.length} of ${checks.length} checks`);
    assert.equal(report.pass, true);
    assert.equal(r.status, 0, r.stderr);
  });
}
