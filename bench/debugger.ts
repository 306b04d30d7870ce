/**
 * Debugger figures on the demo model (npm run bench:debugger [-- MODEL_DIR]):
 *
 * - launch → first stop: over DAP on stdio against the built CLI (`node bin/scalpel.js dap`), from the
 *   launch request to the first `stopped` event (tokenize, two traced sessions, two recorded runs);
 * - per step: a step request until the editor has what it shows (stopped, stackTrace, scopes, and the
 *   variables of all four scopes), for every stop of a step-in walk through the whole pass;
 * - memory: the adapter process's resident set after the walk, and in-process what a session holds
 *   (recorded tensors, and the heap + array-buffer growth of one launched runtime).
 *
 * Baseline, measured in the same run: one plain onnxruntime session of the same model created from
 * its bytes and run once on the same tokens (what re-running the model per step would cost at least).
 * Needs `npm run build` first (the stdio adapter is the bundled CLI).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { DebugClient } from '@vscode/debugadapter-testsupport';
import { DebugProtocol } from '@vscode/debugprotocol';
import { launchRuntime } from '../debugger/launch';
import { tokenizeDataset } from '../engine/evaluate';
import { openLanguageModel } from '../engine/lm';
import { moduleWeights } from '../engine/onnx/modules';

const ROOT = path.join(__dirname, '..');
const MODEL = path.resolve(process.argv[2] ?? path.join(ROOT, 'models', 'polyglot'));
const INPUT = 'Alle Menschen sind frei und gleich an Würde und Rechten geboren. Sie sind mit Vernunft und Gewissen begabt und sollen einander im Geist der Brüderlichkeit begegnen.';
/** Output unit 17 of block 1's MLP up-projection, by the model's own module name (`h.1.mlp.c_fc`, `transformer.h.1.mlp.c_fc`). */
const SCALES = (() => {
  const m = fs.existsSync(path.join(MODEL, 'model.onnx')) ? moduleWeights(openLanguageModel(MODEL).onnx).find((w) => /(^|\.)h\.1\.mlp\.c_fc$/.test(w.module)) : undefined;
  return { [`${m?.module ?? 'h.1.mlp.c_fc'}:n17`]: 0 };
})();

function stats(xs: number[]) {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  return { n: s.length, median: q(0.5), p95: q(0.95), max: s[s.length - 1] };
}

async function baseline(): Promise<number> {
  const lm = openLanguageModel(MODEL);
  const ids = tokenizeDataset({ name: 'x', source: 'x', documents: [{ text: INPUT, tags: {} }] }, lm.tokenizer).ids.subarray(0, lm.contextLength);
  const t0 = performance.now();
  const session = await ort.InferenceSession.create(lm.file, { graphOptimizationLevel: 'all' });
  const feeds: Record<string, ort.Tensor> = { [lm.inputName]: new ort.Tensor('int64', BigInt64Array.from(ids, BigInt), [1, ids.length]) };
  // Exports that take positions (Hugging Face GPT-2) get 0..T−1.
  if (session.inputNames.includes('position_ids')) feeds.position_ids = new ort.Tensor('int64', BigInt64Array.from(ids, (_, i) => BigInt(i)), [1, ids.length]);
  await session.run(feeds);
  const ms = performance.now() - t0;
  await session.release();
  return ms;
}

