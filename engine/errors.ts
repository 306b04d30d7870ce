import * as fs from 'node:fs';

/**
 * A user-facing error: one line, with the file (and position) it is about.
 * The CLI prints `message` alone; anything that is not a ScalpelError is a bug and keeps its stack.
 */
export class ScalpelError extends Error {
  constructor(
    message: string,
    readonly file?: string,
    readonly position?: { line?: number; column?: number; offset?: number },
  ) {
    super(message);
    this.name = 'ScalpelError';
  }

  /** `file:line:col: message`, `file: byte N: message` or just the message. */
  format(): string {
    if (!this.file) return this.message;
    const p = this.position;
    if (p?.line !== undefined) return `${this.file}:${p.line}:${p.column ?? 1}: ${this.message}`;
    if (p?.offset !== undefined) return `${this.file}: byte ${p.offset}: ${this.message}`;
    return `${this.file}: ${this.message}`;
  }
}

/** Turns a Node file-system error into a ScalpelError naming the file. */
export function fileError(err: unknown, file: string, doing: string): ScalpelError {
  const code = (err as NodeJS.ErrnoException)?.code;
  const why =
    code === 'ENOENT' ? 'no such file' :
    code === 'EACCES' || code === 'EPERM' ? 'permission denied' :
    code === 'EISDIR' ? 'is a directory' :
    code === 'ENOTDIR' ? 'a parent is not a directory' :
    (err as Error)?.message ?? String(err);
  return new ScalpelError(`cannot ${doing}: ${why}`, file);
}

/** Largest text file read whole (specs, catalog.json, tokenizers, data files, locks). */
export const MAX_TEXT_BYTES = 256 * 1024 * 1024;

/** Largest model read whole into memory (onnxruntime takes the bytes); larger ones are opened by descriptor. */
export const MAX_MODEL_BYTES = 2 * 1024 * 1024 * 1024 - 1;

/** What a non-regular file is, for messages. */
function fileKind(st: fs.Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  return 'not a regular file';
}

/**
 * A read-only descriptor of a regular file, or one ScalpelError naming it. Files are read as what
 * they claim to be: a FIFO (opened non-blocking, so opening never waits), a device such as /dev/zero,
 * a socket or a directory is refused. Close it when done.
 */
export function openReadOnly(file: string, doing: string, shown = file): number {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch (err) {
    throw fileError(err, shown, doing);
  }
  let st: fs.Stats;
  try {
    st = fs.fstatSync(fd);
  } catch (err) {
    fs.closeSync(fd);
    throw fileError(err, shown, doing);
  }
  if (!st.isFile()) {
    fs.closeSync(fd);
    const kind = fileKind(st);
    throw new ScalpelError(`cannot ${doing}: ${kind === 'not a regular file' ? kind : `it is ${kind}, not a regular file`}`, shown);
  }
  return fd;
}

const mib = (n: number) => `${(n / 1024 / 1024).toFixed(n < 1024 * 1024 ? 2 : 0)} MiB`;

/** A whole regular file of at most `limit` bytes, or one ScalpelError naming it. */
export function readFileBytes(file: string, doing: string, shown = file, limit = MAX_MODEL_BYTES): Buffer {
  const fd = openReadOnly(file, doing, shown);
  try {
    const size = fs.fstatSync(fd).size;
    if (size > limit) throw new ScalpelError(`cannot ${doing}: the file has ${mib(size)}, more than the ${mib(limit)} read at once`, shown);
    return fs.readFileSync(fd);
  } catch (err) {
    throw err instanceof ScalpelError ? err : fileError(err, shown, doing);
  } finally {
    fs.closeSync(fd);
  }
}

/** A UTF-8 text file (a regular file of at most MAX_TEXT_BYTES), or one ScalpelError naming it (`shown`: the path as the user wrote it). */
export function readTextFile(file: string, doing: string, shown = file): string {
  return readFileBytes(file, doing, shown, MAX_TEXT_BYTES).toString('utf8');
}
