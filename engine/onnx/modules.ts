/**
 * Module paths (`h.1.mlp.c_fc`) mapped to the weight initializer their MatMul/Gemm consumes.
 *
 * Exporters differ: GPT-2-style code stores weights (in, out) and the initializer keeps its
 * module-path name; `nn.Linear` exports either a named (out, in) weight behind a Transpose, or an
 * anonymous pre-transposed constant (`onnx::MatMul_123`) whose module shows only in the node-name
 * scope (`/h.1/mlp/c_fc/MatMul`). All three map to the same module path here, also when the weight is
 * stored float16 behind a Cast, and a tied unembedding (GPT-2's `lm_head` reading `wte`) is named by its node.
 */
import { NodeInfo, OnnxModel } from './model';

/** `in_out`: the initializer is (d_in, d_out), as MatMul(x, W) reads it. `out_in`: (d_out, d_in), torch Linear layout. */
export type WeightLayout = 'in_out' | 'out_in';

export interface ModuleWeight {
  module: string;
  initializer: string;
  layout: WeightLayout;
  dIn: number;
  dOut: number;
  /** The MatMul/Gemm node that applies the weight; its input 0 is the module's input activation. */
  node: string;
  /** The tensor name of the module's input activation (input 0 of that node). */
  inputTensor: string;
  /** The tensor name of the product (before any bias Add). */
  outputTensor: string;
}

/** Nodes that apply a weight matrix, and which input holds it: float products, and quantized ones (whose reads say "not supported yet"). */
const WEIGHT_INPUT: Record<string, number> = { MatMul: 1, Gemm: 1, MatMulInteger: 1, QLinearMatMul: 3, MatMulNBits: 1 };

/** A weight some product node applies that Scalpel cannot use as a module, with the reason, for messages. */
export interface UnsupportedWeight {
  /** The module it would be, where the node's scope or the weight's name says. */
  module: string | undefined;
  reason: string;
}

export function moduleWeights(model: OnnxModel): ModuleWeight[] {
  return scanWeights(model).modules.slice();
}

export function unsupportedWeights(model: OnnxModel): UnsupportedWeight[] {
  return scanWeights(model).unsupported;
}

/** Why the model has no module `name`, in one line: its weight's problem, or the modules it has. */
export function missingModule(model: OnnxModel, name: string): string {
  const { modules, unsupported } = scanWeights(model);
  const own = unsupported.find((u) => u.module === name);
  if (own) return own.reason;
  const unnamed = unsupported.filter((u) => u.module === undefined).map((u) => u.reason);
  const known = modules.map((m) => m.module);
  return `the model has no module "${name}" (it has ${known.slice(0, 6).join(', ')}${known.length > 6 ? ', …' : ''}${known.length ? '' : 'none'})${unnamed.length ? `; ${unnamed.join('; ')}` : ''}`;
}

const scans = new WeakMap<OnnxModel, { modules: ModuleWeight[]; unsupported: UnsupportedWeight[] }>();

