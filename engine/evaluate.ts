/**
 * Teacher-forced next-token loss through onnxruntime-node.
 *
 * The model graph gets a small loss head (LogSoftmax → GatherElements on the targets → Neg), so
 * ORT returns one number per token instead of a [batch, sequence, vocab] logits tensor: less
 * copying, and no log-softmax in JavaScript. One session per model, reused for every batch.
 */
import * as ort from 'onnxruntime-node';
import { Dataset } from './data';
import { ScalpelError } from './errors';
import { LanguageModel } from './lm';
import { DataType, OnnxModel, dtypeName } from './onnx/model';
import { GraphEdit, combineEdits } from './onnx/rewrite';
import { SessionOptions, createSession, firstLine } from './session';
import { TextTokenizer } from './tokenizer';

export interface TokenizedDataset {
  name: string;
  source: string;
  /** All documents' tokens, each document led by the tokenizer's start token where it has one. */
  ids: Int32Array;
  /** Index in `ids` where each document starts. */
  documentStarts: number[];
}

export interface DatasetLoss {
  name: string;
  source: string;
  /** Tokens scored (every token but the first of the stream). */
  tokens: number;
  /** Mean next-token cross-entropy, nats per token. */
  loss: number;
  /** perToken[i] is the loss of predicting ids[i + 1] from ids[0..i] (0 where a shard did not score it). */
  perToken: Float32Array;
  /** Per window of the context length, in order: the sum of its tokens' losses (NaN where a shard did not score it). */
  windowSums: Float64Array;
}

/** Which part of the work a process does: batch b of every dataset when b mod count = index. */
export interface Shard {
  index: number;
  count: number;
}

/**
 * The mean loss from per-window sums, added in window order: the one reduction for whole runs and for
 * merged shards, so both give the same bits (a different summation order would not).
 */
export function meanOfWindows(windowSums: ArrayLike<number>, tokens: number): number {
  let sum = 0;
  for (let w = 0; w < windowSums.length; w++) sum += windowSums[w];
  return tokens ? sum / tokens : NaN;
}

export interface Progress {
  done: number;
  total: number;
}

export class CancelledError extends ScalpelError {
  constructor() {
    super('cancelled');
  }
}

export function tokenizeDataset(ds: Dataset, tokenizer: TextTokenizer, maxTokens = Infinity): TokenizedDataset {
  const ids: number[] = [];
  const documentStarts: number[] = [];
  for (const d of ds.documents) {
    if (ids.length >= maxTokens) break;
    documentStarts.push(ids.length);
    if (tokenizer.bos !== undefined) ids.push(tokenizer.bos);
    ids.push(...tokenizer.encode(d.text));
  }
  const clipped = ids.length > maxTokens ? ids.slice(0, maxTokens) : ids;
  return { name: ds.name, source: ds.source, ids: Int32Array.from(clipped), documentStarts };
}

export interface EvaluatorOptions extends SessionOptions {
  /** Windows per ORT run (default: as many as `memoryBudget` allows, at most 8). */
  batchSize?: number;
  /** Bytes the logits of one run may take (default 512 MiB); sets the default batch size. */
  memoryBudget?: number;
  /** The graph to run (default the model's own; e.g. one with gated paths added in memory). */
  model?: OnnxModel;
  /** A rewrite of that graph to evaluate instead (weights as inputs, extra outputs, a cut). */
  edit?: GraphEdit;
  /** Extra inputs fed on every run (e.g. weights that the model bytes declare as graph inputs). */
  feeds?: Record<string, ort.Tensor>;
  /** The model's vocabulary size when already known: skips the probe run (for graphs that need per-batch feeds). */
  vocabSize?: number;
}

export interface EvaluateOptions {
  signal?: AbortSignal;
  onProgress?: (p: Progress) => void;
  /** Extra inputs for this evaluation, over the evaluator's own. */
  feeds?: Record<string, ort.Tensor>;
  /** Extra inputs per batch (batch index in window order, window start offsets). */
  batchFeeds?: (batch: number, starts: number[]) => Record<string, ort.Tensor>;
  /** Extra outputs to fetch, handed to `onBatch` with the batch index. */
  fetches?: string[];
  onBatch?: (batch: number, outputs: ort.InferenceSession.ReturnType) => void;
  /**
   * Score only this shard's batches: batch b when (b + offset) mod count = index, where `offset` counts
   * the batches of the datasets before this one, so shards stay even over many small datasets. The mean
   * loss is then NaN: merge the window sums.
   */
  shard?: Shard & { offset?: number };
}

