/**
 * What the debugger shows at a stop: the scopes (activations, components, logit lens, base vs edited)
 * as plain `VarNode` trees whose children are computed only when expanded, and a stop's one-paragraph
 * summary. Everything is read from the recordings; nothing here runs the model.
 */
import { componentKey } from '../engine/catalog/key';
import { readVector, writeVector } from '../engine/catalog/read';
import { ScalpelError } from '../engine/errors';
import { Contributions, TraceAnalysis, norm, topIndices } from '../engine/trace/analysis';
import { SIDES, Side, captured } from '../engine/trace/trace';
import type { Point } from './point';

/** A variable as the UI shows it; `children` is computed only when expanded. */
export interface VarNode {
  name: string;
  value: string;
  children?: () => VarNode[];
}

export interface ScopeView {
  name: 'Activations' | 'Components' | 'Logit lens' | 'Base vs edited';
  variables: () => VarNode[];
}

/** What the scopes of one session read: the recordings, the position and target token, and the runtime's component ranking. */
export interface StopContext {
  analysis: TraceAnalysis;
  position: number;
  /** The token whose logit components are attributed to. */
  target: number;
  /** What the edit is, for the Base vs edited scope. */
  editDescription: string;
  /** Relative difference above which base and edited diverge. */
  tolerance: number;
  /** A module's components, most active at the position first. */
  rankedComponents(module: string): number[];
}

const TOP_K = 10;

export class StopView {
  constructor(private readonly ctx: StopContext) {}

  tokenDescription(position: number): string {
    return `token ${position} ${JSON.stringify(this.tokenText(this.analysis.trace.tokens[position]))}`;
  }

  tokenText(id: number): string {
    return this.analysis.tracer.lm.tokenizer.tokenText(id);
  }

  scopes(p: Point): ScopeView[] {
    return [
      { name: 'Activations', variables: () => this.activationVars(p) },
      { name: 'Components', variables: () => this.componentVars(p) },
      { name: 'Logit lens', variables: () => this.lensVars(p) },
      { name: 'Base vs edited', variables: () => this.diffVars(p) },
    ];
  }

  private get pos(): number {
    return this.ctx.position;
  }

  private get analysis(): TraceAnalysis {
    return this.ctx.analysis;
  }

  private moduleOf(name: string) {
    return this.analysis.modules.get(name)!;
  }

  private activationVars(p: Point): VarNode[] {
    const a = this.analysis;
    switch (p.kind) {
      case 'model':
      case 'output': {
        const tokens = a.trace.tokens;
        const losses = SIDES.map((s) => a.tokenLosses(s));
        const vars: VarNode[] = [
          { name: 'position', value: this.tokenDescription(this.pos) },
          { name: 'target', value: JSON.stringify(this.tokenText(this.ctx.target)) },
          {
            name: 'tokens',
            value: `${tokens.length} tokens`,
            children: () => Array.from(tokens, (t, i) => ({ name: `[${i}]`, value: JSON.stringify(this.tokenText(t)) })),
          },
        ];
        if (this.pos + 1 < tokens.length) vars.push({ name: 'loss at position', value: pair(losses[1][this.pos], losses[0][this.pos]) });
        if (p.kind === 'output') vars.push(this.vectorVar('logits', a.trace.structure.logits));
        return vars;
      }
      case 'block': {
        const b = a.trace.structure.blocks.find((x) => x.name === p.block)!;
        return [
          this.vectorVar('residual in', b.residualIn),
          ...b.sublayers.flatMap((s) => [this.vectorVar(`${s.name} out`, s.output), this.vectorVar(`residual after ${s.name}`, s.residualAfter)]),
        ];
      }
      case 'module': {
        const m = this.moduleOf(p.module!);
        return [
          { name: 'shape', value: `(${m.dIn} → ${m.dOut})  ${m.initializer}` },
          this.vectorVar('input', m.inputTensor),
          this.vectorVar(this.analysis.trace.structure.moduleBias.get(m.module)?.fused ? 'output (bias included)' : 'output (before bias)', m.outputTensor),
        ];
      }
      case 'component':
        return this.componentDetail(p.module!, p.component!);
    }
  }

