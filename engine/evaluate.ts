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
import { DataType, OnnxModel, modelFromBytes } from './onnx/model';
import { rewriteModel } from './onnx/rewrite';
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
  /** perToken[i] is the loss of predicting ids[i + 1] from ids[0..i]. */
  perToken: Float32Array;
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

export interface EvaluatorOptions {
  /** Windows per ORT run (default 8). */
  batchSize?: number;
  /** ORT intra-op threads (default: ORT's choice). */
  threads?: number;
  /** Evaluate these model bytes (an edited copy) instead of the model's own. */
  modelBytes?: Uint8Array;
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
}

const NLL_OUTPUT = 'scalpel_token_nll';
const TARGETS_INPUT = 'scalpel_targets';

export class Evaluator {
  private constructor(
    private readonly session: ort.InferenceSession,
    readonly lm: LanguageModel,
    readonly vocabSize: number,
    private readonly batchSize: number,
    private readonly feedsMask: boolean,
    private readonly feedsPositions: boolean,
    private readonly extraFeeds: Record<string, ort.Tensor>,
  ) {}

  static async create(lm: LanguageModel, opts: EvaluatorOptions = {}): Promise<Evaluator> {
    const onnx = opts.modelBytes ? modelFromBytes(opts.modelBytes, lm.file) : lm.onnx;
    const graph = withLossHead(onnx, lm.logitsName);
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(graph, {
        graphOptimizationLevel: 'all',
        ...(opts.threads ? { intraOpNumThreads: opts.threads } : {}),
      });
    } catch (err) {
      throw new ScalpelError(`onnxruntime cannot load the model: ${firstLine(err)}`, lm.file);
    }
    const names = new Set(onnx.inputs.map((i) => i.name));
    const ev = new Evaluator(session, lm, 0, opts.batchSize ?? 8, names.has('attention_mask'), names.has('position_ids'), opts.feeds ?? {});
    const vocab = opts.vocabSize ?? (await ev.probeVocabulary());
    checkTokenizerFits(lm, vocab);
    (ev as { vocabSize: number }).vocabSize = vocab;
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

  /** Mean and per-token loss over a tokenized dataset, in windows of the model's context length. */
  async evaluate(ds: TokenizedDataset, opts: EvaluateOptions = {}): Promise<DatasetLoss> {
    const n = ds.ids.length;
    const ctx = this.lm.contextLength;
    const perToken = new Float32Array(Math.max(0, n - 1));
    const windows: number[] = [];
    for (let start = 0; start < n - 1; start += ctx) windows.push(start);
    for (let i = 0; i < windows.length; i += this.batchSize) {
      if (opts.signal?.aborted) throw new CancelledError();
      const starts = windows.slice(i, i + this.batchSize);
      const batch = starts.map((s) => ds.ids.subarray(s, Math.min(n, s + ctx + 1)));
      const length = Math.max(...batch.map((w) => w.length - 1));
      const b = i / this.batchSize;
      const feeds = { ...this.feeds(batch, length), ...opts.feeds, ...opts.batchFeeds?.(b, starts) };
      const out = await this.run(feeds, [NLL_OUTPUT, ...(opts.fetches ?? [])]);
      opts.onBatch?.(b, out);
      const nll = out[NLL_OUTPUT].data as Float32Array;
      starts.forEach((s, r) => perToken.set(nll.subarray(r * length, r * length + batch[r].length - 1), s));
      opts.onProgress?.({ done: Math.min(n - 1, starts[starts.length - 1] + ctx), total: n - 1 });
    }
    let sum = 0;
    for (const v of perToken) sum += v;
    return { name: ds.name, source: ds.source, tokens: perToken.length, loss: perToken.length ? sum / perToken.length : NaN, perToken };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

/** The model graph plus nodes computing each position's negative log-likelihood of its target. */
export function withLossHead(onnx: OnnxModel, logitsName: string): Buffer {
  const opset = onnx.opsets.find((o) => o.domain === '' || o.domain === 'ai.onnx')?.version ?? 17;
  const axesAsInput = opset >= 13;
  const axes = { name: 'scalpel_axes_last', dims: [1], dataType: DataType.INT64, data: { raw: new Uint8Array(new BigInt64Array([-1n]).buffer) } };
  return rewriteModel(onnx, {
    inlineExternal: true,
    addInitializers: axesAsInput ? [axes] : [],
    addInputs: [{ name: TARGETS_INPUT, elemType: DataType.INT64, shape: ['batch', 'sequence'] }],
    addNodes: [
      { name: 'scalpel/LogSoftmax', opType: 'LogSoftmax', inputs: [logitsName], outputs: ['scalpel_logp'], attributes: [{ name: 'axis', i: -1 }] },
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
  });
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

function firstLine(err: unknown): string {
  return String((err as Error)?.message ?? err).split('\n')[0];
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
