/**
 * `npm run bench:real`: the engine on GPT-2-small-class models, generated here (bench/gpt2-model.ts), with
 * ratios against baselines measured in the same run:
 *
 *   1. a 124M-parameter GPT-2 (weights inline, 498 MB): evaluation vs a bare onnxruntime-node loop on the same
 *      windows; apply's write vs `cp`; peak RSS of evaluation and of labelling vs the model's size;
 *   2. a model over 2 GB (external data): evaluation, apply and a debugger trace work, with their peak RSS vs the
 *      model's size, and a bare session loading the same file from its path.
 *
 * Memory is measured in child processes (VmHWM, bench/memory.ts), one job each. The machine is shared
 * (other jobs run), so read the ratios, not the seconds. `--skip-large` leaves out part 2.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { commands } from '../cli/commands';
import { Evaluator, tokenizeDataset } from '../engine/evaluate';
import { LanguageModel, openLanguageModel } from '../engine/lm';
import { readFloatTensor } from '../engine/onnx/model';
import { moduleWeights } from '../engine/onnx/modules';
import { writeEditedModel } from '../engine/onnx/write';
import { Tracer } from '../engine/trace/trace';
import { GPT2_SMALL, Gpt2Shape, parameterCount, writeGpt2 } from './gpt2-model';
import { runJobIfAsked } from './memory';

const CONTEXT = 256;
const TOKENS = 4 * CONTEXT + 1;
const LARGE: Gpt2Shape = { layers: 10, dModel: 2048, heads: 16, vocab: 50257, context: 1024 };
const MB = 2 ** 20;

function text(n: number): string {
  const words = 'the of and to in is that it for as with was on be by this are from at or an which not have'.split(' ');
  let s = '';
  for (let i = 0; s.length < n; i++) s += `${words[(i * 7919) % words.length]} `;
  return s.slice(0, n);
}

function tokens(lm: LanguageModel, n: number) {
  return tokenizeDataset({ name: 'bench', source: 'bench', documents: [{ text: text(n * 2), tags: {} }] }, lm.tokenizer, n);
}

const seconds = (t0: number) => (performance.now() - t0) / 1000;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Runs one job of this script in a fresh process; returns what it printed as JSON, with its peak RSS. */
function child(job: string, dir: string): Record<string, number> & { rssMB: number } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', __filename, '--job', job, dir], { encoding: 'utf8', maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new Error(`job ${job} failed: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

async function job(name: string, dir: string): Promise<Record<string, number>> {
  if (name === 'bare-load') {
    const t0 = performance.now();
    const s = await ort.InferenceSession.create(path.join(dir, 'model.onnx'), { graphOptimizationLevel: 'all' });
    const ids = BigInt64Array.from({ length: 64 }, (_, i) => BigInt(i % 200));
    await s.run({ input_ids: new ort.Tensor('int64', ids, [1, 64]), position_ids: new ort.Tensor('int64', BigInt64Array.from({ length: 64 }, (_, i) => BigInt(i)), [1, 64]) });
    return { seconds: seconds(t0) };
  }
  const lm = openLanguageModel(dir, { contextLength: CONTEXT });
  if (name === 'eval') {
    const t0 = performance.now();
    const ev = await Evaluator.create(lm, { threads: 2 });
    const r = await ev.evaluate(tokens(lm, 2 * 64 + 1));
    return { seconds: seconds(t0), loss: r.loss, batch: ev.batchSize };
  }
  if (name === 'label') {
    // The CLI's own commands, in this process: a neuron catalog of one MLP, labelled on two tagged texts.
    const run = (argv: string[]) => commands.find((c) => c.name === argv[0])!.run(argv.slice(1));
    const catalog = path.join(dir, 'components');
    const files = ['a', 'b'].map((tag, i) => {
      const f = path.join(dir, `${tag}.txt`);
      fs.writeFileSync(f, text(600 + 40 * i));
      return `${tag}=text:${f}`;
    });
    const t0 = performance.now();
    await run(['decompose', '--model', dir, '--method', 'neuron', '--modules', 'transformer.h.1.mlp.*', '-o', catalog]);
    await run(['label', '--model', dir, '--components', catalog, '--data', files[0], '--data', files[1], '--threads', '2']);
    return { seconds: seconds(t0) };
  }
  if (name === 'apply') {
    const mw = moduleWeights(lm.onnx).find((m) => m.module.endsWith('.mlp.c_proj'))!;
    const w = readFloatTensor(lm.onnx, mw.initializer);
    w[0] += 1;
    const out = path.join(dir, 'edited', 'model.onnx');
    fs.mkdirSync(path.dirname(out), { recursive: true });
    const t0 = performance.now();
    writeEditedModel(lm.file, out, new Map([[mw.initializer, w]]));
    return { seconds: seconds(t0) };
  }
  if (name === 'trace') {
    const mw = moduleWeights(lm.onnx).find((m) => m.module.endsWith('.mlp.c_proj'))!;
    const w = readFloatTensor(lm.onnx, mw.initializer).map((v) => v * 0.5);
    const t0 = performance.now();
    const tracer = await Tracer.create(lm, { patches: new Map([[mw.initializer, w]]), threads: 2 });
    const trace = await tracer.trace(tokens(lm, 32).ids);
    await tracer.release();
    return { seconds: seconds(t0), recordedMB: trace.bytes / MB };
  }
  throw new Error(`no job ${name}`);
}

