import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { ScalpelError } from '../../engine/errors';
import { Evaluator, tokenizeDataset } from '../../engine/evaluate';
import { openLanguageModel } from '../../engine/lm';
import { loadDataset, parseDataArg } from '../../engine/data';
import { Tracer } from '../../engine/trace/trace';
import { checkDeviceId, parseExecutionProviders } from '../../engine/runtime';
import { scalpel } from '../helpers/cli';

const binding = path.join(path.dirname(require.resolve('onnxruntime-node')), '..', 'bin', 'napi-v6', process.platform, process.arch);
/** This repository skips onnxruntime-node's CUDA download; on a host where someone installed it, the missing-EP tests do not apply. */
const cudaInstalled = fs.existsSync(path.join(binding, 'libonnxruntime_providers_cuda.so'));
const missingCuda = cudaInstalled ? 'onnxruntime-node has its CUDA libraries here' : false;

const lm = () => openLanguageModel('models/polyglot');
const data = (l: ReturnType<typeof lm>) => tokenizeDataset(loadDataset('inline:Alle Menschen sind frei und gleich an Würde und Rechten geboren.', parseDataArg('inline:Alle Menschen sind frei und gleich an Würde und Rechten geboren.')), l.tokenizer);

test('provider lists are checked against what this onnxruntime-node build offers', () => {
  assert.deepEqual(parseExecutionProviders('cuda, CPU'), ['cuda', 'cpu']);
  const offered = ort.listSupportedBackends().map((b) => b.name);
  assert.throws(() => parseExecutionProviders('dml'), (e: unknown) => e instanceof ScalpelError && e.message.includes('unknown execution provider "dml"') && e.message.includes(offered.join(', ')));
  assert.throws(() => parseExecutionProviders(' , '), /no execution provider given/);
  assert.throws(() => parseExecutionProviders('cpu,cpu'), /listed twice/);
  assert.throws(() => checkDeviceId(['cpu'], 1), /device id applies to cuda or tensorrt, not to cpu/);
  assert.throws(() => checkDeviceId(['cuda'], -1), /whole number/);
  checkDeviceId(['cuda', 'cpu'], 1);
});

test('an explicit cpu provider gives the default session bit for bit', async () => {
  const l = lm();
  const ds = data(l);
  const a = await Evaluator.create(l);
  const b = await Evaluator.create(l, { executionProviders: ['cpu'], threads: 1 });
  try {
    const [ra, rb] = [await a.evaluate(ds), await b.evaluate(ds)];
    assert.ok(ra.tokens > 5);
    assert.deepEqual(Buffer.from(rb.perToken.buffer), Buffer.from(ra.perToken.buffer));
    assert.equal(rb.loss, ra.loss);
  } finally {
    await a.release();
    await b.release();
  }
});

test('a missing CUDA provider is one error naming the missing libraries and how onnxruntime-node installs them', { skip: missingCuda }, async () => {
  const l = lm();
  const isMissingCuda = (e: unknown) =>
    e instanceof ScalpelError &&
    e.message.startsWith('the CUDA execution provider is not installed: libonnxruntime_providers_shared.so, libonnxruntime_providers_cuda.so missing from') &&
    e.message.includes('.npmrc: onnxruntime-node-install=skip') &&
    e.message.includes('ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install.js') &&
    e.file === l.file;
  await assert.rejects(Evaluator.create(l, { executionProviders: ['cuda'] }), isMissingCuda);
  // Tracing (the debugger) goes through the same factory.
  await assert.rejects(Tracer.create(l, { executionProviders: ['cuda'], deviceId: 1 }), isMissingCuda);
});

