/**
 * Recorded forward passes: one onnxruntime run per model (base, and edited when there is an
 * edit) with every capture point of `analyzeModel` (and the attention probabilities of its value
 * paths) added as an extra graph output. Everything a debugger shows afterwards is computed from
 * these recordings, so stepping never runs the model.
 */
import * as ort from 'onnxruntime-node';
import { ScalpelError } from '../errors';
import { LanguageModel } from '../lm';
import { CancelledError, pastFeeds } from '../evaluate';
import { DataType, OnnxModel, OpenedModel, checkFloatTensor, decodeFloats, numel, openModel, readFloatTensor } from '../onnx/model';
import { ModuleWeight } from '../onnx/modules';
import { initializersAsInputs, weightInputName } from '../onnx/rewrite';
import { SessionOptions, createSession } from '../session';
import { Capture, ModelStructure, analyzeModel } from './graph';

export type Side = 'base' | 'edited';
export const SIDES: readonly Side[] = ['base', 'edited'];

export interface TracerOptions extends SessionOptions {
  /** Replaced float32 initializers (an edit's patched weights), each in the initializer's own layout. */
  patches?: Map<string, Float32Array>;
  /** A whole edited model on disk (e.g. written by `scalpel apply`); its graph must match the base's. */
  editedFile?: string;
  /**
   * The graph to trace for both sides instead of the base file's: the base with gated paths (gate.ts),
   * whose scale vectors `patches` sets (ones, the base, on the base side).
   */
  model?: OnnxModel;
  /** Further tensors to record on both sides, [1, sequence, width] each (e.g. the gates of gated paths). */
  record?: string[];
}

/** How the edited side runs: the base session fed patched weights, or a session of its own over another file. */
type EditedSide = { kind: 'none' } | { kind: 'patches'; patches: Map<string, Float32Array> } | { kind: 'file'; model: OpenedModel; session: ort.InferenceSession };

/** One captured tensor: [sequence, width] of the single traced sequence. */
export interface Recorded {
  data: Float32Array;
  width: number;
  /** The tensor's shape: [1, sequence, width], or [1, heads, sequence, sequence] for attention probabilities. */
  dims: readonly number[];
}

export interface Trace {
  structure: ModelStructure;
  /** Token ids fed (the tokenizer's start token first where it has one). */
  tokens: Int32Array;
  /** Whether an edit was traced; without one, `edited` holds the base recordings. */
  hasEdit: boolean;
  recorded: Record<Side, Map<string, Recorded>>;
  /** Bytes held by the recordings (the edited side counts only when it differs). */
  bytes: number;
}

export class Tracer {
  private readonly weightCache = new Map<string, Float32Array>();

  private constructor(
    readonly lm: LanguageModel,
    readonly structure: ModelStructure,
    private readonly session: ort.InferenceSession,
    private readonly edited: EditedSide,
    /** The graph the session runs: the base file's, or the base with gated paths. */
    private readonly graph: OnnxModel,
    private readonly record: string[],
  ) {}

  get hasEdit(): boolean {
    return this.edited.kind !== 'none';
  }

  static async create(lm: LanguageModel, opts: TracerOptions = {}): Promise<Tracer> {
    if (opts.patches && opts.editedFile) throw new ScalpelError('give an edit as patches or as a model file, not both');
    const structure = analyzeModel(lm.onnx, lm.logitsName);
    const patches = opts.patches?.size ? opts.patches : undefined;
    const graph = opts.model ?? lm.onnx;
    const record = opts.record ?? [];
    if (patches) checkPatches(graph, patches);
    const session = await createTraceSession(graph, structure, [...(patches?.keys() ?? [])], record, opts);
    if (patches) return new Tracer(lm, structure, session, { kind: 'patches', patches }, graph, record);
    if (!opts.editedFile) return new Tracer(lm, structure, session, { kind: 'none' }, graph, record);
    const model = openModel(opts.editedFile);
    try {
      checkSameGraph(lm.onnx, model, structure);
      const editedSession = await createTraceSession(model, structure, [], record, opts);
      return new Tracer(lm, structure, session, { kind: 'file', model, session: editedSession }, graph, record);
    } catch (err) {
      model.close();
      await session.release();
      throw err;
    }
  }

