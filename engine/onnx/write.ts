/**
 * Writing an edited copy of a model. Only the changed tensors' bytes are written; everything else
 * is copied as bytes, never decoded. The base file is opened read-only and never written; every
 * output goes to a temporary file in the destination folder, is fsynced, then renamed into place.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { checkOutputPath, removeStaleTemps, sameFile, tempName } from '../atomic';
import { ScalpelError, fileError } from '../errors';
import { writeExternalData } from './build';
import { OnnxModel, TensorInfo, checkFloatTensor, encodeFloats, externalPath, numel, openModel } from './model';
import { GraphEdit, planRewrite, writePlan } from './rewrite';
import { Writer, fieldHeader, fields } from './wire';
import { GraphProto, TensorProto } from './schema';

export interface WriteResult {
  file: string;
  /** Side files written next to it (external data), if any. */
  dataFiles: string[];
  patched: string[];
}

/** Graph changes a written model may carry besides patched tensors: nodes spliced in and their initializers (gated edits). */
export type GraphAdditions = Pick<GraphEdit, 'insertAfter' | 'addInitializers'>;

/**
 * Writes `source` to `outFile` with the float initializers in `patches` replaced (values as float32, stored in
 * the tensor's own type), and `graph`'s
 * nodes and initializers added. Patched values must have the initializer's element count; layout is
 * the initializer's own. Untouched tensors are copied as bytes either way.
 */
export function writeEditedModel(source: string, outFile: string, patches: Map<string, Float32Array>, graph?: GraphAdditions, opts: WriteOptions = {}): WriteResult {
  const model = openModel(source);
  try {
    return writeEdited(model, path.resolve(outFile), patches, graph, opts);
  } finally {
    model.close();
  }
}

export interface WriteOptions {
  /** Files no output may replace besides the base model and its data (the caller's other inputs). */
  protect?: { file: string; what: string }[];
  /** Called with the fsynced temporary model, its side files already in place, just before its rename commits it (the lock is prepared here). */
  beforeCommit?: (tempModel: string) => void;
}

function writeEdited(model: OnnxModel & { file: string }, out: string, patches: Map<string, Float32Array>, graph: GraphAdditions | undefined, opts: WriteOptions): WriteResult {
  if (sameFile(model.file, out)) throw new ScalpelError('refusing to overwrite the base checkpoint; choose another output file', out);
  const targets: TensorInfo[] = [];
  // Each patch in its tensor's stored type: float32 as is, float16/bfloat16 rounded once.
  const encoded = new Map<string, Uint8Array>();
  for (const [name, values] of patches) {
    const t = model.initializers.get(name);
    if (!t) throw new ScalpelError(`no initializer named ${name}`, model.file);
    checkFloatTensor(model, t);
    if (values.length !== numel(t.dims)) {
      throw new ScalpelError(`patch for ${name} has ${values.length} values, the tensor has ${numel(t.dims)}`, model.file);
    }
    targets.push(t);
    encoded.set(name, encodeFloats(values, t.dataType));
  }
  const externals = [...new Set([...model.initializers.values()].flatMap((t) => (t.storage.kind === 'external' ? [t.storage.file] : [])))];
  const outDir = path.dirname(out);
  const sideFile = (i: number) => path.join(outDir, externals.length === 1 ? `${path.basename(out)}.data` : `${path.basename(out)}.${i}.data`);
  const inputs = [{ file: model.file, what: 'base checkpoint' }, ...externals.map((e) => ({ file: externalPath(model, e), what: 'base checkpoint\'s external data' })), ...(opts.protect ?? [])];
  checkOutputPath(out, inputs);
  externals.forEach((_, i) => checkOutputPath(sideFile(i), inputs));
  removeStaleTemps(out);
  externals.forEach((_, i) => removeStaleTemps(sideFile(i)));
  const temps: string[] = [];
  try {
    // Side files first: the model file, renamed last, is the commit point.
    const renames = new Map<string, string>(); // old location -> new location
    const dataFiles: [string, string][] = []; // [temp, final]
    externals.forEach((location, i) => {
      const final = sideFile(i);
      renames.set(location, path.basename(final));
      const temp = tempName(final);
      temps.push(temp);
      copyThenPatch(externalPath(model, location), temp, targets.filter((t) => t.storage.kind === 'external' && t.storage.file === location), encoded);
      dataFiles.push([temp, final]);
    });
    const tempModel = tempName(out);
    temps.push(tempModel);
    if (externals.length === 0 && !graph) {
      copyThenPatch(model.file, tempModel, targets, encoded);
    } else {
      // Inline tensors get their new payload; external ones keep theirs and only change their location;
      // added initializers are inline.
      const spliceBytes = [...model.initializers.values()].flatMap((t) => {
        if (t.storage.kind === 'external') {
          return [{ start: t.messageStart, end: t.messageEnd, bytes: relocated(model, t, renames.get(t.storage.file)!) }];
        }
        const v = encoded.get(t.name);
        return v ? [{ start: t.byteOffset, end: t.byteOffset + t.byteLength, bytes: Buffer.from(v.buffer, v.byteOffset, v.byteLength) }] : [];
      });
      const fd = openForWrite(tempModel);
      try {
        writePlan(model, planRewrite(model, { ...graph, spliceBytes }), fd);
        fs.fdatasyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
    }
    for (const [temp, final] of dataFiles) fs.renameSync(temp, final);
    opts.beforeCommit?.(tempModel);
    fs.renameSync(tempModel, out);
    fsyncDir(outDir);
    return { file: out, dataFiles: dataFiles.map(([, f]) => f), patched: targets.map((t) => t.name) };
  } catch (err) {
    for (const t of temps) fs.rmSync(t, { force: true });
    if (err instanceof ScalpelError) throw err;
    throw fileError(err, out, 'write the edited model');
  }
}

function copyThenPatch(from: string, to: string, targets: TensorInfo[], patches: Map<string, Uint8Array>): void {
  fs.copyFileSync(from, to);
  const fd = fs.openSync(to, 'r+');
  try {
    for (const t of targets) {
      const v = patches.get(t.name)!;
      fs.writeSync(fd, v, 0, v.byteLength, t.byteOffset);
    }
    // Data and size on disk before the rename; the directory entry is synced after it.
    fs.fdatasyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** The TensorProto of an external tensor with its location renamed; every other field kept. */
function relocated(model: OnnxModel, t: TensorInfo, newLocation: string): Buffer {
  const src = model.source;
  const w = new Writer();
  const message = fields(src, t.messageStart, t.messageEnd).next().value!;
  for (const f of fields(src, message.valueStart, message.end)) {
    if (f.number !== TensorProto.externalData && f.number !== TensorProto.dataLocation) w.raw(src.read(f.start, f.end - f.start));
  }
  const payload = writeExternalData(w, { location: newLocation, offset: t.byteOffset, length: t.byteLength }).finish();
  return Buffer.concat([fieldHeader(GraphProto.initializer, payload.length), payload]);
}

function openForWrite(file: string): number {
  try {
    return fs.openSync(file, 'wx');
  } catch (err) {
    throw fileError(err, file, 'create output');
  }
}

function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    // Some file systems refuse to fsync a directory; the rename is still atomic.
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}