const NLL_OUTPUT = 'scalpel_token_nll';
const TARGETS_INPUT = 'scalpel_targets';

export class Evaluator {
  private constructor(
    private readonly session: ort.InferenceSession,
    readonly lm: LanguageModel,
    readonly vocabSize: number,
    readonly batchSize: number,
    private readonly feedsMask: boolean,
    private readonly feedsPositions: boolean,
    private readonly extraFeeds: Record<string, ort.Tensor>,
  ) {}

  static async create(lm: LanguageModel, opts: EvaluatorOptions = {}): Promise<Evaluator> {
    const onnx = opts.model ?? lm.onnx;
    const session = await createSession(onnx, combineEdits(opts.edit ?? {}, lossHead(onnx, lm.logitsName)), opts);
    const names = new Set(onnx.inputs.map((i) => i.name));
    const ev = new Evaluator(session, lm, 0, 1, names.has('attention_mask'), names.has('position_ids'), opts.feeds ?? {});
    const vocab = opts.vocabSize ?? (await ev.probeVocabulary());
    checkTokenizerFits(lm, vocab);
    (ev as { vocabSize: number }).vocabSize = vocab;
    (ev as { batchSize: number }).batchSize = opts.batchSize ?? batchSizeFor(lm.contextLength, vocab, opts.memoryBudget);
    return ev;
  }

  private feeds(batch: Int32Array[], length: number): Record<string, ort.Tensor> {
    const b = batch.length;
    const ids = new BigInt64Array(b * length);
    const targets = new BigInt64Array(b * length);
    const mask = new BigInt64Array(b * length);
    batch.forEach((w, r) => {
      // w holds length+1 tokens at most: inputs w[0..n-1], targets w[1..n].
      for (let t = 0; t + 1 < w.length; t++) {
        ids[r * length + t] = BigInt(w[t]);
        targets[r * length + t] = BigInt(w[t + 1]);
        mask[r * length + t] = 1n;
      }
    });
    const feeds: Record<string, ort.Tensor> = {
      ...this.extraFeeds,
      [this.lm.inputName]: new ort.Tensor('int64', ids, [b, length]),
      [TARGETS_INPUT]: new ort.Tensor('int64', targets, [b, length]),
    };
    Object.assign(feeds, pastFeeds(this.lm, b));
    if (this.feedsMask) feeds.attention_mask = new ort.Tensor('int64', mask, [b, length]);
    if (this.feedsPositions) {
      const pos = new BigInt64Array(b * length);
      for (let i = 0; i < pos.length; i++) pos[i] = BigInt(i % length);
      feeds.position_ids = new ort.Tensor('int64', pos, [b, length]);
    }
    return feeds;
  }

  private async probeVocabulary(): Promise<number> {
    const out = await this.run(this.feeds([Int32Array.of(0, 0)], 1), [this.lm.logitsName]);
    const dims = out[this.lm.logitsName].dims;
    return dims[dims.length - 1];
  }

  private async run(feeds: Record<string, ort.Tensor>, fetches: string[]): Promise<ort.InferenceSession.ReturnType> {
    try {
      return await this.session.run(feeds, fetches);
    } catch (err) {
      throw new ScalpelError(`onnxruntime failed to run the model: ${firstLine(err)}`, this.lm.file);
    }
  }

  /** How many runs `evaluate` makes for a dataset (windows of the context length, batchSize at a time). */
  batches(ds: TokenizedDataset): number {
    return Math.ceil(Math.ceil(Math.max(0, ds.ids.length - 1) / this.lm.contextLength) / this.batchSize);
  }

