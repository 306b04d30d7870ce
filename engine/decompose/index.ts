/**
 * Built-in decompositions, so any ONNX model gets a catalog without Python:
 * - `neuron`: each MLP hidden unit is one rank-one component of the up-projection (its input weights)
 *   and one of the down-projection (its output weights); exact, no residual.
 * - `svd`: each matrix's top-k singular triplets, the remainder kept as the residual: the full one-sided
 *   Jacobi SVD without a rank, a randomized truncated SVD (`truncatedSvd`, products by onnxruntime) with one.
 */
import { modelSha256 } from '../identity';
import * as path from 'node:path';
import { ScalpelError } from '../errors';
import { CancelledError, Progress } from '../evaluate';
import { LanguageModel } from '../lm';
import { readFloatTensor } from '../onnx/model';
import { ModuleWeight, moduleGlob, moduleWeights, unsupportedWeights } from '../onnx/modules';
import { componentKey } from '../catalog/key';
import { readNorms, writeNorms } from '../catalog/read';
import { ModuleTensors } from '../catalog/write';
import { CATALOG_FORMAT, Catalog, CatalogModule, ComponentInfo } from '../catalog/types';
import { RuntimeOptions, runtimeOf } from '../runtime';
import { GemmSessions } from './products';
import { svd, truncatedSvd } from './svd';

export type DecomposeMethod = 'neuron' | 'svd';

export interface DecomposeOptions extends RuntimeOptions {
  method: DecomposeMethod;
  /** fnmatch patterns over module paths; default: the MLP matrices (`*mlp*`, `*ffn*`, `*feed_forward*`). */
  modules?: string[];
  /** svd: singular triplets kept per matrix (default: all, min(d_in, d_out)). */
  rank?: number;
  /** Checked between modules (each module's factorisation runs to its end): the call rejects with CancelledError. */
  signal?: AbortSignal;
  onProgress?: (p: Progress & { module: string }) => void;
}

export interface Decomposition {
  catalog: Catalog;
  tensors: ModuleTensors[];
}

const MLP_PATTERNS = ['*mlp*', '*ffn*', '*feed_forward*'];

export async function decompose(lm: LanguageModel, opts: DecomposeOptions): Promise<Decomposition> {
  const patterns = (opts.modules?.length ? opts.modules : MLP_PATTERNS).map(moduleGlob);
  const targets = moduleWeights(lm.onnx).filter((w) => patterns.some((p) => p.test(w.module)));
  if (!targets.length) {
    const unsupported = unsupportedWeights(lm.onnx);
    const reason = unsupported.find((u) => u.module && patterns.some((p) => p.test(u.module!)));
    if (reason) throw new ScalpelError(reason.reason, lm.file);
    const unnamed = unsupported.filter((u) => !u.module).map((u) => `; ${u.reason}`).join('');
    throw new ScalpelError(`no weight matrix matches ${(opts.modules ?? MLP_PATTERNS).join(', ')} (modules: ${moduleWeights(lm.onnx).map((w) => w.module).join(', ') || 'none'})${unnamed}`, lm.file);
  }
  if (opts.rank !== undefined && (!Number.isInteger(opts.rank) || opts.rank <= 0)) throw new ScalpelError(`rank must be a positive whole number, not ${opts.rank}`);
  const modules: CatalogModule[] = [];
  const tensors: ModuleTensors[] = [];
  const gemm = opts.method === 'svd' && opts.rank !== undefined ? await GemmSessions.create(runtimeOf(opts)) : undefined;
  try {
    for (const [i, w] of targets.entries()) {
      // A turn of the event loop between modules, so that an abort (Ctrl-C, a cancel message) is seen.
      await new Promise((resolve) => setImmediate(resolve));
      if (opts.signal?.aborted) throw new CancelledError();
      opts.onProgress?.({ done: i, total: targets.length, module: w.module });
      const weight = inOut(w, readFloatTensor(lm.onnx, w.initializer));
      const t = opts.method === 'neuron' ? neuronFactors(w, weight) : await svdFactors(w, weight, opts.rank, gemm);
      const components = t.U ? t.U.length / w.dOut : t.V!.length / w.dIn;
      modules.push({ path: w.module, initializer: w.initializer, layout: w.layout, dIn: w.dIn, dOut: w.dOut, components, hasResidual: Boolean(t.residual), ...(t.V && t.U ? {} : { identity: t.V ? 'U' : 'V' }) });
      tensors.push(t);
    }
  } finally {
    await gemm?.release();
  }
  const components: ComponentInfo[] = [];
  modules.forEach((m, mi) => {
    const f = { V: tensors[mi].V, U: tensors[mi].U, module: m };
    const reads = readNorms(f);
    const writes = writeNorms(f);
    for (let c = 0; c < m.components; c++) {
      components.push({ key: componentKey(m.path, c), module: m.path, index: c, norm: round(reads[c] * writes[c]) });
    }
  });
  const catalog: Catalog = {
    format: CATALOG_FORMAT,
    model: { file: path.basename(lm.file), sha256: modelSha256(lm.file) },
    method: { name: opts.method, params: { modules: opts.modules ?? MLP_PATTERNS, ...(opts.method === 'svd' ? { rank: opts.rank ?? 'full', solver: opts.rank === undefined ? 'jacobi' : 'randomized' } : {}) }, provenance: 'scalpel decompose (engine/decompose)' },
    tensors: 'components.safetensors',
    modules,
    components,
    created: new Date().toISOString(),
  };
  return { catalog, tensors };
}

