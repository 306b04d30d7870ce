/**
 * The structure of a transformer's forward pass, read from an ONNX graph's node-name scopes.
 *
 * Exporters name nodes after the module tree (`/h.1/mlp/c_fc/MatMul`, `/h.1/Add_1`): a block is
 * the scope that owns a decomposed module's numbered path segment (`h.1`), its residual adds are
 * the Add nodes directly in that scope, and each add's other operand is a sublayer's output
 * (`attn`, `mlp`). Nothing here depends on GPT-2 names beyond that convention; a graph without
 * residual adds still yields its modules, in forward order.
 */
import { ScalpelError } from '../errors';
import { NodeInfo, OnnxModel, numel, readFloatTensor, readIntTensor } from '../onnx/model';
import { ModuleWeight, moduleWeights } from '../onnx/modules';

export type CaptureKind = 'residual' | 'sublayer' | 'module-in' | 'module-out' | 'logits';

/** A tensor the tracer captures, in forward order. Every capture is [batch, sequence, width]. */
export interface Capture {
  /** Stable id, e.g. `h.1.resid_post`, `h.1.mlp.out`, `h.1.mlp.c_fc.in`. */
  id: string;
  kind: CaptureKind;
  tensor: string;
  /** The block (`h.1`) or undefined at model level. */
  block?: string;
  /** The module path for module-in / module-out. */
  module?: string;
}

export interface Sublayer {
  /** `attn`, `mlp`, ...: the scope segment under the block. */
  name: string;
  modules: ModuleWeight[];
  /** The sublayer's output (the residual add's other operand). */
  output: string;
  /** The residual stream after adding it. */
  residualAfter: string;
}

export interface Block {
  name: string;
  /** The residual stream entering the block. */
  residualIn: string;
  sublayers: Sublayer[];
  /** Decomposable modules of the block that sit in no recognised sublayer. */
  otherModules: ModuleWeight[];
}

/**
 * The value path of an attention sublayer: the projection whose output (or a slice of it: GPT-2's fused
 * q|k|v c_attn, split in three) is reshaped into heads and weighed by the attention probabilities, then
 * merged and read by the sublayer's output projection (`writer`). Grouped-query attention (fewer value
 * heads than query heads, repeated to match) shows as `width` < the writer's input.
 */
export interface ValuePath {
  module: string;
  /** Where v starts in the module's output, and its width. */
  offset: number;
  width: number;
  /** The attention probabilities [batch, heads, query, key] (a Softmax output) that multiply v. */
  probs: string;
  /** The output projection reading the merged heads. */
  writer: string;
}

/**
 * How an MLP's first layer reaches its writer through elementwise operations only:
 * `secant`: through a nonlinearity of its own output (GELU; SwiGLU's gate in silu(gate)·up);
 * `gated`: multiplied by another module's gate (SwiGLU's up projection), linear once the gate is known.
 */
export interface MlpPath {
  module: string;
  kind: 'secant' | 'gated';
  writer: string;
}

/** A module's bias: an Add after its MatMul, or Gemm's C input (`fused`: the module's product already includes it). */
export interface ModuleBias {
  initializer: string;
  fused: boolean;
}

export interface FinalNorm {
  /** `layer`: (x − mean) / σ · γ + β; `rms`: x / rms(x) · γ (Llama, Qwen, Mistral). */
  kind: 'layer' | 'rms';
  /** Residual stream entering the final norm. */
  input: string;
  weight: string;
  bias: string | undefined;
  epsilon: number;
}

export interface ModelStructure {
  modules: ModuleWeight[];
  blocks: Block[];
  /** Modules outside every block (e.g. `lm_head`), in forward order. */
  topModules: ModuleWeight[];
  /** The unembedding: the module whose output (plus bias) is the logits; undefined if not a plain MatMul. */
  unembed: ModuleWeight | undefined;
  /** Bias added to the unembedding's product, an initializer name. */
  unembedBias: string | undefined;
  finalNorm: FinalNorm | undefined;
  /** Each module's bias, where it has one. */
  moduleBias: Map<string, ModuleBias>;
  /** Attention value paths by their v (or fused q|k|v) module; their probabilities are recorded too. */
  valuePaths: Map<string, ValuePath>;
  /** MLP first layers by module: how each reaches its sublayer's writer. */
  mlpPaths: Map<string, MlpPath>;
  logits: string;
  /** Every capture point in forward order; several may name one tensor (a block's output is the next one's input). */
  captures: Capture[];
}