  private componentDetail(module: string, c: number): VarNode[] {
    const a = this.analysis;
    const acts = SIDES.map((s) => a.activations(module, s, this.pos)!);
    const contrib = SIDES.map((s) => a.contributions(module, s, this.pos, this.ctx.target));
    const f = a.factors(module)!;
    const vars: VarNode[] = [
      { name: 'activation', value: pair(acts[1][c], acts[0][c]) },
      { name: `contribution to ${JSON.stringify(this.tokenText(this.ctx.target))}`, value: contributionText(contrib, c) },
      { name: 'read norm ‖V[:, c]‖', value: fmt(norm(readVector(f, c))) },
      { name: 'write norm ‖U[c]‖', value: fmt(norm(writeVector(f, c))) },
    ];
    const info = a.info(componentKey(module, c));
    const gate = a.gateValues(componentKey(module, c));
    if (gate) {
      // The gate decides how much of the edit this token gets: shown here and per token.
      vars.splice(1, 0, {
        name: 'gate (edit applied × gate)',
        value: fmt(gate[this.pos]),
        children: () => Array.from(gate, (g, t) => ({ name: `[${t}] ${JSON.stringify(this.tokenText(a.trace.tokens[t]))}`, value: fmt(g) })),
      });
    }
    if (info?.label) vars.unshift({ name: 'label', value: `${info.label.text} (${info.label.source})` });
    if (info?.promotes?.length) vars.push({ name: 'promotes (catalog)', value: info.promotes.slice(0, 5).map((t) => `${JSON.stringify(t.token)} ${fmt(t.logit)}`).join(', ') });
    const selectivity = Object.entries(info?.selectivity ?? {}).sort((x, y) => y[1] - x[1]);
    if (selectivity.length) vars.push({ name: 'selectivity (catalog)', value: selectivity.map(([tag, v]) => `${tag} ${fmt(v)}`).join(', ') });
    return vars;
  }

  /** A vector: its norm on both sides, expandable to its largest entries. */
  private vectorVar(name: string, tensor: string): VarNode {
    const [b, e] = SIDES.map((s) => captured(this.analysis.trace, s, tensor, this.pos));
    return {
      name,
      value: `[${e.length}] ‖x‖ ${pair(norm(e), norm(b))}`,
      children: () => [
        { name: 'norm', value: pair(norm(e), norm(b)) },
        { name: 'mean', value: pair(mean(e), mean(b)) },
        ...topIndices(e, 8).map((i) => ({ name: `[${i}]`, value: pair(e[i], b[i]) })),
      ],
    };
  }

  private modulesIn(p: Point): string[] {
    const s = this.analysis.trace.structure;
    if (p.kind === 'module' || p.kind === 'component') return [p.module!];
    if (p.kind === 'block') return s.modules.filter((m) => m.module.startsWith(`${p.block}.`)).map((m) => m.module);
    return s.modules.map((m) => m.module);
  }

  private componentVars(p: Point): VarNode[] {
    const a = this.analysis;
    const modules = this.modulesIn(p).filter((m) => a.componentCount(m) > 0);
    if (!a.catalog) return [{ name: 'catalog', value: 'none: no component catalog (components/ beside the model, or the launch attribute "catalog")' }];
    if (!modules.length) return [{ name: 'components', value: 'the catalog decomposes no module here' }];
    const rows: { module: string; c: number; score: number }[] = [];
    for (const m of modules) {
      for (const c of this.ctx.rankedComponents(m).slice(0, TOP_K)) {
        const acts = SIDES.map((s) => a.activations(m, s, this.pos)!);
        rows.push({ module: m, c, score: Math.max(Math.abs(acts[0][c]), Math.abs(acts[1][c])) });
      }
    }
    rows.sort((x, y) => y.score - x.score || (x.module < y.module ? -1 : x.module > y.module ? 1 : x.c - y.c));
    return rows.slice(0, TOP_K).map(({ module, c }) => {
      const acts = SIDES.map((s) => a.activations(module, s, this.pos)!);
      const label = a.label(componentKey(module, c));
      return { name: componentKey(module, c), value: `${pair(acts[1][c], acts[0][c])}${label ? `  ${label}` : ''}`, children: () => this.componentDetail(module, c) };
    });
  }

