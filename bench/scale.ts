/**
 * `npm run bench:scale`: catalogs, decompositions and the edit workflow at GPT-2-small scale (bench/gpt2-model.ts,
 * generated here), each figure with its baseline measured in the same run:
 *
 *   neuron       neuron decomposition of every MLP matrix: time, peak RSS, the catalog's size on disk vs the MLP
 *                weights' size and vs what the dense identities would take;
 *   svd          rank-64 SVD of every MLP matrix (randomized, `truncatedSvd`), total time vs the 2-minute target;
 *                `svd-accuracy` (not run by default: its baseline takes minutes) adds one matrix's singular values
 *                against the full Jacobi SVD;
 *   torch        engine evaluation vs PyTorch eager (bench/torch_gpt2.py, /usr/bin/python3) on the same weights,
 *                windows and threads, with both losses;
 *   preview      a new scale of one component → Δloss on 5 datasets of 2,000 tokens vs a plain evaluation of them;
 *   apply        `scalpel apply SPEC` end to end vs `scalpel eval SPEC` (the measurement it makes);
 *   apply-large  the same on a model over 2 GiB (external data), with peak RSS vs the model's size;
 *   debugger     bench/debugger.ts (launch → first stop, per step, memory) on the 124M model;
 *   stream       a generated catalog of 600,000 labelled components (more than V8's 512 MiB string limit as JSON):
 *                written and read back streamed, vs `JSON.stringify` of the same catalog failing.
 *
 * `--only a,b` picks sections (the default: all but svd-accuracy). Heavy jobs run in child processes (peak RSS per
 * job). The machine is shared: the load average is printed with the figures; compare ratios, not seconds.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readCatalogMetadata } from '../engine/catalog/read';
import { writeCatalog } from '../engine/catalog/write';
import { CATALOG_FORMAT, Catalog, ComponentInfo } from '../engine/catalog/types';
import { decompose, inOut } from '../engine/decompose';
import { GemmSessions } from '../engine/decompose/products';
import { svd, truncatedSvd } from '../engine/decompose/svd';
import { openLanguageModel } from '../engine/lm';
import { readFloatTensor } from '../engine/onnx/model';
import { moduleWeights } from '../engine/onnx/modules';
import { commands } from '../cli/commands';
import { PreviewSession } from '../engine/edit/preview';
import { WeightEditor, neuronComponent } from '../engine/edit/weights';
import { Evaluator, tokenizeDataset } from '../engine/evaluate';
import { GPT2_SMALL, Gpt2Shape, writeGpt2 } from './gpt2-model';
import { runJobIfAsked } from './memory';

/** Over protobuf's 2 GiB (as bench:real's): 10 layers of width 2,048, weights in model.onnx_data. */
const LARGE: Gpt2Shape = { layers: 10, dModel: 2048, heads: 16, vocab: 50257, context: 1024 };

/** Module paths of the generated GPT-2 start with this (the Hugging Face tree). */
const GPT2_MODULE_PREFIX = 'transformer.';
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const MB = 2 ** 20;
const seconds = (t0: number) => (performance.now() - t0) / 1000;
const load = () => os.loadavg().map((x) => x.toFixed(1)).join(' ');

