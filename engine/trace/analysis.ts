/**
 * What a debugger asks of a recorded forward pass, computed on demand from the recordings and
 * the weights (no model run): component activations, the logit lens, each component's
 * contribution to a target token's logit, per-token losses, and where base and edited diverge.
 */
import { parseComponentKey } from '../catalog/key';
import { CatalogTensors, ModuleFactors, readActivations, writeDots } from '../catalog/read';
import { ComponentInfo } from '../catalog/types';
import { ScalpelError } from '../errors';
import { ModuleWeight } from '../onnx/modules';
import type { GatedPaths } from '../edit/gate';
import { Capture, FinalNorm } from './graph';
import { Side, Trace, Tracer, captured } from './trace';

export interface LensEntry {
  token: number;
  text: string;
  logit: number;
  prob: number;
}

/**
 * How a component's contribution to a logit was computed:
 * `exact`: the module is the unembedding, the logit is linear in its components;
 * `direct`: the module writes the residual stream: its first-order effect along the direct path
 *   (the final norm's gradient at this token, then the unembedding), ignoring later blocks (approximate);
 * `secant`: the module feeds an elementwise nonlinearity then a residual writer (an MLP's first
 *   layer, SwiGLU's gate): the nonlinearity replaced by its secant slope f(h)/h at this token, then as `direct`;
 * `gated`: SwiGLU's up projection, multiplied by the gate: exact given the gate at this token, then as `direct`;
 * `value`: an attention's v projection (or the v third of a fused q|k|v): through v only, weighed per head by
 *   this token's attention to itself (probabilities frozen; effects through q, k and other positions left out),
 *   then through the output projection as `direct`;
 * `none`: no linear path found (queries and keys, modules outside a recognised sublayer).
 */
export type ContributionKind = 'exact' | 'direct' | 'secant' | 'gated' | 'value' | 'none';

export interface Contributions {
  kind: ContributionKind;
  /** Per component, in logit units; undefined when kind is `none`. */
  values: Float32Array | undefined;
}

export interface Divergence {
  capture: Capture;
  /** ‖edited − base‖ / ‖base‖ at the position. */
  relative: number;
  absolute: number;
}

export class TraceAnalysis {
  private readonly factorCache = new Map<string, ModuleFactors>();
  private readonly memo = new Map<string, unknown>();
  readonly modules: Map<string, ModuleWeight>;
  /** Catalog metadata by component key (catalogs hold tens of thousands of components). */
  private readonly infos: Map<string, ComponentInfo>;

  /**
   * `editScales`: the edit's scale factor per component key. On the edited side an edited component's
   * activation includes its factor (W' = W + (s − 1)·v⊗u makes its piece s·v⊗u): ablated reads 0.
   * `gates`: the gated paths traced (their gates recorded); a gated component's factor at a token is
   * 1 + (s − 1)·gate there.
   */
  constructor(
    readonly tracer: Tracer,
    readonly trace: Trace,
    readonly catalog: CatalogTensors | undefined,
    readonly editScales: ReadonlyMap<string, number> = new Map(),
    readonly gates?: GatedPaths,
  ) {
    this.modules = new Map(trace.structure.modules.map((m) => [m.module, m]));
    this.infos = new Map((catalog?.catalog.components ?? []).map((c) => [c.key, c]));
    if (catalog) {
      for (const cm of catalog.catalog.modules) {
        const mw = this.modules.get(cm.path);
        if (mw && (mw.dIn !== cm.dIn || mw.dOut !== cm.dOut)) {
          throw new ScalpelError(`catalog module ${cm.path} is (${cm.dIn} → ${cm.dOut}) but the model's is (${mw.dIn} → ${mw.dOut}): a catalog of another model?`, catalog.file.file);
        }
      }
    }
  }

  get length(): number {
    return this.trace.tokens.length;
  }

  /** Components the catalog has for a module (0 without a catalog). */
  componentCount(module: string): number {
    return this.catalog?.catalog.modules.find((m) => m.path === module)?.components ?? 0;
  }

  label(key: string): string | undefined {
    return this.infos.get(key)?.label?.text;
  }

  /** The catalog's metadata of a component (label, statistics, promoted tokens), where it has any. */
  info(key: string): ComponentInfo | undefined {
    return this.infos.get(key);
  }

  private cached<T>(key: string, make: () => T): T {
    if (!this.memo.has(key)) this.memo.set(key, make());
    return this.memo.get(key) as T;
  }

  factors(module: string): ModuleFactors | undefined {
    if (!this.componentCount(module)) return undefined;
    let f = this.factorCache.get(module);
    if (!f) this.factorCache.set(module, (f = this.catalog!.factors(module)));
    return f;
  }