  /** The residual stream the point reads: a block's input, a module's sublayer input, the final residual, or the logits. */
  private residualAt(p: Point): { name: string; tensor: string } {
    const s = this.analysis.trace.structure;
    if (p.kind === 'block') return { name: `${p.block}.resid_pre`, tensor: s.blocks.find((b) => b.name === p.block)!.residualIn };
    if ((p.kind === 'module' || p.kind === 'component') && p.block) {
      const b = s.blocks.find((x) => x.name === p.block)!;
      let tensor = b.residualIn;
      let name = `${b.name}.resid_pre`;
      for (const sub of b.sublayers) {
        if (sub.modules.some((m) => m.module === p.module)) break;
        tensor = sub.residualAfter;
        name = `${b.name}.${sub.name}.resid`;
      }
      return { name, tensor };
    }
    return { name: 'resid_final', tensor: s.finalNorm?.input ?? s.logits };
  }

  /** The logits a point reads through the logit lens (the model's own at the model frame, the logits line and the unembedding). */
  lensLogits(p: Point, side: Side): Float32Array {
    const a = this.analysis;
    // The lens of the final residual equals the model's own logits.
    if (p.kind === 'output' || p.kind === 'model' || p.module === a.trace.structure.unembed?.module) return a.logits(side, this.pos);
    return a.lens(this.residualAt(p).tensor, side, this.pos);
  }

  private lensVars(p: Point): VarNode[] {
    const a = this.analysis;
    let logits: Float32Array[];
    try {
      logits = SIDES.map((s) => this.lensLogits(p, s));
    } catch (err) {
      if (err instanceof ScalpelError) return [{ name: 'logit lens', value: err.message }];
      throw err;
    }
    const [base, edited] = logits.map((l) => ({ top: a.topTokens(l, TOP_K) }));
    const probOf = (l: Float32Array, t: number) => a.prob(l, t);
    const source = p.kind === 'output' || p.kind === 'model' || p.module === a.trace.structure.unembed?.module ? 'logits' : this.residualAt(p).name;
    const t = this.ctx.target;
    return [
      { name: 'reads', value: source },
      { name: `target ${JSON.stringify(this.tokenText(t))}`, value: `p ${pair(probOf(logits[1], t), probOf(logits[0], t))}  rank ${rank(logits[1], t)} (base ${rank(logits[0], t)})` },
      ...edited.top.map((e, i) => ({ name: `${i + 1}. ${JSON.stringify(e.text)}`, value: `p ${pair(e.prob, probOf(logits[0], e.token))}  logit ${fmt(e.logit)}` })),
      { name: 'base top', value: base.top.slice(0, 5).map((e) => `${JSON.stringify(e.text)} ${fmt(e.prob)}`).join(', '), children: () => base.top.map((e, i) => ({ name: `${i + 1}. ${JSON.stringify(e.text)}`, value: `p ${fmt(e.prob)}  logit ${fmt(e.logit)}` })) },
    ];
  }

  private diffVars(p: Point): VarNode[] {
    const a = this.analysis;
    const vars: VarNode[] = [{ name: 'edit', value: this.ctx.editDescription }];
    if (!a.trace.hasEdit) return vars;
    const d = a.firstDivergence(this.pos, this.ctx.tolerance);
    vars.push({ name: 'first divergence', value: d ? `${d.capture.id} (relative ${fmt(d.relative)})` : `none above ${this.ctx.tolerance}` });
    if (this.pos + 1 < a.length) {
      const [b, e] = SIDES.map((s) => a.tokenLosses(s)[this.pos]);
      vars.push({ name: 'loss at position', value: `${pair(e, b)}  Δ ${fmt(e - b)}` });
    }
    const changed = this.modulesIn(p).filter((m) => a.componentCount(m) > 0 && a.contributionKind(m) !== 'none');
    if (changed.length) {
      vars.push({
        name: `contributions to ${JSON.stringify(this.tokenText(this.ctx.target))} that changed most`,
        value: `components of ${changed.length} module${changed.length === 1 ? '' : 's'}`,
        children: () => this.changedContributions(changed),
      });
    }
    const keys = new Set(this.modulesIn(p));
    const captures = a.trace.structure.captures.filter((c) =>
      p.kind === 'model' || p.kind === 'output' ? c.kind === 'residual' || c.kind === 'logits' : p.kind === 'block' ? c.block === p.block : keys.has(c.module ?? ''),
    );
    for (const c of captures) {
      const diff = a.difference(c.tensor, this.pos);
      vars.push({ name: c.id, value: `relative ${fmt(diff.relative)}  ‖Δ‖ ${fmt(diff.absolute)}` });
    }
    return vars;
  }

