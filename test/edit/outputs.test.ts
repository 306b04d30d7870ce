/**
 * Outputs never clobber inputs: `apply -o` refuses every file the spec reads or writes, and any
 * path that is not new or a regular file, leaving each one byte-identical; the model and its lock
 * are committed one rename apart, and temporaries of killed writers are removed by the next write.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { tempName } from '../../engine/atomic';
import { ScalpelError } from '../../engine/errors';
import { applyPlan } from '../../engine/edit/apply';
import { lockMatchesOutput, readLock } from '../../engine/edit/lock';
import { modelSha256, sha256File } from '../../engine/identity';
import { PlanRunner } from '../../engine/edit/run';
import { loadPlan } from '../../language/plan';
import { writeFixture, writeSpec } from './fixture';
import { scalpel } from '../helpers/cli';

function specFixture() {
  const fx = writeFixture();
  fs.writeFileSync(path.join(fx.dir, 'notes.txt'), 'Alle Menschen sind frei und gleich\n');
  return { ...fx, spec: writeSpec(fx, 'o.scalpel', 'data notes = text "notes.txt"\n') };
}

test('apply -o refuses every input of the spec and every path that is not new or a regular file', async () => {
  const fx = specFixture();
  const runner = await PlanRunner.open(loadPlan(fx.spec));
  try {
    // A first apply writes the lock, which is an input of the next one.
    await applyPlan(runner, { edits: [], outFile: path.join(fx.dir, 'first.onnx') });
    const fifo = path.join(fx.dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    const link = path.join(fx.dir, 'link.onnx');
    fs.symlinkSync(path.join(fx.dir, 'first.onnx'), link);
    const hardLink = path.join(fx.dir, 'hard.json');
    fs.linkSync(path.join(fx.dir, 'components', 'catalog.json'), hardLink);
    const refused: [string, RegExp][] = [
      [fx.spec, /refusing to overwrite the spec/],
      [`${fx.spec}.lock`, /refusing to overwrite the lock file/],
      [path.join(fx.dir, 'tokenizer.json'), /refusing to overwrite the tokenizer/],
      [path.join(fx.dir, 'components', 'catalog.json'), /refusing to overwrite the catalog \(/],
      [path.join(fx.dir, 'components', 'components.safetensors'), /refusing to overwrite the catalog tensors/],
      [path.join(fx.dir, 'notes.txt'), /refusing to overwrite the data file of notes/],
      [fx.model, /refusing to overwrite the base checkpoint/],
      [path.join(fx.dir, 'components', '..', 'model.onnx'), /refusing to overwrite the base checkpoint/],
      [hardLink, /refusing to overwrite the catalog \(/],
      [link, /refusing to write over a symbolic link/],
      [fifo, /refusing to write over a FIFO/],
      ['/dev/null', /refusing to write over a device/],
      [path.join(fx.dir, 'components'), /refusing to write over a directory/],
    ];
    const hashes = () => refused.filter(([f]) => fs.statSync(f).isFile()).map(([f]) => sha256File(f));
    const before = hashes();
    for (const [out, message] of refused) {
      await assert.rejects(applyPlan(runner, { edits: [], outFile: out }), (e: unknown) => e instanceof ScalpelError && message.test(e.message), out);
      // --lock pointing at an input is refused the same way.
      if (out !== `${fx.spec}.lock`) await assert.rejects(applyPlan(runner, { edits: [], outFile: path.join(fx.dir, 'new.onnx'), lockFile: out }), ScalpelError, `--lock ${out}`);
    }
    assert.deepEqual(hashes(), before, 'every refused file is unchanged');
    assert.ok(fs.lstatSync(link).isSymbolicLink() && fs.statSync(fifo).isFIFO(), 'links and FIFOs stay what they were');
    assert.ok(!fs.existsSync(path.join(fx.dir, 'new.onnx')), 'a refused lock writes no model either');
  } finally {
    await runner.close();
  }
  // The CLI says it in one line.
  const r = scalpel(['apply', fx.spec, '-o', fx.spec], { source: true });
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /^scalpel: .*o\.scalpel: refusing to overwrite the spec \(.*\); choose another output file\n$/);
});

test('apply commits the model and its lock together and removes temporaries of killed writers', async () => {
  const fx = specFixture();
  const out = path.join(fx.dir, 'out.onnx');
  const lockFile = `${fx.spec}.lock`;
  // Leftovers of a writer that was killed: a pid that no longer runs.
  const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout;
  const stale = [tempName(out), tempName(lockFile)].map((t) => t.replace(`.${process.pid}.`, `.${dead}.`));
  for (const t of stale) fs.writeFileSync(t, 'partial');
  const runner = await PlanRunner.open(loadPlan(fx.spec));
  try {
    const r = await applyPlan(runner, { edits: [], outFile: out });
    assert.equal(r.lock.output.sha256, modelSha256(out));
    assert.ok(lockMatchesOutput(readLock(lockFile)!, out));
  } finally {
    await runner.close();
  }
  for (const t of stale) assert.ok(!fs.existsSync(t), `${path.basename(t)} removed`);
  assert.deepEqual(fs.readdirSync(fx.dir).filter((f) => f.endsWith('.tmp')), [], 'no temporaries left');
  // A model that is not the one its lock describes is detected.
  fs.appendFileSync(out, Buffer.from([0]));
  assert.equal(lockMatchesOutput(readLock(lockFile)!, out), false);
});
