/**
 * Labelling: run the model on tagged datasets, measure every component's activation per token,
 * aggregate per tag, and name what each component is selective for.
 *
 * One ORT session does all of it: the graph gets, per decomposed module, a MatMul of the module's
 * input with the catalog's read vectors scaled by ‖U[c]‖ (so ORT's kernels do the heavy product and
 * JavaScript only sums), plus the model's loss head from the Evaluator. Output-side statistics use a
 * second tiny graph (write vectors × unembedding → TopK).
 */
import * as ort from 'onnxruntime-node';
import { componentKey, componentsByKey } from '../catalog/key';
import { CatalogTensors, ModuleFactors, readNorms, writeNorms } from '../catalog/read';
import { Catalog, CatalogDatasetRef, CatalogModule, ComponentContext, ComponentInfo, TagStats } from '../catalog/types';
import { ScalpelError } from '../errors';
import { datasetHash, loadDataset, parseDataArg, splitDocuments } from '../data';
import { Evaluator, Progress, TokenizedDataset, tokenizeDataset } from '../evaluate';
import { LanguageModel } from '../lm';
import { DataType, checkFloatTensor, readFloatTensor } from '../onnx/model';
import { ModuleWeight, missingModule, moduleWeights } from '../onnx/modules';
import { NodeSpec, TensorSpec, ValueInfoSpec, buildModel, floatTensor } from '../onnx/build';
import { RuntimeOptions, runtimeOf, startSession } from '../runtime';
import { analyzeModel, writePaths } from '../trace/graph';
import { inOut } from '../decompose';
import { autoLabel, round, selectivity } from './stats';
import { ciGraph } from '../catalog/ci';
import { ablationEffects } from './ablation';

export interface TaggedData {
  tag: string;
  data: TokenizedDataset;
  /** How the source was cut (recorded in the catalog's datasets). */
  split?: string;
  /** SHA-256 of the documents used (`datasetHash`). */
  sha256: string;
}

/**
 * A labelling dataset from a command-line argument `[TAG=]SOURCE`: without a tag, documents that all
 * carry one `lang` tag (the UDHR's do) are filed under it, anything else under the source itself.
 * With `split`, only the part that `splitDocuments(docs, split)` does not hold out is used.
 */
export function taggedDataset(arg: string, lm: LanguageModel, opts: { split?: number; maxTokens?: number } = {}): TaggedData {
  const m = /^([A-Za-z][\w-]*)=(.+)$/s.exec(arg);
  const source = m ? m[2] : arg;
  const ds = loadDataset(source, parseDataArg(source));
  if (opts.split !== undefined) ds.documents = splitDocuments(ds.documents, opts.split).train;
  if (!ds.documents.length) throw new ScalpelError(`dataset ${source} has no documents${opts.split !== undefined ? ' outside the held-out split' : ''}`);
  const langs = new Set(ds.documents.map((d) => d.tags.lang));
  const only = langs.size === 1 ? [...langs][0] : undefined;
  return {
    tag: m ? m[1] : only ?? source,
    data: tokenizeDataset(ds, lm.tokenizer, opts.maxTokens),
    sha256: datasetHash(ds),
    ...(opts.split !== undefined ? { split: `train part of splitDocuments(${opts.split}, seed 0)` } : {}),
  };
}

export interface LabelOptions extends RuntimeOptions {
  /**
   * `ci`: statistics of the catalog's causal-importance functions (SPD catalogs carry them);
   * `activation`: of x·V[:, c]·‖U[c]‖. Default: `ci` where every module has CI functions.
   */
  measure?: 'activation' | 'ci';
  /** Above which a component counts as firing: |activation| (the norm of what it writes; default 0.1), or CI (default 0.5). */
  firingThreshold?: number;
  /** Top-activating contexts kept per component (default 3), tokens either side (default 4). */
  contexts?: number;
  contextRadius?: number;
  /** Tokens kept per component for promotes / suppresses (default 5). */
  outputTokens?: number;
  /** Scored tokens per tag on which each component's ablation Δloss is measured (default 512; 0: none). */
  ablationTokens?: number;
  /** Windows per ORT run; default: as many as keep one run's activations near 64 MB. */
  batchSize?: number;
  signal?: AbortSignal;
  onProgress?: (p: Progress & { tag: string }) => void;
}

export interface LabelResult {
  catalog: Catalog;
  /** Component activations computed: components × tokens. */
  componentTokens: number;
  tokens: number;
  /** Seconds spent in the activation pass, the output-side pass and the ablation pass (with its ORT runs). */
  activationSeconds: number;
  outputSeconds: number;
  ablationSeconds: number;
  ablationRuns: number;
}

