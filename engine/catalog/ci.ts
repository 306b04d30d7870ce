/**
 * Causal-importance functions as ONNX nodes, shared by labelling (CI statistics) and gated edits (the gate
 * in the written checkpoint), and the per-component slices a gated edit keeps.
 */
import { NodeSpec, TensorSpec, floatTensor } from '../onnx/build';
import { DataType } from '../onnx/model';
import { CiFunction } from './read';

/**
 * ONNX nodes computing CI = clamp(b_out + Σ_h w_out·gelu_tanh(a·w_in + b_in), 0, 1) from `a` (…, C),
 * written out because the Gelu operator needs opset 20.
 */
export function ciGraph(a: string, out: string, ci: CiFunction, C: number): { initializers: TensorSpec[]; nodes: NodeSpec[] } {
  const h = ci.hidden;
  const n = (x: string) => `${out}_${x}`;
  const scalar = (name: string, v: number) => floatTensor(n(name), [], Float32Array.of(v));
  const axes = { name: n('axes'), dims: [1], dataType: DataType.INT64, data: { raw: new Uint8Array(new BigInt64Array([-1n]).buffer) } };
  const op = (opType: string, inputs: string[], output: string, attributes?: NodeSpec['attributes']): NodeSpec => ({ name: `scalpel/ci/${output}`, opType, inputs, outputs: [output], attributes });
  return {
    initializers: [
      floatTensor(n('w_in'), [C, h], ci.wIn), floatTensor(n('b_in'), [C, h], ci.bIn),
      floatTensor(n('w_out'), [C, h], ci.wOut), floatTensor(n('b_out'), [C], ci.bOut),
      scalar('c3', 0.044715), scalar('k', Math.sqrt(2 / Math.PI)), scalar('one', 1), scalar('half', 0.5), scalar('zero', 0), axes,
    ],
    nodes: [
      op('Unsqueeze', [a, n('axes')], n('a1')),
      op('Mul', [n('a1'), n('w_in')], n('x0')),
      op('Add', [n('x0'), n('b_in')], n('x')),
      op('Mul', [n('x'), n('x')], n('x2')),
      op('Mul', [n('x2'), n('x')], n('x3')),
      op('Mul', [n('x3'), n('c3')], n('x3c')),
      op('Add', [n('x'), n('x3c')], n('inner0')),
      op('Mul', [n('inner0'), n('k')], n('inner')),
      op('Tanh', [n('inner')], n('t')),
      op('Add', [n('t'), n('one')], n('t1')),
      op('Mul', [n('t1'), n('x')], n('t2')),
      op('Mul', [n('t2'), n('half')], n('gelu')),
      op('Mul', [n('gelu'), n('w_out')], n('y')),
      op('ReduceSum', [n('y'), n('axes')], n('s'), [{ name: 'keepdims', i: 0 }]),
      op('Add', [n('s'), n('b_out')], n('pre')),
      op('Clip', [n('pre'), n('zero'), n('one')], out),
    ],
  };
}

/** The CI functions of some components of a module, in the given order: (k, hidden) tensors. */
export function sliceCi(ci: CiFunction, indices: number[]): CiFunction {
  const h = ci.hidden;
  const rows = (t: Float32Array) => {
    const out = new Float32Array(indices.length * h);
    indices.forEach((c, i) => out.set(t.subarray(c * h, (c + 1) * h), i * h));
    return out;
  };
  return { hidden: h, wIn: rows(ci.wIn), bIn: rows(ci.bIn), wOut: rows(ci.wOut), bOut: Float32Array.from(indices, (c) => ci.bOut[c]) };
}