/** The weight as (dIn, dOut), row-major, whatever the initializer's layout. */
export function inOut(w: ModuleWeight, data: Float32Array): Float32Array {
  if (w.layout === 'in_out') return data;
  const out = new Float32Array(data.length);
  for (let o = 0; o < w.dOut; o++) for (let i = 0; i < w.dIn; i++) out[i * w.dOut + o] = data[o * w.dIn + i];
  return out;
}

/**
 * Up-projections (d_out > d_in: the hidden units are outputs) get V = W (dIn, dOut), U = I;
 * down-projections (d_in > d_out) get V = I, U = W. Either way V @ U = W exactly. The identity is
 * implicit (`CatalogModule.identity`): only W is stored.
 */
function neuronFactors(w: ModuleWeight, weight: Float32Array): ModuleTensors {
  if (w.dIn === w.dOut) throw new ScalpelError(`${w.module} is square (${w.dIn}×${w.dOut}): the neuron basis needs an MLP up- or down-projection; choose modules with --modules`);
  return w.dOut > w.dIn ? { module: w.module, V: weight } : { module: w.module, U: weight };
}

/** Top `rank` triplets: V[:, k] = u_k √σ_k, U[k] = √σ_k v_k; the rest of W as the torch-layout residual. */
async function svdFactors(w: ModuleWeight, weight: Float32Array, rank?: number, gemm?: GemmSessions): Promise<ModuleTensors> {
  const { dIn, dOut } = w;
  const d = rank !== undefined && gemm ? await truncatedSvd(weight, dIn, dOut, rank, gemm.of(weight, dIn, dOut)) : svd(weight, dIn, dOut);
  const k = Math.min(rank ?? d.k, d.k);
  const V = new Float32Array(dIn * k);
  const U = new Float32Array(k * dOut);
  for (let c = 0; c < k; c++) {
    const r = Math.sqrt(d.s[c]);
    for (let i = 0; i < dIn; i++) V[i * k + c] = d.u[c][i] * r;
    for (let j = 0; j < dOut; j++) U[c * dOut + j] = d.v[c][j] * r;
  }
  // The residual is taken against the float32 factors actually stored, so V@U + residual is W to rounding.
  const approx = gemm ? await gemm.of(V, dIn, k).times(Float64Array.from(U), dOut) : product(V, U, dIn, k, dOut);
  const residual = new Float32Array(dOut * dIn);
  for (let i = 0; i < dIn; i++) for (let j = 0; j < dOut; j++) residual[j * dIn + i] = weight[i * dOut + j] - approx[i * dOut + j];
  return { module: w.module, V, U, residual };
}

/** V (dIn, k) · U (k, dOut) in float64. */
function product(V: Float32Array, U: Float32Array, dIn: number, k: number, dOut: number): Float64Array {
  const out = new Float64Array(dIn * dOut);
  for (let i = 0; i < dIn; i++) {
    for (let c = 0; c < k; c++) {
      const v = V[i * k + c];
      for (let j = 0; j < dOut; j++) out[i * dOut + j] += v * U[c * dOut + j];
    }
  }
  return out;
}

function round(x: number): number {
  return Number(x.toPrecision(6));
}