  /** Runs both models on one sequence and records every capture point; `signal` stops it between the two runs. */
  async trace(tokens: Int32Array, signal?: AbortSignal): Promise<Trace> {
    if (tokens.length === 0) throw new ScalpelError('nothing to trace: the input has no tokens');
    if (tokens.length > this.lm.contextLength) {
      throw new ScalpelError(`the input has ${tokens.length} tokens; the model reads at most ${this.lm.contextLength}`);
    }
    const base = await this.run(this.session, tokens, this.patchFeeds('base'));
    if (signal?.aborted) throw new CancelledError();
    const edited =
      this.edited.kind === 'none' ? base : this.edited.kind === 'file' ? await this.run(this.edited.session, tokens, {}) : await this.run(this.session, tokens, this.patchFeeds('edited'));
    let bytes = 0;
    for (const side of this.hasEdit ? [base, edited] : [base]) for (const r of side.values()) bytes += r.data.byteLength;
    return { structure: this.structure, tokens, hasEdit: this.hasEdit, recorded: { base, edited }, bytes };
  }

  /** Which model's copy of an initializer a side reads: the edited one only where the edit changed it. */
  private differs(side: Side, name: string): boolean {
    return side === 'edited' && (this.edited.kind === 'file' || (this.edited.kind === 'patches' && this.edited.patches.has(name)));
  }

  /** A float32 initializer of one side's model (edited weights where the edit changed them), cached. */
  weight(side: Side, name: string): Float32Array {
    if (this.differs(side, name) && this.edited.kind === 'patches') return this.edited.patches.get(name)!;
    const key = `${this.differs(side, name) ? 'edited' : 'base'}\0${name}`;
    let w = this.weightCache.get(key);
    if (!w) {
      w = readFloatTensor(this.edited.kind === 'file' && this.differs(side, name) ? this.edited.model : this.graph, name);
      this.weightCache.set(key, w);
    }
    return w;
  }

  /** The patched initializers, fed as graph inputs: the base weights or the edited ones. */
  private patchFeeds(side: Side): Record<string, ort.Tensor> {
    if (this.edited.kind !== 'patches') return {};
    return side === 'edited' ? patchFeeds(this.graph, this.edited.patches) : patchFeeds(this.graph, new Map([...this.edited.patches.keys()].map((n) => [n, this.weight('base', n)])));
  }

  /** A module's weight as a (dIn, dOut) row-major matrix, whatever its stored layout; cached. */
  moduleMatrix(side: Side, mw: ModuleWeight): Float32Array {
    const key = `${this.differs(side, mw.initializer) ? 'edited' : 'base'}\0${mw.initializer}\0in_out`;
    let m = this.weightCache.get(key);
    if (!m) {
      const w = this.weight(side, mw.initializer);
      if (mw.layout === 'in_out') m = w;
      else {
        m = new Float32Array(w.length);
        for (let j = 0; j < mw.dOut; j++) for (let i = 0; i < mw.dIn; i++) m[i * mw.dOut + j] = w[j * mw.dIn + i];
      }
      this.weightCache.set(key, m);
    }
    return m;
  }