  /** Activation x · V[:, c] of every component of a module at a position (undefined without a catalog entry); see editScales. */
  activations(module: string, side: Side, position: number): Float32Array | undefined {
    const f = this.factors(module);
    if (!f) return undefined;
    return this.cached(`act\0${module}\0${side}\0${position}`, () => {
      const x = captured(this.trace, side, this.mw(module).inputTensor, position);
      const out = new Float32Array(f.module.components);
      readActivations(f, x, out);
      if (side === 'edited' && this.trace.hasEdit) {
        for (const [key, scale] of this.editScales) {
          const k = parseComponentKey(key);
          if (k?.module !== module) continue;
          const gate = this.gateValues(key);
          out[k.index] *= gate ? 1 + (scale - 1) * gate[position] : scale;
        }
      }
      return out;
    });
  }

  /** A gated component's gate at every position (edited side: what the edit used), or undefined when it is not gated. */
  gateValues(key: string): Float32Array | undefined {
    for (const m of this.gates?.modules ?? []) {
      const slot = m.components.findIndex((g) => g.component.key === key);
      if (slot < 0) continue;
      return this.cached(`gate\0${key}`, () => {
        const r = this.trace.recorded.edited.get(m.gateTensor);
        if (!r) throw new ScalpelError(`nothing recorded for the gate of ${key}`);
        return Float32Array.from({ length: this.length }, (_, t) => r.data[t * r.width + slot]);
      });
    }
    return undefined;
  }

  private mw(module: string): ModuleWeight {
    const m = this.modules.get(module);
    if (!m) throw new ScalpelError(`the model has no module "${module}"`);
    return m;
  }

  /** Full logits of the final norm and unembedding applied to a residual-stream vector. */
  lensLogits(resid: Float32Array, side: Side): Float32Array {
    const s = this.trace.structure;
    if (!s.unembed || !s.finalNorm) throw new ScalpelError('the logit lens needs a final norm (LayerNorm or RMSNorm) feeding a MatMul unembedding; this model has none');
    const y = this.normalize(resid, side);
    const w = this.tracer.moduleMatrix(side, s.unembed);
    const vocab = s.unembed.dOut;
    const out = s.unembedBias ? Float32Array.from(this.tracer.weight(side, s.unembedBias)) : new Float32Array(vocab);
    for (let i = 0; i < y.length; i++) {
      const yi = y[i];
      const row = i * vocab;
      for (let v = 0; v < vocab; v++) out[v] += yi * w[row + v];
    }
    return out;
  }

  /** The final norm applied to x. */
  private normalize(x: Float32Array, side: Side): Float32Array {
    const n = this.trace.structure.finalNorm!;
    const gamma = this.tracer.weight(side, n.weight);
    const beta = n.bias ? this.tracer.weight(side, n.bias) : undefined;
    const { mu, sigma } = normStatistics(x, n);
    const y = new Float32Array(x.length);
    for (let i = 0; i < x.length; i++) y[i] = ((x[i] - mu) / sigma) * gamma[i] + (beta ? beta[i] : 0);
    return y;
  }

  /** Top-k tokens with probabilities (softmax over the whole vocabulary) of a logits vector. */
  topTokens(logits: Float32Array, k: number): LensEntry[] {
    const idx = topIndices(logits, k, (v) => v);
    return idx.map((token) => ({ token, text: this.tracer.lm.tokenizer.tokenText(token), logit: logits[token], prob: this.prob(logits, token) }));
  }

  /** Softmax probability of one token; the normaliser is computed once per logits vector. */
  prob(logits: Float32Array, token: number): number {
    return Math.exp(logits[token] - logSumExp(logits));
  }

  /** The logit lens at a residual capture: the final norm and unembedding applied early. */
  lens(tensor: string, side: Side, position: number): Float32Array {
    return this.cached(`lens\0${tensor}\0${side}\0${position}`, () => this.lensLogits(captured(this.trace, side, tensor, position), side));
  }

  /** Logits the model itself produced at a position. */
  logits(side: Side, position: number): Float32Array {
    return captured(this.trace, side, this.trace.structure.logits, position);
  }

  /** Next-token loss (nats) at each position 0..T-2, from the recorded logits. */
  tokenLosses(side: Side): Float32Array {
    return this.cached(`loss\0${side}`, () => {
      const t = this.trace.tokens;
      const out = new Float32Array(Math.max(0, t.length - 1));
      for (let p = 0; p + 1 < t.length; p++) out[p] = -logSoftmaxAt(this.logits(side, p), t[p + 1]);
      return out;
    });
  }