const MAX_BATCH_FLOATS = 16 << 20;
/** Write vectors sent to the logits per run of the output-statistics graphs (bounds their (rows, vocab) outputs). */
const OUTPUT_ROWS = 512;
/** JSON has no Infinity: a selectivity with nothing in the other tags is stored as this. */
const SELECTIVITY_CAP = 1e6;

interface ModulePlan {
  module: CatalogModule;
  weight: ModuleWeight;
  /** Offset of this module's components in the flat per-component arrays. */
  offset: number;
  output: string;
  /** Its read vectors (dIn, C) and write vectors (C, dOut), read once. */
  factors?: ModuleFactors;
}

/** Labels every component of `tensors.catalog` on `data` (one entry per tag) and returns the updated catalog. */
export async function labelCatalog(lm: LanguageModel, tensors: CatalogTensors, data: TaggedData[], opts: LabelOptions = {}): Promise<LabelResult> {
  const catalog = tensors.catalog;
  const tags = data.map((d) => d.tag);
  if (new Set(tags).size !== tags.length) throw new ScalpelError(`each dataset needs its own tag; got ${tags.join(', ')} (use --data TAG=SOURCE)`);
  if (tags.length < 2) throw new ScalpelError('labelling compares tags: give at least two tagged datasets (e.g. --data de=udhr:deu --data en=udhr:eng)');
  const weights = new Map(moduleWeights(lm.onnx).map((w) => [w.module, w]));
  const plans: ModulePlan[] = [];
  let total = 0;
  for (const m of catalog.modules) {
    const w = weights.get(m.path);
    if (!w) throw new ScalpelError(missingModule(lm.onnx, m.path), lm.file);
    checkFloatTensor(lm.onnx, lm.onnx.initializers.get(w.initializer)!);
    if (w.dIn !== m.dIn || w.dOut !== m.dOut) throw new ScalpelError(`the catalog's module ${m.path} is ${m.dIn}×${m.dOut} but the model's is ${w.dIn}×${w.dOut}`, lm.file);
    plans.push({ module: m, weight: w, offset: total, output: `scalpel_act_${plans.length}` });
    total += m.components;
  }
  const byKey = componentsByKey(catalog);

  const ciFunctions = opts.measure === 'activation' ? [] : plans.map((p) => tensors.ciFunction(p.module.path));
  const measure = opts.measure ?? (plans.length && ciFunctions.every(Boolean) ? 'ci' : 'activation');
  if (measure === 'ci' && !ciFunctions.every(Boolean)) {
    throw new ScalpelError(`the catalog has no causal-importance functions for ${plans[ciFunctions.findIndex((f) => !f)].module.path}; label with activations instead`, catalogFile(catalog));
  }

  // Graph: per module, act = input · (V · diag‖U‖), or CI(input · V).
  const started = performance.now();
  const addInitializers: TensorSpec[] = [];
  const addNodes: NodeSpec[] = [];
  const sizes = new Float32Array(total); // ‖U[c]‖·‖V[:, c]‖
  // A float16 graph's activations are read in float32, against float32 read vectors.
  const half = (lm.onnx.outputs.find((o) => o.name === lm.logitsName)?.elemType ?? DataType.FLOAT) !== DataType.FLOAT;
  for (const p of plans) {
    const f = (p.factors = tensors.factors(p.module.path));
    let x = p.weight.inputTensor;
    if (half) {
      addNodes.push({ name: `scalpel/label/${p.module.path}/Cast`, opType: 'Cast', inputs: [x], outputs: [`${p.output}_x`], attributes: [{ name: 'to', i: DataType.FLOAT }] });
      x = `${p.output}_x`;
    }
    const C = p.module.components;
    const norms = Float32Array.from(writeNorms(f));
    const vNorms = readNorms(f);
    for (let c = 0; c < C; c++) sizes[p.offset + c] = norms[c] * vNorms[c];
    const ci = ciFunctions[plans.indexOf(p)];
    // An identity V (neuron basis) reads the input itself: x · I = x.
    const read = (weights: Float32Array, output: string) => {
      addInitializers.push(floatTensor(`${p.output}_read`, [p.module.dIn, C], weights));
      addNodes.push({ name: `scalpel/label/${p.module.path}`, opType: 'MatMul', inputs: [x, `${p.output}_read`], outputs: [output] });
      return output;
    };
    if (measure === 'ci' && ci) {
      const g = ciGraph(f.V ? read(f.V, `${p.output}_a`) : x, p.output, ci, C);
      addInitializers.push(...g.initializers);
      addNodes.push(...g.nodes);
    } else if (f.V) {
      const V = f.V;
      read(Float32Array.from(V, (v, i) => v * norms[i % C]), p.output);
    } else {
      addInitializers.push(floatTensor(`${p.output}_norms`, [C], norms));
      addNodes.push({ name: `scalpel/label/${p.module.path}`, opType: 'Mul', inputs: [x, `${p.output}_norms`], outputs: [p.output] });
    }
  }
  const edit = { addInitializers, addNodes, addOutputs: plans.map((p) => ({ name: p.output, elemType: DataType.FLOAT })) };
  const batchSize = opts.batchSize ?? Math.max(1, Math.min(8, Math.floor(MAX_BATCH_FLOATS / (lm.contextLength * Math.max(1, total)))));
  const ev = await Evaluator.create(lm, { ...runtimeOf(opts), edit, batchSize });

  const T = tags.length;
  const sumAbs = new Float64Array(T * total);
  const fired = new Uint32Array(T * total);
  const tokensPerTag = new Array<number>(T).fill(0);
  const threshold = opts.firingThreshold ?? (measure === 'ci' ? 0.5 : 0.1);
  const shownContexts = opts.contexts ?? 3;
  // Per component and tag, the K strongest tokens so far: |a|, signed a, position. Three times as many
  // as shown, so that repeated phrases (the UDHR repeats "Jeder hat das Recht") can be dropped. Kept per
  // tag, so that ties (CI saturates at 1) cannot all go to the tag that was read first.
  const K = shownContexts * 3;
  const topAbs = new Float32Array(total * T * K);
  const topAct = new Float32Array(total * T * K);
  const topPos = new Int32Array(total * T * K).fill(-1);
  const topMin = new Float32Array(total * T);
  let componentTokens = 0;
  try {
    for (let ti = 0; ti < T; ti++) {
      const ds = data[ti].data;
      const ctx = lm.contextLength;
      let batchStarts: number[] = [];
      await ev.evaluate(ds, {
        signal: opts.signal,
        onProgress: (p) => opts.onProgress?.({ ...p, tag: data[ti].tag }),
        fetches: plans.map((p) => p.output),
        // Only to learn where each window of the batch starts in the token stream.
        batchFeeds: (_b, starts) => {
          batchStarts = starts;
          return {};
        },
        onBatch: (_b, out) => {
          const n = ds.ids.length;
          for (const p of plans) {
            const t = out[p.output];
            const C = p.module.components;
            const a = t.data as Float32Array;
            // [batch, length, C], or [batch · length, C] where the module runs on flattened tokens (Gemm, HF GPT-2's Conv1D).
            const rows = a.length / C;
            const length = rows / batchStarts.length;
            if (!Number.isInteger(length) || t.dims[t.dims.length - 1] !== C) {
              throw new ScalpelError(`unexpected activation shape [${t.dims}] for ${p.module.path} in a batch of ${batchStarts.length} windows`, lm.file);
            }
            for (let r = 0; r < rows; r++) {
              const start = batchStarts[Math.floor(r / length)];
              const pos = start + (r % length);
              // Padding rows of a short last window are not tokens (inputs are ids[start … start+ctx-1], before the last).
              if (pos >= n - 1 || r % length >= ctx) continue;
              const row = r * C;
              const base = ti * total + p.offset;
              for (let c = 0; c < C; c++) {
                const v = a[row + c];
                const abs = v < 0 ? -v : v;
                sumAbs[base + c] += abs;
                if (abs > threshold) fired[base + c]++;
                const slot = (p.offset + c) * T + ti;
                if (abs > topMin[slot]) insertTop(slot, abs, v, pos);
              }
              if (p === plans[0]) tokensPerTag[ti]++;
            }
          }
        },
      });
    }
  } finally {
    await ev.release();
  }
  function insertTop(slot: number, abs: number, v: number, pos: number): void {
    const o = slot * K;
    let i = K - 1;
    while (i > 0 && topAbs[o + i - 1] < abs) {
      topAbs[o + i] = topAbs[o + i - 1];
      topAct[o + i] = topAct[o + i - 1];
      topPos[o + i] = topPos[o + i - 1];
      i--;
    }
    topAbs[o + i] = abs;
    topAct[o + i] = v;
    topPos[o + i] = pos;
    topMin[slot] = topAbs[o + K - 1];
  }
  /** The shown contexts of component g: strongest first; equal strengths go to the tag it is most active on. */
  function contextsOf(g: number): ComponentContext[] {
    const rank = tags.map((_, ti) => ti).sort((a, b) => sumAbs[b * total + g] / (tokensPerTag[b] || 1) - sumAbs[a * total + g] / (tokensPerTag[a] || 1) || a - b);
    const order = new Map(rank.map((ti, r) => [ti, r]));
    const candidates: { abs: number; act: number; ti: number; pos: number }[] = [];
    for (let ti = 0; ti < T; ti++) {
      const o = (g * T + ti) * K;
      for (let k = 0; k < K && topPos[o + k] >= 0; k++) candidates.push({ abs: topAbs[o + k], act: topAct[o + k], ti, pos: topPos[o + k] });
    }
    candidates.sort((a, b) => b.abs - a.abs || order.get(a.ti)! - order.get(b.ti)! || a.pos - b.pos);
    const out: ComponentContext[] = [];
    for (const x of candidates) {
      if (out.length >= shownContexts) break;
      const text = contextText(lm, data[x.ti].data, x.pos, radius);
      if (!out.some((y) => y.text === text)) out.push({ tag: tags[x.ti], text, activation: round(x.act) });
    }
    return out;
  }
  const tokens = tokensPerTag.reduce((x, y) => x + y, 0);
  componentTokens = tokens * total;
  const activationSeconds = (performance.now() - started) / 1000;

  const outStarted = performance.now();
  const outputSide = await outputStatistics(lm, plans, opts.outputTokens ?? 5, runtimeOf(opts));
  const outputSeconds = (performance.now() - outStarted) / 1000;

  const ablationTokens = opts.ablationTokens ?? 512;
  const ablation = ablationTokens > 0
    ? await ablationEffects(lm, plans.map((p) => ({ weight: p.weight, V: p.factors!.V, U: p.factors!.U, components: p.module.components, measure: Array.from({ length: p.module.components }, (_, c) => c) })), data, {
      ...runtimeOf(opts), tokens: ablationTokens, signal: opts.signal, onProgress: opts.onProgress && ((x) => opts.onProgress!({ ...x, tag: `ablation ${x.tag}` })),
    })
    : undefined;

  const radius = opts.contextRadius ?? 4;
  const minTokens = Math.min(...tokensPerTag);
  const components: ComponentInfo[] = [];
  for (const p of plans) {
    for (let c = 0; c < p.module.components; c++) {
      const g = p.offset + c;
      const key = componentKey(p.module.path, c);
      const old = byKey.get(key) ?? { key, module: p.module.path, index: c };
      const stats: Record<string, TagStats> = {};
      tags.forEach((tag, ti) => {
        const n = tokensPerTag[ti];
        stats[tag] = { meanAbs: round(n ? sumAbs[ti * total + g] / n : 0), firingRate: round(n ? fired[ti * total + g] / n : 0) };
      });
      const sel = selectivity(Object.fromEntries(tags.map((t) => [t, stats[t].meanAbs])));
      const effect = ablation && Object.fromEntries(tags.map((t, ti) => [t, round(ablation.deltas[plans.indexOf(p)][c][ti])]));
      const label = autoLabel(stats, minTokens, effect);
      const contexts = contextsOf(g);
      const info: ComponentInfo = {
        ...old,
        // A human or imported label wins over the labeller's; the labeller's own stays in autoLabel.
        label: old.label && old.label.source !== 'auto' ? old.label : label,
        autoLabel: label,
        stats,
        selectivity: Object.fromEntries(Object.entries(sel).map(([t, s]) => [t, round(Math.min(s, SELECTIVITY_CAP))])),
        contexts,
        ...(effect ? { ablation: effect } : {}),
      };
      const o = outputSide.get(p.module.path);
      if (o) {
        info.promotes = o.promotes[c];
        info.suppresses = o.suppresses[c];
        info.promotesVia = o.via;
      }
      info.norm ??= round(sizes[g]);
      components.push(info);
    }
  }
  const datasets: CatalogDatasetRef[] = data.map((d, ti) => ({ name: d.data.name, source: d.data.source, tag: d.tag, ...(d.split ? { split: d.split } : {}), sha256: d.sha256, tokens: tokensPerTag[ti] }));
  const updated: Catalog = { ...catalog, components, datasets, firingThreshold: threshold, statsMeasure: measure, ...(ablation ? { ablationTokens: Math.min(...ablation.tokens) } : {}) };
  return { catalog: updated, componentTokens, tokens, activationSeconds, outputSeconds, ablationSeconds: ablation?.seconds ?? 0, ablationRuns: ablation?.runs ?? 0 };
}