/** Resident set of the adapter: the client spawned `sh -c "node …"`, so it is the shell's child unless the shell exec'd it. */
function adapterRss(dc: DebugClient): number {
  const shell = (dc as unknown as { _adapterProcess: { pid: number } })._adapterProcess.pid;
  const children = fs.readFileSync(`/proc/${shell}/task/${shell}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
  const pid = children[0] ?? String(shell);
  return Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) * 1024;
}

async function overDap() {
  if (!fs.existsSync(path.join(ROOT, 'dist', 'cli.js'))) throw new Error('run `npm run build` first: the adapter under test is the bundled CLI');
  const dc = new DebugClient('node', 'bin/scalpel.js dap', 'scalpel', { cwd: ROOT, shell: true });
  dc.defaultTimeout = 120_000; // a launch on a 124M model takes seconds; the 5 s default is for tests
  await dc.start();
  try {
    return await walk(dc);
  } finally {
    await dc.stop(); // also on failure, or the adapter keeps this process alive
  }
}

async function walk(dc: DebugClient) {
  await dc.initializeRequest();
  const idle = adapterRss(dc);
  const stopped = dc.waitForEvent('stopped');
  const t0 = performance.now();
  await Promise.all([
    dc.waitForEvent('initialized').then(() => dc.configurationDoneRequest()),
    dc.launchRequest({ model: MODEL, input: INPUT, scales: SCALES, stopOnEntry: true } as DebugProtocol.LaunchRequestArguments),
    stopped,
  ]);
  const firstStop = performance.now() - t0;
  const steps: { ms: number; at: string }[] = [];
  // The walk ends at the logits, the last stop point.
  for (let at = ''; at !== 'logits'; ) {
    const t1 = performance.now();
    const next = dc.waitForEvent('stopped');
    await dc.stepInRequest({ threadId: 1 });
    await next;
    at = (await dc.stackTraceRequest({ threadId: 1 })).body.stackFrames[0].name;
    const scopes = await dc.scopesRequest({ frameId: 1 });
    for (const s of scopes.body.scopes) await dc.variablesRequest({ variablesReference: s.variablesReference });
    steps.push({ ms: performance.now() - t1, at });
  }
  const rss = adapterRss(dc);
  return { firstStop, steps, rss, idle };
}

/** Collects garbage where node runs with --expose-gc (the npm script passes it), so deltas are live memory. */
function settle(): NodeJS.MemoryUsage {
  (globalThis as { gc?: () => void }).gc?.();
  return process.memoryUsage();
}

async function inProcess() {
  const before = settle();
  const l = await launchRuntime({ model: MODEL, input: INPUT, scales: SCALES });
  const rt = l.runtime;
  await rt.start(true, false);
  // Fill every cache a full walk fills (activations, lens, contributions).
  for (let r = await rt.stepIn(); r.reason !== 'terminated'; r = await rt.stepIn()) {
    for (const f of rt.frames().slice(0, 1)) for (const s of rt.scopes(f)) s.variables();
  }
  const after = settle();
  const recorded = rt.analysis.trace.bytes;
  await l.release();
  return { recorded, heap: after.heapUsed - before.heapUsed, buffers: after.arrayBuffers - before.arrayBuffers };
}

async function main() {
  if (!fs.existsSync(path.join(MODEL, 'model.onnx'))) throw new Error(`no model at ${MODEL} (the demo model lands in models/polyglot)`);
  const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
  await baseline(); // warm the file cache and ORT's first-use costs, as the adapter's own process has them warm after its first launch
  const base = await baseline();
  const dap = await overDap();
  const mem = await inProcess();
  const st = stats(dap.steps.map((s) => s.ms));
  const slowest = dap.steps.reduce((a, b) => (b.ms > a.ms ? b : a));
  process.stdout.write(
    [
      `model ${MODEL}; input ${INPUT.length} chars; edit ${Object.keys(SCALES).join(', ')} × 0`,
      `baseline: one plain ORT session create + run of the same tokens: ${base.toFixed(1)} ms`,
      `launch → first stop (DAP, stdio): ${dap.firstStop.toFixed(1)} ms  (${(dap.firstStop / base).toFixed(2)}× baseline; target ≤ 2000 ms)`,
      `per step (step + stack + scopes + all scope variables), ${st.n} steps: median ${st.median.toFixed(2)} ms, p95 ${st.p95.toFixed(2)} ms, max ${st.max.toFixed(2)} ms at ${slowest.at}  (median ${(st.median / base).toFixed(3)}× baseline; target ≤ 50 ms)`,
      `memory: adapter process RSS ${mib(dap.idle)} before launch, ${mib(dap.rss)} after the walk (+${mib(dap.rss - dap.idle)}); in-process per session: recorded tensors ${mib(mem.recorded)}, heap +${mib(mem.heap)}, array buffers +${mib(mem.buffers)}`,
    ].join('\n') + '\n',
  );
}

main().catch((err) => {
  process.stderr.write(`bench:debugger: ${(err as Error).message}\n`);
  process.exitCode = 2;
});