/** `h.1.mlp.c_fc` → `h.1`; `model.layers.3.self_attn.q_proj` → `model.layers.3`; `lm_head` → undefined. */
export function blockOf(module: string): string | undefined {
  const parts = module.split('.');
  const i = parts.findIndex((p) => /^\d+$/.test(p));
  return i < 0 ? undefined : parts.slice(0, i + 1).join('.');
}

/** The scope path of a node (`/h.1/mlp/c_fc/MatMul` → `h.1.mlp.c_fc`), or '' at top level. */
function scopeOf(node: NodeInfo | undefined): string {
  if (!node?.name.startsWith('/')) return '';
  return node.name.slice(1).split('/').filter(Boolean).slice(0, -1).join('.');
}

function within(scope: string, parent: string): boolean {
  return scope === parent || scope.startsWith(`${parent}.`);
}

/** Follows Identity nodes back to the initializer they forward (constant folding shares equal tensors that way). */
export function resolveInitializer(model: OnnxModel, tensor: string): string | undefined {
  const producers = new Map<string, NodeInfo>();
  for (const n of model.nodes) for (const o of n.outputs) producers.set(o, n);
  let name = tensor;
  for (let hops = 0; hops < 16; hops++) {
    if (model.initializers.has(name)) return name;
    const p = producers.get(name);
    if (!p || p.opType !== 'Identity') return undefined;
    name = p.inputs[0];
  }
  return undefined;
}

export function analyzeModel(model: OnnxModel, logits: string): ModelStructure {
  const modules = moduleWeights(model);
  if (!modules.length) throw new ScalpelError('the model has no MatMul/Gemm weights to trace', model.file);
  const producers = new Map<string, NodeInfo>();
  for (const n of model.nodes) for (const o of n.outputs) producers.set(o, n);

  const blockNames: string[] = [];
  for (const m of modules) {
    const b = blockOf(m.module);
    if (b && !blockNames.includes(b)) blockNames.push(b);
  }
  const blocks: Block[] = [];
  for (const name of blockNames) {
    const own = modules.filter((m) => blockOf(m.module) === name);
    const adds = model.nodes.filter((n) => n.opType === 'Add' && scopeOf(n) === name && n.inputs.length === 2);
    const sublayers: Sublayer[] = [];
    let residual: string | undefined;
    for (const add of adds) {
      // The residual operand comes from outside the block (first add) or from the previous add.
      const fromOutside = (t: string) => !within(scopeOf(producers.get(t)), name);
      const resIdx = residual !== undefined ? add.inputs.indexOf(residual) : add.inputs.findIndex(fromOutside);
      if (resIdx < 0) continue;
      const residualOperand = add.inputs[resIdx];
      const other = add.inputs[1 - resIdx];
      const scope = scopeOf(producers.get(other));
      const sub = within(scope, name) ? scope.slice(name.length + 1).split('.')[0] : '';
      if (!sub) continue;
      residual ??= residualOperand;
      sublayers.push({ name: sub, modules: own.filter((m) => m.module.startsWith(`${name}.${sub}.`)), output: other, residualAfter: add.outputs[0] });
      residual = add.outputs[0];
    }
    const residualIn = sublayers.length ? firstResidual(adds, sublayers[0]) : own[0].inputTensor;
    const inSub = new Set(sublayers.flatMap((s) => s.modules));
    blocks.push({ name, residualIn, sublayers, otherModules: own.filter((m) => !inSub.has(m)) });
  }
  const topModules = modules.filter((m) => !blockOf(m.module));
  const { unembed, unembedBias } = findUnembed(model, modules, producers, logits);
  const finalNorm = unembed ? findFinalNorm(model, producers, unembed) : undefined;
  const moduleBias = new Map<string, ModuleBias>();
  for (const m of modules) {
    const bias = biasOf(model, producers, m);
    if (bias) moduleBias.set(m.module, bias);
  }
  const valuePaths = new Map<string, ValuePath>();
  const mlpPaths = new Map<string, MlpPath>();
  for (const sub of blocks.flatMap((b) => b.sublayers)) {
    for (const path of valuePathsOf(model, producers, sub)) valuePaths.set(path.module, path);
    for (const path of mlpPathsOf(model, sub, valuePaths)) mlpPaths.set(path.module, path);
  }
  return { modules, blocks, topModules, unembed, unembedBias, finalNorm, moduleBias, valuePaths, mlpPaths, logits, captures: capturesOf(blocks, topModules, finalNorm, logits) };
}

