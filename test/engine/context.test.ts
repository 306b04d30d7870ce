/**
 * A model whose context length nothing says (a rotary model without config.json) is evaluated at 512 and the CLI
 * says so once, naming the model; `--context N` sets it, as config.json does.
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
