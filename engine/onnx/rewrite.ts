/**
 * Graph rewrites at the wire level: everything not named in the edit is copied as bytes.
 *
 * A rewrite is a plan: a list of byte ranges of the source model and new buffers, so that the
 * result can be built in memory (for an ORT session) or streamed to a file (for large models).
 */
import * as fs from 'node:fs';
import { ScalpelError } from '../errors';
import { NodeSpec, TensorSpec, ValueInfoSpec, encodeNode, encodeTensor, encodeValueInfo } from './build';
import { DataType, OnnxModel, TensorInfo } from './model';
import { Field, WireType, Writer, fieldHeader, fields } from './wire';
import { GraphProto, ModelProto, NodeProto, TensorProto } from './schema';

export type Chunk = Buffer | { start: number; end: number };

export interface GraphEdit {
  /** Initializers to drop (e.g. to feed them as graph inputs instead). */
  removeInitializers?: Iterable<string>;
  /** Nodes to drop, by index in `model.nodes` (e.g. to run only the part of a graph after a cut). */
  removeNodes?: Iterable<number>;
  /** Initializers whose whole TensorProto is replaced. */
  replaceInitializers?: Map<string, TensorSpec>;
  addNodes?: NodeSpec[];
  /**
   * Nodes spliced in right after node `after` (an index in `model.nodes`), so the node list stays in
   * topological order; `renameOutputs` renames outputs of that node (its other fields are copied as bytes),
   * which lets the inserted nodes take over a tensor name its consumers already read.
   */
  insertAfter?: { after: number; renameOutputs?: Record<string, string>; nodes: NodeSpec[] }[];
  addInitializers?: TensorSpec[];
  addInputs?: ValueInfoSpec[];
  addOutputs?: ValueInfoSpec[];
  /**
   * Byte ranges of the graph message replaced by other bytes of any length (a tensor payload, a
   * rebuilt TensorProto field); they must not overlap each other or the edits above.
   */
  spliceBytes?: { start: number; end: number; bytes: Buffer }[];
  /**
   * Inline tensors of at least `minBytes` become external references to `location` (the model
   * file itself) at their payload's offset: a session reads them from the file, and the graph
   * handed to it holds no weights.
   */
  referenceInline?: { location: string; minBytes: number };
}

