/**
 * Previewing edits without writing a file: one ORT session whose editable weights are graph
 * inputs, fed per run. onnxruntime-node ignores a feed for a tensor that is both an initializer
 * and an input, so the initializers are removed and declared as inputs instead; the unedited
 * weights are fed for the base run. Base results are cached per dataset.
 */
import { createHash } from 'node:crypto';
import * as ort from 'onnxruntime-node';
import { CancelledError, DatasetLoss, EvaluateOptions, Evaluator, EvaluatorOptions, TokenizedDataset } from '../evaluate';
import { LanguageModel } from '../lm';
import { GraphEdit, combineEdits, initializersAsInputs, weightInputName } from '../onnx/rewrite';
import { ScalpelError } from '../errors';
import { WeightEditor } from './weights';

export interface DatasetDelta {
  name: string;
  source: string;
  tokens: number;
  base: number;
  edited: number;
  /** edited − base, nats per token. */
  delta: number;
  /** Per scored token: edited − base (for heatmaps). */
  perToken: Float32Array;
  /** Per window, the sums of base and edited token losses (what shards of an evaluation merge). */
  windowSums: { base: Float64Array; edited: Float64Array };
}

/**
 * A stable identity of a tokenized dataset: its name, source and a hash of its token ids. The name is
 * part of it because results carry it: two datasets with the same text are two entries.
 */
export function datasetKey(ds: TokenizedDataset): string {
  const h = createHash('sha256').update(ds.name).update('\0').update(ds.source).update('\0').update(new Uint8Array(ds.ids.buffer, ds.ids.byteOffset, ds.ids.byteLength));
  return h.digest('hex');
}

export function weightFeeds(editor: WeightEditor, initializers: string[], edited: Map<string, Float32Array>): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const name of initializers) {
    const t = editor.model.initializers.get(name)!;
    feeds[weightInputName(t)] = new ort.Tensor('float32', edited.get(name) ?? editor.baseWeight(name), t.dims);
  }
  return feeds;
}

/** An edit turning `initializers` into graph inputs of the same shape (fed by `weightFeeds`), plus `extra`. */
export function weightsAsInputs(editor: WeightEditor, initializers: string[], extra: GraphEdit = {}): GraphEdit {
  return combineEdits(initializersAsInputs(editor.model, initializers), extra);
}

export class PreviewSession {
  private readonly baseCache = new Map<string, DatasetLoss>();

  private constructor(
    readonly editor: WeightEditor,
    readonly initializers: string[],
    readonly evaluator: Evaluator,
  ) {}

  /** `initializers`: the weights edits may touch (everything else stays baked into the graph). */
  static async create(lm: LanguageModel, editor: WeightEditor, initializers: string[], opts: Omit<EvaluatorOptions, 'model' | 'edit' | 'feeds'> = {}): Promise<PreviewSession> {
    if (!initializers.length) throw new ScalpelError('nothing to preview: the edit touches no weights');
    const base = weightFeeds(editor, initializers, new Map());
    const ev = await Evaluator.create(lm, { ...opts, model: editor.model, edit: weightsAsInputs(editor, initializers), feeds: base });
    return new PreviewSession(editor, initializers, ev);
  }

  get vocabSize(): number {
    return this.evaluator.vocabSize;
  }

  private check(edited: Map<string, Float32Array>): void {
    for (const name of edited.keys()) {
      if (!this.initializers.includes(name)) throw new ScalpelError(`this preview session cannot edit ${name}; it was opened for ${this.initializers.join(', ')}`);
    }
  }

  async base(ds: TokenizedDataset, opts: EvaluateOptions = {}): Promise<DatasetLoss> {
    const key = `${datasetKey(ds)}${opts.shard ? ` shard ${opts.shard.index}/${opts.shard.count}+${opts.shard.offset ?? 0}` : ''}`;
    let r = this.baseCache.get(key);
    if (!r) {
      r = await this.evaluator.evaluate(ds, opts);
      this.baseCache.set(key, r);
    }
    return r;
  }

  async evaluate(ds: TokenizedDataset, edited: Map<string, Float32Array>, opts: EvaluateOptions = {}): Promise<DatasetLoss> {
    this.check(edited);
    return this.evaluator.evaluate(ds, { ...opts, feeds: { ...opts.feeds, ...weightFeeds(this.editor, this.initializers, edited) } });
  }

  async delta(ds: TokenizedDataset, edited: Map<string, Float32Array>, opts: EvaluateOptions = {}): Promise<DatasetDelta> {
    const base = await this.base(ds, opts);
    const ed = await this.evaluate(ds, edited, opts);
    return deltaOf(base, ed);
  }

  async release(): Promise<void> {
    await this.evaluator.release();
  }
}

export function deltaOf(base: DatasetLoss, edited: DatasetLoss): DatasetDelta {
  const perToken = new Float32Array(base.perToken.length);
  for (let i = 0; i < perToken.length; i++) perToken[i] = edited.perToken[i] - base.perToken[i];
  return {
    name: base.name,
    source: base.source,
    tokens: base.tokens,
    base: base.loss,
    edited: edited.loss,
    delta: edited.loss - base.loss,
    perToken,
    windowSums: { base: base.windowSums, edited: edited.windowSums },
  };
}

/** Anything that scores a dataset under edited weights, with a cached base: preview or suffix session. */
export interface DeltaRunner {
  delta(ds: TokenizedDataset, edited: Map<string, Float32Array>): Promise<DatasetDelta>;
}

export interface SweepRow {
  scale: number;
  deltas: DatasetDelta[];
}

/** Δloss per dataset at each scale; `weightsAt(s)` builds the edited initializers for scale s. `signal` stops it between datasets. */
export async function sweep(
  runner: DeltaRunner,
  datasets: TokenizedDataset[],
  scales: number[],
  weightsAt: (s: number) => Map<string, Float32Array>,
  signal?: AbortSignal,
): Promise<SweepRow[]> {
  const rows: SweepRow[] = [];
  for (const s of scales) {
    const w = weightsAt(s);
    const deltas: DatasetDelta[] = [];
    for (const ds of datasets) {
      if (signal?.aborted) throw new CancelledError();
      deltas.push(await runner.delta(ds, w));
    }
    rows.push({ scale: s, deltas });
  }
  return rows;
}

/** `n` evenly spaced scales from a to b inclusive. */
export function linspace(a: number, b: number, n: number): number[] {
  if (n < 2) return [a];
  return Array.from({ length: n }, (_, i) => a + ((b - a) * i) / (n - 1));
}
