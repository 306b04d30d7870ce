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

/** A UTF-8 text file, or one ScalpelError naming it (`shown`: the path as the user wrote it). */
export function readTextFile(file: string, doing: string, shown = file): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw fileError(err, shown, doing);
  }
}

/** A read-only descriptor, or one ScalpelError naming the file. Close it when done. */
export function openReadOnly(file: string, doing: string, shown = file): number {
  try {
    return fs.openSync(file, 'r');
  } catch (err) {
    throw fileError(err, shown, doing);
  }
}
