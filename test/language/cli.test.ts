/**
 * `scalpel check` and `scalpel fmt` through the bundled CLI (npm test builds it first):
 * exit codes, the file:line:col: severity code: message format, and in-place formatting.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { scalpel } from '../helpers/cli';

const ROOT = path.join(__dirname, '..', '..');
const FIXTURE = path.join(ROOT, 'test', 'fixtures', 'lang');

function withFixtureCopy(f: (dir: string) => void): void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scalpel-cli-'));
  try {
    fs.cpSync(FIXTURE, dir, { recursive: true });
    f(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('check: a valid spec passes; a broken copy reports precise errors and exits 1', () => {
  const ok = scalpel(['check', path.join(FIXTURE, 'demo.scalpel')]);
  assert.equal(ok.code, 0, ok.stdout + ok.stderr);
  assert.equal(ok.stdout, '');
  withFixtureCopy((dir) => {
    const file = path.join(dir, 'demo.scalpel');
    const text = fs.readFileSync(file, 'utf8').replace('"h.2.mlp.c_fc:41"', '"h.2.mlp.c_fc:410"').replace('keep others', 'keep otters');
    fs.writeFileSync(file, text);
    const r = scalpel(['check', file]);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, [
      `${file}:17:10: error S301: module h.2.mlp.c_fc has 48 components (0 to 47); there is no 410`,
      `${file}:20:8: error S101: unknown name "otters": expected a guard (did you mean "others"?)`,
      '',
    ].join('\n'));
    assert.match(r.stderr, /1 file checked: 2 errors, 0 warnings/);
  });
});

test('check: warnings alone exit 0, or 1 with --strict; bad usage is one line, exit 2', () => {
  withFixtureCopy((dir) => {
    const file = path.join(dir, 'demo.scalpel');
    fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace('  keep others\n', ''));
    assert.equal(scalpel(['check', file]).code, 0);
    const strict = scalpel(['check', '--strict', file]);
    assert.equal(strict.code, 1);
    assert.match(strict.stdout, /warning S504: edit "no_german" keeps no guard/);
  });
  const none = scalpel(['check']);
  assert.equal(none.code, 2);
  assert.equal(none.stderr, 'scalpel: check needs at least one FILE.scalpel\n');
  const missing = scalpel(['check', 'no/such.scalpel']);
  assert.equal(missing.code, 2);
  assert.equal(missing.stderr, 'scalpel: no/such.scalpel: cannot read spec: no such file\n');
});

test('fmt: --check lists unformatted files, plain fmt rewrites them, syntax errors leave the file alone', () => {
  withFixtureCopy((dir) => {
    const file = path.join(dir, 'messy.scalpel');
    fs.writeFileSync(file, 'data  german=udhr "deu"   data french = udhr "fra" # two\n');
    const check = scalpel(['fmt', '--check', file]);
    assert.equal(check.code, 1);
    assert.equal(check.stdout, `${file}\n`);
    assert.equal(scalpel(['fmt', file]).code, 0);
    assert.equal(fs.readFileSync(file, 'utf8'), 'data german = udhr "deu"\ndata french = udhr "fra"  # two\n');
    assert.equal(scalpel(['fmt', '--check', file]).code, 0);
    const broken = path.join(dir, 'broken.scalpel');
    fs.writeFileSync(broken, 'data german = \n');
    const r = scalpel(['fmt', broken]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /broken\.scalpel:2:1: error S002: expected a source: udhr, text, jsonl or inline, found the end of the file/);
    assert.equal(fs.readFileSync(broken, 'utf8'), 'data german = \n');
  });
});