export function planRewrite(model: OnnxModel, edit: GraphEdit): Chunk[] {
  const remove = new Set(edit.removeInitializers ?? []);
  for (const name of remove) {
    if (!model.initializers.has(name)) throw new ScalpelError(`no initializer named ${name}`, model.file);
  }
  const replacements = new Map<number, Buffer>(); // TensorProto start -> new field bytes (empty to drop)
  for (const t of model.initializers.values()) {
    let spec = edit.replaceInitializers?.get(t.name);
    if (!spec && edit.referenceInline) spec = referenceSpec(t, edit.referenceInline);
    if (remove.has(t.name)) replacements.set(t.messageStart, Buffer.alloc(0));
    else if (spec) {
      const body = encodeTensor(spec).finish();
      replacements.set(t.messageStart, Buffer.concat([fieldHeader(GraphProto.initializer, body.length), body]));
    }
  }
  const appended = new Writer();
  for (const n of edit.addNodes ?? []) appended.messageField(GraphProto.node, encodeNode(n));
  for (const t of edit.addInitializers ?? []) appended.messageField(GraphProto.initializer, encodeTensor(t));
  for (const i of edit.addInputs ?? []) appended.messageField(GraphProto.input, encodeValueInfo(i));
  for (const o of edit.addOutputs ?? []) appended.messageField(GraphProto.output, encodeValueInfo(o));

  // Every change inside the graph message, as [start, end) of the source replaced by new bytes.
  const cuts = [...(edit.spliceBytes ?? [])];
  const removeNodes = new Set(edit.removeNodes ?? []);
  const inserts = new Map<number, NonNullable<GraphEdit['insertAfter']>[number]>();
  for (const ins of edit.insertAfter ?? []) {
    if (!model.nodes[ins.after]) throw new ScalpelError(`no node ${ins.after} to insert after`, model.file);
    if (inserts.has(ins.after) || removeNodes.has(ins.after)) throw new ScalpelError(`node ${model.nodes[ins.after].name || ins.after} is edited twice`, model.file);
    inserts.set(ins.after, ins);
  }
  if (replacements.size || removeNodes.size || inserts.size) {
    let nodeIndex = -1;
    for (const f of fields(model.source, model.graph.valueStart, model.graph.end)) {
      const isNode = f.number === GraphProto.node && f.wireType === WireType.Bytes;
      if (isNode) nodeIndex++;
      const ins = isNode ? inserts.get(nodeIndex) : undefined;
      const replacement = ins
        ? Buffer.concat([renamedNode(model, f, ins.renameOutputs ?? {}), ...ins.nodes.map((n) => new Writer().messageField(GraphProto.node, encodeNode(n)).finish())])
        : isNode ? (removeNodes.has(nodeIndex) ? Buffer.alloc(0) : undefined) : f.number === GraphProto.initializer ? replacements.get(f.start) : undefined;
      if (replacement !== undefined) cuts.push({ start: f.start, end: f.end, bytes: replacement });
    }
  }
  cuts.sort((a, b) => a.start - b.start);
  const graphChunks: Chunk[] = [];
  let cursor = model.graph.valueStart;
  let graphLength = 0;
  const push = (c: Chunk) => {
    graphChunks.push(c);
    graphLength += Buffer.isBuffer(c) ? c.length : c.end - c.start;
  };
  for (const cut of cuts) {
    if (cut.start < cursor || cut.end > model.graph.end) throw new Error(`overlapping or out-of-graph splice at byte ${cut.start}`);
    if (cut.start > cursor) push({ start: cursor, end: cut.start });
    if (cut.bytes.length) push(cut.bytes);
    cursor = cut.end;
  }
  if (model.graph.end > cursor) push({ start: cursor, end: model.graph.end });
  const tail = appended.finish();
  if (tail.length) push(tail);
  return [
    { start: 0, end: model.graph.start },
    fieldHeader(ModelProto.graph, graphLength),
    ...graphChunks,
    ...(model.graph.end < model.size ? [{ start: model.graph.end, end: model.size }] : []),
  ];
}

/** A NodeProto field with some outputs renamed; every other field copied as bytes. */
function renamedNode(model: OnnxModel, node: Field, rename: Record<string, string>): Buffer {
  const src = model.source;
  const w = new Writer();
  for (const f of fields(src, node.valueStart, node.end)) {
    const name = f.number === NodeProto.output ? src.read(f.valueStart, f.end - f.valueStart).toString('utf8') : undefined;
    if (name !== undefined && name in rename) w.stringField(NodeProto.output, rename[name]);
    else w.raw(src.read(f.start, f.end - f.start));
  }
  return new Writer().messageField(GraphProto.node, w).finish();
}

/** Float and double packed fields are fixed-width little-endian, the same bytes as raw data; varint ones are not. */
const SAME_AS_RAW = new Set<number>([TensorProto.floatData, TensorProto.doubleData]);

function referenceSpec(t: TensorInfo, ref: { location: string; minBytes: number }): TensorSpec | undefined {
  const inline = t.storage.kind === 'raw' || (t.storage.kind === 'packed' && SAME_AS_RAW.has(t.storage.field));
  if (!inline || t.byteLength < ref.minBytes) return undefined;
  return { name: t.name, dims: t.dims, dataType: t.dataType, data: { external: { location: ref.location, offset: t.byteOffset, length: t.byteLength } } };
}

/**
 * An edit exposing intermediate tensors as extra graph outputs (for tracing, and for capturing a
 * module's input). Element types come from the graph's value_info where stated, else float32.
 */