function child(job: string, dir: string): Record<string, number> & { rssMB: number } {
  const r = spawnSync(process.execPath, ['--max-old-space-size=12288', '--import', 'tsx', __filename, '--job', job, dir], { encoding: 'utf8', maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new Error(`job ${job} failed: ${r.stderr.trim().split('\n').slice(-5).join(' | ')}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

async function job(name: string, dir: string): Promise<Record<string, number>> {
  if (name === 'neuron') {
    const lm = openLanguageModel(dir);
    const t0 = performance.now();
    const d = await decompose(lm, { method: 'neuron' });
    const out = path.join(dir, 'neuron');
    writeCatalog(out, d.catalog, d.tensors);
    const s = seconds(t0);
    const identityBytes = d.catalog.modules.reduce((a, m) => a + 4 * m.components * m.components, 0);
    const weightBytes = d.catalog.modules.reduce((a, m) => a + 4 * m.dIn * m.dOut, 0);
    return {
      seconds: s, components: d.catalog.components.length, modules: d.catalog.modules.length,
      tensorsMB: fs.statSync(path.join(out, 'components.safetensors')).size / MB, jsonMB: fs.statSync(path.join(out, 'catalog.json')).size / MB,
      weightMB: weightBytes / MB, denseMB: (weightBytes + identityBytes) / MB,
    };
  }
  if (name === 'svd') {
    const lm = openLanguageModel(dir);
    const mlp = moduleWeights(lm.onnx).filter((w) => /\.mlp\./.test(w.module));
    const t0 = performance.now();
    const d = await decompose(lm, { method: 'svd', rank: 64, threads: 2 });
    const s = seconds(t0);
    return { seconds: s, matrices: mlp.length, modules: d.catalog.modules.length, components: d.catalog.components.length };
  }
  if (name === 'svd-accuracy') {
    const lm = openLanguageModel(dir);
    const w = moduleWeights(lm.onnx).find((x) => x.module.endsWith('.0.mlp.c_fc'))!;
    const a = inOut(w, readFloatTensor(lm.onnx, w.initializer));
    const gemm = await GemmSessions.create({ threads: 2 });
    let t0 = performance.now();
    const t = await truncatedSvd(a, w.dIn, w.dOut, 64, gemm.of(a, w.dIn, w.dOut));
    const truncatedS = seconds(t0);
    await gemm.release();
    t0 = performance.now();
    const full = svd(a, w.dIn, w.dOut);
    const fullS = seconds(t0);
    let worst = 0;
    let energy = 0, trueEnergy = 0;
    for (let i = 0; i < 64; i++) {
      worst = Math.max(worst, Math.abs(t.s[i] - full.s[i]) / full.s[i]);
      energy += t.s[i] ** 2;
      trueEnergy += full.s[i] ** 2;
    }
    return { truncatedS, fullS, worstRelative: worst, energy: energy / trueEnergy, s0: t.s[0], s63: t.s[63], true0: full.s[0], true63: full.s[63] };
  }
  if (name === 'stream-write' || name === 'stream-read' || name === 'stream-string') {
    const components = 600_000;
    const catalogDir = path.join(dir, 'big');
    if (name === 'stream-read') {
      const t0 = performance.now();
      const c = readCatalogMetadata(catalogDir);
      const ok = c.components.length === components && c.components[components - 1].key === `h.11.mlp.c_fc:${components / 12 - 1}` && c.components[123_456].contexts!.length === 3;
      return { seconds: seconds(t0), components: c.components.length, ok: ok ? 1 : 0 };
    }
    const catalog = bigCatalog(components);
    if (name === 'stream-string') {
      // The one-string way: JSON text of the same catalog.
      const t0 = performance.now();
      try {
        return { seconds: seconds(t0), length: JSON.stringify(catalog).length };
      } catch (err) {
        return { seconds: seconds(t0), failed: 1, rangeError: err instanceof RangeError ? 1 : 0 };
      }
    }
    const t0 = performance.now();
    writeCatalog(catalogDir, catalog);
    return { seconds: seconds(t0), components, jsonMB: fs.statSync(path.join(catalogDir, 'catalog.json')).size / MB };
  }
  if (name === 'preview') {
    // A new scale of one neuron component → Δloss on 5 datasets of 2,000 tokens (base results cached).
    const lm = openLanguageModel(dir);
    const editor = new WeightEditor(lm.onnx);
    const module = moduleWeights(lm.onnx).find((w) => w.module.endsWith('.5.mlp.c_fc'))!;
    const comp = neuronComponent(lm.onnx, editor.module(module.module), 'out', 17);
    const data = DATASETS.map((seed) => tokens(lm, seed, 2000));
    let t0 = performance.now();
    const session = await PreviewSession.create(lm, editor, editor.initializers([comp]), { threads: 2 });
    const createS = seconds(t0);
    t0 = performance.now();
    for (const d of data) await session.base(d);
    const baseS = seconds(t0);
    const previewS: number[] = [];
    for (let i = 0; i < 3; i++) {
      t0 = performance.now();
      const w = editor.weights([{ component: comp, scale: 0.25 * i - 1 }]);
      for (const d of data) await session.delta(d, w);
      previewS.push(seconds(t0));
    }
    await session.release();
    // Baseline in the same process: a plain evaluation of the same five datasets by a ready Evaluator.
    const ev = await Evaluator.create(lm, { threads: 2 });
    t0 = performance.now();
    for (const d of data) await ev.evaluate(d);
    const evalS = seconds(t0);
    await ev.release();
    return { createS, baseS, previewS: median(previewS), evalS, tokens: data.reduce((a, d) => a + d.ids.length - 1, 0) };
  }
  if (name === 'apply' || name === 'apply-large') {
    // `scalpel eval SPEC` (the measurement apply makes: every dataset before and after) vs `scalpel apply SPEC`.
    const run = (argv: string[]) => commands.find((c) => c.name === argv[0])!.run(argv.slice(1));
    const spec = writeSpec(dir, name === 'apply' ? 2000 : 256);
    await run(['decompose', '--model', dir, '--method', 'neuron', '--modules', '*.h.1.mlp.*', '-o', path.join(dir, 'neuron-h1')]);
    let t0 = performance.now();
    await run(['eval', spec, '--threads', '2', '--json']);
    const evalS = seconds(t0);
    t0 = performance.now();
    await run(['apply', spec, '-o', path.join(dir, 'edited.onnx'), '--threads', '2']);
    const applyS = seconds(t0);
    return { evalS, applyS };
  }
  if (name === 'torch') {
    // Engine evaluation vs PyTorch eager (bench/torch_gpt2.py) on the same weights, windows and threads.
    const CONTEXT = 256;
    const lm = openLanguageModel(dir, { contextLength: CONTEXT });
    const ds = tokens(lm, 9, 8 * CONTEXT);
    const ev = await Evaluator.create(lm, { threads: 2 });
    const windows: number[][] = [];
    const targets: number[][] = [];
    for (let s = 0; s + 1 < ds.ids.length; s += CONTEXT) {
      windows.push(Array.from(ds.ids.subarray(s, s + CONTEXT)));
      targets.push(Array.from(ds.ids.subarray(s + 1, s + CONTEXT + 1)));
    }
    const file = path.join(dir, 'tokens.json');
    fs.writeFileSync(file, JSON.stringify({ windows, targets, batch: ev.batchSize }));
    await ev.evaluate(ds); // warm-up, as the script warms up
    const runs: number[] = [];
    let loss = 0;
    for (let i = 0; i < 2; i++) {
      const t0 = performance.now();
      loss = (await ev.evaluate(ds)).loss;
      runs.push(seconds(t0));
    }
    await ev.release();
    const py = spawnSync('/usr/bin/python3', [path.join(__dirname, 'torch_gpt2.py'), dir, file, '2'], { encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: '2' } });
    if (py.status !== 0) return { engineS: Math.min(...runs), loss, torchFailed: 1 };
    const t = JSON.parse(py.stdout.trim().split('\n').pop()!);
    return { engineS: Math.min(...runs), loss, torchS: t.seconds, torchLoss: t.loss, torchThreads: t.threads, tokens: ds.ids.length - 1, batch: ev.batchSize };
  }
  throw new Error(`no job ${name}`);
}

const DATASETS = [1, 2, 3, 4, 5];

/** About `n` tokens of seeded word salad (the generated model's tokenizer is byte-level: one token per byte). */
function text(seed: number, n: number): string {
  const words = 'the of and to in is that it for as with was on be by this are from at or an which not have'.split(' ');
  let s = '';
  for (let i = 0; s.length < n; i++) s += `${words[(i * 7919 + seed * 104729) % words.length]} `;
  return s.slice(0, n);
}

function tokens(lm: ReturnType<typeof openLanguageModel>, seed: number, n: number) {
  return tokenizeDataset({ name: `d${seed}`, source: 'bench', documents: [{ text: text(seed, n + 1), tags: {} }] }, lm.tokenizer, n + 1);
}

/** A spec over the generated model: one neuron component of h.1 scaled by 0.5, guarded on five texts of `n` tokens. */
function writeSpec(dir: string, n: number): string {
  const lines = ['model g from "." {', '  components "neuron-h1"', '}'];
  for (const seed of DATASETS) {
    fs.writeFileSync(path.join(dir, `d${seed}.txt`), text(seed, n + 1));
    lines.push(`data d${seed} = text "d${seed}.txt" limit ${n} tokens`);
  }
  lines.push(`guard rest = [${DATASETS.slice(1).map((s) => `d${s}`).join(', ')}] within 5 nats`);
  lines.push('edit e on g {', `  select "${GPT2_MODULE_PREFIX}h.1.mlp.c_fc:17"`, '  scale 0.5', '  keep rest', '}');
  const file = path.join(dir, 'bench.scalpel');
  fs.writeFileSync(file, lines.join('\n') + '\n');
  return file;
}

/** A labelled catalog as `scalpel label` leaves it: statistics for five tags, contexts, output tokens, ablation. */
function bigCatalog(total: number): Catalog {
  const tags = ['de', 'fr', 'es', 'it', 'en'];
  const per = total / 12;
  const modules = Array.from({ length: 12 }, (_, l) => ({ path: `h.${l}.mlp.c_fc`, initializer: `h.${l}.mlp.c_fc.weight`, layout: 'in_out' as const, dIn: 768, dOut: per, components: per, identity: 'U' as const }));
  const components: ComponentInfo[] = [];
  for (let i = 0; i < total; i++) {
    const module = modules[Math.floor(i / per)].path;
    const index = i % per;
    const r = (k: number) => Number((((i * 2654435761 + k * 40503) >>> 0) / 2 ** 32).toFixed(4));
    components.push({
      key: `${module}:${index}`, module, index,
      label: { text: `German (${(3 + r(1) * 9).toFixed(1)}× vs fr/es/it/en)`, source: 'auto', confidence: r(2) },
      stats: Object.fromEntries(tags.map((t, k) => [t, { meanAbs: r(3 + k), firingRate: r(8 + k) }])),
      selectivity: Object.fromEntries(tags.map((t, k) => [t, r(13 + k) * 10])),
      contexts: [0, 1, 2].map((k) => ({ tag: tags[k], text: `Jeder hat das Recht auf ⟦ Leben⟧, Freiheit ${k}`, activation: r(20 + k) })),
      promotes: [0, 1, 2].map((k) => ({ token: ` und${k}`, logit: r(30 + k) })),
      suppresses: [0, 1, 2].map((k) => ({ token: ` the${k}`, logit: -r(40 + k) })),
      ablation: Object.fromEntries(tags.map((t, k) => [t, r(50 + k) / 100])),
      norm: r(60),
    });
  }
  return { format: CATALOG_FORMAT, model: { file: 'model.onnx', sha256: '' }, method: { name: 'neuron' }, tensors: 'components.safetensors', modules, components };
}

async function main(): Promise<void> {
  if (await runJobIfAsked(job)) return;
  const only = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1].split(',') : ['neuron', 'svd', 'torch', 'preview', 'apply', 'apply-large', 'debugger', 'stream'];
  if (only.includes('svd-accuracy') && !only.includes('svd')) only.push('svd');
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'scalpel-bench-scale-'));
  try {
    console.log(`bench:scale on ${os.cpus().length} cores, load average ${load()} (shared machine: compare ratios, not seconds)`);
    const small = path.join(root, 'gpt2-small');
    if (only.some((x) => x !== 'stream' && x !== 'apply-large')) writeGpt2(small, GPT2_SMALL, { external: false });
    if (only.includes('neuron')) {
      const r = child('neuron', small);
      console.log(`\nneuron decomposition of all ${r.modules} MLP matrices (${r.components} components): ${r.seconds.toFixed(1)} s, peak RSS ${r.rssMB.toFixed(0)} MB (load ${load()})`);
      console.log(`  components.safetensors ${r.tensorsMB.toFixed(0)} MiB = ${(r.tensorsMB / r.weightMB).toFixed(3)}× the MLP weights (${r.weightMB.toFixed(0)} MiB); with the identities stored it would be ${r.denseMB.toFixed(0)} MiB (${(r.denseMB / r.tensorsMB).toFixed(1)}×); catalog.json ${r.jsonMB.toFixed(1)} MiB`);
    }
    if (only.includes('svd')) {
      const r = child('svd', small);
      console.log(`\nSVD rank 64 of all ${r.matrices} MLP matrices (768×3072 and 3072×768; randomized, 4 subspace iterations, 2 ORT threads): ${r.seconds.toFixed(1)} s vs the target 120 s → ${(r.seconds / 120).toFixed(2)} of it, peak RSS ${r.rssMB.toFixed(0)} MB (load ${load()})`);
      if (only.includes('svd-accuracy')) {
        const a = child('svd-accuracy', small);
        console.log(`  one 768×3072 matrix (random weights: a flat spectrum, the hard case): truncated ${a.truncatedS.toFixed(1)} s vs full Jacobi ${a.fullS.toFixed(1)} s (${(a.fullS / a.truncatedS).toFixed(1)}×); worst relative error of σ1..σ64 ${a.worstRelative.toExponential(2)}, energy captured ${(a.energy * 100).toFixed(3)} % of the true top 64 (σ1 ${a.s0.toFixed(4)} vs ${a.true0.toFixed(4)}, σ64 ${a.s63.toFixed(4)} vs ${a.true63.toFixed(4)})`);
      }
    }
    if (only.includes('torch')) {
      const r = child('torch', small);
      if (r.torchFailed) console.log('\nPyTorch eager: /usr/bin/python3 has no torch (lab/setup.sh installs it); skipped');
      else console.log(`\nengine evaluation vs PyTorch eager ${r.torchThreads} threads, same weights and ${r.tokens} tokens (windows of 256, batch ${r.batch}): engine ${r.engineS.toFixed(2)} s, torch ${r.torchS.toFixed(2)} s → ${(r.torchS / r.engineS).toFixed(2)}× (target ≥ 2.5); loss ${r.loss.toFixed(6)} vs ${r.torchLoss.toFixed(6)} (load ${load()})`);
    }
    if (only.includes('preview')) {
      const r = child('preview', small);
      console.log(`\npreview of a new scale (one neuron of h.5.mlp.c_fc) on 5 datasets, ${r.tokens} tokens: ${r.previewS.toFixed(2)} s (median of 3) vs a plain evaluation of the same datasets ${r.evalS.toFixed(2)} s → ${(r.previewS / r.evalS).toFixed(2)}×; session create ${r.createS.toFixed(1)} s, base results once ${r.baseS.toFixed(1)} s; peak RSS ${r.rssMB.toFixed(0)} MB (load ${load()})`);
    }
    if (only.includes('apply')) {
      const r = child('apply', small);
      console.log(`\nscalpel apply SPEC end to end (one neuron component, 5 datasets of 2,000 tokens, write, lock): ${r.applyS.toFixed(1)} s vs scalpel eval SPEC (its measurement) ${r.evalS.toFixed(1)} s → ${(r.applyS / r.evalS).toFixed(2)}× (target ≤ 3); peak RSS ${r.rssMB.toFixed(0)} MB (load ${load()})`);
    }
    if (only.includes('apply-large')) {
      const large = path.join(root, 'large');
      writeGpt2(large, LARGE, { external: true });
      const bytes = fs.readdirSync(large).filter((f) => f.startsWith('model.onnx')).reduce((a, f) => a + fs.statSync(path.join(large, f)).size, 0);
      const r = child('apply-large', large);
      console.log(`\nscalpel apply SPEC on a ${(bytes / 2 ** 30).toFixed(2)} GiB model (external data; 5 datasets of 256 tokens): ${r.applyS.toFixed(1)} s vs scalpel eval SPEC ${r.evalS.toFixed(1)} s → ${(r.applyS / r.evalS).toFixed(2)}×; peak RSS ${r.rssMB.toFixed(0)} MB = ${(r.rssMB / (bytes / MB)).toFixed(2)}× the model (load ${load()})`);
      fs.rmSync(large, { recursive: true, force: true });
    }
    if (only.includes('debugger')) {
      const r = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', path.join(__dirname, 'debugger.ts'), small], { encoding: 'utf8' });
      console.log(`\ndebugger on the GPT-2 small layout (npm run bench:debugger -- MODEL_DIR; load ${load()}):\n${(r.stdout + r.stderr).trim().replace(/^/gm, '  ')}`);
    }
    if (only.includes('stream')) {
      const s = child('stream-string', root);
      console.log(`\nOne JSON string of a 600,000-component labelled catalog: ${s.failed ? `fails (${s.rangeError ? 'RangeError: Invalid string length' : 'error'}) after ${s.seconds.toFixed(1)} s` : `${(s.length / MB).toFixed(0)} M characters`}`);
      const w = child('stream-write', root);
      console.log(`  streamed write: ${w.jsonMB.toFixed(0)} MiB catalog.json in ${w.seconds.toFixed(1)} s, peak RSS ${w.rssMB.toFixed(0)} MB`);
      const r = child('stream-read', root);
      console.log(`  streamed read (schema checked): ${r.components} components in ${r.seconds.toFixed(1)} s, contents ${r.ok ? 'as written' : 'DIFFER'}, peak RSS ${r.rssMB.toFixed(0)} MB (load ${load()})`);
    }
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
