/**
 * Capturing activations for geometry: the chosen capture points become extra graph outputs of the
 * evaluation graph (the same rewrite the tracer and the labeller use), and each batch's rows are
 * streamed into running moments (every token) and a bounded, deterministic sample of points.
 *
 * Base and edited captures of the same data visit the same tokens in the same order and sample
 * with the same seeds, so their points correspond one to one (the panel draws arrows between them).
 */
import { Dataset, splitDocuments } from '../data';
import { ScalpelError } from '../errors';
import { Evaluator, Progress, TokenizedDataset, tokenizeDataset } from '../evaluate';
import { LanguageModel } from '../lm';
import { RuntimeOptions, runtimeOf } from '../runtime';
import { OnnxModel } from '../onnx/model';
import { initializersAsInputs, withExtraOutputs } from '../onnx/rewrite';
import { Capture, analyzeModel } from '../trace/graph';
import { patchFeeds } from '../trace/trace';
import { Moments } from './pca';
import { resolvePoint, splitSentences } from './points';

export interface TaggedSource {
  tag: string;
  dataset: Dataset;
  /** The dataset's token budget (a spec's `limit N tokens`): only its first N tokens are captured, as evaluation scores them. */
  maxTokens?: number;
}

export interface CaptureOptions extends RuntimeOptions {
  /** Replaced float32 initializers (an edit's patched weights, and a gated path's scale vectors). */
  patches?: Map<string, Float32Array>;
  /** The graph to run instead of the model's own: one with gated paths (`withGatedPaths`), whose scales `patches` sets. */
  graph?: OnnxModel;
  /** Windows per ORT run (default 8). */
  batchSize?: number;
}

export interface DatasetCaptureOptions {
  /** Points kept per tag for plots and probes (default 4000); moments use every token. */
  maxPerTag?: number;
  /**
   * Fraction of each dataset's documents held out for probe accuracy (default 0.3, by document content);
   * a dataset too small to hold a document out holds out that fraction of its tokens, at its end.
   */
  heldoutFraction?: number;
  /** One token captured beside the sample whatever the sampling keeps (the debugger's, for the panel to mark). */
  mark?: TokenMark;
  signal?: AbortSignal;
  onProgress?: (p: Progress & { tag: string }) => void;
}

/** A token of a tagged dataset: the dataset's tag, the document's index in it, the token's position in the document. */
export interface TokenMark {
  tag: string;
  document: number;
  position: number;
}

/** The activations at one capture point: a sample of rows with where each came from, and moments of all. */
export interface Activations {
  point: Capture;
  width: number;
  tags: string[];
  /** Rows kept, `count × width`. */
  rows: Float32Array;
  count: number;
  /** Per row: tag index, document index within its dataset, position within the document, token id, held out (1) or not. */
  tag: Int32Array;
  document: Int32Array;
  position: Int32Array;
  token: Int32Array;
  heldout: Uint8Array;
  /** Per row where the capture is of sentences: the sentence's text. */
  sentences?: string[];
  /** Moments over every token captured (not only the kept rows). */
  moments: Moments;
  /** Tokens seen per tag. */
  tokens: number[];
  /** The marked token's activation (`DatasetCaptureOptions.mark`), when the capture reached it. */
  marked?: { row: Float32Array; token: number };
}

const DEFAULT_MAX_PER_TAG = 4000;

export class ActivationCapture {
  private constructor(
    readonly lm: LanguageModel,
    readonly points: Capture[],
    private readonly evaluator: Evaluator,
  ) {}

  /** One evaluation session whose graph also returns each point's tensor (of the edited model with `patches`). */
  static async create(lm: LanguageModel, pointNames: string[], opts: CaptureOptions = {}): Promise<ActivationCapture> {
    if (!pointNames.length) throw new ScalpelError('capture needs at least one capture point (e.g. h.2.resid)');
    // Points are named on the model's own graph; a gated graph keeps every tensor name of it.
    const structure = analyzeModel(lm.onnx, lm.logitsName);
    const points = pointNames.map((n) => resolvePoint(structure, n));
    const graph = opts.graph ?? lm.onnx;
    // An edit's patched weights are fed per run (initializers turned into inputs), as the tracer does.
    const patched = [...(opts.patches?.keys() ?? [])];
    const tensors = [...new Set(points.map((p) => p.tensor))];
    const evaluator = await Evaluator.create(lm, {
      model: graph,
      edit: withExtraOutputs(graph, tensors, patched.length ? initializersAsInputs(graph, patched) : {}),
      feeds: opts.patches?.size ? patchFeeds(graph, opts.patches) : undefined,
      batchSize: opts.batchSize,
      ...runtimeOf(opts),
    });
    return new ActivationCapture(lm, points, evaluator);
  }