  private async run(session: ort.InferenceSession, tokens: Int32Array, weights: Record<string, ort.Tensor>): Promise<Map<string, Recorded>> {
    const t = tokens.length;
    const feeds: Record<string, ort.Tensor> = {
      ...weights,
      ...pastFeeds(this.lm, 1),
      [this.lm.inputName]: new ort.Tensor('int64', BigInt64Array.from(tokens, BigInt), [1, t]),
    };
    const inputs = new Set(session.inputNames);
    if (inputs.has('attention_mask')) feeds.attention_mask = new ort.Tensor('int64', new BigInt64Array(t).fill(1n), [1, t]);
    if (inputs.has('position_ids')) feeds.position_ids = new ort.Tensor('int64', BigInt64Array.from({ length: t }, (_, i) => BigInt(i)), [1, t]);
    const fetches = recordedTensors(this.structure, this.record);
    let out: ort.InferenceSession.ReturnType;
    try {
      out = await session.run(feeds, fetches);
    } catch (err) {
      throw new ScalpelError(`onnxruntime failed to run the traced model: ${String((err as Error)?.message ?? err).split('\n')[0]}`, this.lm.file);
    }
    const recorded = new Map<string, Recorded>();
    const attention = new Set([...this.structure.valuePaths.values()].map((v) => v.probs));
    for (const name of fetches) {
      const tensor = out[name];
      const probs = attention.has(name);
      // A module run on flattened tokens (Gemm, HF GPT-2's Conv1D) records [tokens, width]: the one sequence's rows.
      const dims = !probs && tensor.dims.length === 2 && tensor.dims[0] === t ? [1, ...tensor.dims] : tensor.dims;
      const ok = probs ? dims.length === 4 && dims[2] === t && dims[3] === t : dims.length === 3 && dims[1] === t;
      const floats = tensor.type === 'float32' || tensor.type === 'float16';
      if (!floats || !ok) {
        throw new ScalpelError(`captured tensor ${name} has shape [${tensor.dims}] (${tensor.type}); expected float ${probs ? `[1, heads, ${t}, ${t}]` : `[1, ${t}, width]`}`, this.lm.file);
      }
      const data = tensor.type === 'float16' ? decodeFloats(new Uint8Array((tensor.data as Uint16Array).buffer, (tensor.data as Uint16Array).byteOffset, (tensor.data as Uint16Array).byteLength), DataType.FLOAT16) : (tensor.data as Float32Array);
      recorded.set(name, { data, width: dims[dims.length - 1], dims });
    }
    return recorded;
  }

  async release(): Promise<void> {
    await this.session.release();
    if (this.edited.kind === 'file') {
      await this.edited.session.release();
      this.edited.model.close();
    }
  }
}

/** Every tensor a trace records: the captures, and the attention probabilities of value paths. */
function recordedTensors(structure: ModelStructure, record: string[]): string[] {
  return [...new Set([...structure.captures.map((c) => c.tensor), ...[...structure.valuePaths.values()].map((v) => v.probs), ...record])];
}

/** The vector of a capture at one position. */
export function captured(trace: Trace, side: Side, capture: Capture | string, position: number): Float32Array {
  const tensor = typeof capture === 'string' ? capture : capture.tensor;
  const r = trace.recorded[side].get(tensor);
  if (!r) throw new ScalpelError(`nothing recorded for ${tensor}`);
  return r.data.subarray(position * r.width, (position + 1) * r.width);
}

/** Feeds for initializers turned into inputs (`initializersAsInputs`), from float32 values in their own layout. */
export function patchFeeds(model: OnnxModel, patches: Map<string, Float32Array>): Record<string, ort.Tensor> {
  checkPatches(model, patches);
  return Object.fromEntries([...patches].map(([name, values]) => {
    const t = model.initializers.get(name)!;
    return [weightInputName(t), new ort.Tensor('float32', values, t.dims)];
  }));
}

function checkPatches(model: OnnxModel, patches: Map<string, Float32Array>): void {
  for (const [name, values] of patches) {
    const t = model.initializers.get(name);
    if (!t) throw new ScalpelError(`the edit patches ${name}, which the model does not have`, model.file);
    checkFloatTensor(model, t);
    if (values.length !== numel(t.dims)) {
      throw new ScalpelError(`the edit's patch for ${name} has ${values.length} float32 values; the tensor is ${t.dtype} [${t.dims}]`, model.file);
    }
  }
}

function checkSameGraph(base: OnnxModel, edited: OnnxModel, structure: ModelStructure): void {
  const produced = new Set(edited.nodes.flatMap((n) => n.outputs));
  const missing = structure.captures.find((c) => !produced.has(c.tensor));
  if (missing) throw new ScalpelError(`the edited model's graph differs from the base: it has no tensor ${missing.tensor}`, base.file);
}

/** A session recording every capture; `asInputs`: initializers fed per run (an edit's patched weights). */
async function createTraceSession(model: OnnxModel, structure: ModelStructure, asInputs: string[], record: string[], opts: SessionOptions): Promise<ort.InferenceSession> {
  const existing = new Set(model.outputs.map((o) => o.name));
  // Name-only outputs: onnxruntime types them (float16 in a float16 graph).
  const addOutputs = recordedTensors(structure, record)
    .filter((t) => !existing.has(t))
    .map((name) => ({ name, elemType: 0 }));
  return createSession(model, { ...initializersAsInputs(model, asInputs), addOutputs }, opts, 'the traced model');
}
