/**
 * Recorded forward passes: one onnxruntime run per model (base, and edited when there is an
 * edit) with every capture point of `analyzeModel` (and the attention probabilities of its value
 * paths) added as an extra graph output. Everything a debugger shows afterwards is computed from
 * these recordings, so stepping never runs the model.
 */
import * as ort from 'onnxruntime-node';
import { ScalpelError } from '../errors';
import { LanguageModel } from '../lm';
import { floatTensor } from '../onnx/build';
import { DataType, OnnxModel, modelFromBytes, readFloatTensor } from '../onnx/model';
import { ModuleWeight } from '../onnx/modules';
import { rewriteModel } from '../onnx/rewrite';
import { Capture, ModelStructure, analyzeModel } from './graph';

export type Side = 'base' | 'edited';
export const SIDES: readonly Side[] = ['base', 'edited'];

export interface TracerOptions {
  /** Replaced float32 initializers (an edit's patched weights), each in the initializer's own layout. */
  patches?: Map<string, Float32Array>;
  /** A whole edited model, as bytes (e.g. written by an edit); its graph must match the base's. */
  editedBytes?: Uint8Array;
  threads?: number;
}

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
    private readonly sessions: Record<Side, ort.InferenceSession>,
    private readonly models: Record<Side, OnnxModel>,
    readonly hasEdit: boolean,
  ) {}

  static async create(lm: LanguageModel, opts: TracerOptions = {}): Promise<Tracer> {
    if (opts.patches && opts.editedBytes) throw new ScalpelError('give an edit as patches or as model bytes, not both');
    const structure = analyzeModel(lm.onnx, lm.logitsName);
    let edited: OnnxModel | undefined;
    if (opts.editedBytes) edited = modelFromBytes(opts.editedBytes, lm.file);
    else if (opts.patches?.size) edited = modelFromBytes(patchedBytes(lm.onnx, opts.patches), lm.file);
    if (edited) checkSameGraph(lm.onnx, edited, structure);
    const base = await createSession(lm, lm.onnx, structure, opts.threads);
    const editedSession = edited ? await createSession(lm, edited, structure, opts.threads) : base;
    return new Tracer(lm, structure, { base, edited: editedSession }, { base: lm.onnx, edited: edited ?? lm.onnx }, !!edited);
  }

  /** Runs both models on one sequence and records every capture point. */
  async trace(tokens: Int32Array): Promise<Trace> {
    if (tokens.length === 0) throw new ScalpelError('nothing to trace: the input has no tokens');
    if (tokens.length > this.lm.contextLength) {
      throw new ScalpelError(`the input has ${tokens.length} tokens; the model reads at most ${this.lm.contextLength}`);
    }
    const base = await this.run(this.sessions.base, tokens);
    const edited = this.hasEdit ? await this.run(this.sessions.edited, tokens) : base;
    let bytes = 0;
    for (const side of this.hasEdit ? [base, edited] : [base]) for (const r of side.values()) bytes += r.data.byteLength;
    return { structure: this.structure, tokens, hasEdit: this.hasEdit, recorded: { base, edited }, bytes };
  }

  /** A float32 initializer of one side's model (edited weights where the edit changed them), cached. */
  weight(side: Side, name: string): Float32Array {
    const key = `${this.hasEdit ? side : 'base'}\0${name}`;
    let w = this.weightCache.get(key);
    if (!w) {
      w = readFloatTensor(this.models[this.hasEdit ? side : 'base'], name);
      this.weightCache.set(key, w);
    }
    return w;
  }

  /** A module's weight as a (dIn, dOut) row-major matrix, whatever its stored layout; cached. */
  moduleMatrix(side: Side, mw: ModuleWeight): Float32Array {
    const key = `${this.hasEdit ? side : 'base'}\0${mw.initializer}\0in_out`;
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

  private async run(session: ort.InferenceSession, tokens: Int32Array): Promise<Map<string, Recorded>> {
    const t = tokens.length;
    const feeds: Record<string, ort.Tensor> = {
      [this.lm.inputName]: new ort.Tensor('int64', BigInt64Array.from(tokens, BigInt), [1, t]),
    };
    const inputs = new Set(session.inputNames);
    if (inputs.has('attention_mask')) feeds.attention_mask = new ort.Tensor('int64', new BigInt64Array(t).fill(1n), [1, t]);
    if (inputs.has('position_ids')) feeds.position_ids = new ort.Tensor('int64', BigInt64Array.from({ length: t }, (_, i) => BigInt(i)), [1, t]);
    const fetches = recordedTensors(this.structure);
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
      const dims = tensor.dims;
      const probs = attention.has(name);
      const ok = probs ? dims.length === 4 && dims[2] === t && dims[3] === t : dims.length === 3 && dims[1] === t;
      if (tensor.type !== 'float32' || !ok) {
        throw new ScalpelError(`captured tensor ${name} has shape [${dims}] (${tensor.type}); expected float32 ${probs ? `[1, heads, ${t}, ${t}]` : `[1, ${t}, width]`}`, this.lm.file);
      }
      recorded.set(name, { data: tensor.data as Float32Array, width: dims[dims.length - 1], dims });
    }
    return recorded;
  }

  async release(): Promise<void> {
    await this.sessions.base.release();
    if (this.hasEdit) await this.sessions.edited.release();
  }
}