  /** Components whose contribution to the target's logit differs most between base and edited. */
  private changedContributions(modules: string[]): VarNode[] {
    const a = this.analysis;
    const rows: { module: string; c: number; base: number; edited: number }[] = [];
    for (const m of modules) {
      const [b, e] = SIDES.map((s) => a.contributions(m, s, this.pos, this.ctx.target).values!);
      for (const c of topIndices(Float32Array.from(e, (v, i) => v - b[i]), TOP_K)) rows.push({ module: m, c, base: b[c], edited: e[c] });
    }
    rows.sort((x, y) => Math.abs(y.edited - y.base) - Math.abs(x.edited - x.base));
    return rows.slice(0, TOP_K).map((r) => ({
      name: componentKey(r.module, r.c),
      value: `Δ ${fmt(r.edited - r.base)}  (${pair(r.edited, r.base)}, ${a.contributionKind(r.module)})`,
      children: () => this.componentDetail(r.module, r.c),
    }));
  }

  /** One paragraph about a stop, for the Debug Console: what the lens predicts, what moved, the most active components. */
  summary(p: Point): string {
    const a = this.analysis;
    const lines = [`${p.key} @ ${this.tokenDescription(this.pos)}, target ${JSON.stringify(this.tokenText(this.ctx.target))}`];
    try {
      const [b, e] = SIDES.map((s) => a.topTokens(this.lensLogits(p, s), 3).map((t) => `${JSON.stringify(t.text)} ${fmt(t.prob)}`).join(', '));
      lines.push(`  predicts: ${e}${a.trace.hasEdit ? `  (base ${b})` : ''}`);
    } catch (err) {
      if (!(err instanceof ScalpelError)) throw err;
    }
    if (a.trace.hasEdit) {
      const d = a.firstDivergence(this.pos, this.ctx.tolerance);
      lines.push(`  edit: ${this.ctx.editDescription}; first divergence: ${d ? `${d.capture.id} (relative ${fmt(d.relative)})` : 'none'}`);
    }
    const top = this.componentVars(p).filter((v) => v.children).slice(0, 3);
    if (top.length) lines.push(`  most active: ${top.map((v) => `${v.name} ${v.value}`).join('; ')}`);
    return lines.join('\n');
  }
}

function contributionText(c: Contributions[], index: number): string {
  const [b, e] = c;
  if (!e.values || !b.values) return 'n/a (no linear path to the logits)';
  const how = {
    exact: 'exact',
    direct: 'approximate: direct path',
    secant: 'approximate: secant through the nonlinearity',
    gated: 'approximate: exact given the gate, then the direct path',
    value: "approximate: value path, this token's attention to itself",
    none: '',
  }[e.kind];
  return `${pair(e.values[index], b.values[index])}  ${how}`;
}

export function fmt(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  if (x === 0) return '0';
  const a = Math.abs(x);
  return a >= 1e4 || a < 1e-3 ? x.toExponential(3) : x.toFixed(4);
}

/** `edited (base b)`, or the single value when both sides agree. */
export function pair(edited: number, base: number): string {
  return edited === base ? fmt(edited) : `${fmt(edited)} (base ${fmt(base)})`;
}

function mean(x: Float32Array): number {
  let s = 0;
  for (const v of x) s += v;
  return s / x.length;
}

function rank(logits: Float32Array, t: number): number {
  let r = 1;
  for (const v of logits) if (v > logits[t]) r++;
  return r;
}