/** Gemm's C input (when alpha and beta are 1), or an initializer added right after the product. */
function biasOf(model: OnnxModel, producers: Map<string, NodeInfo>, m: ModuleWeight): ModuleBias | undefined {
  const node = producers.get(m.outputTensor)!;
  if (node.opType === 'Gemm') {
    const plain = ['alpha', 'beta'].every((a) => (node.attributes.find((x) => x.name === a)?.f ?? 1) === 1);
    const c = node.inputs[2] ? resolveInitializer(model, node.inputs[2]) : undefined;
    if (c && plain) return { initializer: c, fused: true };
  }
  const add = model.nodes.find((n) => n.opType === 'Add' && n.inputs.includes(m.outputTensor));
  const bias = add && resolveInitializer(model, add.inputs[add.inputs[0] === m.outputTensor ? 1 : 0]);
  return bias ? { initializer: bias, fused: false } : undefined;
}

/** Operations that move a tensor's values without mixing positions or features (views, head splits and repeats, casts). */
const VIEW_OPS = new Set(['Reshape', 'Transpose', 'Unsqueeze', 'Squeeze', 'Expand', 'Identity', 'Cast', 'Flatten']);
/** Elementwise operations an MLP's activation is written with (GELU, SiLU, SwiGLU, ReLU, tanh approximations). */
const ELEMENTWISE_OPS = new Set([...VIEW_OPS, 'Add', 'Sub', 'Mul', 'Div', 'Pow', 'Sqrt', 'Tanh', 'Erf', 'Sigmoid', 'Relu', 'Gelu', 'FastGelu', 'Softplus', 'Neg', 'Exp', 'HardSigmoid', 'HardSwish', 'LeakyRelu', 'Elu']);

function consumersOf(model: OnnxModel): Map<string, NodeInfo[]> {
  const out = new Map<string, NodeInfo[]>();
  for (const n of model.nodes) for (const t of n.inputs) if (t) (out.get(t) ?? out.set(t, []).get(t)!).push(n);
  return out;
}

/** The tensor behind another through view operations only (the attention probabilities behind their Casts). */
function throughViews(producers: Map<string, NodeInfo>, tensor: string): NodeInfo | undefined {
  let p = producers.get(tensor);
  for (let hops = 0; p && VIEW_OPS.has(p.opType) && hops < 8; hops++) p = producers.get(p.inputs[0]);
  return p;
}

/** The slice of a Split's input that its output `index` holds: equal parts, or the sizes of its `split` attribute or input. */
function splitSlice(model: OnnxModel, split: NodeInfo, index: number, width: number): { offset: number; width: number } | undefined {
  let sizes = split.attributes.find((a) => a.name === 'split')?.ints;
  const input = split.inputs[1] ? resolveInitializer(model, split.inputs[1]) : undefined;
  if (!sizes && input) sizes = readIntTensor(model, input);
  if (!sizes) {
    if (width % split.outputs.length) return undefined;
    sizes = split.outputs.map(() => width / split.outputs.length);
  }
  if (sizes.length !== split.outputs.length || sizes.reduce((a, b) => a + b, 0) !== width) return undefined;
  return { offset: sizes.slice(0, index).reduce((a, b) => a + b, 0), width: sizes[index] };
}

/**
 * Attention value paths: a module of the sublayer (not its writer) whose output, through view operations,
 * a bias Add, a Concat with a past cache and at most one last-axis Split, is the right operand of a MatMul
 * whose left operand is Softmax probabilities.
 */
