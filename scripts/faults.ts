/**
 * `npm run faults [-- KILLS]`: kill -9 `scalpel apply` at random moments (default 120 times) on a
 * copy of the demo model, alternating the spec's scale so that a model paired with the other run's
 * lock would show, and count what the kills leave: temporaries, models without a lock, models whose
 * lock describes other bytes, a changed base model, and temporaries still there after the next run.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { lockMatchesOutput, readLock } from '../engine/edit/lock';
import { sha256File } from '../engine/identity';

const ROOT = path.join(__dirname, '..');
const kills = Number(process.argv[2] ?? 120);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scalpel-faults-'));
const model = path.join(dir, 'model');
fs.mkdirSync(model);
for (const f of ['model.onnx', 'tokenizer.json', 'config.json']) fs.copyFileSync(path.join(ROOT, 'models', 'polyglot', f), path.join(model, f));
fs.cpSync(path.join(ROOT, 'models', 'polyglot', 'components'), path.join(model, 'components'), { recursive: true });
const spec = path.join(dir, 'edit.scalpel');
const out = path.join(dir, 'out.onnx');
const lock = `${spec}.lock`;
const writeSpec = (scale: number) => fs.writeFileSync(spec, `model demo from "model" { components "model/components" }
data german = inline "Alle Menschen sind frei und gleich an Würde und Rechten geboren."
data english = inline "All human beings are born free and equal in dignity and rights."
guard others = [english] within 100 nats
edit e on demo {
  select "h.1.mlp.c_fc:3"
  scale ${scale}
  keep others
}
expect e: loss(german) moves by >= 0 nats
`);
const cli = path.join(ROOT, 'dist', 'cli.js');
const base = sha256File(path.join(model, 'model.onnx'));
const temporaries = () => fs.readdirSync(dir).filter((f) => f.endsWith('.tmp'));

function runApply(killAfterMs?: number): Promise<{ code: number | null; ms: number }> {
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(process.execPath, [cli, 'apply', spec, '-o', out], { stdio: 'ignore' });
    const timer = killAfterMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, ms: Date.now() - started });
    });
  });
}

async function main(): Promise<void> {
  writeSpec(0);
  const full = await runApply();
  if (full.code !== 0) throw new Error(`a plain apply failed (exit ${full.code}): ${spawnSync(process.execPath, [cli, 'apply', spec, '-o', out], { encoding: 'utf8' }).stderr}`);
  const counts = { kills: 0, finishedBeforeKill: 0, leftTemporaries: 0, modelWithoutLock: 0, lockMismatch: 0, temporariesAfterNextRun: 0, baseChanged: 0 };
  for (let i = 0; i < kills; i++) {
    writeSpec(i % 2 ? 0 : 0.5);
    // Most of an apply is loading and evaluating; kill anywhere from a third of a run to just past its end.
    const r = await runApply(full.ms * (0.3 + Math.random() * 0.9));
    if (r.code === null) counts.kills++;
    else counts.finishedBeforeKill++;
    if (temporaries().length) counts.leftTemporaries++;
    if (fs.existsSync(out)) {
      const l = fs.existsSync(lock) ? readLock(lock) : undefined;
      if (!l) counts.modelWithoutLock++;
      else if (!lockMatchesOutput(l, out)) counts.lockMismatch++;
    }
    if (i % 10 === 9) {
      // The next complete run removes what killed ones left.
      await runApply();
      if (temporaries().length) counts.temporariesAfterNextRun++;
      process.stderr.write(`${i + 1}/${kills} runs, ${counts.kills} killed\n`);
    }
  }
  await runApply();
  if (temporaries().length) counts.temporariesAfterNextRun++;
  if (sha256File(path.join(model, 'model.onnx')) !== base) counts.baseChanged++;
  console.log(`apply runs: ${kills} (a full run took ${full.ms} ms)`);
  console.log(`killed with -9: ${counts.kills} (finished before the kill: ${counts.finishedBeforeKill})`);
  console.log(`kills that left temporaries: ${counts.leftTemporaries}`);
  console.log(`temporaries left after the next complete run: ${counts.temporariesAfterNextRun}`);
  console.log(`model without a lock after a kill: ${counts.modelWithoutLock}`);
  console.log(`model whose lock describes other bytes after a kill: ${counts.lockMismatch}`);
  console.log(`base model changed: ${counts.baseChanged}`);
  fs.rmSync(dir, { recursive: true, force: true });
  process.exitCode = counts.temporariesAfterNextRun || counts.modelWithoutLock || counts.baseChanged ? 1 : 0;
}

void main();
