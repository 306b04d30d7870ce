/**
 * Reading a catalog's metadata (catalog.json) without touching its tensors: the language server
 * answers completion and hover for 40,000 components from this alone. Tensors are read per module,
 * by byte offset, through `openCatalogTensors`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ScalpelError } from '../errors';
import { SafetensorsFile } from '../safetensors';
import * as S from '../schema';
import { readCatalogJson } from './stream';
import { CATALOG_FORMAT, Catalog, CatalogModule } from './types';

/** `location` is a catalog folder or its catalog.json. */
export function readCatalogMetadata(location: string): Catalog & { dir: string } {
  const file = location.endsWith('.json') ? location : path.join(location, 'catalog.json');
  const json = readCatalogJson(file, file, MAX_CATALOG_COMPONENTS) as Catalog;
  if (json?.format !== CATALOG_FORMAT) {
    throw new ScalpelError(`not a Scalpel catalog (format is ${JSON.stringify(json?.format)}, expected "${CATALOG_FORMAT}")`, file);
  }
  if (!Array.isArray(json.modules) || !Array.isArray(json.components)) {
    throw new ScalpelError('catalog has no "modules" or "components" list', file);
  }
  const problem = CATALOG_SCHEMA(json, '') ?? crossCheck(json);
  if (problem) throw new ScalpelError(`bad catalog: ${problem}`, file);
  return { ...json, dir: path.dirname(path.resolve(file)) };
}

/** Bounds that keep every index the readers build (dense ordinals, per-module tensors) allocatable. */
export const MAX_CATALOG_COMPONENTS = 1 << 22;
const MAX_DIM = 1 << 20;

const label = S.object({ text: S.string }, { source: S.string, confidence: S.number });
const tokenLogit = S.object({ token: S.string, logit: S.number });

/** What readers of catalog.json rely on (types.ts describes each field); fields beyond these are kept unread. */
const CATALOG_SCHEMA = S.object({
  modules: S.array(S.object(
    { path: S.string, initializer: S.string, layout: S.oneOf('in_out', 'out_in'), dIn: S.integer(1, MAX_DIM), dOut: S.integer(1, MAX_DIM), components: S.integer(0, MAX_CATALOG_COMPONENTS) },
    { hasResidual: S.boolean, sourceIndices: S.array(S.integer(0, Number.MAX_SAFE_INTEGER)), identity: S.oneOf('V', 'U') },
  )),
  components: S.array(S.object({ key: S.string, module: S.string, index: S.integer(0, MAX_CATALOG_COMPONENTS) }, {
    label, autoLabel: label, stats: S.record(S.object({ meanAbs: S.number, firingRate: S.number })), selectivity: S.record(S.number),
    contexts: S.array(S.object({ tag: S.string, text: S.string, activation: S.number })), promotes: S.array(tokenLogit), suppresses: S.array(tokenLogit),
    promotesVia: S.string, norm: S.number,
  }), MAX_CATALOG_COMPONENTS),
}, {
  model: S.object({}, { file: S.string, sha256: S.string }),
  method: S.object({}, { name: S.string }),
  tensors: S.string,
  datasets: S.array(S.object({ name: S.string }, { source: S.string, sha256: S.string, tokens: S.number, tag: S.string, split: S.string })),
  firingThreshold: S.number,
  statsMeasure: S.oneOf('activation', 'ci'),
  created: S.string,
});

/** What the schema cannot say: unique module paths, a bounded total, and components that name a module slot. */
function crossCheck(c: Catalog): string | undefined {
  const modules = new Map<string, CatalogModule>();
  let total = 0;
  for (const [i, m] of c.modules.entries()) {
    if (modules.has(m.path)) return `modules[${i}].path "${m.path}" is listed twice`;
    modules.set(m.path, m);
    if (m.sourceIndices && m.sourceIndices.length !== m.components) return `modules[${i}].sourceIndices has ${m.sourceIndices.length} entries for ${m.components} components`;
    const unit = m.identity === 'U' ? m.dOut : m.identity === 'V' ? m.dIn : m.components;
    if (unit !== m.components) return `modules[${i}] has an identity ${m.identity} of ${unit} units but ${m.components} components`;
    total += m.components;
  }
  if (total > MAX_CATALOG_COMPONENTS) return `the modules have ${total} components in all (at most ${MAX_CATALOG_COMPONENTS})`;
  for (const [i, x] of c.components.entries()) {
    const m = modules.get(x.module);
    if (!m) return `components[${i}].module "${x.module}" is not in "modules"`;
    if (x.index >= m.components) return `components[${i}].index ${x.index} is past the ${m.components} components of ${m.path}`;
    if (x.key !== `${x.module}:${x.index}`) return `components[${i}].key must be "${x.module}:${x.index}", not ${JSON.stringify(x.key)}`;
  }
  return undefined;
}