function valuePathsOf(model: OnnxModel, producers: Map<string, NodeInfo>, sub: Sublayer): ValuePath[] {
  if (sub.modules.length < 2) return [];
  const writer = sub.modules[sub.modules.length - 1];
  const consumers = consumersOf(model);
  const out: ValuePath[] = [];
  for (const m of sub.modules.slice(0, -1)) {
    const queue: { tensor: string; offset: number; width: number; split: boolean }[] = [{ tensor: m.outputTensor, offset: 0, width: m.dOut, split: false }];
    const seen = new Set<string>();
    let found: ValuePath | undefined;
    while (queue.length && !found && seen.size < 64) {
      const at = queue.shift()!;
      if (seen.has(at.tensor)) continue;
      seen.add(at.tensor);
      for (const n of consumers.get(at.tensor) ?? []) {
        if (n.opType === 'MatMul' && n.inputs[1] === at.tensor) {
          if (throughViews(producers, n.inputs[0])?.opType === 'Softmax') found = { module: m.module, offset: at.offset, width: at.width, probs: n.inputs[0], writer: writer.module };
        } else if (n.opType === 'Split' && !at.split) {
          const axis = n.attributes.find((a) => a.name === 'axis')?.i ?? 0;
          if (axis !== -1 && axis !== 1 && axis !== 2) continue; // the feature axis of [tokens, 3d] or [batch, tokens, 3d]
          n.outputs.forEach((o, i) => {
            const slice = splitSlice(model, n, i, at.width);
            if (slice) queue.push({ tensor: o, offset: at.offset + slice.offset, width: slice.width, split: true });
          });
        } else if ((VIEW_OPS.has(n.opType) && n.inputs[0] === at.tensor) || n.opType === 'Concat' || (n.opType === 'Add' && n.inputs.some((t) => t !== at.tensor && resolveInitializer(model, t)))) {
          queue.push({ ...at, tensor: n.outputs[0] });
        }
      }
    }
    if (found) out.push(found);
  }
  return out;
}

/**
 * MLP first layers: the sublayer's other modules (not value paths) whose output reaches the writer's input
 * through elementwise operations only. One multiplied directly (through views and its bias) by a factor that
 * depends on another module is `gated`; any other is `secant`.
 */
function mlpPathsOf(model: OnnxModel, sub: Sublayer, valuePaths: Map<string, ValuePath>): MlpPath[] {
  if (sub.modules.length < 2) return [];
  const writer = sub.modules[sub.modules.length - 1];
  const consumers = consumersOf(model);
  const candidates = sub.modules.slice(0, -1).filter((m) => m.dOut === writer.dIn && !valuePaths.has(m.module));
  const reached = new Map(candidates.map((m) => [m.module, reachedThrough(consumers, m.outputTensor, ELEMENTWISE_OPS, 256)]));
  const out: MlpPath[] = [];
  for (const m of candidates) {
    if (!reached.get(m.module)!.has(writer.inputTensor)) continue;
    // The module's own values, before anything nonlinear: its output, its views and its bias Add.
    const own = new Set([m.outputTensor]);
    for (let grew = true; grew; ) {
      grew = false;
      for (const t of [...own]) {
        for (const n of consumers.get(t) ?? []) {
          const bias = n.opType === 'Add' && n.inputs.some((x) => x !== t && resolveInitializer(model, x));
          if ((VIEW_OPS.has(n.opType) || bias) && !own.has(n.outputs[0])) {
            own.add(n.outputs[0]);
            grew = true;
          }
        }
      }
    }
    const gated = model.nodes.some((n) => {
      if (n.opType !== 'Mul' || n.inputs.length !== 2) return false;
      const i = n.inputs.findIndex((t) => own.has(t));
      if (i < 0) return false;
      const other = n.inputs[1 - i];
      return candidates.some((g) => g !== m && reached.get(g.module)!.has(other));
    });
    out.push({ module: m.module, kind: gated ? 'gated' : 'secant', writer: writer.module });
  }
  return out;
}

/** Every tensor computed from `start` through operations of `ops` only (at most `limit` tensors), `start` included. */
function reachedThrough(consumers: Map<string, NodeInfo[]>, start: string, ops: Set<string>, limit = Infinity): Set<string> {
  const seen = new Set<string>([start]);
  const queue = [start];
  while (queue.length && seen.size < limit) {
    for (const n of consumers.get(queue.shift()!) ?? []) {
      if (!ops.has(n.opType) || seen.has(n.outputs[0])) continue;
      seen.add(n.outputs[0]);
      queue.push(n.outputs[0]);
    }
  }
  return seen;
}