function catalogFile(catalog: Catalog & { dir: string }): string {
  return `${catalog.dir}/catalog.json`;
}

/** Tokens `radius` either side of `pos` within its document, the token itself marked ⟦…⟧. */
function contextText(lm: LanguageModel, ds: TokenizedDataset, pos: number, radius: number): string {
  let docStart = 0;
  let docEnd = ds.ids.length;
  for (const s of ds.documentStarts) {
    if (s <= pos) docStart = s;
    else {
      docEnd = s;
      break;
    }
  }
  const special = lm.tokenizer.bos;
  const piece = (from: number, to: number) => {
    const ids = Array.from(ds.ids.subarray(from, to)).filter((id) => id !== special);
    return ids.length ? lm.tokenizer.decode(ids) : ''; // tokenizers.js refuses to decode nothing
  };
  const before = piece(Math.max(docStart, pos - radius), pos);
  const after = piece(pos + 1, Math.min(docEnd, pos + 1 + radius));
  const self = ds.ids[pos] === special ? '<start>' : lm.tokenizer.decode([ds.ids[pos]]);
  return `${before}⟦${self}⟧${after}`.replace(/\s+/g, ' ');
}

interface OutputSide {
  via: string;
  promotes: { token: string; logit: number }[][];
  suppresses: { token: string; logit: number }[][];
}

