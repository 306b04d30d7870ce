/**
 * Runs model jobs in a forked worker process (dist/worker.js) under a progress notification.
 * Cancelling sends the worker a cancel message (its job stops at the next check between ORT runs; an apply
 * cancelled before its write writes nothing), then kills the process if it has not exited within CANCEL_GRACE_MS: nothing keeps
 * running in the background.
 */
import { fork } from 'node:child_process';
import * as vscode from 'vscode';
import type { CancelRequest, Job, JobResult, WorkerMessage } from './protocol';

/** How long a cancelled worker may take to stop on its own (one ORT run of a large batch) before it is killed. */
const CANCEL_GRACE_MS = 3000;

/** A job that failed with a user error (one line, with the spec location when there is one). */
export class JobError extends Error {
  constructor(message: string, readonly file?: string, readonly line?: number, readonly column?: number) {
    super(message);
  }

  format(): string {
    return this.file ? `${this.file}${this.line ? `:${this.line}:${this.column ?? 1}` : ''}: ${this.message}` : this.message;
  }
}

export class CancelledJob extends Error {
  constructor() {
    super('cancelled');
  }
}

export class JobRunner {
  constructor(
    private readonly workerScript: string,
    private readonly log: vscode.OutputChannel,
  ) {}

  /** Runs `job` in a fresh worker; `onStatus` sees its progress lines. Rejects with JobError or CancelledJob. */
  run<T extends JobResult>(job: Job, token?: vscode.CancellationToken, onStatus?: (message: string) => void): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const started = Date.now();
      this.log.appendLine(`[${job.kind}] ${'spec' in job ? job.spec : ''}`);
      const child = fork(this.workerScript, [], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'], env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' } });
      let settled = false;
      const done = (f: () => void) => {
        if (settled) return;
        settled = true;
        sub?.dispose();
        f();
      };
      const sub = token?.onCancellationRequested(() => {
        if (child.connected) child.send({ kind: 'cancel' } satisfies CancelRequest);
        const kill = setTimeout(() => {
          if (child.exitCode === null && child.signalCode === null) {
            child.kill('SIGKILL');
            this.log.appendLine(`[${job.kind}] worker ${child.pid} killed: it did not stop within ${CANCEL_GRACE_MS} ms`);
          }
        }, CANCEL_GRACE_MS);
        child.once('exit', () => clearTimeout(kill));
        this.log.appendLine(`[${job.kind}] cancelled after ${Date.now() - started} ms: worker ${child.pid} asked to stop`);
        done(() => reject(new CancelledJob()));
      });
      child.stdout?.on('data', (b: Buffer) => this.log.append(b.toString()));
      child.stderr?.on('data', (b: Buffer) => this.log.append(b.toString()));
      child.on('message', (m: WorkerMessage) => {
        if (m.type === 'status') {
          this.log.appendLine(`[${job.kind}] ${m.message}`);
          onStatus?.(m.message);
        } else if (m.type === 'result') {
          this.log.appendLine(`[${job.kind}] done in ${Date.now() - started} ms`);
          done(() => resolve(m.result as T));
        } else {
          this.log.appendLine(`[${job.kind}] error: ${m.message}`);
          done(() => reject(new JobError(m.message, m.file, m.line, m.column)));
        }
      });
      child.on('error', (err) => done(() => reject(new JobError(`cannot start the model worker: ${err.message}`))));
      child.on('exit', (code, signal) => done(() => reject(new JobError(`the model worker stopped (${signal ?? `exit code ${code}`}) before it answered`))));
      child.send(job);
    });
  }

  /** `run` under a cancellable progress notification titled `title`; `cancel` also stops it (e.g. a newer job supersedes it). */
  withProgress<T extends JobResult>(title: string, job: Job, cancel?: vscode.CancellationToken): Promise<T> {
    return Promise.resolve(
      vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title, cancellable: true }, async (progress, token) => {
        const either = new vscode.CancellationTokenSource();
        const subs = [token, cancel].map((t) => t?.onCancellationRequested(() => either.cancel()));
        try {
          return await this.run<T>(job, either.token, (message) => progress.report({ message }));
        } finally {
          subs.forEach((s) => s?.dispose());
          either.dispose();
        }
      }),
    );
  }
}