function firstResidual(adds: NodeInfo[], first: Sublayer): string {
  const add = adds.find((a) => a.outputs[0] === first.residualAfter)!;
  return add.inputs[0] === first.output ? add.inputs[1] : add.inputs[0];
}

function findUnembed(model: OnnxModel, modules: ModuleWeight[], producers: Map<string, NodeInfo>, logits: string) {
  const last = producers.get(logits);
  // logits = MatMul(x, W) or Add(MatMul(x, W), b)
  const direct = modules.find((m) => m.outputTensor === logits);
  if (direct) return { unembed: direct, unembedBias: undefined };
  if (last?.opType === 'Add') {
    const i = last.inputs.findIndex((t) => modules.some((m) => m.outputTensor === t));
    if (i >= 0) {
      return { unembed: modules.find((m) => m.outputTensor === last.inputs[i]), unembedBias: resolveInitializer(model, last.inputs[1 - i]) };
    }
  }
  return { unembed: undefined, unembedBias: undefined };
}

/** Where a module's product goes on its way to the logits: see `writePaths`. */
export type WritePath = { kind: 'logits' } | { kind: 'residual' } | { kind: 'through'; module: ModuleWeight };

/**
 * Where each module writes, read from the graph rather than from names: the unembedding writes the logits;
 * a module whose product reaches the unembedding's input through no other product (residual adds, norms)
 * writes the residual stream; one whose product reaches the input of such a writer elementwise (an MLP's
 * up- and gate-projections into its down-projection) writes through it. Modules whose products first meet
 * other activations in a product (attention's queries, keys and values) have no entry.
 */
export function writePaths(model: OnnxModel, s: ModelStructure): Map<string, WritePath> {
  const out = new Map<string, WritePath>();
  if (!s.unembed) return out;
  const producers = new Map<string, NodeInfo>();
  for (const n of model.nodes) for (const o of n.outputs) producers.set(o, n);
  const byProduct = new Map(s.modules.map((m) => [m.outputTensor, m]));
  out.set(s.unembed.module, { kind: 'logits' });
  const writers = productsReaching(producers, s.unembed.inputTensor);
  for (const m of s.modules) {
    if (writers.has(m.outputTensor) && !out.has(m.module) && m.dOut === s.unembed.dIn) out.set(m.module, { kind: 'residual' });
  }
  for (const down of s.modules) {
    if (out.get(down.module)?.kind !== 'residual') continue;
    for (const product of productsReaching(producers, down.inputTensor)) {
      const m = byProduct.get(product);
      if (m && !out.has(m.module) && m.dOut === down.dIn) out.set(m.module, { kind: 'through', module: down });
    }
  }
  return out;
}

/** Norms as one operation, and the reductions and reciprocals of a norm written out in elementwise ops. */
const NORM_OPS = new Set(['LayerNormalization', 'SimplifiedLayerNormalization', 'RMSNormalization', 'ReduceMean', 'Reciprocal']);
/** What lies between a tensor and a module that reads it (`tensorAccess`): norms, views, elementwise operations, residual adds. */
const READ_OPS = new Set([...ELEMENTWISE_OPS, ...NORM_OPS]);

/**
 * A step between a point and a reader's input that changes which direction of the point the reader responds
 * to: a per-feature (or scalar) gain — a norm's γ, a Mul or Div by a weight — or a LayerNorm's centring (x − mean x).
 */
export type ReadStep = { kind: 'gain'; gain: Float32Array } | { kind: 'centre' };

/** The modules that read and write one activation tensor: see `tensorAccess`. */
export interface TensorAccess {
  readers: ModuleWeight[];
  writers: ModuleWeight[];
  /**
   * Per reader (by module path), the steps from the point to its input in forward order. Absent where a nonlinearity
   * or a product with another activation lies between (their slope differs from token to token).
   */
  readSteps: Map<string, ReadStep[]>;
}

