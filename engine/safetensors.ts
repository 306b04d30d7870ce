/**
 * safetensors (8-byte little-endian header length, JSON header, raw data), float32 only.
 *
 * Reading is lazy: opening parses the header; each tensor is read by its byte offset when asked for,
 * so a 40,000-component catalog costs nothing until a tool needs one module's vectors.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { removeStaleTemps, tempName } from './atomic';
import { ScalpelError, fileError, openReadOnly } from './errors';

export interface SafetensorEntry {
  dtype: string;
  shape: number[];
  /** Absolute byte offsets in the file (the header's data_offsets plus the data start). */
  start: number;
  end: number;
}

export interface NamedTensor {
  name: string;
  shape: number[];
  data: Float32Array;
}

/** Largest header we accept: real headers are kilobytes; a garbage length must not allocate gigabytes. */
const MAX_HEADER = 100 << 20;

/** Largest tensor read into one Float32Array (2 GiB − 1: a typed array's length is an int32 on some paths). */
const MAX_TENSOR_BYTES = 2 ** 31 - 1;

if (os.endianness() !== 'LE') throw new Error('Scalpel reads and writes float32 tensors in host order, which must be little-endian');

export class SafetensorsFile {
  /** Bytes read from the file so far (header included): lets tests prove reads are lazy. */
  bytesRead = 0;
  readonly entries = new Map<string, SafetensorEntry>();
  readonly metadata: Record<string, string> = {};

  private constructor(readonly file: string, private fd: number, readonly size: number) {}

  static open(file: string): SafetensorsFile {
    const fd = openReadOnly(file, 'open tensors');
    const st = new SafetensorsFile(file, fd, fs.fstatSync(fd).size);
    try {
      st.readHeader();
    } catch (err) {
      st.close();
      throw err;
    }
    return st;
  }

  private readHeader(): void {
    if (this.size < 8) throw new ScalpelError(`not a safetensors file: ${this.size} bytes, shorter than its 8-byte header length`, this.file, { offset: 0 });
    const lenBuf = this.read(0, 8);
    const len = Number(lenBuf.readBigUInt64LE(0));
    if (len > MAX_HEADER || 8 + len > this.size) {
      throw new ScalpelError(`not a safetensors file: header length ${len} does not fit in ${this.size} bytes`, this.file, { offset: 0 });
    }
    let header: Record<string, unknown>;
    try {
      header = JSON.parse(this.read(8, len).toString('utf8'));
    } catch (err) {
      throw new ScalpelError(`invalid safetensors header: ${(err as Error).message}`, this.file, { offset: 8 });
    }
    if (!header || typeof header !== 'object' || Array.isArray(header)) throw new ScalpelError('invalid safetensors header: not a JSON object', this.file, { offset: 8 });
    const dataStart = 8 + len;
    for (const [name, v] of Object.entries(header)) {
      if (name === '__metadata__') {
        for (const [k, m] of Object.entries((v ?? {}) as Record<string, unknown>)) if (typeof m === 'string') this.metadata[k] = m;
        continue;
      }
      const e = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
      const offsets = e?.data_offsets;
      if (typeof e?.dtype !== 'string' || !Array.isArray(e.shape) || !e.shape.every((d) => Number.isInteger(d) && d >= 0) ||
          !Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isInteger(o) && o >= 0) || offsets[1] < offsets[0]) {
        throw new ScalpelError(`invalid safetensors header entry for "${name}" (needs dtype, shape, data_offsets [begin, end])`, this.file, { offset: 8 });
      }
      this.entries.set(name, { dtype: e.dtype, shape: e.shape as number[], start: dataStart + offsets[0], end: dataStart + offsets[1] });
    }
  }

  private read(position: number, length: number): Buffer {
    const buf = Buffer.alloc(length);
    const got = fs.readSync(this.fd, buf, 0, length, position);
    this.bytesRead += got;
    if (got !== length) throw new ScalpelError(`tensors file ends early: wanted ${length} bytes at ${position}, got ${got}`, this.file, { offset: position + got });
    return buf;
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  /** Reads one float32 tensor, checking its shape when `shape` is given. */
  readFloat32(name: string, shape?: number[]): Float32Array {
    const e = this.entries.get(name);
    if (!e) throw new ScalpelError(`the tensors file has no tensor "${name}"`, this.file);
    if (e.dtype !== 'F32') throw new ScalpelError(`tensor "${name}" is ${e.dtype}; Scalpel reads F32 only`, this.file);
    if (shape && (shape.length !== e.shape.length || shape.some((d, i) => d !== e.shape[i]))) {
      throw new ScalpelError(`tensor "${name}" has shape [${e.shape}], expected [${shape}]`, this.file);
    }
    const n = e.shape.reduce((a, b) => a * b, 1);
    if (n * 4 > MAX_TENSOR_BYTES) throw new ScalpelError(`tensor "${name}" has ${n * 4} bytes, more than the ${MAX_TENSOR_BYTES} Scalpel reads at once`, this.file);
    if (e.end - e.start !== n * 4) throw new ScalpelError(`tensor "${name}" holds ${e.end - e.start} bytes, expected ${n * 4} for shape [${e.shape}]`, this.file);
    if (e.end > this.size) throw new ScalpelError(`tensors file ends early: "${name}" needs bytes up to ${e.end}, the file has ${this.size}`, this.file, { offset: this.size });
    const buf = this.read(e.start, n * 4);
    return new Float32Array(buf.buffer, buf.byteOffset, n);
  }

  close(): void {
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
  }
}

/** The bytes of a safetensors file holding `tensors` in the given order (8-byte aligned data). */
export function encodeSafetensors(tensors: NamedTensor[], metadata?: Record<string, string>): Buffer[] {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const t of tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (n !== t.data.length) throw new Error(`tensor ${t.name}: shape [${t.shape}] needs ${n} values, got ${t.data.length}`);
    header[t.name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + n * 4] };
    offset += n * 4;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8); // the format pads the header with spaces
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  return [len, Buffer.from(json, 'utf8'), ...tensors.map((t) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength))];
}

/** A file written to its temporary, fsynced, waiting for `commit` (the rename) or `abort`. */
export interface PreparedFile {
  temp: string;
  commit(): void;
  abort(): void;
}

/** Writes `parts` to a temporary beside `file` (stale temporaries of `file` are removed first). */
export function prepareFile(file: string, parts: Iterable<Buffer | string>): PreparedFile {
  removeStaleTemps(file);
  const temp = tempName(file);
  let fd: number;
  try {
    fd = fs.openSync(temp, 'wx');
  } catch (err) {
    throw fileError(err, file, 'write');
  }
  let open = true;
  const abort = () => fs.rmSync(temp, { force: true });
  try {
    for (const p of parts) fs.writeSync(fd, typeof p === 'string' ? Buffer.from(p, 'utf8') : p);
    fs.fsyncSync(fd);
    open = false;
    fs.closeSync(fd);
  } catch (err) {
    if (open) fs.closeSync(fd);
    abort();
    throw fileError(err, file, 'write');
  }
  return {
    temp,
    commit() {
      try {
        fs.renameSync(temp, file);
      } catch (err) {
        abort();
        throw fileError(err, file, 'write');
      }
    },
    abort,
  };
}

/** Writes `file` atomically: a temporary file in the same folder, then a rename. */
export function writeFileAtomic(file: string, parts: Iterable<Buffer | string>): void {
  prepareFile(file, parts).commit();
}

export function writeSafetensors(file: string, tensors: NamedTensor[], metadata?: Record<string, string>): void {
  writeFileAtomic(file, encodeSafetensors(tensors, metadata));
}
