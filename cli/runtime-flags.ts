/**
 * The flags that choose where models run (`--ep`, `--device-id`, `--threads`), shared by every
 * command that runs a model, and their translation into the engine's RuntimeOptions.
 */
import { RuntimeOptions, checkDeviceId, parseExecutionProviders } from '../engine/runtime';
import { positiveInt } from './commands/eval';
import { ScalpelError } from '../engine/errors';

export const runtimeFlags = {
  ep: { type: 'string' },
  'device-id': { type: 'string' },
  threads: { type: 'string' },
} as const;

export const runtimeUsage = `  --ep LIST            execution providers in order: cpu (default), cuda, tensorrt, webgpu;
                       a list such as cuda,cpu falls back (with a warning) when the first cannot start
  --device-id N        the GPU for cuda and tensorrt (default 0)
  --threads N          onnxruntime intra-op threads`;

export function runtimeFromFlags(values: { ep?: string; 'device-id'?: string; threads?: string }): RuntimeOptions {
  const executionProviders = values.ep === undefined ? undefined : parseExecutionProviders(values.ep);
  let deviceId: number | undefined;
  if (values['device-id'] !== undefined) {
    deviceId = Number(values['device-id']);
    if (!/^\d+$/.test(values['device-id'])) throw new ScalpelError(`--device-id takes a whole number from 0, not "${values['device-id']}"`);
    checkDeviceId(executionProviders ?? ['cpu'], deviceId);
  }
  return {
    executionProviders,
    deviceId,
    threads: positiveInt(values.threads, '--threads'),
    onFallback: (message) => process.stderr.write(`scalpel: warning: ${message}\n`),
  };
}
