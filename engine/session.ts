/**
 * onnxruntime sessions over a model on disk, without a second copy of its weights.
 *
 * The graph handed to onnxruntime (the model's, rewritten: a loss head, extra outputs, weights as
 * inputs) holds structure only: every initializer stored inline in the model file becomes an
 * external reference to that same file at its payload's offset, and external side files are
 * referred to as they are, resolved against the model's folder. So a session costs the weights
 * once (onnxruntime's own copy), models over protobuf's 2 GB limit load, and nothing is written.
 */
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { OnnxModel } from './onnx/model';
import { GraphEdit, rewriteModel } from './onnx/rewrite';
import { FileSource } from './onnx/wire';
import { RuntimeOptions, startSession } from './runtime';

/** Where the session runs (execution providers, device, threads): engine/runtime.ts. */
export type SessionOptions = RuntimeOptions;

/** Inline tensors below this size stay in the graph (shapes, axes, scalars). */
const REFERENCE_FROM_BYTES = 1024;

/** The rewritten graph's bytes, and the folder its external references resolve against. */
export function sessionGraph(model: OnnxModel, edit: GraphEdit = {}): { bytes: Buffer; folder: string | undefined } {
  // Only a model indexed from its own file can point back into it; one rebuilt in memory hands over its inline
  // tensors, and its side files still resolve against the folder of the file it came from.
  const onDisk = model.file !== undefined && model.source instanceof FileSource;
  const bytes = rewriteModel(model, onDisk ? { ...edit, referenceInline: { location: path.basename(model.file!), minBytes: REFERENCE_FROM_BYTES } } : edit);
  return { bytes, folder: model.file !== undefined ? path.dirname(model.file) : undefined };
}

function externalDataOptions(folder?: string): ort.InferenceSession.SessionOptions {
  return folder ? { extra: { session: { model_external_initializers_file_folder_path: folder } } } : {};
}

/** A session over `model` rewritten by `edit`; `what` names the graph in the error ("the model", "the traced model"). */
export async function createSession(model: OnnxModel, edit: GraphEdit, opts: SessionOptions = {}, what = 'the model'): Promise<ort.InferenceSession> {
  const { bytes, folder } = sessionGraph(model, edit);
  return startSession(bytes, opts, what, model.file, externalDataOptions(folder));
}

export function firstLine(err: unknown): string {
  return String((err as Error)?.message ?? err).split('\n')[0];
}
