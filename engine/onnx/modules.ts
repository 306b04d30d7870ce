/**
 * Module paths (`h.1.mlp.c_fc`) mapped to the weight initializer their MatMul/Gemm consumes.
 *
 * Exporters differ: GPT-2-style code stores weights (in, out) and the initializer keeps its
 * module-path name; `nn.Linear` exports either a named (out, in) weight behind a Transpose, or an
 * anonymous pre-transposed constant (`onnx::MatMul_123`) whose module shows only in the node-name
 * scope (`/h.1/mlp/c_fc/MatMul`). All three map to the same module path here.
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

export function moduleWeights(model: OnnxModel): ModuleWeight[] {
  const producers = new Map<string, NodeInfo>();
  for (const n of model.nodes) for (const o of n.outputs) producers.set(o, n);
  const out: ModuleWeight[] = [];
  const seen = new Set<string>();
  for (const node of model.nodes) {
    if (node.opType !== 'MatMul' && node.opType !== 'Gemm') continue;
    let source = node.inputs[1];
    let transposed = false;
    const producer = producers.get(source);
    if (producer?.opType === 'Transpose' && model.initializers.has(producer.inputs[0])) {
      const perm = producer.attributes.find((a) => a.name === 'perm')?.ints;
      if (perm && !(perm.length === 2 && perm[0] === 1 && perm[1] === 0)) continue;
      source = producer.inputs[0];
      transposed = true;
    }
    const init = model.initializers.get(source);
    if (!init || init.dims.length !== 2) continue;
    if (node.opType === 'Gemm' && node.attributes.find((a) => a.name === 'transB')?.i === 1) transposed = !transposed;
    const module = moduleFromInitializer(source) ?? moduleFromScope(node.name) ?? moduleFromScope(producer?.name ?? '');
    if (!module || seen.has(module)) continue;
    seen.add(module);
    const layout: WeightLayout = transposed ? 'out_in' : 'in_out';
    const [rows, cols] = init.dims;
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
  return out;
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
