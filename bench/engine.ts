/**
 * Engine benchmarks. Prints figures as ratios against baselines measured in the same run:
 *   1. evaluation throughput through the engine vs a bare InferenceSession.run loop on the same batches;
 *   2. writing an edited copy (one tensor changed) vs fs.copyFile, on the demo model and on a
 *      synthetic GPT-2-small-sized model (≈124M parameters, generated here);
 *   3. peak memory of that write (child process, peak RSS) vs the changed tensor's size.
 *
 *   npm run bench            (SCALPEL_BENCH_SKIP_LARGE=1 skips the 500 MB model)
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import * as ort from 'onnxruntime-node';
import { loadDataset, parseDataArg } from '../engine/data';
import { openLanguageModel } from '../engine/lm';
import { Evaluator, tokenizeDataset } from '../engine/evaluate';
import { openModel, readFloatTensor } from '../engine/onnx/model';
import { writeEditedModel } from '../engine/onnx/write';
import { writeGpt2Small } from './synthetic';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const ms = (f: () => void) => {
  const t = performance.now();
  f();
  return performance.now() - t;
};

async function evalThroughput(): Promise<void> {
  const lm = openLanguageModel('models/polyglot');
  const data = ['deu', 'fra', 'spa', 'ita', 'eng'].map((c) => tokenizeDataset(loadDataset(c, parseDataArg(`udhr:${c}`)), lm.tokenizer));
  const tokens = data.reduce((a, d) => a + d.ids.length - 1, 0);
  const ev = await Evaluator.create(lm, { batchSize: 8 });
  const bare = await ort.InferenceSession.create(lm.file, { graphOptimizationLevel: 'all' });
  const ctx = lm.contextLength;
  // The same windows the engine runs, as [batch, length] tensors, built once outside the timed loop.
  const batches: ort.Tensor[] = [];
  for (const d of data) {
    const starts: number[] = [];
    for (let s = 0; s < d.ids.length - 1; s += ctx) starts.push(s);
    for (let i = 0; i < starts.length; i += 8) {
      const rows = starts.slice(i, i + 8).map((s) => d.ids.subarray(s, Math.min(d.ids.length - 1, s + ctx)));
      const len = Math.max(...rows.map((r) => r.length));
      const ids = new BigInt64Array(rows.length * len);
      rows.forEach((r, k) => r.forEach((v, t) => (ids[k * len + t] = BigInt(v))));
      batches.push(new ort.Tensor('int64', ids, [rows.length, len]));
    }
  }
  const engineTimes: number[] = [];
  const bareTimes: number[] = [];
  for (let rep = 0; rep < 5; rep++) {
    let t = performance.now();
    for (const d of data) await ev.evaluate(d);
    engineTimes.push(performance.now() - t);
    t = performance.now();
    for (const b of batches) await bare.run({ [lm.inputName]: b }, [lm.logitsName]);
    bareTimes.push(performance.now() - t);
  }
  const e = tokens / (median(engineTimes) / 1000);
  const b = tokens / (median(bareTimes) / 1000);
  console.log(`eval throughput: engine ${Math.round(e)} tokens/s, bare InferenceSession.run ${Math.round(b)} tokens/s, ratio ${(e / b).toFixed(3)} (target >= 0.9; ${tokens} tokens, ${batches.length} batches of <= 8x${ctx}, median of 5)`);
  await ev.release();
  await bare.release();
}

function flushDisk(): void {
  execFileSync('sync');
}

function writeVsCopy(label: string, source: string, tensor: string, reps: number): void {
  // Copy and write both go to the same temporary folder, so they share a file system.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scalpel-bench-'));
  const m = openModel(source);
  const values = readFloatTensor(m, tensor);
  m.close();
  for (let i = 0; i < values.length; i += 7) values[i] += 0.01;
  const copyTimes: number[] = [];
  const durableCopyTimes: number[] = [];
  const writeTimes: number[] = [];
  for (let r = 0; r < reps; r++) {
    const a = path.join(dir, `copy${r}.onnx`);
    const c = path.join(dir, `durable${r}.onnx`);
    const b = path.join(dir, `edit${r}.onnx`);
    // Each operation starts with no dirty pages pending: on ext4 (data=ordered) an fsync also writes out
    // other files' unsynced data, so without this the writer would pay for the copies made before it.
    flushDisk();
    copyTimes.push(ms(() => fs.copyFileSync(source, a)));
    // The writer's durability (data on disk before the rename) costs a flush that copyFile alone skips.
    flushDisk();
    durableCopyTimes.push(ms(() => {
      fs.copyFileSync(source, c);
      const fd = fs.openSync(c, 'r+');
      fs.fdatasyncSync(fd);
      fs.closeSync(fd);
    }));
    flushDisk();
    writeTimes.push(ms(() => writeEditedModel(source, b, new Map([[tensor, values]]))));
    for (const f of [a, b, c]) fs.rmSync(f);
  }
  const size = fs.statSync(source).size;
  const w = median(writeTimes);
  console.log(
    `write edited copy (${label}, ${(size / 2 ** 20).toFixed(1)} MiB, ${tensor} changed, median of ${reps}): ${w.toFixed(1)} ms; ` +
      `fs.copyFile ${median(copyTimes).toFixed(1)} ms (ratio ${(w / median(copyTimes)).toFixed(2)}, target <= 1.5); ` +
      `fs.copyFile + fdatasync ${median(durableCopyTimes).toFixed(1)} ms (ratio ${(w / median(durableCopyTimes)).toFixed(2)})`,
  );
  const out = path.join(dir, 'mem.onnx');
  const child = JSON.parse(execFileSync(process.execPath, ['--import', 'tsx', 'bench/write-memory.ts', source, out, tensor], { encoding: 'utf8' }));
  const extra = child.afterWrite - child.afterTensor;
  console.log(`peak memory of the write (${label}): +${(extra / 1024).toFixed(1)} MiB peak RSS during the write, beyond the changed tensor's one copy (${(child.tensorKiB / 1024).toFixed(1)} MiB, held before the write); baseline ${(child.baseline / 1024).toFixed(0)} MiB`);
  fs.rmSync(dir, { recursive: true, force: true });
}

async function main(): Promise<void> {
  console.log(`# scalpel engine bench — ${os.cpus().length} cores, node ${process.version}, onnxruntime-node ${require('onnxruntime-node/package.json').version}`);
  await evalThroughput();
  writeVsCopy('demo model', 'models/polyglot/model.onnx', 'h.1.mlp.c_fc.weight', 15);
  if (!process.env.SCALPEL_BENCH_SKIP_LARGE) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scalpel-gpt2-'));
    const file = path.join(dir, 'gpt2-small-random.onnx');
    const t = performance.now();
    const params = writeGpt2Small(file);
    console.log(`generated ${file}: ${(params / 1e6).toFixed(1)}M parameters, ${(fs.statSync(file).size / 2 ** 20).toFixed(0)} MiB in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    writeVsCopy('synthetic GPT-2 small', file, 'h.5.mlp.c_fc.weight', 5);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
