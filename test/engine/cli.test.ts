import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { scalpel } from '../helpers/cli';

test('scalpel eval --json: per dataset, its name, tokens scored and mean loss in nats', () => {
  const model = 'models/polyglot/model.onnx';
  const before = { bytes: fs.readFileSync(model), mtimeMs: fs.statSync(model).mtimeMs };
  const r = scalpel(['eval', '--model', 'models/polyglot', '--data', 'udhr:deu', '--data', 'udhr:eng', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.deepEqual(out.datasets.map((d: { name: string }) => d.name), ['udhr:deu', 'udhr:eng']);
  for (const d of out.datasets) {
    assert.ok(Number.isInteger(d.tokens) && d.tokens > 1000, `tokens ${d.tokens}`);
    assert.ok(d.loss > 0 && d.loss < out.uniformLoss, `loss ${d.loss}`);
  }
  assert.equal(out.vocabSize, 4096);
  assert.equal(r.stderr, '');
  // The base model is never written.
  assert.ok(fs.readFileSync(model).equals(before.bytes));
  assert.equal(fs.statSync(model).mtimeMs, before.mtimeMs);
});

test('the table form names every dataset', () => {
  const r = scalpel(['eval', '--model', 'models/polyglot', '--data', 'inline:Die Würde des Menschen ist unantastbar.', '--max-tokens', '50']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^dataset\s+tokens\s+loss \(nats\)/);
  assert.match(r.stdout, /inline:Die Würde/);
});

test('user errors are one line with the file, a non-zero exit, and no stack trace', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scalpel-cli-'));
  const truncated = path.join(dir, 'model.onnx');
  fs.writeFileSync(truncated, fs.readFileSync('models/polyglot/model.onnx').subarray(0, 100_000));
  fs.copyFileSync('models/polyglot/tokenizer.json', path.join(dir, 'tokenizer.json'));
  const cases: [string[], RegExp][] = [
    [['eval', '--model', 'models/missing', '--data', 'udhr:deu'], /^scalpel: models\/missing: cannot open model: no such file\n$/],
    [['eval', '--model', dir, '--data', 'udhr:deu'], new RegExp(`^scalpel: ${truncated}: byte \\d+: not a valid ONNX model: .*truncated.*\\n$`)],
    [['eval', '--model', 'models/polyglot', '--tokenizer', 'bytes', '--data', 'udhr:deu'], /wrong tokenizer for this model\?\n$/],
    [['eval', '--model', 'models/polyglot', '--data', 'udhr:xx'], /^scalpel: unknown UDHR code "xx"/],
    [['eval', '--model', 'models/polyglot', '--data', 'missing.txt'], /^scalpel: missing.txt: cannot read dataset: no such file\n$/],
    [['eval', '--model', 'models/polyglot'], /^scalpel: eval needs at least one --data SOURCE\n$/],
    [['eval', '--bogus'], /^scalpel: Unknown option '--bogus'/],
    [['frobnicate'], /^scalpel: unknown command "frobnicate"/],
  ];
  for (const [args, expected] of cases) {
    const r = scalpel([...args]);
    assert.equal(r.code, 2, `${args.join(' ')}: exit ${r.code}`);
    assert.match(r.stderr, expected, args.join(' '));
    assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  }
});

test('--per-token gives each scored token with its loss, and they add up to the mean', () => {
  const text = 'Alle Menschen sind frei und gleich an Würde und Rechten geboren.';
  const r = scalpel(['eval', '--model', 'models/polyglot', '--data', `inline:${text}`, '--json', '--per-token']);
  assert.equal(r.code, 0, r.stderr);
  const [d] = JSON.parse(r.stdout).datasets;
  assert.equal(d.perToken.length, d.tokens);
  assert.equal(d.perToken.map((t: { token: string }) => t.token).join(''), text);
  const mean = d.perToken.reduce((a: number, t: { loss: number }) => a + t.loss, 0) / d.tokens;
  assert.ok(Math.abs(mean - d.loss) < 1e-5);
});
