/**
 * An index of an ONNX model: graph inputs/outputs, nodes, and every initializer with the exact
 * byte range of its payload. Building the index reads headers only; weights stay on disk.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ScalpelError, openReadOnly } from '../errors';
import { BufferSource, ByteSource, Field, FileSource, WireError, WireType, fieldInts, fieldString, fields } from './wire';
import { AttributeProto, DataLocation, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto, TensorProto, TensorShapeDimension, TensorShapeProto, TypeProto, TypeProtoTensor, ValueInfoProto } from './schema';

/** ONNX TensorProto.DataType values Scalpel reads. */
export const DataType = { FLOAT: 1, UINT8: 2, INT8: 3, INT32: 6, INT64: 7, BOOL: 9, FLOAT16: 10, DOUBLE: 11, BFLOAT16: 16 } as const;
const DTYPE_NAMES: Record<number, string> = {
  1: 'float32', 2: 'uint8', 3: 'int8', 4: 'uint16', 5: 'int16', 6: 'int32', 7: 'int64', 8: 'string',
  9: 'bool', 10: 'float16', 11: 'float64', 12: 'uint32', 13: 'uint64', 16: 'bfloat16', 17: 'float8e4m3fn', 18: 'float8e4m3fnuz',
  19: 'float8e5m2', 20: 'float8e5m2fnuz', 21: 'uint4', 22: 'int4',
};
const DTYPE_BYTES: Record<number, number> = { 1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 16: 2 };

export function dtypeName(dataType: number): string {
  return DTYPE_NAMES[dataType] ?? `dtype ${dataType}`;
}

export type TensorStorage =
  /** `raw_data`: little-endian bytes, the common case. */
  | { kind: 'raw' }
  /** Packed `float_data` / `int32_data` / `int64_data` / `double_data`: same bytes as raw for 4- and 8-byte types. */
  | { kind: 'packed'; field: number }
  /** `data_location = EXTERNAL`: bytes in a side file, relative to the model's folder. */
  | { kind: 'external'; file: string };

export interface TensorInfo {
  name: string;
  dims: number[];
  dataType: number;
  dtype: string;
  storage: TensorStorage;
  /** Offset and length of the payload: in the model file, or in `storage.file` when external. */
  byteOffset: number;
  byteLength: number;
  /** The whole TensorProto within the graph message (for rewrites). */
  messageStart: number;
  messageEnd: number;
}

export interface AttributeInfo {
  name: string;
  /** AttributeProto.type: 1 FLOAT, 2 INT, 3 STRING, 6 FLOATS, 7 INTS, ... */
  type: number;
  i?: number;
  f?: number;
  s?: string;
  ints?: number[];
}

export interface NodeInfo {
  name: string;
  opType: string;
  domain: string;
  inputs: string[];
  outputs: string[];
  attributes: AttributeInfo[];
}

export interface ValueInfo {
  name: string;
  /** TensorProto.DataType of the element, 0 when not a tensor or not stated. */
  elemType: number;
  /** Dimension sizes; symbolic dimensions are their parameter name. */
  shape: (number | string)[] | undefined;
}

export interface OnnxModel {
  /** Absolute path when read from a file. */
  file: string | undefined;
  size: number;
  irVersion: number;
  opsets: { domain: string; version: number }[];
  inputs: ValueInfo[];
  outputs: ValueInfo[];
  valueInfo: ValueInfo[];
  nodes: NodeInfo[];
  initializers: Map<string, TensorInfo>;
  /** The graph field (ModelProto field 7): its tag offset, payload start and end. */
  graph: { start: number; valueStart: number; end: number };
  source: ByteSource;
}