/** Every tensor a trace records: the captures, and the attention probabilities of value paths. */
function recordedTensors(structure: ModelStructure): string[] {
  return [...new Set([...structure.captures.map((c) => c.tensor), ...[...structure.valuePaths.values()].map((v) => v.probs)])];
}

/** The vector of a capture at one position. */
export function captured(trace: Trace, side: Side, capture: Capture | string, position: number): Float32Array {
  const tensor = typeof capture === 'string' ? capture : capture.tensor;
  const r = trace.recorded[side].get(tensor);
  if (!r) throw new ScalpelError(`nothing recorded for ${tensor}`);
  return r.data.subarray(position * r.width, (position + 1) * r.width);
}

/** The model with some float32 initializers replaced (an edit held in memory). */
export function patchedBytes(model: OnnxModel, patches: Map<string, Float32Array>): Buffer {
  const replaceInitializers = new Map(
    [...patches].map(([name, values]) => {
      const t = model.initializers.get(name);
      if (!t) throw new ScalpelError(`the edit patches ${name}, which the model does not have`, model.file);
      if (t.dataType !== DataType.FLOAT || values.length * 4 !== t.byteLength) {
        throw new ScalpelError(`the edit's patch for ${name} has ${values.length} float32 values; the tensor is ${t.dtype} [${t.dims}]`, model.file);
      }
      return [name, floatTensor(name, t.dims, values)] as const;
    }),
  );
  return rewriteModel(model, { replaceInitializers, inlineExternal: true });
}

function checkSameGraph(base: OnnxModel, edited: OnnxModel, structure: ModelStructure): void {
  const produced = new Set(edited.nodes.flatMap((n) => n.outputs));
  const missing = structure.captures.find((c) => !produced.has(c.tensor));
  if (missing) throw new ScalpelError(`the edited model's graph differs from the base: it has no tensor ${missing.tensor}`, base.file);
}

async function createSession(lm: LanguageModel, model: OnnxModel, structure: ModelStructure, threads?: number): Promise<ort.InferenceSession> {
  const existing = new Set(model.outputs.map((o) => o.name));
  const probs = new Set([...structure.valuePaths.values()].map((v) => v.probs));
  const addOutputs = recordedTensors(structure)
    .filter((t) => !existing.has(t))
    .map((name) => ({ name, elemType: DataType.FLOAT, shape: probs.has(name) ? ['batch', 'heads', 'sequence', 'sequence'] : ['batch', 'sequence', `${name}_width`] }));
  const bytes = rewriteModel(model, { addOutputs, inlineExternal: true });
  try {
    return await ort.InferenceSession.create(bytes, { graphOptimizationLevel: 'all', ...(threads ? { intraOpNumThreads: threads } : {}) });
  } catch (err) {
    throw new ScalpelError(`onnxruntime cannot load the traced model: ${String((err as Error)?.message ?? err).split('\n')[0]}`, lm.file);
  }
}
