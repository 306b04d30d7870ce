/**
 * Reusing base activations: an edit of a weight in layer L cannot change anything computed before
 * the weight is first read. The base run also returns the "frontier" (every tensor that the
 * edited part of the graph reads from the unedited part); previews then run only the nodes that
 * depend on the edited weights, fed the cached frontier of each batch.
 *
 * Whether this is faster depends on where the edit sits (see bench/edit.ts); the results equal the
 * full graph's up to float rounding of fused kernels.
 */
import * as ort from 'onnxruntime-node';
import { DatasetLoss, Evaluator, EvaluatorOptions, TokenizedDataset } from '../evaluate';
import { ScalpelError } from '../errors';
import { LanguageModel } from '../lm';
import { DataType, OnnxModel } from '../onnx/model';
import { DatasetDelta, DeltaRunner, datasetKey, deltaOf, weightFeeds, weightsAsInputs } from './preview';
import { WeightEditor } from './weights';

export interface GraphCut {
  /** Indices (in model.nodes) of the nodes the suffix runs: those depending on the edited initializers, and the Constant nodes they read. */
  dependent: Set<number>;
  /** Tensors the dependent nodes read from the rest of the graph. */
  frontier: string[];
}

/** Nodes downstream of `initializers` and the tensors they read from upstream (nodes are in topological order). */
export function cutGraph(model: OnnxModel, initializers: string[]): GraphCut {
  const tainted = new Set(initializers);
  const produced = new Set<string>();
  const dependent = new Set<number>();
  model.nodes.forEach((n, i) => {
    if (n.inputs.some((x) => tainted.has(x))) {
      dependent.add(i);
      for (const o of n.outputs) tainted.add(o);
    }
    for (const o of n.outputs) produced.add(o);
  });
  const producer = new Map<string, number>();
  model.nodes.forEach((n, i) => n.outputs.forEach((o) => producer.set(o, i)));
  const frontier = new Set<string>();
  const constants = new Set<number>();
  for (const i of dependent) {
    for (const x of model.nodes[i].inputs) {
      if (!x || tainted.has(x) || !produced.has(x)) continue;
      // Constant nodes run again in the suffix: cheaper than feeding their values per batch.
      const p = producer.get(x)!;
      if (model.nodes[p].opType === 'Constant') constants.add(p);
      else frontier.add(x);
    }
  }
  for (const i of constants) dependent.add(i);
  return { dependent, frontier: [...frontier] };
}

const ORT_TO_ONNX: Record<string, number> = { float32: DataType.FLOAT, int64: DataType.INT64, int32: DataType.INT32, bool: DataType.BOOL, float64: DataType.DOUBLE, uint8: DataType.UINT8, int8: DataType.INT8, float16: DataType.FLOAT16 };

export class SuffixSession implements DeltaRunner {
  private readonly baseCache = new Map<string, { loss: DatasetLoss; frontier: Record<string, ort.Tensor>[] }>();
  private suffix: Evaluator | undefined;

  private constructor(
    private readonly lm: LanguageModel,
    readonly editor: WeightEditor,
    readonly initializers: string[],
    readonly cut: GraphCut,
    private readonly capture: Evaluator,
    private readonly opts: Omit<EvaluatorOptions, 'model' | 'edit' | 'feeds'>,
  ) {}

  static async create(lm: LanguageModel, editor: WeightEditor, initializers: string[], opts: Omit<EvaluatorOptions, 'model' | 'edit' | 'feeds'> = {}): Promise<SuffixSession> {
    const model = editor.model;
    const cut = cutGraph(model, initializers);
    const producers = new Map<string, number>();
    model.nodes.forEach((n, i) => n.outputs.forEach((o) => producers.set(o, i)));
    for (const o of model.outputs) {
      const p = producers.get(o.name);
      if (p === undefined || !cut.dependent.has(p)) throw new ScalpelError(`cannot reuse activations: graph output ${o.name} does not depend on the edited weights`, lm.file);
    }
    // Element type 0: name-only outputs, typed by onnxruntime; the suffix learns the types from the first capture.
    const edit = weightsAsInputs(editor, initializers, { addOutputs: cut.frontier.map((name) => ({ name, elemType: 0, shape: [] })) });
    const capture = await Evaluator.create(lm, { ...opts, model, edit, feeds: weightFeeds(editor, initializers, new Map()) });
    return new SuffixSession(lm, editor, initializers, cut, capture, opts);
  }

  /** The base loss of a dataset, capturing the frontier of each batch on the way (once per dataset). */
  async base(ds: TokenizedDataset): Promise<DatasetLoss> {
    return (await this.captured(ds)).loss;
  }

  private async captured(ds: TokenizedDataset) {
    const key = datasetKey(ds);
    let entry = this.baseCache.get(key);
    if (!entry) {
      const frontier: Record<string, ort.Tensor>[] = [];
      const loss = await this.capture.evaluate(ds, {
        fetches: this.cut.frontier,
        onBatch: (b, out) => {
          frontier[b] = Object.fromEntries(this.cut.frontier.map((name) => [name, out[name]]));
        },
      });
      entry = { loss, frontier };
      this.baseCache.set(key, entry);
    }
    return entry;
  }

  private async suffixEvaluator(sample: Record<string, ort.Tensor>): Promise<Evaluator> {
    if (this.suffix) return this.suffix;
    const model = this.editor.model;
    const removeNodes = model.nodes.map((_, i) => i).filter((i) => !this.cut.dependent.has(i));
    const frontierInputs = this.cut.frontier.map((name) => {
      const t = sample[name];
      const elemType = ORT_TO_ONNX[t.type];
      if (!elemType) throw new ScalpelError(`cannot reuse activations: tensor ${name} has type ${t.type}`, this.lm.file);
      return { name, elemType, shape: t.dims.map((_, i) => `${name}_d${i}`) };
    });
    // Weights only the dropped nodes read go too (onnxruntime would warn about each one).
    const used = new Set([...this.cut.dependent].flatMap((i) => model.nodes[i].inputs));
    const unused = [...model.initializers.keys()].filter((name) => !used.has(name) && !this.initializers.includes(name));
    const edit = weightsAsInputs(this.editor, this.initializers, { removeNodes, removeInitializers: unused, addInputs: frontierInputs });
    this.suffix = await Evaluator.create(this.lm, { ...this.opts, model, edit, feeds: weightFeeds(this.editor, this.initializers, new Map()), vocabSize: this.capture.vocabSize });
    return this.suffix;
  }

  /** Loss under edited weights, running only the graph after the cut. */
  async evaluate(ds: TokenizedDataset, edited: Map<string, Float32Array>): Promise<DatasetLoss> {
    const { frontier } = await this.captured(ds);
    if (!frontier.length) return this.capture.evaluate(ds, { feeds: weightFeeds(this.editor, this.initializers, edited) });
    const ev = await this.suffixEvaluator(frontier[0]);
    return ev.evaluate(ds, { feeds: weightFeeds(this.editor, this.initializers, edited), batchFeeds: (b) => frontier[b] });
  }

  async delta(ds: TokenizedDataset, edited: Map<string, Float32Array>): Promise<DatasetDelta> {
    const base = await this.base(ds);
    return deltaOf(base, await this.evaluate(ds, edited));
  }

  async release(): Promise<void> {
    await this.capture.release();
    await this.suffix?.release();
  }
}