  /** Every token of each tagged dataset (a sample of at most `maxPerTag` rows kept per tag). */
  async datasets(sources: TaggedSource[], opts: DatasetCaptureOptions = {}): Promise<Map<string, Activations>> {
    const tags = sources.map((s) => s.tag);
    if (new Set(tags).size !== tags.length) throw new ScalpelError(`each dataset needs its own tag; got ${tags.join(', ')}`);
    const max = opts.maxPerTag ?? DEFAULT_MAX_PER_TAG;
    const sinks = this.points.map(() => new Sink(tags, max));
    const marked: Activations['marked'][] = this.points.map(() => undefined);
    for (let ti = 0; ti < sources.length; ti++) {
      const { dataset: ds, maxTokens } = sources[ti];
      const fraction = opts.heldoutFraction ?? 0.3;
      // N tokens scored are N + 1 ids, the first being the context start (as `limit N tokens` is evaluated).
      const tokenized = tokenizeDataset(ds, this.lm.tokenizer, maxTokens !== undefined ? maxTokens + 1 : Infinity);
      if (tokenized.ids.length < 2) throw new ScalpelError(`dataset ${ds.name} has no tokens`);
      // Held out among the documents read: a token budget may stop before the rest.
      const read = ds.documents.slice(0, tokenized.documentStarts.length);
      const held = new Set(splitDocuments(read, fraction).heldout);
      // Too few documents to hold some out (an inline text is one): hold out the last part of the token stream instead.
      const byPosition = held.size === 0 || held.size === read.length;
      const cut = Math.floor((1 - fraction) * (tokenized.ids.length - 1));
      const isHeldout = (pos: number, doc: number) => (byPosition ? pos >= cut : held.has(ds.documents[doc]));
      const reservoirs = this.points.map(() => new Reservoir(max, ti + 1));
      const mark = opts.mark?.tag === sources[ti].tag ? opts.mark : undefined;
      await this.run(tokenized, (pi, row, pos, doc) => {
        sinks[pi].moments.add(row);
        if (mark && doc === mark.document && pos - tokenized.documentStarts[doc] === mark.position) marked[pi] = { row: row.slice(), token: tokenized.ids[pos] };
        const slot = reservoirs[pi].offer();
        if (slot >= 0) sinks[pi].put(ti, slot, row, { document: doc, position: pos - tokenized.documentStarts[doc], token: tokenized.ids[pos], heldout: isHeldout(pos, doc) });
        if (pi === 0) sinks[0].tokens[ti]++;
      }, opts.signal, (p) => opts.onProgress?.({ ...p, tag: sources[ti].tag }));
    }
    const out = this.finish(sinks);
    [...out.values()].forEach((a, pi) => marked[pi] && (a.marked = marked[pi]));
    return out;
  }

  /**
   * The last token of every sentence of one text (`splitSentences`), read in one stream from the
   * start (windows of the context length when the text is longer).
   */
  async sentences(text: string, opts: { tag?: string; signal?: AbortSignal } = {}): Promise<Map<string, Activations>> {
    const sentences = splitSentences(text);
    if (!sentences.length) throw new ScalpelError('the text has no sentences');
    const tok = this.lm.tokenizer;
    const ids: number[] = tok.bos !== undefined ? [tok.bos] : [];
    const ends: number[] = [];
    const kept: string[] = [];
    for (const s of sentences) {
      const piece = tok.encode(s.text);
      if (!piece.length) continue;
      ids.push(...piece);
      ends.push(ids.length - 1);
      kept.push(s.text.trim());
    }
    // One more token, so that the last sentence's last token is an input too (the model is causal: it changes nothing before it).
    ids.push(ids[ids.length - 1]);
    const tokenized: TokenizedDataset = { name: 'text', source: 'text', ids: Int32Array.from(ids), documentStarts: [0] };
    const tag = opts.tag ?? 'text';
    const sinks = this.points.map(() => new Sink([tag], ends.length));
    const index = new Map(ends.map((e, i) => [e, i]));
    await this.run(tokenized, (pi, row, pos) => {
      sinks[pi].moments.add(row);
      const i = index.get(pos);
      if (i !== undefined) sinks[pi].put(0, i, row, { document: 0, position: pos, token: ids[pos], heldout: false });
      if (pi === 0) sinks[0].tokens[0]++;
    }, opts.signal);
    const out = this.finish(sinks);
    for (const a of out.values()) a.sentences = kept;
    return out;
  }