function scanWeights(model: OnnxModel): { modules: ModuleWeight[]; unsupported: UnsupportedWeight[] } {
  const cached = scans.get(model);
  if (cached) return cached;
  const producers = new Map<string, NodeInfo>();
  for (const n of model.nodes) for (const o of n.outputs) producers.set(o, n);
  // An initializer an embedding Gather also reads is tied: the module is the one whose node applies it.
  const gathered = new Set(model.nodes.filter((n) => n.opType === 'Gather').map((n) => weightSource(model, producers, n.inputs[0])?.source));
  const out: ModuleWeight[] = [];
  const unsupported: UnsupportedWeight[] = [];
  const seen = new Set<string>();
  for (const node of model.nodes) {
    const input = WEIGHT_INPUT[node.opType];
    if (input === undefined) continue;
    const found = weightSource(model, producers, node.inputs[input]);
    if (!found) continue;
    const { source, first } = found;
    let transposed = found.transposed;
    const init = model.initializers.get(source)!;
    if (node.opType === 'Gemm' && node.attributes.find((a) => a.name === 'transB')?.i === 1) transposed = !transposed;
    const byScope = moduleFromScope(node.name) ?? moduleFromScope(first?.name ?? '');
    const byName = moduleFromInitializer(source);
    const module = gathered.has(source) ? byScope ?? byName : byName ?? byScope;
    if (node.opType === 'MatMulNBits') {
      const bits = node.attributes.find((a) => a.name === 'bits')?.i ?? 4;
      unsupported.push({ module, reason: `${node.opType} ${node.name || '(unnamed)'} reads ${source} as int${bits} blocks (quantized weights): not supported yet; use a float32, float16 or bfloat16 export` });
      continue;
    }
    const dims = init.dims;
    if (dims.length !== 2) {
      unsupported.push({ module, reason: `${node.opType} ${node.name || '(unnamed)'} reads ${source} of shape [${init.dims.join(', ')}]: only 2-D weight matrices are supported` });
      continue;
    }
    if (!module) {
      unsupported.push({ module, reason: `${node.opType} ${node.name || '(unnamed)'} reads weight ${source}, but neither the node's scope nor the weight's name says which module it is` });
      continue;
    }
    if (seen.has(module)) continue;
    seen.add(module);
    const layout: WeightLayout = transposed ? 'out_in' : 'in_out';
    const [rows, cols] = dims;
    out.push({
      module,
      initializer: source,
      layout,
      dIn: layout === 'in_out' ? rows : cols,
      dOut: layout === 'in_out' ? cols : rows,
      node: node.name,
      inputTensor: node.inputs[0],
      outputTensor: node.outputs[0],
    });
  }
  const result = { modules: out, unsupported };
  scans.set(model, result);
  return result;
}

/**
 * The initializer behind a weight input, through the nodes exporters put between: a 2-D Transpose
 * (torch Linear), Cast (float16 weights computed in float32), DequantizeLinear (quantized weights, whose
 * reads then fail with "not supported yet") and Identity. `first`: the node nearest the initializer.
 */
function weightSource(model: OnnxModel, producers: Map<string, NodeInfo>, tensor: string): { source: string; transposed: boolean; first?: NodeInfo } | undefined {
  let transposed = false;
  let first: NodeInfo | undefined;
  for (let hops = 0; hops < 4; hops++) {
    if (model.initializers.has(tensor)) return { source: tensor, transposed, first };
    const p = producers.get(tensor);
    if (!p) return undefined;
    if (p.opType === 'Transpose') {
      const perm = p.attributes.find((a) => a.name === 'perm')?.ints;
      if (perm && !(perm.length === 2 && perm[0] === 1 && perm[1] === 0)) return undefined;
      transposed = !transposed;
    } else if (p.opType !== 'Cast' && p.opType !== 'Identity' && p.opType !== 'DequantizeLinear') return undefined;
    first = p;
    tensor = p.inputs[0];
  }
  return undefined;
}

/** `h.1.mlp.c_fc.weight` → `h.1.mlp.c_fc`; exporter-mangled names (`onnx::MatMul_12`) → undefined. */
export function moduleFromInitializer(name: string): string | undefined {
  if (name.startsWith('onnx::') || !name.endsWith('.weight')) return undefined;
  return name.slice(0, -'.weight'.length);
}

/** `/h.1/mlp/c_fc/MatMul` → `h.1.mlp.c_fc` (the last scope segment is the op). */
export function moduleFromScope(nodeName: string): string | undefined {
  if (!nodeName.startsWith('/')) return undefined;
  const parts = nodeName.slice(1).split('/').filter(Boolean);
  if (parts.length < 2) return undefined;
  return parts.slice(0, -1).join('.');
}

/** fnmatch-style glob over module paths, as SPD's target patterns: `*` matches any run (dots too), `?` one character. */
export function moduleGlob(pattern: string): RegExp {
  const body = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${body}$`);
}
