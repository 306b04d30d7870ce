/**
 * Temporary files of atomic writes, and what guards outputs from clobbering inputs. A temporary is
 * `.NAME.PID.STAMP.tmp` beside its final path, so that a writer killed mid-write (kill -9, power
 * loss) leaves a file the next write of the same path recognises and removes: a temporary whose
 * process is gone is stale.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ScalpelError } from './errors';

export function tempName(final: string): string {
  return path.join(path.dirname(final), `.${path.basename(final)}.${process.pid}.${Date.now().toString(36)}.tmp`);
}

/** Removes temporaries of `final` left by processes that no longer run. */
export function removeStaleTemps(final: string): void {
  const dir = path.dirname(final);
  const prefix = `.${path.basename(final)}.`;
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    if (!name.startsWith(prefix) || !name.endsWith('.tmp')) continue;
    const m = /^(\d+)\.[0-9a-z]+\.tmp$/.exec(name.slice(prefix.length));
    if (!m || alive(Number(m[1]))) continue;
    fs.rmSync(path.join(dir, name), { force: true });
  }
}

function alive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Whether two paths name the same file (same path, or same inode: hard links and symlinks). */
export function sameFile(a: string, b: string): boolean {
  if (path.resolve(a) === path.resolve(b)) return true;
  try {
    const sa = fs.statSync(a);
    const sb = fs.statSync(b);
    return sa.ino === sb.ino && sa.dev === sb.dev;
  } catch {
    return false;
  }
}

/**
 * Refuses an output path unless it is new or an existing regular file (not a symlink, device, FIFO
 * or folder, which a rename would replace), and unless it is none of `inputs` (files the run reads
 * or also writes: spec, lock, model, tokenizer, catalog, data).
 */
export function checkOutputPath(out: string, inputs: { file: string; what: string }[], shown = out): void {
  let st: fs.Stats | undefined;
  try {
    st = fs.lstatSync(out);
  } catch {
    st = undefined;
  }
  if (st && !st.isFile()) {
    const kind = st.isSymbolicLink() ? 'a symbolic link' : st.isDirectory() ? 'a directory' : st.isFIFO() ? 'a FIFO' : st.isSocket() ? 'a socket' : 'a device';
    throw new ScalpelError(`refusing to write over ${kind}: the output must be a new path or a regular file`, shown);
  }
  for (const input of inputs) {
    if (sameFile(out, input.file)) throw new ScalpelError(`refusing to overwrite the ${input.what} (${input.file}); choose another output file`, shown);
  }
}