/**
 * Which modules read `tensor` (`width` values per token) and which write it, from the graph, not from names or
 * widths. A module reads it when its input is computed from it through norms, views and elementwise operations
 * only: for a residual stream that is the q/k/v (GPT-2's c_attn), c_fc, gate and up projections of every later
 * sublayer and the unembedding, never an attention output projection, whose input is the heads' mixture.
 * Every later sublayer, not only the next: the residual adds make each later residual tensor a sum with this one
 * as a term, so a later reader's V[:, c] applies to its directions as the next one's does (what the sublayers in
 * between add is other terms, not a change of basis). A module writes it when its product reaches it through no
 * other product (`productsReaching`: residual adds, biases, views): the output projections of the sublayers
 * whose outputs are summed into it. Readers take `width` inputs and writers give `width` outputs.
 */
export function tensorAccess(model: OnnxModel, s: ModelStructure, tensor: string, width: number): TensorAccess {
  const producers = new Map<string, NodeInfo>();
  for (const n of model.nodes) for (const o of n.outputs) producers.set(o, n);
  const reached = reachedThrough(consumersOf(model), tensor, READ_OPS);
  const written = productsReaching(producers, tensor);
  const readers = s.modules.filter((m) => m.dIn === width && reached.has(m.inputTensor));
  const paths = linearPaths(model, producers, tensor, width);
  const readSteps = new Map<string, ReadStep[]>();
  for (const m of readers) {
    const at = paths.get(m.inputTensor);
    if (at?.kind === 'linear') readSteps.set(m.module, at.steps);
  }
  return { readers, writers: s.modules.filter((m) => m.dOut === width && written.has(m.outputTensor)), readSteps };
}

/**
 * The vector at the point that a reader's read vector `v` (in the reader's input space) responds to: `v` through
 * the transposes of `steps`, last step first. What a norm divides by (1/σ, 1/rms) is one number per token and so
 * leaves the direction alone; so does the slope of σ itself along directions orthogonal to the token's vector.
 */
export function effectiveReadVector(v: Float32Array, steps: ReadStep[] | undefined): Float32Array {
  const out = Float32Array.from(v);
  for (const step of [...(steps ?? [])].reverse()) {
    if (step.kind === 'gain') {
      for (let i = 0; i < out.length; i++) out[i] *= step.gain.length === 1 ? step.gain[0] : step.gain[i];
    } else {
      let mean = 0;
      for (let i = 0; i < out.length; i++) mean += out[i];
      mean /= out.length;
      for (let i = 0; i < out.length; i++) out[i] -= mean;
    }
  }
  return out;
}

/**
 * How a tensor depends on the point's tensor along the way to its readers: `linear` (the point's vector through
 * `steps`, plus terms that do not depend on it through norms and elementwise ops: residual adds, biases), `stat`
 * (a per-token statistic of it: a mean, a variance, a reciprocal root; `mean` names the tensor a ReduceMean
 * averaged), or `opaque` (through a nonlinearity, or multiplied by another activation).
 */
type PathState = { kind: 'linear'; steps: ReadStep[] } | { kind: 'stat'; mean?: string } | { kind: 'opaque' };

const LAYER_NORMS = new Set(['LayerNormalization']);
const RMS_NORMS = new Set(['SimplifiedLayerNormalization', 'RMSNormalization']);

/**
 * Every tensor that `READ_OPS` compute from `tensor`, with how it depends on it (`PathState`), in one pass over
 * the nodes in their (topological) order. Norms as one op carry their γ (and LayerNorm its centring); norms written
 * out show as Sub(x, ReduceMean(x)) (centring), Mul/Div by a statistic (1/σ) and Mul by a constant vector (γ).
 */