function modelBytes(dir: string): number {
  return fs.readdirSync(dir).filter((f) => f.startsWith('model.onnx')).reduce((a, f) => a + fs.statSync(path.join(dir, f)).size, 0);
}

async function evalVsBare(dir: string): Promise<void> {
  const lm = openLanguageModel(dir, { contextLength: CONTEXT });
  const ds = tokens(lm, TOKENS);
  const ev = await Evaluator.create(lm, { threads: 2 });
  const bare = await ort.InferenceSession.create(lm.file, { graphOptimizationLevel: 'all', intraOpNumThreads: 2 });
  // The same windows, batched as the engine batches them.
  const windows: BigInt64Array[] = [];
  for (let s = 0; s + 1 < ds.ids.length; s += CONTEXT) windows.push(BigInt64Array.from(ds.ids.subarray(s, s + CONTEXT), BigInt));
  const b = ev.batchSize;
  const runBare = async () => {
    for (let i = 0; i < windows.length; i += b) {
      const batch = windows.slice(i, i + b);
      const ids = new BigInt64Array(batch.length * CONTEXT);
      batch.forEach((w, r) => ids.set(w, r * CONTEXT));
      const pos = BigInt64Array.from({ length: ids.length }, (_, k) => BigInt(k % CONTEXT));
      await bare.run({ input_ids: new ort.Tensor('int64', ids, [batch.length, CONTEXT]), position_ids: new ort.Tensor('int64', pos, [batch.length, CONTEXT]) });
    }
  };
  await runBare(); // warm-up, both
  await ev.evaluate(ds);
  const bareS: number[] = [];
  const engineS: number[] = [];
  for (let i = 0; i < 2; i++) {
    let t0 = performance.now();
    await runBare();
    bareS.push(seconds(t0));
    t0 = performance.now();
    await ev.evaluate(ds);
    engineS.push(seconds(t0));
  }
  const tokensScored = ds.ids.length - 1;
  console.log(`  eval ${tokensScored} tokens (windows of ${CONTEXT}, batch ${b}, 2 threads): engine ${median(engineS).toFixed(2)} s, bare loop ${median(bareS).toFixed(2)} s → engine/bare throughput ${(median(bareS) / median(engineS)).toFixed(2)} (target ≥ 1.0)`);
  await ev.release();
  await bare.release();
}