/**
 * What each component's write vector does to the logits (docs/components.md, "Statistics"):
 * residual writers go through the final norm's centring and gain and the unembedding; MLP first layers
 * (GELU linearised, SwiGLU's up projection) and attention values (v, or v's third of a fused q|k|v) first
 * through their sublayer's writer; lm_head's are logits. Queries, keys, SwiGLU gates (whose sign the up
 * projection sets per token) and values of grouped heads (which query heads read them is per token) have no
 * fixed direction and get none. All of it runs in small ORT graphs ending in TopK, so 40,000 components take seconds.
 */
async function outputStatistics(lm: LanguageModel, plans: ModulePlan[], k: number, rt: RuntimeOptions): Promise<Map<string, OutputSide>> {
  const out = new Map<string, OutputSide>();
  if (!plans.length) return out;
  const structure = analyzeModel(lm.onnx, lm.logitsName);
  const unembed = structure.unembed;
  if (!unembed) return out;
  const paths = writePaths(lm.onnx, structure);
  const dModel = unembed.dIn;
  const vocab = unembed.dOut;
  const kk = Math.min(k, vocab);
  const norm = structure.finalNorm;
  const gamma = norm ? readFloatTensor(lm.onnx, norm.weight) : undefined;
  const sessions = new Map<string, ort.InferenceSession>();
  // Weights are fed, not built into each graph: one float32 copy of the unembedding whatever the number of paths.
  const matrices = new Map<string, ort.Tensor>();
  const matrix = (mw: ModuleWeight) => {
    let t = matrices.get(mw.module);
    if (!t) matrices.set(mw.module, (t = new ort.Tensor('float32', inOut(mw, readFloatTensor(lm.onnx, mw.initializer)), [mw.dIn, mw.dOut])));
    return t;
  };
  /** x (N, width) [· down] [centre, · γ] [· W_U] → TopK largest and smallest; one session per path. */
  const session = async (key: string, width: number, down?: ModuleWeight, toLogits = true) => {
    let s = sessions.get(key);
    if (s) return s;
    const inits: TensorSpec[] = [{ name: 'k', dims: [1], dataType: DataType.INT64, data: { raw: new Uint8Array(new BigInt64Array([BigInt(kk)]).buffer) } }];
    const inputs: ValueInfoSpec[] = [{ name: 'x', elemType: DataType.FLOAT, shape: ['n', width] }];
    const nodes: NodeSpec[] = [];
    let x = 'x';
    const step = (opType: string, inputs: string[], attributes?: NodeSpec['attributes']) => {
      const o = `${opType}_${nodes.length}`;
      nodes.push({ name: o, opType, inputs, outputs: [o], attributes });
      x = o;
    };
    if (down) {
      inputs.push({ name: 'down', elemType: DataType.FLOAT, shape: [down.dIn, down.dOut] });
      step('MatMul', [x, 'down']);
    }
    if (toLogits) {
      if (gamma) {
        inits.push(floatTensor('gamma', [dModel], gamma));
        // The direction only: an RMS norm only rescales, a LayerNorm also centres.
        if (norm!.kind === 'layer') {
          const centred = x;
          step('ReduceMean', [x], [{ name: 'axes', ints: [-1] }, { name: 'keepdims', i: 1 }]);
          step('Sub', [centred, x]);
        }
        step('Mul', [x, 'gamma']);
      }
      inputs.push({ name: 'unembed', elemType: DataType.FLOAT, shape: [dModel, vocab] });
      step('MatMul', [x, 'unembed']);
    }
    nodes.push({ name: 'top', opType: 'TopK', inputs: [x, 'k'], outputs: ['top_v', 'top_i'] });
    nodes.push({ name: 'bottom', opType: 'TopK', inputs: [x, 'k'], outputs: ['bot_v', 'bot_i'], attributes: [{ name: 'largest', i: 0 }] });
    const graph = buildModel({
      initializers: inits,
      inputs,
      nodes,
      outputs: ['top_v', 'top_i', 'bot_v', 'bot_i'].map((name) => ({ name, elemType: name.endsWith('_i') ? DataType.INT64 : DataType.FLOAT, shape: ['n', kk] })),
    });
    s = await startSession(graph, rt, 'the output-statistics graph', lm.file);
    sessions.set(key, s);
    return s;
  };
  try {
    for (const p of plans) {
      const m = p.module;
      let s: ort.InferenceSession;
      let via: string;
      let down: ModuleWeight | undefined;
      /** The columns of the write vectors fed: all, or v's of a fused q|k|v. */
      let cols = { offset: 0, width: m.dOut };
      const path = paths.get(m.path);
      const value = structure.valuePaths.get(m.path);
      const mlp = structure.mlpPaths.get(m.path);
      if (value) {
        down = structure.modules.find((x) => x.module === value.writer)!;
        if (value.width !== down.dIn) continue;
        cols = { offset: value.offset, width: value.width };
        s = await session(`down:${down.module}`, value.width, down);
        via = `${down.module}+${unembed.module}`;
      } else if (!path || (mlp?.kind === 'secant' && [...structure.mlpPaths.values()].some((x) => x.writer === mlp.writer && x.kind === 'gated'))) {
        continue; // queries and keys; a SwiGLU gate
      } else if (path.kind === 'logits') {
        s = await session('logits', vocab, undefined, false);
        via = unembed.module;
      } else if (path.kind === 'residual') {
        s = await session('residual', dModel);
        via = unembed.module;
      } else {
        // An up-projection: continue through the module that maps its outputs back to the residual stream.
        down = path.module;
        s = await session(`down:${down.module}`, m.dOut, down);
        via = `${down.module}+${unembed.module}`;
      }
      const C = m.components;
      const side: OutputSide = { via, promotes: [], suppresses: [] };
      // Write vectors in row blocks: an identity U (neuron basis) is never built whole.
      for (let c0 = 0; c0 < C; c0 += OUTPUT_ROWS) {
        const rows = Math.min(OUTPUT_ROWS, C - c0);
        const U = p.factors!.U;
        const block = new Float32Array(rows * cols.width);
        for (let r = 0; r < rows; r++) {
          const row = (c0 + r) * m.dOut + cols.offset;
          if (U) block.set(U.subarray(row, row + cols.width), r * cols.width);
          else if (c0 + r >= cols.offset && c0 + r < cols.offset + cols.width) block[r * cols.width + c0 + r - cols.offset] = 1;
        }
        const feeds: Record<string, ort.Tensor> = { x: new ort.Tensor('float32', block, [rows, cols.width]) };
        if (s.inputNames.includes('unembed')) feeds.unembed = matrix(unembed);
        if (down) feeds.down = matrix(down);
        const res = await s.run(feeds);
        const pick = (v: string, i: string) => {
          const vals = res[v].data as Float32Array;
          const ids = res[i].data as BigInt64Array;
          return Array.from({ length: rows }, (_, c) => Array.from({ length: kk }, (_, j) => ({ token: lm.tokenizer.tokenText(Number(ids[c * kk + j])), logit: round(vals[c * kk + j]) })));
        };
        side.promotes.push(...pick('top_v', 'top_i'));
        side.suppresses.push(...pick('bot_v', 'bot_i'));
      }
      out.set(m.path, side);
    }
  } finally {
    for (const s of sessions.values()) await s.release();
  }
  return out;
}

