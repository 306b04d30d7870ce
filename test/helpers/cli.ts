/**
 * The CLI as a child process, from any working directory. By default the bundle behind bin/scalpel.js, as users
 * run it (npm test builds it first; a test file run alone builds it when it is missing); `source: true` runs
 * cli/main.ts through tsx instead, for tests that must not depend on the bundle.
 */
import { ChildProcess, ChildProcessWithoutNullStreams, SpawnOptions, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';

export const ROOT = path.resolve(__dirname, '..', '..');

export interface CliOptions {
  cwd?: string;
  /** Added to the environment, which never carries an outer JOB_COMPLETION_INDEX (that would make a run a shard). */
  env?: NodeJS.ProcessEnv;
  source?: boolean;
}

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

function command(args: string[], source?: boolean): string[] {
  // tsx by its resolved location: `--import tsx` would resolve the package from the child's cwd.
  if (source) return ['--import', pathToFileURL(require.resolve('tsx')).href, path.join(ROOT, 'cli', 'main.ts'), ...args];
  if (!fs.existsSync(path.join(ROOT, 'dist', 'cli.js'))) spawnSync(process.execPath, ['scripts/build.mjs'], { stdio: 'inherit', cwd: ROOT });
  return [path.join(ROOT, 'bin', 'scalpel.js'), ...args];
}

const environment = (env: NodeJS.ProcessEnv = {}) => ({ ...process.env, JOB_COMPLETION_INDEX: undefined, ...env });

/** Runs `scalpel ARGS` to its end. */
export function scalpel(args: string[], opts: CliOptions = {}): CliRun {
  const r = spawnSync(process.execPath, command(args, opts.source), { encoding: 'utf8', cwd: opts.cwd, env: environment(opts.env) });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Starts `scalpel ARGS` (a language server, a shard to kill) and returns the child, its streams piped unless `stdio` says otherwise. */
export function startScalpel(args: string[], opts?: CliOptions): ChildProcessWithoutNullStreams;
export function startScalpel(args: string[], opts: CliOptions & { stdio: SpawnOptions['stdio'] }): ChildProcess;
export function startScalpel(args: string[], opts: CliOptions & { stdio?: SpawnOptions['stdio'] } = {}): ChildProcess {
  return spawn(process.execPath, command(args, opts.source), { cwd: opts.cwd, env: environment(opts.env), stdio: opts.stdio ?? 'pipe' });
}
