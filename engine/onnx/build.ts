/**
 * Encoders for the small ONNX messages Scalpel adds to graphs (nodes, value infos, tensors), and
 * a whole-model builder used to make synthetic models for tests and benchmarks.
 */
import { Writer } from './wire';
import { DataType } from './model';

export interface AttributeSpec {
  name: string;
  i?: number;
  ints?: number[];
  f?: number;
  s?: string;
}

export interface NodeSpec {
  name: string;
  opType: string;
  inputs: string[];
  outputs: string[];
  attributes?: AttributeSpec[];
  domain?: string;
}

export interface ValueInfoSpec {
  name: string;
  elemType: number;
  /** Omitted: shape unknown (any rank). An empty list means a scalar. */
  shape?: (number | string)[];
}

export type TensorData =
  | { raw: Uint8Array }
  | { external: { location: string; offset: number; length: number } };

export interface TensorSpec {
  name: string;
  dims: number[];
  dataType: number;
  data: TensorData;
}

export function encodeAttribute(a: AttributeSpec): Writer {
  const w = new Writer().stringField(1, a.name);
  if (a.f !== undefined) return w.float32Field(2, a.f).varintField(20, 1);
  if (a.i !== undefined) return w.varintField(3, a.i).varintField(20, 2);
  if (a.s !== undefined) return w.stringField(4, a.s).varintField(20, 3);
  if (a.ints !== undefined) return w.packedInts(8, a.ints).varintField(20, 7);
  throw new Error(`attribute ${a.name} has no value`);
}

export function encodeNode(n: NodeSpec): Writer {
  const w = new Writer();
  for (const i of n.inputs) w.stringField(1, i);
  for (const o of n.outputs) w.stringField(2, o);
  w.stringField(3, n.name).stringField(4, n.opType);
  for (const a of n.attributes ?? []) w.messageField(5, encodeAttribute(a));
  if (n.domain) w.stringField(7, n.domain);
  return w;
}

export function encodeValueInfo(v: ValueInfoSpec): Writer {
  // Element type 0 (UNDEFINED): a name-only value info; onnxruntime infers the type of such an output.
  if (v.elemType === 0) return new Writer().stringField(1, v.name);
  const tensorType = new Writer().varintField(1, v.elemType);
  if (v.shape) {
    const shape = new Writer();
    for (const d of v.shape) {
      shape.messageField(1, typeof d === 'number' ? new Writer().varintField(1, d) : new Writer().stringField(2, d));
    }
    tensorType.messageField(2, shape);
  }
  return new Writer().stringField(1, v.name).messageField(2, new Writer().messageField(1, tensorType));
}

export function encodeTensor(t: TensorSpec): Writer {
  const w = new Writer();
  if (t.dims.length) w.packedInts(1, t.dims);
  w.varintField(2, t.dataType).stringField(8, t.name);
  if ('raw' in t.data) {
    w.bytesField(9, t.data.raw);
  } else {
    writeExternalData(w, t.data.external);
  }
  return w;
}

/** TensorProto fields 13 (external_data entries) and 14 (data_location = EXTERNAL). */
export function writeExternalData(w: Writer, ext: { location: string; offset: number; length: number }): Writer {
  w.messageField(13, new Writer().stringField(1, 'location').stringField(2, ext.location));
  w.messageField(13, new Writer().stringField(1, 'offset').stringField(2, String(ext.offset)));
  w.messageField(13, new Writer().stringField(1, 'length').stringField(2, String(ext.length)));
  return w.varintField(14, 1);
}

export interface ModelSpec {
  nodes: NodeSpec[];
  initializers: TensorSpec[];
  inputs: ValueInfoSpec[];
  outputs: ValueInfoSpec[];
  opset?: number;
  graphName?: string;
}

export function buildModel(spec: ModelSpec): Buffer {
  const graph = new Writer();
  for (const n of spec.nodes) graph.messageField(1, encodeNode(n));
  graph.stringField(2, spec.graphName ?? 'graph');
  for (const t of spec.initializers) graph.messageField(5, encodeTensor(t));
  for (const i of spec.inputs) graph.messageField(11, encodeValueInfo(i));
  for (const o of spec.outputs) graph.messageField(12, encodeValueInfo(o));
  return new Writer()
    .varintField(1, 8) // IR version 8 (ONNX 1.13+)
    .stringField(2, 'scalpel')
    .messageField(7, graph)
    .messageField(8, new Writer().stringField(1, '').varintField(2, spec.opset ?? 17))
    .finish();
}

export function floatTensor(name: string, dims: number[], values: Float32Array): TensorSpec {
  return { name, dims, dataType: DataType.FLOAT, data: { raw: new Uint8Array(values.buffer, values.byteOffset, values.byteLength) } };
}