  /**
   * Per-token loss of a batch of windows in one ORT run: window r scores ids[1 …] from ids[0 …], row r of
   * `nll` (rows padded to `length`). `feeds` add to or replace the usual inputs.
   */
  async scoreBatch(batch: Int32Array[], feeds: Record<string, ort.Tensor> = {}): Promise<{ nll: Float32Array; length: number }> {
    const length = Math.max(...batch.map((w) => w.length - 1));
    const out = await this.run({ ...this.feeds(batch, length), ...feeds }, [NLL_OUTPUT]);
    return { nll: out[NLL_OUTPUT].data as Float32Array, length };
  }

  /** Mean and per-token loss over a tokenized dataset, in windows of the model's context length. */
  async evaluate(ds: TokenizedDataset, opts: EvaluateOptions = {}): Promise<DatasetLoss> {
    const n = ds.ids.length;
    const ctx = this.lm.contextLength;
    const perToken = new Float32Array(Math.max(0, n - 1));
    const windows: number[] = [];
    for (let start = 0; start < n - 1; start += ctx) windows.push(start);
    const windowSums = new Float64Array(windows.length).fill(NaN);
    const shard = opts.shard;
    // Shards split whole batches, so every window runs in the very batch (same shape, same padding) as unsharded.
    for (let i = 0; i < windows.length; i += this.batchSize) {
      if (opts.signal?.aborted) throw new CancelledError();
      const b = i / this.batchSize;
      if (shard && (b + (shard.offset ?? 0)) % shard.count !== shard.index) continue;
      const starts = windows.slice(i, i + this.batchSize);
      const batch = starts.map((s) => ds.ids.subarray(s, Math.min(n, s + ctx + 1)));
      const length = Math.max(...batch.map((w) => w.length - 1));
      const feeds = { ...this.feeds(batch, length), ...opts.feeds, ...opts.batchFeeds?.(b, starts) };
      const out = await this.run(feeds, [NLL_OUTPUT, ...(opts.fetches ?? [])]);
      opts.onBatch?.(b, out);
      const nll = out[NLL_OUTPUT].data as Float32Array;
      starts.forEach((s, r) => {
        const scored = nll.subarray(r * length, r * length + batch[r].length - 1);
        perToken.set(scored, s);
        let sum = 0;
        for (const v of scored) sum += v;
        windowSums[i + r] = sum;
      });
      opts.onProgress?.({ done: Math.min(n - 1, starts[starts.length - 1] + ctx), total: n - 1 });
    }
    // A shard's mean is NaN (windows it did not score are NaN): its window sums are what gets merged.
    return { name: ds.name, source: ds.source, tokens: perToken.length, loss: meanOfWindows(windowSums, perToken.length), perToken, windowSums };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

/** A decoder's cache inputs for scoring from scratch: every past empty (its sequence axis 0), `use_cache_branch` false. */
export function pastFeeds(lm: LanguageModel, batch: number): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const i of lm.pastInputs) {
    if (i.elemType === DataType.BOOL) {
      feeds[i.name] = new ort.Tensor('bool', new Uint8Array(1), [1]);
      continue;
    }
    if (!i.shape) throw new ScalpelError(`model input ${i.name} has no stated shape; cannot feed it an empty cache`, lm.file);
    // [batch, heads, past_sequence, head_dim]: the batch first, fixed sizes kept, any other named axis is the past's length.
    const dims = i.shape.map((d, k) => (k === 0 ? batch : typeof d === 'number' ? d : 0));
    if (i.elemType === DataType.FLOAT) feeds[i.name] = new ort.Tensor('float32', new Float32Array(0), dims);
    else if (i.elemType === DataType.FLOAT16) feeds[i.name] = new ort.Tensor('float16', new Uint16Array(0), dims);
    else throw new ScalpelError(`model input ${i.name} is ${dtypeName(i.elemType)}; a cache must be float32 or float16`, lm.file);
  }
  return feeds;
}

/**
 * Windows per run: the logits of a batch (and their log-softmax) within the budget, at most 8.
 * Larger batches gain little on CPU once a window's matrices are large.
 */
export function batchSizeFor(contextLength: number, vocab: number, budget = 512 * 2 ** 20): number {
  return Math.max(1, Math.min(8, Math.floor(budget / (2 * 4 * contextLength * vocab))));
}