  /**
   * Each component's contribution to the logit of `target` at a position (see ContributionKind).
   * The unembedding's bias and the decomposition's residual are not components and are left out.
   */
  contributions(module: string, side: Side, position: number, target: number): Contributions {
    return this.cached(`contrib\0${module}\0${side}\0${position}\0${target}`, () => this.computeContributions(module, side, position, target));
  }

  private computeContributions(module: string, side: Side, position: number, target: number): Contributions {
    const f = this.factors(module);
    const acts = this.activations(module, side, position);
    const kind = this.contributionKind(module);
    if (!f || !acts || kind === 'none') return { kind, values: undefined };
    const C = f.module.components;
    const dOut = f.module.dOut;
    // r: the gradient of the target logit with respect to the module's output, along the chosen path.
    let r: Float32Array;
    if (kind === 'exact') {
      r = new Float32Array(dOut);
      r[target] = 1;
    } else {
      const g = this.directGradient(side, position, target);
      if (kind === 'direct') r = g;
      else if (kind === 'value') r = this.valueGradient(module, side, position, g);
      else {
        // secant and gated: the writer reads f(h) elementwise; f(h)/h is the slope at this token (exact for up·gate).
        const { writer, pre, post } = this.secantPath(module, side, position);
        const w2 = this.tracer.moduleMatrix(side, writer);
        r = new Float32Array(dOut);
        for (let k = 0; k < dOut; k++) {
          const slope = Math.abs(pre[k]) > 1e-12 ? post[k] / pre[k] : 0;
          if (slope === 0) continue;
          let dot = 0;
          const row = k * writer.dOut;
          for (let j = 0; j < writer.dOut; j++) dot += w2[row + j] * g[j];
          r[k] = slope * dot;
        }
      }
    }
    const values = writeDots(f, r);
    for (let c = 0; c < C; c++) values[c] *= acts[c];
    return { kind, values };
  }

  contributionKind(module: string): ContributionKind {
    const s = this.trace.structure;
    if (s.unembed?.module === module) return 'exact';
    if (!s.unembed || !s.finalNorm) return 'none';
    if (s.valuePaths.has(module)) return 'value';
    const mlp = s.mlpPaths.get(module);
    if (mlp) return mlp.kind;
    const sub = s.blocks.flatMap((b) => b.sublayers).find((x) => x.modules.some((m) => m.module === module));
    // The sublayer's last module writes the residual stream (its output plus bias is the sublayer's output).
    return sub?.modules[sub.modules.length - 1].module === module ? 'direct' : 'none';
  }

  /**
   * d logit[target] / d residual at the final norm's input, at this token: with y = (x − μ)/σ and
   * a = γ ⊙ W_U[:, target], the gradient is (a − mean(a) − y (a·y)/n) / σ; an RMS norm (μ = 0) has no mean(a) term.
   */
  private directGradient(side: Side, position: number, target: number): Float32Array {
    return this.cached(`grad\0${side}\0${position}\0${target}`, () => {
      const s = this.trace.structure;
      const norm = s.finalNorm!;
      const x = captured(this.trace, side, norm.input, position);
      const n = x.length;
      const gamma = this.tracer.weight(side, norm.weight);
      const w = this.tracer.moduleMatrix(side, s.unembed!);
      const vocab = s.unembed!.dOut;
      const { mu, sigma } = normStatistics(x, norm);
      const a = new Float64Array(n);
      let aMean = 0;
      let ay = 0;
      for (let i = 0; i < n; i++) {
        a[i] = gamma[i] * w[i * vocab + target];
        if (norm.kind === 'layer') aMean += a[i] / n;
        ay += (a[i] * (x[i] - mu)) / sigma;
      }
      const g = new Float32Array(n);
      for (let i = 0; i < n; i++) g[i] = (a[i] - aMean - ((x[i] - mu) / sigma) * (ay / n)) / sigma;
      return g;
    });
  }