  private async run(
    ds: TokenizedDataset,
    onRow: (point: number, row: Float32Array, position: number, document: number) => void,
    signal?: AbortSignal,
    onProgress?: (p: Progress) => void,
  ): Promise<void> {
    const n = ds.ids.length;
    let starts: number[] = [];
    let doc = 0;
    await this.evaluator.evaluate(ds, {
      signal,
      onProgress,
      fetches: [...new Set(this.points.map((p) => p.tensor))],
      batchFeeds: (_b, s) => {
        starts = s;
        return {};
      },
      onBatch: (_b, out) => {
        const tensors = this.points.map((p) => out[p.tensor]);
        // [batch, sequence, width], or [batch · sequence, width] where an exporter flattens tokens for a Gemm (HF GPT-2).
        const widths = tensors.map((tensor) => tensor.dims[tensor.dims.length - 1]);
        const length = tensors[0].data.length / widths[0] / starts.length;
        for (let w = 0; w < starts.length; w++) {
          for (let t = 0; t < length; t++) {
            const pos = starts[w] + t;
            if (pos >= n - 1) break;
            while (doc + 1 < ds.documentStarts.length && ds.documentStarts[doc + 1] <= pos) doc++;
            tensors.forEach((tensor, pi) => {
              const width = widths[pi];
              const r = w * length + t;
              onRow(pi, (tensor.data as Float32Array).subarray(r * width, (r + 1) * width), pos, doc);
            });
          }
        }
      },
    });
  }

  private finish(sinks: Sink[]): Map<string, Activations> {
    const out = new Map<string, Activations>();
    this.points.forEach((point, i) => out.set(point.id, sinks[i].activations(point, sinks[0].tokens)));
    return out;
  }

  async release(): Promise<void> {
    await this.evaluator.release();
  }
}

/** Reservoir sampling (algorithm R) with its own seeded generator: the same stream keeps the same rows. */
class Reservoir {
  private seen = 0;
  private state: number;

  constructor(readonly capacity: number, seed: number) {
    this.state = (seed * 0x9e3779b1) >>> 0 || 1;
  }

  /** The slot the next row goes to, or -1 when it is not kept. */
  offer(): number {
    const i = this.seen++;
    if (i < this.capacity) return i;
    const j = Math.floor(this.random() * (i + 1));
    return j < this.capacity ? j : -1;
  }

  private random(): number {
    // xorshift32
    let x = this.state;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.state = x >>> 0;
    return this.state / 2 ** 32;
  }
}

interface RowInfo {
  document: number;
  position: number;
  token: number;
  heldout: boolean;
}

/** Kept rows per tag, by reservoir slot, and moments of every row. */
class Sink {
  readonly moments = new Moments();
  readonly tokens: number[];
  private width = 0;
  private readonly perTag: { rows: Float32Array; info: (RowInfo | undefined)[] }[] = [];

  constructor(readonly tags: string[], private readonly capacity: number) {
    this.tokens = tags.map(() => 0);
  }

  put(tag: number, slot: number, row: Float32Array, info: RowInfo): void {
    if (!this.width) this.width = row.length;
    const t = (this.perTag[tag] ??= { rows: new Float32Array(this.capacity * this.width), info: [] });
    t.rows.set(row, slot * this.width);
    t.info[slot] = info;
  }

  /** Rows in tag order, each tag's in stream order (document, then position). */
  activations(point: Capture, tokens: number[]): Activations {
    const order: { tag: number; slot: number; info: RowInfo }[] = [];
    this.perTag.forEach((t, tag) => {
      const mine = t.info.flatMap((info, slot) => (info ? [{ tag, slot, info }] : []));
      mine.sort((a, b) => a.info.document - b.info.document || a.info.position - b.info.position);
      order.push(...mine);
    });
    const n = order.length;
    const w = this.width || this.moments.dimension;
    const a: Activations = {
      point, width: w, tags: this.tags, rows: new Float32Array(n * w), count: n,
      tag: new Int32Array(n), document: new Int32Array(n), position: new Int32Array(n), token: new Int32Array(n), heldout: new Uint8Array(n),
      moments: this.moments, tokens: [...tokens],
    };
    order.forEach((o, i) => {
      a.rows.set(this.perTag[o.tag].rows.subarray(o.slot * w, (o.slot + 1) * w), i * w);
      a.tag[i] = o.tag;
      a.document[i] = o.info.document;
      a.position[i] = o.info.position;
      a.token[i] = o.info.token;
      a.heldout[i] = o.info.heldout ? 1 : 0;
    });
    return a;
  }
}