function linearPaths(model: OnnxModel, producers: Map<string, NodeInfo>, tensor: string, width: number): Map<string, PathState> {
  const state = new Map<string, PathState>([[tensor, { kind: 'linear', steps: [] }]]);
  const opaque: PathState = { kind: 'opaque' };
  const gainOf = (t: string, invert: boolean): ReadStep | undefined => {
    const values = constantValues(model, producers, t);
    if (!values || (values.length !== 1 && values.length !== width)) return undefined;
    return { kind: 'gain', gain: invert ? values.map((x) => 1 / x) : values };
  };
  const after = (s: PathState, ...steps: (ReadStep | undefined)[]): PathState =>
    s.kind === 'linear' && steps.every((x) => x) ? { kind: 'linear', steps: [...s.steps, ...(steps as ReadStep[])] } : opaque;
  for (const n of model.nodes) {
    if (!READ_OPS.has(n.opType) || !n.inputs.some((t) => state.has(t))) continue;
    const ins = n.inputs.map((t) => state.get(t));
    const known = ins.filter((x): x is PathState => !!x);
    let out: PathState;
    if (n.opType === 'ReduceMean') out = { kind: 'stat', ...(ins[0]?.kind === 'linear' ? { mean: n.inputs[0] } : {}) };
    else if (known.every((x) => x.kind === 'stat')) out = { kind: 'stat' };
    else if (LAYER_NORMS.has(n.opType) || RMS_NORMS.has(n.opType)) {
      const gain = gainOf(n.inputs[1], false);
      out = ins[0] ? after(ins[0], ...(LAYER_NORMS.has(n.opType) ? [{ kind: 'centre' } as ReadStep] : []), gain) : opaque;
    } else if (VIEW_OPS.has(n.opType)) out = ins[0] ?? opaque;
    else if (n.opType === 'Neg') out = after(ins[0]!, { kind: 'gain', gain: Float32Array.of(-1) });
    else if ((n.opType === 'Add' || n.opType === 'Sub') && n.inputs.length === 2) {
      // A constant or a statistic added or subtracted moves the point's term, not its direction; x − mean(x) centres it.
      const [a, b] = ins.map((x) => (x?.kind === 'stat' ? undefined : x));
      if (a && b) out = a === b ? a : opaque;
      else if (a) out = n.opType === 'Sub' && ins[1]?.kind === 'stat' && (ins[1] as { mean?: string }).mean === n.inputs[0] ? after(a, { kind: 'centre' }) : a;
      else out = n.opType === 'Sub' ? after(b!, { kind: 'gain', gain: Float32Array.of(-1) }) : b!;
    } else if ((n.opType === 'Mul' || n.opType === 'Div') && n.inputs.length === 2) {
      const i = ins[0]?.kind === 'linear' ? 0 : 1;
      const other = ins[1 - i];
      if (ins[i]?.kind !== 'linear' || (n.opType === 'Div' && i === 1)) out = opaque;
      else if (other?.kind === 'stat') out = ins[i]!;
      else out = other ? opaque : after(ins[i]!, gainOf(n.inputs[1 - i], n.opType === 'Div'));
    } else out = opaque;
    n.outputs.forEach((o, k) => o && state.set(o, k === 0 ? out : { kind: 'stat' }));
  }
  return state;
}

/** A constant's values (an initializer, behind Identity and Cast nodes), or undefined when it is not one. */
function constantValues(model: OnnxModel, producers: Map<string, NodeInfo>, tensor: string): Float32Array | undefined {
  let name = tensor;
  for (let hops = 0; hops < 8; hops++) {
    if (model.initializers.has(name)) {
      try {
        return readFloatTensor(model, name);
      } catch {
        return undefined;
      }
    }
    const p = producers.get(name);
    if (!p || (p.opType !== 'Identity' && p.opType !== 'Cast')) return undefined;
    name = p.inputs[0];
  }
  return undefined;
}

/**
 * The products (MatMul/Gemm outputs) that reach `tensor` without passing through another product: the walk
 * goes back through every other op but Shape and Size, whose outputs carry no values of their inputs.
 */
function productsReaching(producers: Map<string, NodeInfo>, tensor: string): Set<string> {
  const found = new Set<string>();
  const seen = new Set<string>([tensor]);
  const stack = [tensor];
  while (stack.length) {
    const p = producers.get(stack.pop()!);
    if (!p || p.opType === 'Shape' || p.opType === 'Size') continue;
    if (p.opType === 'MatMul' || p.opType === 'Gemm') {
      found.add(p.outputs[0]);
      continue;
    }
    for (const t of p.inputs) {
      if (t && !seen.has(t)) {
        seen.add(t);
        stack.push(t);
      }
    }
  }
  return found;
}

