/**
 * Edit benchmarks on the demo model; every figure is measured in this run, with its
 * baseline measured here too:
 *   1. preview latency of a one-component edit: new scale → edited weights → Δloss on the five UDHR
 *      datasets (base cached), vs re-creating an ORT session from patched bytes for the same edit;
 *   2. a sweep of 21 scales over the five datasets;
 *   3. apply (writeEditedModel, one tensor patched) vs fs.copyFile of the same model;
 *   4. reusing base activations up to the edited layer (SuffixSession) vs the full graph, for an
 *      edit in each layer and in lm_head, with the largest difference in loss between the two.
 *
 *   npm run bench:edit        (SCALPEL_BENCH_REPEAT=N repetitions per figure, default 5)
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadDataset, parseDataArg } from '../engine/data';
import { Evaluator, tokenizeDataset } from '../engine/evaluate';
import { openLanguageModel } from '../engine/lm';
import { writeEditedModel } from '../engine/onnx/write';
import { openCatalogTensors } from '../engine/catalog/read';
import { DeltaRunner, PreviewSession, linspace, sweep } from '../engine/edit/preview';
import { SuffixSession } from '../engine/edit/suffix';
import { CatalogComponents, Component, WeightEditor, neuronComponent } from '../engine/edit/weights';

const REPEAT = Number(process.env.SCALPEL_BENCH_REPEAT ?? 5);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const THREADS = 1;

async function time(f: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await f();
  return performance.now() - t;
}

async function main(): Promise<void> {
  const lm = openLanguageModel('models/polyglot');
  const editor = new WeightEditor(lm.onnx);
  const data = ['deu', 'fra', 'spa', 'ita', 'eng'].map((c) => tokenizeDataset(loadDataset(c, parseDataArg(`udhr:${c}`)), lm.tokenizer));
  const tokens = data.reduce((a, d) => a + d.ids.length - 1, 0);
  const catalogDir = 'models/polyglot/components';
  const catalog = fs.existsSync(path.join(catalogDir, 'catalog.json')) ? new CatalogComponents(openCatalogTensors(catalogDir)) : undefined;
  const component = (module: string): Component => {
    const m = catalog?.tensors.catalog.modules.find((x) => x.path === module);
    return m ? catalog!.get(`${module}:0`) : neuronComponent(lm.onnx, editor.module(module), 'out', 0);
  };
  console.log(`demo model, ${tokens} tokens over 5 UDHR datasets; ORT ${THREADS} thread; median of ${REPEAT}; components from ${catalog ? 'the catalog' : 'the neuron basis (no catalog yet)'}`);

  // 1. Preview latency.
  const comp = component('h.1.mlp.c_fc');
  const inits = editor.initializers([comp]);
  let session!: PreviewSession;
  const createMs = await time(async () => (session = await PreviewSession.create(lm, editor, inits, { threads: THREADS })));
  const baseMs = await time(async () => {
    for (const d of data) await session.base(d);
  });
  let scale = 0;
  const preview = async (runner: DeltaRunner) => {
    scale += 0.1; // a new value each time: nothing is cached but the base results
    const w = editor.weights([{ component: comp, scale }]);
    for (const d of data) await runner.delta(d, w);
  };
  const previewMs: number[] = [];
  for (let i = 0; i < REPEAT; i++) previewMs.push(await time(() => preview(session)));
  // Baseline: a fresh session from patched bytes for every new scale.
  const recreateMs: number[] = [];
  for (let i = 0; i < REPEAT; i++) {
    recreateMs.push(
      await time(async () => {
        const w = editor.weights([{ component: comp, scale: 0.5 + i }]);
        const edit = {
          replaceInitializers: new Map([...w].map(([name, v]) => [name, { name, dims: lm.onnx.initializers.get(name)!.dims, dataType: 1, data: { raw: new Uint8Array(v.buffer) } }])),
        };
        const ev = await Evaluator.create(lm, { edit, threads: THREADS });
        for (const d of data) await ev.evaluate(d);
        await ev.release();
      }),
    );
  }
  console.log(`\n1. preview latency, one-component edit of h.1.mlp.c_fc, scale change → Δloss on 5 datasets`);
  console.log(`   session create ${createMs.toFixed(0)} ms, base results (once, cached) ${baseMs.toFixed(0)} ms`);
  console.log(`   preview (weights fed as inputs):      ${median(previewMs).toFixed(1)} ms  (${Math.round(tokens / (median(previewMs) / 1000))} tokens/s)`);
  console.log(`   baseline (new session per scale):     ${median(recreateMs).toFixed(1)} ms  → preview is ${(median(recreateMs) / median(previewMs)).toFixed(2)}× faster`);

  // 2. Sweep of 21 scales.
  const scales = linspace(-2, 2, 21);
  const sweepMs: number[] = [];
  for (let i = 0; i < Math.max(1, Math.floor(REPEAT / 2)); i++) {
    sweepMs.push(await time(() => sweep(session, data, scales, (s) => editor.weights([{ component: comp, scale: s }]))));
  }
  console.log(`\n2. sweep of 21 scales × 5 datasets: ${median(sweepMs).toFixed(0)} ms (${(median(sweepMs) / 21).toFixed(1)} ms per scale)`);
  await session.release();

  // 3. Apply vs copy.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scalpel-bench-edit-'));
  const w = editor.weights([{ component: comp, scale: 0 }]);
  const applyMs: number[] = [];
  const copyMs: number[] = [];
  for (let i = 0; i < REPEAT; i++) {
    const a = path.join(dir, `apply-${i}.onnx`);
    const c = path.join(dir, `copy-${i}.onnx`);
    copyMs.push(await time(async () => fs.copyFileSync(lm.file, c)));
    applyMs.push(await time(async () => writeEditedModel(lm.file, a, w)));
  }
  fs.rmSync(dir, { recursive: true, force: true });
  const size = fs.statSync(lm.file).size;
  console.log(`\n3. apply (${(size / 2 ** 20).toFixed(1)} MiB model, one tensor patched, fsync + rename): ${median(applyMs).toFixed(1)} ms vs fs.copyFile ${median(copyMs).toFixed(1)} ms (${(median(applyMs) / median(copyMs)).toFixed(2)}×)`);

  // 4. Activation reuse by edited layer.
  console.log(`\n4. reusing base activations up to the edited layer (Δloss on 5 datasets per preview)`);
  console.log(`   module            full graph   suffix only   speed-up   max |loss diff|   frontier tensors`);
  for (const module of ['h.0.mlp.c_fc', 'h.1.mlp.c_fc', 'h.2.mlp.c_fc', 'h.3.mlp.c_fc', 'h.3.mlp.c_proj', 'lm_head']) {
    const c = component(module);
    const init = editor.initializers([c]);
    const full = await PreviewSession.create(lm, editor, init, { threads: THREADS });
    const suffix = await SuffixSession.create(lm, editor, init, { threads: THREADS });
    for (const d of data) {
      await full.base(d);
      await suffix.base(d);
    }
    const fullMs: number[] = [];
    const sufMs: number[] = [];
    let maxDiff = 0;
    for (let i = 0; i < REPEAT; i++) {
      const ew = editor.weights([{ component: c, scale: -1 - i }]);
      fullMs.push(await time(async () => {
        for (const d of data) await full.evaluate(d, ew);
      }));
      sufMs.push(await time(async () => {
        for (const d of data) await suffix.evaluate(d, ew);
      }));
      for (const d of data) maxDiff = Math.max(maxDiff, Math.abs((await full.evaluate(d, ew)).loss - (await suffix.evaluate(d, ew)).loss));
    }
    console.log(`   ${module.padEnd(16)}  ${median(fullMs).toFixed(1).padStart(8)} ms  ${median(sufMs).toFixed(1).padStart(9)} ms  ${(median(fullMs) / median(sufMs)).toFixed(2).padStart(7)}×  ${maxDiff.toExponential(1).padStart(15)}   ${suffix.cut.frontier.length}`);
    await full.release();
    await suffix.release();
  }
  catalog?.tensors.close();
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