/**
 * One module's factors: torch-layout W ≈ (V @ U).T (+ residual). Row-major Float32Arrays; the factor the
 * catalog marks as the identity (`module.identity`, the neuron basis) is absent: read it through
 * `readVector`, `writeVector` and `readActivations`, which know both forms.
 */
export interface ModuleFactors {
  module: CatalogModule;
  /** (dIn, C); absent where V is the identity. */
  V?: Float32Array;
  /** (C, dOut); absent where U is the identity. */
  U?: Float32Array;
  /** (dOut, dIn), when the catalog keeps one. */
  residual?: Float32Array;
}

/** V[:, c], component c's read vector (dIn). */
export function readVector(f: ModuleFactors, c: number): Float32Array {
  const { dIn, components: C } = f.module;
  const v = new Float32Array(dIn);
  if (!f.V) v[c] = 1;
  else for (let i = 0; i < dIn; i++) v[i] = f.V[i * C + c];
  return v;
}

/** U[c, :], component c's write vector (dOut), a view where U is stored. */
export function writeVector(f: ModuleFactors, c: number): Float32Array {
  const { dOut } = f.module;
  if (f.U) return f.U.subarray(c * dOut, (c + 1) * dOut);
  const u = new Float32Array(dOut);
  u[c] = 1;
  return u;
}

/** x · V for one input row x (dIn) into `out` (C). */
export function readActivations(f: ModuleFactors, x: ArrayLike<number>, out: Float32Array | Float64Array): void {
  const { dIn, components: C } = f.module;
  out.fill(0);
  if (!f.V) {
    for (let c = 0; c < C; c++) out[c] = x[c];
    return;
  }
  for (let i = 0; i < dIn; i++) {
    const xi = x[i];
    if (xi === 0) continue;
    const row = i * C;
    for (let c = 0; c < C; c++) out[c] += xi * f.V[row + c];
  }
}

/** U · r: each write vector's dot product with r (dOut), into a new array (C). */
export function writeDots(f: ModuleFactors, r: ArrayLike<number>): Float32Array {
  const { dOut, components: C } = f.module;
  const out = new Float32Array(C);
  for (let c = 0; c < C; c++) {
    if (!f.U) {
      out[c] = r[c];
      continue;
    }
    let dot = 0;
    const row = c * dOut;
    for (let j = 0; j < dOut; j++) dot += f.U[row + j] * r[j];
    out[c] = dot;
  }
  return out;
}

/** ‖V[:, c]‖ for every c. */
export function readNorms(f: ModuleFactors): Float64Array {
  const { dIn, components: C } = f.module;
  const n = new Float64Array(C);
  if (!f.V) return n.fill(1);
  for (let i = 0; i < dIn; i++) for (let c = 0; c < C; c++) n[c] += f.V[i * C + c] ** 2;
  return n.map(Math.sqrt);
}

/** ‖U[c, :]‖ for every c. */
export function writeNorms(f: ModuleFactors): Float64Array {
  const { dOut, components: C } = f.module;
  const n = new Float64Array(C);
  if (!f.U) return n.fill(1);
  for (let c = 0; c < C; c++) {
    let s = 0;
    for (let j = 0; j < dOut; j++) s += f.U[c * dOut + j] ** 2;
    n[c] = Math.sqrt(s);
  }
  return n;
}

/** Lazy access to a catalog's tensors: the header on open, each module's bytes when asked for. */
export class CatalogTensors {
  private constructor(readonly catalog: Catalog & { dir: string }, readonly file: SafetensorsFile) {}

  static open(catalog: Catalog & { dir: string }): CatalogTensors {
    const rel = catalog.tensors ?? 'components.safetensors';
    if (path.isAbsolute(rel) || rel.split(/[\\/]/).includes('..')) {
      throw new ScalpelError(`"tensors" must name a file inside the catalog folder, not ${JSON.stringify(rel)}`, path.join(catalog.dir, 'catalog.json'));
    }
    return new CatalogTensors(catalog, SafetensorsFile.open(path.join(catalog.dir, rel)));
  }

