/**
 * Edit semantics on real weights. Scaling component c of module m by s:
 *
 *     W' = W + (s − 1) · V[:, c] ⊗ U[c, :]      (in `in_out` layout; transposed for `out_in`)
 *
 * W is the checkpoint's own initializer, not the decomposition's reconstruction: whatever the
 * components do not explain (SPD's residual) stays exactly as it was, and s = 1 is the identity.
 */
import { ScalpelError } from '../errors';
import { CatalogTensors, CiFunction, readVector, writeVector } from '../catalog/read';
import { componentKey, componentsByKey, neuronKey, requireComponentKey, requireNeuronKey } from '../catalog/key';
import type { ComponentInfo } from '../catalog/types';
import { sliceCi } from '../catalog/ci';
import { OnnxModel, readFloatTensor } from '../onnx/model';
import { ModuleWeight, missingModule, moduleWeights } from '../onnx/modules';
import type { Gate, GatedPaths } from './gate';

/** One rank-one component: read vector v (d_in) and write vector u (d_out). */
export interface Component {
  /** `<module>:<index>`. */
  key: string;
  module: string;
  index: number;
  v: Float32Array;
  u: Float32Array;
  label?: string;
  /** Its causal-importance function (k = 1), where the catalog has one: what a gated edit needs. */
  ci?: CiFunction;
}

/** Where in a spec a scale was written, for error messages. */
export interface Origin {
  file?: string;
  line?: number;
  column?: number;
}

export interface ScaleTerm {
  component: Component;
  scale: number;
  origin?: Origin;
  /** Gated edits scale the component only where it is causally important (gate.ts); ungated ones change W. */
  gate?: Gate;
}

/** Where components come from, by key. */
export interface ComponentSource {
  get(key: string, origin?: Origin): Component;
}

/** Components read from a catalog's tensors, one module's factors at a time (cached). */
export class CatalogComponents implements ComponentSource {
  private readonly factors = new Map<string, ReturnType<CatalogTensors['factors']>>();
  private readonly info: Map<string, ComponentInfo>;
  private readonly ci = new Map<string, CiFunction | undefined>();

  constructor(readonly tensors: CatalogTensors) {
    this.info = componentsByKey(tensors.catalog);
  }

  get(key: string, origin?: Origin): Component {
    const { module, index } = requireComponentKey(key, origin, this.tensors.catalog.modules);
    if (!this.tensors.catalog.modules.some((m) => m.path === module)) {
      throw new ScalpelError(`the catalog has no module "${module}" (component ${key})`, origin?.file, origin);
    }
    let f = this.factors.get(module);
    if (!f) this.factors.set(module, (f = this.tensors.factors(module)));
    const C = f.module.components;
    if (index >= C) throw new ScalpelError(`component ${key} does not exist: module ${module} has ${C} components`, origin?.file, origin);
    const v = readVector(f, index);
    const u = writeVector(f, index).slice();
    const canonical = componentKey(module, index);
    if (!this.ci.has(module)) this.ci.set(module, this.tensors.ciFunction(module));
    const ci = this.ci.get(module);
    return { key: canonical, module, index, v, u, label: this.info.get(canonical)?.label?.text, ...(ci ? { ci: sliceCi(ci, [index]) } : {}) };
  }
}

/**
 * The neuron basis of a module as components: `out` splits W by output unit j (v = W[:, j], u = e_j),
 * `in` by input unit i (v = e_i, u = W[i, :]). The pieces sum to W exactly; a baseline for SPD.
 */
export function neuronComponent(model: OnnxModel, mw: ModuleWeight, side: 'in' | 'out', index: number): Component {
  const w = readFloatTensor(model, mw.initializer);
  const at = (i: number, j: number) => (mw.layout === 'in_out' ? w[i * mw.dOut + j] : w[j * mw.dIn + i]);
  const n = side === 'out' ? mw.dOut : mw.dIn;
  if (!Number.isInteger(index) || index < 0 || index >= n) throw new ScalpelError(`neuron ${index} does not exist: ${mw.module} has ${n} ${side}put units`);
  const v = new Float32Array(mw.dIn);
  const u = new Float32Array(mw.dOut);
  if (side === 'out') {
    for (let i = 0; i < mw.dIn; i++) v[i] = at(i, index);
    u[index] = 1;
  } else {
    v[index] = 1;
    for (let j = 0; j < mw.dOut; j++) u[j] = at(index, j);
  }
  return { key: neuronKey(mw.module, side, index), module: mw.module, index, v, u };
}