/** Elements in a tensor of these dims. */
export function numel(dims: number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

export function parseModel(src: ByteSource, file?: string): OnnxModel {
  try {
    return parseModelUnchecked(src, file);
  } catch (err) {
    if (err instanceof WireError) {
      throw new ScalpelError(`not a valid ONNX model: ${err.message}`, file, err.position);
    }
    if (err instanceof ScalpelError && !err.file) throw new ScalpelError(`not a valid ONNX model: ${err.message}`, file, err.position);
    throw err;
  }
}

function parseModelUnchecked(src: ByteSource, file: string | undefined): OnnxModel {
  const model: OnnxModel = {
    file,
    size: src.size,
    irVersion: 0,
    opsets: [],
    inputs: [],
    outputs: [],
    valueInfo: [],
    nodes: [],
    initializers: new Map(),
    graph: { start: -1, valueStart: -1, end: -1 },
    source: src,
  };
  for (const f of fields(src, 0, src.size)) {
    if (f.number === ModelProto.irVersion && f.wireType === WireType.Varint) model.irVersion = f.value;
    else if (f.number === ModelProto.opsetImport && f.wireType === WireType.Bytes) model.opsets.push(parseOpset(src, f));
    else if (f.number === ModelProto.graph && f.wireType === WireType.Bytes) model.graph = { start: f.start, valueStart: f.valueStart, end: f.end };
  }
  if (model.graph.start < 0 || model.irVersion === 0) {
    throw new ScalpelError('not a valid ONNX model: no graph or IR version found', file);
  }
  for (const f of fields(src, model.graph.valueStart, model.graph.end)) {
    if (f.wireType !== WireType.Bytes) continue;
    switch (f.number) {
      case GraphProto.node: model.nodes.push(parseNode(src, f)); break;
      case GraphProto.initializer: {
        const t = parseTensor(src, f);
        model.initializers.set(t.name, t);
        break;
      }
      case GraphProto.input: model.inputs.push(parseValueInfo(src, f)); break;
      case GraphProto.output: model.outputs.push(parseValueInfo(src, f)); break;
      case GraphProto.valueInfo: model.valueInfo.push(parseValueInfo(src, f)); break;
    }
  }
  return model;
}

function parseOpset(src: ByteSource, field: Field): { domain: string; version: number } {
  let domain = '';
  let version = 0;
  for (const f of fields(src, field.valueStart, field.end)) {
    if (f.number === OperatorSetIdProto.domain) domain = fieldString(src, f);
    else if (f.number === OperatorSetIdProto.version) version = f.value;
  }
  return { domain, version };
}

function parseNode(src: ByteSource, field: Field): NodeInfo {
  const node: NodeInfo = { name: '', opType: '', domain: '', inputs: [], outputs: [], attributes: [] };
  for (const f of fields(src, field.valueStart, field.end)) {
    switch (f.number) {
      case NodeProto.input: node.inputs.push(fieldString(src, f)); break;
      case NodeProto.output: node.outputs.push(fieldString(src, f)); break;
      case NodeProto.name: node.name = fieldString(src, f); break;
      case NodeProto.opType: node.opType = fieldString(src, f); break;
      case NodeProto.attribute: node.attributes.push(parseAttribute(src, f)); break;
      case NodeProto.domain: node.domain = fieldString(src, f); break;
    }
  }
  return node;
}

function parseAttribute(src: ByteSource, field: Field): AttributeInfo {
  const a: AttributeInfo = { name: '', type: 0 };
  for (const f of fields(src, field.valueStart, field.end)) {
    switch (f.number) {
      case AttributeProto.name: a.name = fieldString(src, f); break;
      case AttributeProto.f: a.f = src.read(f.valueStart, 4).readFloatLE(0); break;
      case AttributeProto.i: a.i = fieldInts(src, f)[0]; break;
      case AttributeProto.s: a.s = fieldString(src, f); break;
      case AttributeProto.ints: (a.ints ??= []).push(...fieldInts(src, f)); break;
      case AttributeProto.type: a.type = f.value; break;
    }
  }
  return a;
}

function parseTensor(src: ByteSource, field: Field): TensorInfo {
  const t: TensorInfo = {
    name: '', dims: [], dataType: 0, dtype: '', storage: { kind: 'raw' }, byteOffset: -1, byteLength: 0,
    messageStart: field.start, messageEnd: field.end,
  };
  const external: Record<string, string> = {};
  let location = 0;
  for (const f of fields(src, field.valueStart, field.end)) {
    switch (f.number) {
      case TensorProto.dims: t.dims.push(...fieldInts(src, f)); break;
      case TensorProto.dataType: t.dataType = f.value; break;
      case TensorProto.name: t.name = fieldString(src, f); break;
      case TensorProto.rawData:
        t.byteOffset = f.valueStart;
        t.byteLength = f.end - f.valueStart;
        break;
      case TensorProto.floatData: case TensorProto.int32Data: case TensorProto.int64Data: case TensorProto.doubleData:
        if (f.wireType === WireType.Bytes) {
          t.storage = { kind: 'packed', field: f.number };
          t.byteOffset = f.valueStart;
          t.byteLength = f.end - f.valueStart;
        }
        break;
      case TensorProto.externalData: {
        let key = '';
        let value = '';
        for (const e of fields(src, f.valueStart, f.end)) {
          if (e.number === StringStringEntryProto.key) key = fieldString(src, e);
          else if (e.number === StringStringEntryProto.value) value = fieldString(src, e);
        }
        external[key] = value;
        break;
      }
      case TensorProto.dataLocation: location = f.value; break;
    }
  }
  t.dtype = dtypeName(t.dataType);
  if (location === DataLocation.EXTERNAL) {
    if (!external.location) throw new ScalpelError(`initializer ${t.name} is external but names no location`);
    t.storage = { kind: 'external', file: external.location };
    t.byteOffset = Number(external.offset ?? 0);
    t.byteLength = external.length !== undefined ? Number(external.length) : numel(t.dims) * (DTYPE_BYTES[t.dataType] ?? 0);
  }
  return t;
}

function parseValueInfo(src: ByteSource, field: Field): ValueInfo {
  const v: ValueInfo = { name: '', elemType: 0, shape: undefined };
  for (const f of fields(src, field.valueStart, field.end)) {
    if (f.number === ValueInfoProto.name) v.name = fieldString(src, f);
    else if (f.number === ValueInfoProto.type) {
      for (const tf of fields(src, f.valueStart, f.end)) {
        if (tf.number !== TypeProto.tensorType) continue;
        for (const tt of fields(src, tf.valueStart, tf.end)) {
          if (tt.number === TypeProtoTensor.elemType) v.elemType = tt.value;
          else if (tt.number === TypeProtoTensor.shape) {
            v.shape = [];
            for (const d of fields(src, tt.valueStart, tt.end)) {
              if (d.number !== TensorShapeProto.dim) continue;
              let dim: number | string = '?';
              for (const dd of fields(src, d.valueStart, d.end)) {
                if (dd.number === TensorShapeDimension.dimValue) dim = dd.value;
                else if (dd.number === TensorShapeDimension.dimParam) dim = fieldString(src, dd);
              }
              v.shape.push(dim);
            }
          }
        }
      }
    }
  }
  return v;
}

/** A model opened from disk: the index plus the read-only descriptor behind it. Close it when done. */
export interface OpenedModel extends OnnxModel {
  file: string;
  close(): void;
}

export function openModel(file: string): OpenedModel {
  const abs = path.resolve(file);
  const fd = openReadOnly(abs, 'open model', file);
  try {
    const size = fs.fstatSync(fd).size;
    if (size === 0) throw new ScalpelError('not a valid ONNX model: the file is empty', file);
    const model = parseModel(new FileSource(fd, size), file) as OpenedModel;
    model.file = abs;
    let open = true;
    model.close = () => {
      if (open) fs.closeSync(fd);
      open = false;
    };
    return model;
  } catch (err) {
    fs.closeSync(fd);
    throw err;
  }
}

export function modelFromBytes(bytes: Uint8Array, file?: string): OnnxModel {
  return parseModel(new BufferSource(bytes), file);
}

/** Bytes per element for fixed-size types. */
export function dtypeBytes(dataType: number): number {
  const n = DTYPE_BYTES[dataType];
  if (!n) throw new ScalpelError(`unsupported tensor type ${dtypeName(dataType)}`);
  return n;
}

/** The payload bytes of a tensor (inline or external), copied into a fresh buffer. */
export function readTensorBytes(model: OnnxModel, t: TensorInfo): Uint8Array {
  const out = new Uint8Array(t.byteLength);
  if (t.storage.kind === 'external') readExternal(model, t.storage.file, t.byteOffset, out);
  else out.set(model.source.read(t.byteOffset, t.byteLength));
  return out;
}

/** Element types whose weights Scalpel reads and edits (as float32, rounded back once when written). */
const FLOAT_TYPES = new Set<number>([DataType.FLOAT, DataType.FLOAT16, DataType.BFLOAT16]);
/** Quantized weights (behind DequantizeLinear): int8, uint8, float8, int4, uint4. */
const QUANTIZED_TYPES = new Set<number>([2, 3, 17, 18, 19, 20, 21, 22]);

/** Reads a float initializer (float32, float16 or bfloat16; inline or external) into a new Float32Array. */
export function readFloatTensor(model: OnnxModel, name: string): Float32Array {
  const t = model.initializers.get(name);
  if (!t) throw new ScalpelError(`no initializer named ${name}`, model.file);
  checkFloatTensor(model, t);
  const bytes = readTensorBytes(model, t);
  return t.dataType === DataType.FLOAT ? new Float32Array(bytes.buffer) : decodeFloats(bytes, t.dataType);
}

/** Reads a small int64 or int32 initializer (shapes, split sizes) as numbers; undefined for any other type. */
export function readIntTensor(model: OnnxModel, name: string): number[] | undefined {
  const t = model.initializers.get(name);
  if (!t || (t.dataType !== DataType.INT64 && t.dataType !== DataType.INT32) || t.byteLength !== numel(t.dims) * DTYPE_BYTES[t.dataType]) return undefined;
  const bytes = readTensorBytes(model, t);
  return t.dataType === DataType.INT64 ? Array.from(new BigInt64Array(bytes.buffer), Number) : Array.from(new Int32Array(bytes.buffer));
}

/** One clear error for a weight Scalpel cannot read as floats, naming the tensor. */
export function checkFloatTensor(model: OnnxModel, t: TensorInfo): void {
  if (QUANTIZED_TYPES.has(t.dataType)) {
    throw new ScalpelError(`initializer ${t.name} is ${t.dtype} (quantized weights): not supported yet; use a float32, float16 or bfloat16 export`, model.file);
  }
  if (!FLOAT_TYPES.has(t.dataType)) throw new ScalpelError(`initializer ${t.name} is ${t.dtype}, not float32, float16 or bfloat16`, model.file);
  const n = numel(t.dims);
  const width = DTYPE_BYTES[t.dataType];
  if (t.byteLength !== n * width) {
    throw new ScalpelError(`initializer ${t.name} holds ${t.byteLength} bytes, expected ${n * width} for ${t.dtype} of shape [${t.dims}]`, model.file);
  }
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float16 or bfloat16 little-endian bytes → float32 values (exact). */
export function decodeFloats(bytes: Uint8Array, dataType: number): Float32Array {
  const halves = new Uint16Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  const out = new Float32Array(halves.length);
  if (dataType === DataType.BFLOAT16) {
    const bits = new Uint32Array(out.buffer);
    for (let i = 0; i < halves.length; i++) bits[i] = halves[i] << 16;
    return out;
  }
  for (let i = 0; i < halves.length; i++) out[i] = halfToFloat(halves[i]);
  return out;
}

/** float32 values → the stored type's little-endian bytes, each rounded once (to nearest, ties to even). */
export function encodeFloats(values: Float32Array, dataType: number): Uint8Array {
  if (dataType === DataType.FLOAT) return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = dataType === DataType.BFLOAT16 ? floatToBfloat(values[i]) : floatToHalf(values[i]);
  return new Uint8Array(out.buffer);
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

function floatToBfloat(x: number): number {
  f32[0] = x;
  const b = u32[0];
  if ((b & 0x7fffffff) > 0x7f800000) return 0x7fc0; // NaN
  return ((b + 0x7fff + ((b >> 16) & 1)) >>> 16) & 0xffff;
}

function floatToHalf(x: number): number {
  f32[0] = x;
  const b = u32[0];
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  const mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    // Subnormal: shift the mantissa (with its implicit 1) right, rounding to nearest even.
    const m = mant | 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = m & ((1 << shift) - 1);
    let r = m >>> shift;
    if (rest > half || (rest === half && r & 1)) r++;
    return sign | r;
  }
  let r = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && r & 1)) r++; // may carry into the exponent, which is right
  return sign | r;
}

export function externalPath(model: OnnxModel, location: string): string {
  if (!model.file) throw new ScalpelError(`external data "${location}" needs the model's folder, but the model has no file`);
  if (path.isAbsolute(location) || location.split(/[\\/]/).includes('..')) {
    throw new ScalpelError(`external data location "${location}" must stay inside the model's folder`, model.file);
  }
  return path.join(path.dirname(model.file), location);
}

function readExternal(model: OnnxModel, location: string, offset: number, into: Uint8Array): void {
  const file = externalPath(model, location);
  const fd = openReadOnly(file, 'open external data');
  try {
    const got = fs.readSync(fd, into, 0, into.length, offset);
    if (got !== into.length) throw new ScalpelError(`external data ends early: wanted ${into.length} bytes at ${offset}, got ${got}`, file);
  } finally {
    fs.closeSync(fd);
  }
}