/** Nodes computing each position's negative log-likelihood of its target, in float32 whatever the logits' type. */
export function lossHead(onnx: OnnxModel, logitsName: string): GraphEdit {
  const opset = onnx.opsets.find((o) => o.domain === '' || o.domain === 'ai.onnx')?.version ?? 17;
  const axesAsInput = opset >= 13;
  const axes = { name: 'scalpel_axes_last', dims: [1], dataType: DataType.INT64, data: { raw: new Uint8Array(new BigInt64Array([-1n]).buffer) } };
  const logitsType = onnx.outputs.find((o) => o.name === logitsName)?.elemType ?? DataType.FLOAT;
  const cast = logitsType !== DataType.FLOAT;
  return {
    addInitializers: axesAsInput ? [axes] : [],
    addInputs: [{ name: TARGETS_INPUT, elemType: DataType.INT64, shape: ['batch', 'sequence'] }],
    addNodes: [
      ...(cast ? [{ name: 'scalpel/Cast', opType: 'Cast', inputs: [logitsName], outputs: ['scalpel_logits32'], attributes: [{ name: 'to', i: DataType.FLOAT }] }] : []),
      { name: 'scalpel/LogSoftmax', opType: 'LogSoftmax', inputs: [cast ? 'scalpel_logits32' : logitsName], outputs: ['scalpel_logp'], attributes: [{ name: 'axis', i: -1 }] },
      axesAsInput
        ? { name: 'scalpel/Unsqueeze', opType: 'Unsqueeze', inputs: [TARGETS_INPUT, axes.name], outputs: ['scalpel_targets3'] }
        : { name: 'scalpel/Unsqueeze', opType: 'Unsqueeze', inputs: [TARGETS_INPUT], outputs: ['scalpel_targets3'], attributes: [{ name: 'axes', ints: [-1] }] },
      { name: 'scalpel/GatherElements', opType: 'GatherElements', inputs: ['scalpel_logp', 'scalpel_targets3'], outputs: ['scalpel_picked'], attributes: [{ name: 'axis', i: -1 }] },
      axesAsInput
        ? { name: 'scalpel/Squeeze', opType: 'Squeeze', inputs: ['scalpel_picked', axes.name], outputs: ['scalpel_logp_target'] }
        : { name: 'scalpel/Squeeze', opType: 'Squeeze', inputs: ['scalpel_picked'], outputs: ['scalpel_logp_target'], attributes: [{ name: 'axes', ints: [-1] }] },
      { name: 'scalpel/Neg', opType: 'Neg', inputs: ['scalpel_logp_target'], outputs: [NLL_OUTPUT] },
    ],
    addOutputs: [{ name: NLL_OUTPUT, elemType: DataType.FLOAT, shape: ['batch', 'sequence'] }],
  };
}

/**
 * A tokenizer larger than the model's vocabulary, or much smaller (models pad their vocabulary
 * by a few dozen entries at most), is the wrong tokenizer.
 */
function checkTokenizerFits(lm: LanguageModel, modelVocab: number): void {
  const t = lm.tokenizer.vocabSize;
  if (t > modelVocab || t < 0.9 * modelVocab) {
    throw new ScalpelError(
      `tokenizer ${lm.tokenizer.source} has ${t} tokens but the model predicts ${modelVocab}: wrong tokenizer for this model?`,
      lm.file,
    );
  }
}

/** Evaluates several datasets with one session; progress counts tokens over all of them. */
export async function evaluateAll(
  ev: Evaluator,
  datasets: TokenizedDataset[],
  opts: { signal?: AbortSignal; onProgress?: (p: Progress & { dataset: string }) => void } = {},
): Promise<DatasetLoss[]> {
  const total = datasets.reduce((a, d) => a + Math.max(0, d.ids.length - 1), 0);
  let before = 0;
  const out: DatasetLoss[] = [];
  for (const d of datasets) {
    out.push(await ev.evaluate(d, { signal: opts.signal, onProgress: (p) => opts.onProgress?.({ done: before + p.done, total, dataset: d.name }) }));
    before += Math.max(0, d.ids.length - 1);
  }
  return out;
}