/** The neuron basis as a component source: keys `MODULE:nJ` (output unit J) and `MODULE:iJ` (input unit J). */
export class NeuronComponents implements ComponentSource {
  constructor(private readonly editor: WeightEditor) {}

  get(key: string, origin?: Origin): Component {
    const k = requireNeuronKey(key, origin);
    return neuronComponent(this.editor.model, this.editor.module(k.module, origin), k.side, k.index);
  }
}

/** Adds alpha · v ⊗ u to `w` (in place) in the initializer's layout. */
export function addRankOne(w: Float32Array, mw: ModuleWeight, v: Float32Array, u: Float32Array, alpha: number): void {
  if (v.length !== mw.dIn || u.length !== mw.dOut) {
    throw new ScalpelError(`component vectors (${v.length}, ${u.length}) do not fit ${mw.module}, which is (${mw.dIn}, ${mw.dOut})`);
  }
  if (alpha === 0) return;
  if (mw.layout === 'in_out') {
    for (let i = 0; i < mw.dIn; i++) {
      const a = alpha * v[i];
      if (a === 0) continue;
      const row = i * mw.dOut;
      for (let j = 0; j < mw.dOut; j++) w[row + j] += a * u[j];
    }
  } else {
    for (let j = 0; j < mw.dOut; j++) {
      const a = alpha * u[j];
      if (a === 0) continue;
      const row = j * mw.dIn;
      for (let i = 0; i < mw.dIn; i++) w[row + i] += a * v[i];
    }
  }
}

/** Throws when one component is scaled twice: two edits of one component do not compose. */
export function checkDistinct(terms: ScaleTerm[]): void {
  const first = new Map<string, ScaleTerm>();
  for (const t of terms) {
    const prev = first.get(t.component.key);
    if (prev) {
      const where = prev.origin?.line !== undefined ? ` (first scaled at line ${prev.origin.line})` : '';
      throw new ScalpelError(`component ${t.component.key} is scaled twice${where}; scale it once`, t.origin?.file, t.origin);
    }
    first.set(t.component.key, t);
  }
}

/**
 * Computes edited initializers for sets of scale terms, keeping each touched base weight in
 * memory once (sweeps and tuning call `weights` hundreds of times). With gated paths, `model` is
 * the graph that has them (`withGatedPaths`), and a gated term sets its slot of the path's scale
 * vector instead of changing W.
 */
export class WeightEditor {
  readonly modules: Map<string, ModuleWeight>;
  private readonly base = new Map<string, Float32Array>();

  constructor(
    readonly model: OnnxModel,
    readonly gates?: GatedPaths,
  ) {
    this.modules = new Map(moduleWeights(model).map((m) => [m.module, m]));
  }

  module(name: string, origin?: Origin): ModuleWeight {
    const mw = this.modules.get(name);
    if (!mw) throw new ScalpelError(missingModule(this.model, name), origin?.file, origin);
    return mw;
  }

  baseWeight(initializer: string): Float32Array {
    let w = this.base.get(initializer);
    if (!w) this.base.set(initializer, (w = readFloatTensor(this.model, initializer)));
    return w;
  }

  /** Initializers touched by these components. */
  initializers(components: Component[]): string[] {
    return [...new Set(components.map((c) => this.module(c.module).initializer))];
  }

  /**
   * The edited initializers (only those the terms touch): every ungated term's s − 1 is added to a
   * copy of W; a gated term's s goes into its gated path's scale vector (ones elsewhere).
   */
  weights(terms: ScaleTerm[]): Map<string, Float32Array> {
    checkDistinct(terms);
    const out = new Map<string, Float32Array>();
    for (const t of terms) {
      if (t.gate) {
        const slot = this.gates?.slot(t.component.key, t.gate);
        if (!slot) throw new ScalpelError(`component ${t.component.key} is gated, but this model was opened without its gated path`, t.origin?.file, t.origin);
        let s = out.get(slot.tensor);
        if (!s) out.set(slot.tensor, (s = new Float32Array(slot.size).fill(1)));
        s[slot.index] = t.scale;
        continue;
      }
      const mw = this.module(t.component.module, t.origin);
      let w = out.get(mw.initializer);
      if (!w) out.set(mw.initializer, (w = this.baseWeight(mw.initializer).slice()));
      addRankOne(w, mw, t.component.v, t.component.u, t.scale - 1);
    }
    return out;
  }
}
