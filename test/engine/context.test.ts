/**
 * A model whose context length nothing says (a rotary model without config.json) is evaluated at 512 and the CLI
 * says so once, naming the model; `--context N` sets it, as config.json does, and so does a spec's `context N`.
 * A context longer than a learned position table is refused.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { scalpel } from '../helpers/cli';

const FIXTURE = path.resolve('test/fixtures/real/llama');
const TEXT = 'All human beings are born free and equal in dignity and rights. They are endowed with reason and conscience and should act towards one another in a spirit of brotherhood.';

test('an unknown context length is said once; --context N sets it like config.json', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scalpel-context-'));
  for (const f of ['model.onnx', 'tokenizer.json']) fs.copyFileSync(path.join(FIXTURE, f), path.join(dir, f));
  const data = ['--data', `inline:${TEXT}`, '--data', `inline:${TEXT.toUpperCase()}`, '--json'];
  const assumed = scalpel(['eval', '--model', dir, ...data]);
  assert.equal(assumed.code, 0, assumed.stderr);
  const notes = assumed.stderr.split('\n').filter((l) => l.includes('context length unknown'));
  assert.equal(notes.length, 1, assumed.stderr);
  assert.ok(notes[0].includes(path.join(dir, 'model.onnx')) && notes[0].includes('--context N') && notes[0].includes('config.json'), notes[0]);
  assert.equal(JSON.parse(assumed.stdout).contextLength, 512);

  const set = scalpel(['eval', '--model', dir, '--context', '64', ...data]);
  assert.equal(set.code, 0, set.stderr);
  assert.doesNotMatch(set.stderr, /context length unknown/);
  fs.copyFileSync(path.join(FIXTURE, 'config.json'), path.join(dir, 'config.json'));
  const configured = scalpel(['eval', '--model', dir, ...data]);
  assert.doesNotMatch(configured.stderr, /context length unknown/);
  const losses = (out: string) => (JSON.parse(out) as { contextLength: number; datasets: { loss: number }[] });
  assert.deepEqual(losses(set.stdout).datasets.map((d) => d.loss), losses(configured.stdout).datasets.map((d) => d.loss));
  assert.equal(losses(set.stdout).contextLength, 64);
  assert.notDeepEqual(losses(assumed.stdout).datasets.map((d) => d.loss), losses(set.stdout).datasets.map((d) => d.loss), 'the context changes the windows');
  assert.match(scalpel(['eval', '--model', dir, '--context', '0', ...data]).stderr, /--context takes a positive whole number, not "0"/);
});

test("a spec's `context N` is the context its runs evaluate in; 0 is S507 at the number; past a position table refused", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scalpel-context-'));
  for (const f of ['model.onnx', 'tokenizer.json']) fs.copyFileSync(path.join(FIXTURE, f), path.join(dir, f));
  assert.equal(scalpel(['decompose', '--model', dir, '--method', 'neuron', '-o', path.join(dir, 'components')]).code, 0);
  const spec = (context: string) => {
    const file = path.join(dir, `spec-${context.replace(/\W/g, '') || 'none'}.scalpel`);
    fs.writeFileSync(file, `model m from "." {
  components "components"
  ${context}
}
data text = inline "${TEXT}"
data upper = inline "${TEXT.toUpperCase()}"
guard kept = [upper] within 5 nats
edit e on m {
  select "model.layers.0.mlp.down_proj:0"
  scale 0
  keep kept
}
`);
    return file;
  };
  const before = (out: string) => (JSON.parse(out) as { edits: { datasets: { before: number }[] }[] }).edits[0].datasets.map((d) => d.before);
  const plain = (context: string[]) => JSON.parse(scalpel(['eval', '--model', dir, ...context, '--data', `inline:${TEXT}`, '--data', `inline:${TEXT.toUpperCase()}`, '--json']).stdout).datasets.map((d: { loss: number }) => d.loss);

  const set = scalpel(['eval', spec('context 64'), '--json']);
  assert.equal(set.code, 0, set.stderr);
  assert.doesNotMatch(set.stderr, /context length unknown/);
  assert.deepEqual(before(set.stdout), plain(['--context', '64']), 'the spec evaluates at its context');
  const unset = scalpel(['eval', spec(''), '--json']);
  assert.match(unset.stderr, /context length unknown.*`context N` in a spec's model block/);
  assert.deepEqual(before(unset.stdout), plain([]));
  assert.notDeepEqual(before(unset.stdout), before(set.stdout), 'the context changes the windows');

  const zero = scalpel(['eval', spec('context 0')]);
  assert.equal(zero.code, 2, "a spec that does not check is a usage error");
  assert.match(zero.stderr, /:3:11: S507: context must be a positive whole number of tokens/);
  assert.match(scalpel(['eval', '--model', path.resolve('test/fixtures/real/gpt2'), '--context', '65', '--data', 'inline:hello']).stderr, /context length 65 is longer than the model's learned position table \(64 positions\)/);
});