  module(pathName: string): CatalogModule {
    const m = this.catalog.modules.find((x) => x.path === pathName);
    if (!m) throw new ScalpelError(`the catalog has no module "${pathName}"`, path.join(this.catalog.dir, 'catalog.json'));
    return m;
  }

  factors(pathName: string): ModuleFactors {
    const m = this.module(pathName);
    const V = m.identity === 'V' ? undefined : this.file.readFloat32(`${m.path}.V`, [m.dIn, m.components]);
    const U = m.identity === 'U' ? undefined : this.file.readFloat32(`${m.path}.U`, [m.components, m.dOut]);
    const residual = m.hasResidual ? this.file.readFloat32(`${m.path}.residual`, [m.dOut, m.dIn]) : undefined;
    if (V) this.finite(`${m.path}.V`, V);
    if (U) this.finite(`${m.path}.U`, U);
    if (residual) this.finite(`${m.path}.residual`, residual);
    return { module: m, V, U, residual };
  }

  /** NaN or ±Infinity in a factor would silently poison every edited weight: refused with its place. */
  private finite(name: string, values: Float32Array): void {
    for (let i = 0; i < values.length; i++) {
      if (!Number.isFinite(values[i])) throw new ScalpelError(`tensor "${name}" holds ${values[i]} at element ${i}: factors must be finite`, this.file.file);
    }
  }

  /**
   * The module's causal-importance functions, where an SPD writer stored them (docs/components.md,
   * "SPD fields"): CI_c(x) = clamp(b_out[c] + Σ_h w_out[c,h]·gelu_tanh(a·w_in[c,h] + b_in[c,h]), 0, 1), a = x·V[:, c].
   */
  ciFunction(pathName: string): CiFunction | undefined {
    const m = this.module(pathName);
    if (!this.file.has(`${m.path}.ci.w_in`)) return undefined;
    const hidden = this.file.entries.get(`${m.path}.ci.w_in`)!.shape[1];
    const shape = [m.components, hidden];
    return {
      hidden,
      wIn: this.file.readFloat32(`${m.path}.ci.w_in`, shape),
      bIn: this.file.readFloat32(`${m.path}.ci.b_in`, shape),
      wOut: this.file.readFloat32(`${m.path}.ci.w_out`, shape),
      bOut: this.file.readFloat32(`${m.path}.ci.b_out`, [m.components]),
    };
  }

  close(): void {
    this.file.close();
  }
}

/** Per-component CI MLPs with one hidden layer: (C, hidden) weights and biases, (C) output bias. */
export interface CiFunction {
  hidden: number;
  wIn: Float32Array;
  bIn: Float32Array;
  wOut: Float32Array;
  bOut: Float32Array;
}

export function openCatalogTensors(location: string): CatalogTensors {
  return CatalogTensors.open(readCatalogMetadata(location));
}

/**
 * The module's weight rebuilt from its factors, in the initializer's own layout:
 * `in_out` → (dIn, dOut) = V @ U (+ residualᵀ); `out_in` → (dOut, dIn) = (V @ U)ᵀ (+ residual).
 */
export function reconstructWeight(f: ModuleFactors, withResidual = true): Float32Array {
  const { dIn, dOut, components: C, layout } = f.module;
  const acc = new Float64Array(dIn * dOut); // (dIn, dOut)
  if (!f.V) acc.set(f.U!); // I @ U
  else if (!f.U) acc.set(f.V); // V @ I
  else {
    for (let i = 0; i < dIn; i++) {
      const row = i * dOut;
      for (let c = 0; c < C; c++) {
        const v = f.V[i * C + c];
        if (v === 0) continue;
        const u = c * dOut;
        for (let j = 0; j < dOut; j++) acc[row + j] += v * f.U[u + j];
      }
    }
  }
  const out = new Float32Array(dIn * dOut);
  const r = withResidual ? f.residual : undefined;
  for (let i = 0; i < dIn; i++) {
    for (let j = 0; j < dOut; j++) {
      const w = acc[i * dOut + j] + (r ? r[j * dIn + i] : 0);
      if (layout === 'in_out') out[i * dOut + j] = w;
      else out[j * dIn + i] = w;
    }
  }
  return out;
}

/** Where a model's catalog lives unless told otherwise: `components/` beside model.onnx. */
export function defaultCatalogDir(model: string): string {
  const isDir = fs.existsSync(model) && fs.statSync(model).isDirectory();
  return path.join(isDir ? model : path.dirname(model), 'components');
}
