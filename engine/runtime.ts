/**
 * Where models run: the one factory for every onnxruntime session the engine makes (evaluation,
 * preview, tuning, labelling, tracing), with the execution providers, device and threads chosen
 * by the user. An execution provider that cannot start is one clear error naming what is missing;
 * the next provider in the list is tried only when the user listed one (`cuda,cpu`).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { ScalpelError } from './errors';

export interface RuntimeOptions {
  /** Execution providers in order of preference (default: cpu); later ones are fallbacks the user asked for. */
  executionProviders?: string[];
  /** The accelerator to use, for providers that take one (CUDA, TensorRT). */
  deviceId?: number;
  /** ORT intra-op threads (default: ORT's choice). */
  threads?: number;
  /** Told, once per provider and process, when a provider cannot start and a listed fallback is used. */
  onFallback?: (message: string) => void;
}

interface ProviderInfo {
  label: string;
  /** Libraries that onnxruntime-node's postinstall downloads beside its binding (not in the npm package). */
  libraries?: string[];
  /** What the host needs besides the libraries. */
  needs?: string;
  takesDeviceId?: boolean;
}

/** The providers Scalpel knows how to explain; anything else onnxruntime-node offers is passed through as named. */
const PROVIDERS: Record<string, ProviderInfo> = {
  cpu: { label: 'CPU' },
  cuda: {
    label: 'CUDA',
    libraries: ['libonnxruntime_providers_shared.so', 'libonnxruntime_providers_cuda.so'],
    needs: 'an NVIDIA GPU, its driver, and the CUDA 12 runtime, cuBLAS and cuDNN 9 libraries on the library path',
    takesDeviceId: true,
  },
  tensorrt: {
    label: 'TensorRT',
    libraries: ['libonnxruntime_providers_shared.so', 'libonnxruntime_providers_cuda.so', 'libonnxruntime_providers_tensorrt.so'],
    needs: 'an NVIDIA GPU with CUDA 12 and TensorRT 10 libraries on the library path',
    takesDeviceId: true,
  },
  webgpu: { label: 'WebGPU', needs: 'a GPU adapter through Vulkan (libvulkan.so.1 and a driver)' },
};

/** How onnxruntime-node installs its CUDA libraries, which this repository's .npmrc skips. */
export const CUDA_INSTALL_HINT =
  'onnxruntime-node downloads them in its postinstall, which this repository skips (.npmrc: onnxruntime-node-install=skip); ' +
  'install them with `ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install.js`';

/** `cpu`, `cuda`, `cuda,cpu`: names checked against what this onnxruntime-node build offers. */
export function parseExecutionProviders(text: string): string[] {
  const names = text.split(',').map((s) => s.trim().toLowerCase()).filter(Boolean);
  if (!names.length) throw new ScalpelError('no execution provider given (cpu, cuda, tensorrt, webgpu; a list such as cuda,cpu falls back in order)');
  const offered = ort.listSupportedBackends().map((b) => b.name);
  for (const n of names) {
    if (!offered.includes(n)) {
      throw new ScalpelError(`unknown execution provider "${n}": onnxruntime-node on ${process.platform}/${process.arch} offers ${offered.join(', ')}`);
    }
  }
  if (new Set(names).size !== names.length) throw new ScalpelError(`execution provider listed twice in "${text}"`);
  return names;
}

/** Checks that a device id goes with a provider that takes one (sessions ignore it for providers that take none). */
export function checkDeviceId(providers: string[], deviceId: number | undefined): void {
  if (deviceId === undefined) return;
  if (!Number.isInteger(deviceId) || deviceId < 0) throw new ScalpelError(`a device id is a whole number from 0, not ${deviceId}`);
  if (!providers.some((p) => PROVIDERS[p]?.takesDeviceId)) {
    throw new ScalpelError(`a device id applies to cuda or tensorrt, not to ${providers.join(', ')}`);
  }
}

