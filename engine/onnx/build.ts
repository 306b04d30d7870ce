/**
 * Encoders for the small ONNX messages Scalpel adds to graphs (nodes, value infos, tensors), and
 * a whole-model builder used to make synthetic models for tests and benchmarks.
 */
import { Writer } from './wire';
import { DataType } from './model';
import { AttributeProto, AttributeType, DataLocation, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto, TensorProto, TensorShapeDimension, TensorShapeProto, TypeProto, TypeProtoTensor, ValueInfoProto } from './schema';

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
  const w = new Writer().stringField(AttributeProto.name, a.name);
  if (a.f !== undefined) return w.float32Field(AttributeProto.f, a.f).varintField(AttributeProto.type, AttributeType.FLOAT);
  if (a.i !== undefined) return w.varintField(AttributeProto.i, a.i).varintField(AttributeProto.type, AttributeType.INT);
  if (a.s !== undefined) return w.stringField(AttributeProto.s, a.s).varintField(AttributeProto.type, AttributeType.STRING);
  if (a.ints !== undefined) return w.packedInts(AttributeProto.ints, a.ints).varintField(AttributeProto.type, AttributeType.INTS);
  throw new Error(`attribute ${a.name} has no value`);
}

export function encodeNode(n: NodeSpec): Writer {
  const w = new Writer();
  for (const i of n.inputs) w.stringField(NodeProto.input, i);
  for (const o of n.outputs) w.stringField(NodeProto.output, o);
  w.stringField(NodeProto.name, n.name).stringField(NodeProto.opType, n.opType);
  for (const a of n.attributes ?? []) w.messageField(NodeProto.attribute, encodeAttribute(a));
  if (n.domain) w.stringField(NodeProto.domain, n.domain);
  return w;
}

export function encodeValueInfo(v: ValueInfoSpec): Writer {
  // Element type 0 (UNDEFINED): a name-only value info; onnxruntime infers the type of such an output.
  if (v.elemType === 0) return new Writer().stringField(ValueInfoProto.name, v.name);
  const tensorType = new Writer().varintField(TypeProtoTensor.elemType, v.elemType);
  if (v.shape) {
    const shape = new Writer();
    for (const d of v.shape) {
      const dim = typeof d === 'number' ? new Writer().varintField(TensorShapeDimension.dimValue, d) : new Writer().stringField(TensorShapeDimension.dimParam, d);
      shape.messageField(TensorShapeProto.dim, dim);
    }
    tensorType.messageField(TypeProtoTensor.shape, shape);
  }
  return new Writer().stringField(ValueInfoProto.name, v.name).messageField(ValueInfoProto.type, new Writer().messageField(TypeProto.tensorType, tensorType));
}

export function encodeTensor(t: TensorSpec): Writer {
  const w = new Writer();
  if (t.dims.length) w.packedInts(TensorProto.dims, t.dims);
  w.varintField(TensorProto.dataType, t.dataType).stringField(TensorProto.name, t.name);
  if ('raw' in t.data) {
    w.bytesField(TensorProto.rawData, t.data.raw);
  } else {
    writeExternalData(w, t.data.external);
  }
  return w;
}

/** TensorProto's external_data entries and data_location = EXTERNAL. */
export function writeExternalData(w: Writer, ext: { location: string; offset: number; length: number }): Writer {
  for (const [key, value] of [['location', ext.location], ['offset', String(ext.offset)], ['length', String(ext.length)]]) {
    w.messageField(TensorProto.externalData, new Writer().stringField(StringStringEntryProto.key, key).stringField(StringStringEntryProto.value, value));
  }
  return w.varintField(TensorProto.dataLocation, DataLocation.EXTERNAL);
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
  for (const n of spec.nodes) graph.messageField(GraphProto.node, encodeNode(n));
  graph.stringField(GraphProto.name, spec.graphName ?? 'graph');
  for (const t of spec.initializers) graph.messageField(GraphProto.initializer, encodeTensor(t));
  for (const i of spec.inputs) graph.messageField(GraphProto.input, encodeValueInfo(i));
  for (const o of spec.outputs) graph.messageField(GraphProto.output, encodeValueInfo(o));
  return new Writer()
    .varintField(ModelProto.irVersion, 8) // IR version 8 (ONNX 1.13+)
    .stringField(ModelProto.producerName, 'scalpel')
    .messageField(ModelProto.graph, graph)
    .messageField(ModelProto.opsetImport, new Writer().stringField(OperatorSetIdProto.domain, '').varintField(OperatorSetIdProto.version, spec.opset ?? 17))
    .finish();
}

export function floatTensor(name: string, dims: number[], values: Float32Array): TensorSpec {
  return { name, dims, dataType: DataType.FLOAT, data: { raw: new Uint8Array(values.buffer, values.byteOffset, values.byteLength) } };
}
