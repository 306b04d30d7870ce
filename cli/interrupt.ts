/**
 * Ctrl-C for long commands: the first SIGINT aborts the signal handed to `work`; the engine stops at its next
 * check (between ORT runs, or between modules) and rejects with CancelledError; no half-written file is left.
 */
export async function interruptible<T>(work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const onSigint = () => controller.abort();
  process.once('SIGINT', onSigint);
  try {
    return await work(controller.signal);
  } finally {
    process.off('SIGINT', onSigint);
  }
}
