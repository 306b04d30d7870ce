/**
 * An edited model written to another folder evaluates alone as apply measured it: the model folder's config.json
 * (the context length of a rotary model, which has no position table) and tokenizer.json are copied beside it, and an
 * existing different file there is kept and said, never replaced.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { readLock } from '../../engine/edit/lock';
import { scalpel } from '../helpers/cli';

const FIXTURE = path.resolve('test/fixtures/real/llama');
const DOWN = 'model.layers.1.mlp.down_proj';
// Longer than the fixture's context (64 in config.json), so the windows, and the loss, depend on it.
const TEXT = 'All human beings are born free and equal in dignity and rights. They are endowed with reason and conscience and should act towards one another in a spirit of brotherhood.';

test('apply -o into another folder copies the sidecars; the output alone evaluates to the measured loss', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scalpel-sidecars-'));
  for (const f of ['model.onnx', 'config.json', 'tokenizer.json']) fs.copyFileSync(path.join(FIXTURE, f), path.join(dir, f));
  fs.writeFileSync(path.join(dir, 'udhr.txt'), `${TEXT}\n`);
  const decomposed = scalpel(['decompose', '--model', dir, '--method', 'neuron', '--modules', DOWN, '-o', path.join(dir, 'components')]);
  assert.equal(decomposed.code, 0, decomposed.stderr);
  const spec = path.join(dir, 'edit.scalpel');
  fs.writeFileSync(spec, `model m from "." {\n  components "components"\n}\ndata udhr = text "udhr.txt"\nedit ablate on m {\n  select "${DOWN}:3"\n  scale 0\n}\n`);

  const out = path.join(dir, 'out', 'edited.onnx');
  fs.mkdirSync(path.dirname(out));
  const applied = scalpel(['apply', spec, '-o', out]);
  assert.equal(applied.code, 0, applied.stderr);
  assert.match(applied.stdout, /with config\.json, tokenizer\.json copied from the model's folder, and /);
  for (const f of ['config.json', 'tokenizer.json']) assert.ok(fs.readFileSync(path.join(dir, 'out', f)).equals(fs.readFileSync(path.join(dir, f))), `${f} copied as bytes`);
  const measured = readLock(`${spec}.lock`)!.metrics.udhr;
  const alone = scalpel(['eval', '--model', out, '--data', `text:${path.join(dir, 'udhr.txt')}`, '--json']);
  assert.equal(alone.code, 0, alone.stderr);
  const r = JSON.parse(alone.stdout) as { contextLength: number; datasets: { loss: number; tokens: number }[] };
  assert.equal(r.contextLength, 64);
  assert.ok(r.datasets[0].tokens > 64 && r.datasets[0].tokens === measured.tokens, `${r.datasets[0].tokens} tokens, ${measured.tokens} measured`);
  assert.ok(Math.abs(r.datasets[0].loss - measured.after) < 1e-6, `the output alone: ${r.datasets[0].loss}; apply measured ${measured.after}`);

  // A folder that already holds a different config.json keeps it, and apply says so.
  const other = path.join(dir, 'other');
  fs.mkdirSync(other);
  const theirs = '{"max_position_embeddings": 32}\n';
  fs.writeFileSync(path.join(other, 'config.json'), theirs);
  const again = scalpel(['apply', spec, '-o', path.join(other, 'edited.onnx'), '--lock', path.join(dir, 'other.lock')], { cwd: dir });
  assert.equal(again.code, 0, again.stderr);
  assert.equal(fs.readFileSync(path.join(other, 'config.json'), 'utf8'), theirs);
  assert.match(again.stderr, /kept other\/config\.json, which differs from config\.json: the output evaluates with the kept one/);
  assert.match(again.stdout, /with tokenizer\.json copied from the model's folder, and /);
});