function findFinalNorm(model: OnnxModel, producers: Map<string, NodeInfo>, unembed: ModuleWeight): FinalNorm | undefined {
  const ln = producers.get(unembed.inputTensor);
  if (!ln) return undefined;
  if (ln.opType === 'LayerNormalization') {
    const weight = resolveInitializer(model, ln.inputs[1]);
    if (!weight) return undefined;
    const epsilon = ln.attributes.find((a) => a.name === 'epsilon')?.f ?? 1e-5;
    return { kind: 'layer', input: ln.inputs[0], weight, bias: ln.inputs[2] ? resolveInitializer(model, ln.inputs[2]) : undefined, epsilon };
  }
  return decomposedNorm(model, producers, ln, unembed.dIn);
}

/**
 * A norm written out in elementwise ops (LayerNorm below opset 17; RMSNorm in every opset), found by
 * its node scope (`/model/norm/…`): γ is the Mul with a (d_model) initializer, β the Add with one,
 * ε the Add with a scalar, the input the one tensor the scope reads from outside it; a Sub (x − mean)
 * makes it a LayerNorm.
 */
function decomposedNorm(model: OnnxModel, producers: Map<string, NodeInfo>, last: NodeInfo, width: number): FinalNorm | undefined {
  const cut = last.name.lastIndexOf('/');
  if (!last.name.startsWith('/') || cut <= 0) return undefined;
  const scope = last.name.slice(0, cut + 1);
  const nodes = model.nodes.filter((n) => n.name.startsWith(scope));
  if (!nodes.some((n) => n.opType === 'ReduceMean')) return undefined;
  const inScope = new Set(nodes.flatMap((n) => n.outputs));
  const constant = (t: string) => model.initializers.has(t) || producers.get(t)?.opType === 'Constant' || resolveInitializer(model, t) !== undefined;
  const vectorOf = (n: NodeInfo) =>
    n.inputs.map((t) => resolveInitializer(model, t)).find((t) => t !== undefined && numel(model.initializers.get(t)!.dims) === width);
  const weight = nodes.filter((n) => n.opType === 'Mul').map(vectorOf).find((t) => t);
  if (!weight) return undefined;
  const bias = nodes.filter((n) => n.opType === 'Add').map(vectorOf).find((t) => t);
  const inputs = [...new Set(nodes.flatMap((n) => n.inputs).filter((t) => t && !inScope.has(t) && !constant(t)))];
  if (inputs.length !== 1) return undefined;
  let epsilon: number | undefined;
  for (const n of nodes.filter((x) => x.opType === 'Add')) {
    for (const t of n.inputs) {
      const init = resolveInitializer(model, t);
      if (init && numel(model.initializers.get(init)!.dims) === 1) epsilon = readFloatTensor(model, init)[0];
    }
  }
  const kind = nodes.some((n) => n.opType === 'Sub') ? 'layer' : 'rms';
  return { kind, input: inputs[0], weight, bias, epsilon: epsilon ?? (kind === 'layer' ? 1e-5 : 1e-6) };
}

function capturesOf(blocks: Block[], topModules: ModuleWeight[], finalNorm: FinalNorm | undefined, logits: string): Capture[] {
  const out: Capture[] = [];
  const add = (c: Capture) => out.push(c);
  const moduleCaptures = (m: ModuleWeight, block?: string) => {
    add({ id: `${m.module}.in`, kind: 'module-in', tensor: m.inputTensor, block, module: m.module });
    add({ id: `${m.module}.out`, kind: 'module-out', tensor: m.outputTensor, block, module: m.module });
  };
  for (const b of blocks) {
    add({ id: `${b.name}.resid_pre`, kind: 'residual', tensor: b.residualIn, block: b.name });
    for (const s of b.sublayers) {
      for (const m of s.modules) moduleCaptures(m, b.name);
      add({ id: `${b.name}.${s.name}.out`, kind: 'sublayer', tensor: s.output, block: b.name });
      add({ id: `${b.name}.${s.name}.resid`, kind: 'residual', tensor: s.residualAfter, block: b.name });
    }
    for (const m of b.otherModules) moduleCaptures(m, b.name);
  }
  if (finalNorm) add({ id: 'resid_final', kind: 'residual', tensor: finalNorm.input });
  for (const m of topModules) moduleCaptures(m);
  add({ id: 'logits', kind: 'logits', tensor: logits });
  return out;
}
