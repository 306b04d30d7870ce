/**
 * Identities of files on disk: SHA-256 streamed in 4 MiB blocks. A model's identity covers every
 * byte it is made of: the .onnx file and each external data file it names.
 */
import { createHash, Hash } from 'node:crypto';
import * as fs from 'node:fs';
import { openReadOnly } from './errors';
import { externalPath, openModel } from './onnx/model';

export function sha256File(file: string): string {
  const h = createHash('sha256');
  hashInto(h, file);
  return h.digest('hex');
}

/**
 * The model file's bytes, then per external data file (in the order the model first names them)
 * its location, size and bytes. A model without side files hashes as its file alone, so pins and
 * catalogs made from the file's own sha256 stay valid.
 */
export function modelSha256(file: string): string {
  const { main, sides } = modelParts(file);
  const h = createHash('sha256');
  hashInto(h, main);
  for (const [location, side] of sides) {
    h.update(`\0${location}\0${fs.statSync(side).size}\0`);
    hashInto(h, side);
  }
  return h.digest('hex');
}

/** `modelSha256` read asynchronously block by block (a server keeps answering meanwhile); `signal` stops it. */
export async function modelSha256Async(file: string, signal?: AbortSignal): Promise<string> {
  const { main, sides } = modelParts(file);
  const h = createHash('sha256');
  await hashIntoAsync(h, main, signal);
  for (const [location, side] of sides) {
    h.update(`\0${location}\0${fs.statSync(side).size}\0`);
    await hashIntoAsync(h, side, signal);
  }
  return h.digest('hex');
}

/** The model file and its external data files (location as named, path), in the order the model first names them. */
function modelParts(file: string): { main: string; sides: [string, string][] } {
  const model = openModel(file);
  try {
    const locations = [...new Set([...model.initializers.values()].flatMap((t) => (t.storage.kind === 'external' ? [t.storage.file] : [])))];
    return { main: model.file, sides: locations.map((l) => [l, externalPath(model, l)]) };
  } finally {
    model.close();
  }
}

async function hashIntoAsync(h: Hash, file: string, signal?: AbortSignal): Promise<void> {
  const fd = openReadOnly(file, 'read');
  try {
    const buf = Buffer.alloc(1 << 22);
    for (;;) {
      signal?.throwIfAborted();
      const n = await new Promise<number>((resolve, reject) => fs.read(fd, buf, 0, buf.length, null, (err, got) => (err ? reject(err) : resolve(got))));
      if (n === 0) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    fs.closeSync(fd);
  }
}

function hashInto(h: Hash, file: string): void {
  const fd = openReadOnly(file, 'read');
  try {
    const buf = Buffer.alloc(1 << 22);
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    fs.closeSync(fd);
  }
}