/** Whether a provider needs an accelerator (and so, e.g., a GPU in a job's resource requests). */
export function usesAccelerator(providers: string[] | undefined): boolean {
  return !!providers?.some((p) => p !== 'cpu');
}

function bindingFolder(): string {
  return path.join(path.dirname(require.resolve('onnxruntime-node')), '..', 'bin', 'napi-v6', process.platform, process.arch);
}

/** Why a provider cannot start here, before asking onnxruntime (whose own failure message names no file). */
function missingLibraries(name: string): string | undefined {
  const info = PROVIDERS[name];
  if (!info?.libraries || process.platform !== 'linux') return undefined;
  const folder = bindingFolder();
  const missing = info.libraries.filter((l) => !fs.existsSync(path.join(folder, l)));
  if (!missing.length) return undefined;
  return `the ${info.label} execution provider is not installed: ${missing.join(', ')} missing from ${folder}; ${CUDA_INSTALL_HINT} (it also needs ${info.needs})`;
}

function providerOption(name: string, deviceId: number | undefined): ort.InferenceSession.ExecutionProviderConfig {
  return deviceId !== undefined && PROVIDERS[name]?.takesDeviceId ? ({ name, deviceId } as ort.InferenceSession.ExecutionProviderConfig) : name;
}

/** Providers that failed to start in this process, with why; later sessions skip them at once. */
const unavailable = new Map<string, string>();
const announced = new Set<string>();

/**
 * An ORT session over `graph` on the first provider of `rt.executionProviders` that starts, with
 * `options` (e.g. where external data lives) over the runtime's. `what` names the graph in errors
 * ("the model", "the traced model"); `file` locates them.
 */
export async function startSession(graph: Uint8Array, rt: RuntimeOptions, what: string, file?: string, options: ort.InferenceSession.SessionOptions = {}): Promise<ort.InferenceSession> {
  const providers = rt.executionProviders?.length ? rt.executionProviders : ['cpu'];
  const reasons: string[] = [];
  for (const [i, name] of providers.entries()) {
    const key = `${name}:${rt.deviceId ?? 0}`;
    let reason = unavailable.get(key) ?? missingLibraries(name);
    if (!reason) {
      try {
        return await ort.InferenceSession.create(graph, {
          graphOptimizationLevel: 'all',
          // onnxruntime's own warnings reach the terminal unasked otherwise; SCALPEL_DEBUG shows them.
          logSeverityLevel: process.env.SCALPEL_DEBUG ? 2 : 3,
          ...(rt.threads ? { intraOpNumThreads: rt.threads } : {}),
          ...options,
          executionProviders: [providerOption(name, rt.deviceId)],
        });
      } catch (err) {
        const message = firstLine(err);
        // The CPU provider always starts: its failures are the model's.
        if (name === 'cpu') throw new ScalpelError(`onnxruntime cannot load ${what}: ${message}`, file);
        const info = PROVIDERS[name];
        reason = `onnxruntime could not start the ${info?.label ?? name} execution provider${rt.deviceId !== undefined ? ` on device ${rt.deviceId}` : ''}: ${message}${info?.needs ? ` (it needs ${info.needs})` : ''}`;
      }
    }
    unavailable.set(key, reason);
    reasons.push(reason);
    const next = providers[i + 1];
    if (next && !announced.has(key)) {
      announced.add(key);
      rt.onFallback?.(`${reason}; using ${next} as the provider list ${providers.join(',')} allows`);
    }
  }
  throw new ScalpelError(reasons.join('; '), file);
}

function firstLine(err: unknown): string {
  return String((err as Error)?.message ?? err).split('\n')[0];
}

/** The runtime fields of a wider options object, to pass on to sessions made elsewhere. */
export function runtimeOf(opts: RuntimeOptions): RuntimeOptions {
  const { executionProviders, deviceId, threads, onFallback } = opts;
  return { executionProviders, deviceId, threads, onFallback };
}