  /**
   * d logit / d (module output) along v at this token: query head h reads value head ⌊h / rep⌋ (grouped-query
   * attention repeats each of the width / head-width value heads rep times), weighed by A[h, p, p]; the merged
   * heads (index h·headWidth + j) go through the output projection and the direct gradient g.
   */
  private valueGradient(module: string, side: Side, position: number, g: Float32Array): Float32Array {
    const s = this.trace.structure;
    const vp = s.valuePaths.get(module)!;
    const writer = this.mw(vp.writer);
    const w2 = this.tracer.moduleMatrix(side, writer);
    const probs = this.trace.recorded[side].get(vp.probs)!;
    const [, heads, t] = probs.dims;
    const headWidth = writer.dIn / heads;
    const rep = (heads * headWidth) / vp.width;
    if (!Number.isInteger(headWidth) || !Number.isInteger(rep)) {
      throw new ScalpelError(`attention of ${module}: ${heads} heads do not divide its output projection's ${writer.dIn} inputs or v's ${vp.width}`);
    }
    // d logit / d (writer input): W2 · g.
    const back = new Float64Array(writer.dIn);
    for (let k = 0; k < writer.dIn; k++) {
      let dot = 0;
      for (let j = 0; j < writer.dOut; j++) dot += w2[k * writer.dOut + j] * g[j];
      back[k] = dot;
    }
    const r = new Float32Array(this.mw(module).dOut);
    for (let k = 0; k < vp.width; k++) {
      const kv = Math.floor(k / headWidth);
      const j = k % headWidth;
      let sum = 0;
      for (let q = 0; q < rep; q++) {
        const h = kv * rep + q;
        sum += probs.data[(h * t + position) * t + position] * back[h * headWidth + j];
      }
      r[vp.offset + k] = sum;
    }
    return r;
  }

  private secantPath(module: string, side: Side, position: number) {
    const s = this.trace.structure;
    const writer = this.mw(s.mlpPaths.get(module)!.writer);
    const out = captured(this.trace, side, this.mw(module).outputTensor, position);
    const bias = s.moduleBias.get(module);
    const pre = Float32Array.from(out);
    if (bias && !bias.fused) {
      const b = this.tracer.weight(side, bias.initializer);
      for (let k = 0; k < out.length; k++) pre[k] += b[k];
    }
    return { writer, pre, post: captured(this.trace, side, writer.inputTensor, position) };
  }

  /** The first capture, in forward order, where edited differs from base by more than `tolerance` (relative L2). */
  firstDivergence(position: number, tolerance: number): Divergence | undefined {
    if (!this.trace.hasEdit) return undefined;
    for (const c of this.trace.structure.captures) {
      const d = this.difference(c.tensor, position);
      if (d.relative > tolerance) return { capture: c, ...d };
    }
    return undefined;
  }

  difference(tensor: string, position: number): { relative: number; absolute: number } {
    const b = captured(this.trace, 'base', tensor, position);
    const e = captured(this.trace, 'edited', tensor, position);
    let diff = 0;
    let norm = 0;
    for (let i = 0; i < b.length; i++) {
      diff += (e[i] - b[i]) ** 2;
      norm += b[i] ** 2;
    }
    const absolute = Math.sqrt(diff);
    return { absolute, relative: absolute / Math.max(Math.sqrt(norm), 1e-12) };
  }
}

/** Indices of the k largest values of score(x[i]), largest first; ties by lower index. */
export function topIndices(x: ArrayLike<number>, k: number, score: (v: number) => number = Math.abs): number[] {
  const idx: number[] = [];
  for (let i = 0; i < x.length; i++) {
    const s = score(x[i]);
    if (idx.length === k && s <= score(x[idx[k - 1]])) continue;
    let j = idx.length < k ? idx.length : k - 1;
    idx[j] = i;
    while (j > 0 && score(x[idx[j - 1]]) < s) {
      [idx[j - 1], idx[j]] = [idx[j], idx[j - 1]];
      j--;
    }
  }
  return idx;
}

const normalisers = new WeakMap<Float32Array, number>();

/** log Σ exp(logits), memoised per vector (the lens and the recorded logits are read many times). */
function logSumExp(logits: Float32Array): number {
  let lse = normalisers.get(logits);
  if (lse === undefined) {
    let max = -Infinity;
    for (const v of logits) if (v > max) max = v;
    let z = 0;
    for (const v of logits) z += Math.exp(v - max);
    lse = max + Math.log(z);
    normalisers.set(logits, lse);
  }
  return lse;
}

function logSoftmaxAt(logits: Float32Array, token: number): number {
  return logits[token] - logSumExp(logits);
}

export function norm(x: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i] * x[i];
  return Math.sqrt(s);
}

/** The final norm's centre and scale at x: mean and standard deviation (LayerNorm), or 0 and the root mean square (RMSNorm). */
function normStatistics(x: Float32Array, norm: FinalNorm): { mu: number; sigma: number } {
  let mu = 0;
  if (norm.kind === 'layer') {
    for (const v of x) mu += v;
    mu /= x.length;
  }
  let variance = 0;
  for (const v of x) variance += (v - mu) ** 2;
  return { mu, sigma: Math.sqrt(variance / x.length + norm.epsilon) };
}