function applyVsCp(dir: string, r: Record<string, number>): void {
  const copyS: number[] = [];
  for (let i = 0; i < 2; i++) {
    const out = path.join(dir, 'copy');
    fs.rmSync(out, { recursive: true, force: true });
    fs.mkdirSync(out);
    const t0 = performance.now();
    for (const f of fs.readdirSync(dir).filter((x) => x.startsWith('model.onnx'))) fs.copyFileSync(path.join(dir, f), path.join(out, f));
    copyS.push(seconds(t0));
    fs.rmSync(out, { recursive: true });
  }
  console.log(`  apply write ${r.seconds.toFixed(2)} s (fsynced), copyFile of the same files ${median(copyS).toFixed(2)} s (not synced) → write/cp ${(r.seconds / median(copyS)).toFixed(2)} (target ≤ 1.2)`);
}

async function main(): Promise<void> {
  if (await runJobIfAsked(job)) return;
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'scalpel-bench-real-'));
  try {
    console.log(`bench:real on ${os.cpus().length} cores (shared machine: other jobs run; compare ratios, not seconds)`);
    const small = path.join(root, 'gpt2-small');
    let t0 = performance.now();
    writeGpt2(small, GPT2_SMALL, { external: false });
    const smallMB = modelBytes(small) / MB;
    console.log(`\n1. GPT-2 small layout: ${(parameterCount(GPT2_SMALL) / 1e6).toFixed(1)}M parameters, ${smallMB.toFixed(0)} MB inline (generated in ${seconds(t0).toFixed(1)} s)`);
    await evalVsBare(small);
    const ev = child('eval', small);
    console.log(`  eval in a fresh process: peak RSS ${ev.rssMB.toFixed(0)} MB = ${(ev.rssMB / smallMB).toFixed(2)}× the model (${ev.seconds.toFixed(1)} s, batch ${ev.batch})`);
    const bare = child('bare-load', small);
    console.log(`  bare onnxruntime session from the path + one run: peak RSS ${bare.rssMB.toFixed(0)} MB (${bare.seconds.toFixed(1)} s)`);
    const label = child('label', small);
    console.log(`  decompose (neuron, h.1 MLP) + label on 2 × ~600 tokens (full context): peak RSS ${label.rssMB.toFixed(0)} MB vs the target 2 × model + 1 GB = ${(2 * smallMB + 1024).toFixed(0)} MB (${label.seconds.toFixed(1)} s)`);
    applyVsCp(small, child('apply', small));
    const trace = child('trace', small);
    console.log(`  debugger trace (base + edited, 32 tokens): ${trace.seconds.toFixed(1)} s, peak RSS ${trace.rssMB.toFixed(0)} MB`);
    fs.rmSync(small, { recursive: true });

    if (process.argv.includes('--skip-large')) return;
    const large = path.join(root, 'large');
    t0 = performance.now();
    writeGpt2(large, LARGE, { external: true });
    const largeMB = modelBytes(large) / MB;
    console.log(`\n2. Over 2 GiB: ${(parameterCount(LARGE) / 1e6).toFixed(0)}M parameters, ${(largeMB / 1024).toFixed(2)} GiB in model.onnx_data, over protobuf's 2 GiB limit (generated in ${seconds(t0).toFixed(1)} s)`);
    const lb = child('bare-load', large);
    console.log(`  bare onnxruntime session from the path + one run: ${lb.seconds.toFixed(1)} s, peak RSS ${lb.rssMB.toFixed(0)} MB`);
    const le = child('eval', large);
    console.log(`  eval (129 tokens): ${le.seconds.toFixed(1)} s, peak RSS ${le.rssMB.toFixed(0)} MB = ${(le.rssMB / largeMB).toFixed(2)}× the model; vs bare ${(le.rssMB / lb.rssMB).toFixed(2)}×`);
    const la = child('apply', large);
    applyVsCp(large, la);
    console.log(`  apply peak RSS ${la.rssMB.toFixed(0)} MB`);
    const lt = child('trace', large);
    console.log(`  debugger trace (base + edited, 32 tokens): ${lt.seconds.toFixed(1)} s, peak RSS ${lt.rssMB.toFixed(0)} MB = ${(lt.rssMB / largeMB).toFixed(2)}× the model`);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