export function withExtraOutputs(model: OnnxModel, names: string[], edit: GraphEdit = {}): GraphEdit {
  const produced = new Set(model.nodes.flatMap((n) => n.outputs));
  const existing = new Set(model.outputs.map((o) => o.name));
  for (const name of names) {
    if (!produced.has(name) && !model.initializers.has(name) && !model.inputs.some((i) => i.name === name)) {
      throw new ScalpelError(`no tensor named ${name} in the graph`, model.file);
    }
  }
  const types = new Map(model.valueInfo.map((v) => [v.name, v.elemType]));
  const addOutputs = names.filter((n) => !existing.has(n)).map((name) => ({ name, elemType: types.get(name) || DataType.FLOAT }));
  return { ...edit, addOutputs: [...(edit.addOutputs ?? []), ...addOutputs] };
}

/**
 * An edit feeding `names` per run, always as float32: onnxruntime ignores a feed for a tensor that is
 * both an initializer and an input, so each initializer is removed and declared as an input of its
 * shape; a float16/bfloat16 weight's input (`weightInputName`) is cast to the stored type in the graph,
 * which rounds as writing the edited weight does.
 */
export function initializersAsInputs(model: OnnxModel, names: string[]): GraphEdit {
  const addInputs: ValueInfoSpec[] = [];
  const addNodes: NodeSpec[] = [];
  for (const name of names) {
    const t = model.initializers.get(name);
    if (!t) throw new ScalpelError(`no initializer named ${name}`, model.file);
    addInputs.push({ name: weightInputName(t), elemType: DataType.FLOAT, shape: t.dims });
    if (t.dataType !== DataType.FLOAT) {
      addNodes.push({ name: `scalpel/cast/${name}`, opType: 'Cast', inputs: [weightInputName(t)], outputs: [name], attributes: [{ name: 'to', i: t.dataType }] });
    }
  }
  return { removeInitializers: names, addInputs, addNodes };
}

/** The float32 graph input that feeds a weight turned into an input (`initializersAsInputs`). */
export function weightInputName(t: TensorInfo): string {
  return t.dataType === DataType.FLOAT ? t.name : `${t.name}.scalpel_float32`;
}

/** Two edits as one (the second's additions after the first's). */
export function combineEdits(a: GraphEdit, b: GraphEdit): GraphEdit {
  const cat = <T>(x?: Iterable<T>, y?: Iterable<T>) => (x || y ? [...(x ?? []), ...(y ?? [])] : undefined);
  const replace = a.replaceInitializers || b.replaceInitializers ? new Map([...(a.replaceInitializers ?? []), ...(b.replaceInitializers ?? [])]) : undefined;
  return {
    removeInitializers: cat(a.removeInitializers, b.removeInitializers),
    removeNodes: cat(a.removeNodes, b.removeNodes),
    replaceInitializers: replace,
    addNodes: cat(a.addNodes, b.addNodes),
    addInitializers: cat(a.addInitializers, b.addInitializers),
    addInputs: cat(a.addInputs, b.addInputs),
    addOutputs: cat(a.addOutputs, b.addOutputs),
    spliceBytes: cat(a.spliceBytes, b.spliceBytes),
    referenceInline: b.referenceInline ?? a.referenceInline,
  };
}

export function planToBuffer(model: OnnxModel, plan: Chunk[]): Buffer {
  return Buffer.concat(plan.map((c) => (Buffer.isBuffer(c) ? c : model.source.read(c.start, c.end - c.start))));
}

export function rewriteModel(model: OnnxModel, edit: GraphEdit): Buffer {
  return planToBuffer(model, planRewrite(model, edit));
}

/** Streams a plan into an open file descriptor, copying source ranges in 4 MiB blocks. */
export function writePlan(model: OnnxModel, plan: Chunk[], fd: number): void {
  const BLOCK = 1 << 22;
  for (const c of plan) {
    if (Buffer.isBuffer(c)) {
      fs.writeSync(fd, c);
      continue;
    }
    for (let pos = c.start; pos < c.end; pos += BLOCK) {
      fs.writeSync(fd, model.source.read(pos, Math.min(BLOCK, c.end - pos)));
    }
  }
}