test('a listed fallback is used, and said once; results equal the CPU run', { skip: missingCuda }, async () => {
  const l = lm();
  const ds = data(l);
  const notes: string[] = [];
  const onFallback = (m: string) => notes.push(m);
  const cpu = await Evaluator.create(l, { executionProviders: ['cpu'] });
  const a = await Evaluator.create(l, { executionProviders: ['tensorrt', 'cpu'], onFallback });
  const b = await Evaluator.create(l, { executionProviders: ['tensorrt', 'cpu'], onFallback });
  try {
    assert.equal(notes.length, 1, notes.join('\n'));
    assert.match(notes[0], /^the TensorRT execution provider is not installed: .*; using cpu as the provider list tensorrt,cpu allows$/);
    assert.deepEqual(Buffer.from((await a.evaluate(ds)).perToken.buffer), Buffer.from((await cpu.evaluate(ds)).perToken.buffer));
    await b.evaluate(ds);
  } finally {
    for (const e of [cpu, a, b]) await e.release();
  }
});

test('scalpel eval --ep: a missing provider exits 2 with one line; cuda,cpu warns and runs; bad flags are named', { skip: missingCuda }, () => {
  const args = ['eval', '--model', 'models/polyglot', '--data', 'inline:Die Würde des Menschen ist unantastbar.', '--json'];
  const missing = scalpel([...args, '--ep', 'cuda']);
  assert.equal(missing.code, 2);
  assert.equal(missing.stdout, '');
  const lines = missing.stderr.trim().split('\n');
  assert.equal(lines.length, 1, missing.stderr);
  assert.match(lines[0], /^scalpel: \S*models\/polyglot\/model\.onnx: the CUDA execution provider is not installed: .*ONNXRUNTIME_NODE_INSTALL=cuda12/);

  const fallback = scalpel([...args, '--ep', 'cuda,cpu', '--device-id', '1']);
  assert.equal(fallback.code, 0, fallback.stderr);
  assert.match(fallback.stderr, /^scalpel: warning: the CUDA execution provider is not installed: .*; using cpu as the provider list cuda,cpu allows\n$/);
  const plain = scalpel([...args]);
  assert.equal(plain.code, 0, plain.stderr);
  assert.deepEqual(JSON.parse(fallback.stdout).datasets, JSON.parse(plain.stdout).datasets);

  for (const [flags, why] of [
    [['--ep', 'dml'], /^scalpel: unknown execution provider "dml": onnxruntime-node on linux\/x64 offers cpu, /],
    [['--device-id', '1'], /^scalpel: a device id applies to cuda or tensorrt, not to cpu\n$/],
    [['--ep', 'cuda', '--device-id', 'x'], /^scalpel: --device-id takes a whole number from 0, not "x"\n$/],
  ] as const) {
    const r = scalpel([...args, ...flags]);
    assert.equal(r.code, 2, flags.join(' '));
    assert.match(r.stderr, why);
  }
});

test('a provider that is installed but cannot start (WebGPU without an adapter) is named with onnxruntime\'s reason', async () => {
  const l = lm();
  const ds = data(l);
  let ev: Evaluator | undefined;
  try {
    ev = await Evaluator.create(l, { executionProviders: ['webgpu'] });
  } catch (e) {
    assert.ok(e instanceof ScalpelError, String(e));
    assert.match(e.message, /^onnxruntime could not start the WebGPU execution provider: .+ \(it needs a GPU adapter through Vulkan/);
    return;
  }
  // A host with a GPU adapter: the provider runs, and agrees with the CPU.
  const cpu = await Evaluator.create(l);
  try {
    const [g, c] = [await ev.evaluate(ds), await cpu.evaluate(ds)];
    for (let i = 0; i < c.perToken.length; i++) assert.ok(Math.abs(g.perToken[i] - c.perToken[i]) < 1e-3, `token ${i}`);
  } finally {
    await ev.release();
    await cpu.release();
  }
});

test('every onnxruntime session in the tree is made by engine/runtime.ts', () => {
  const offenders: string[] = [];
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.ts$/.test(e.name) && p !== path.join('engine', 'runtime.ts') && /InferenceSession\.create\(/.test(fs.readFileSync(p, 'utf8'))) offenders.push(p);
    }
  };
  for (const dir of ['engine', 'cli', 'language', 'extension', 'debugger']) walk(dir);
  assert.deepEqual(offenders, []);
});
