/**
 * The debugger's runtime: a recorded forward pass (base and edited) presented as a program to step
 * through. It knows nothing of DAP (debugger/session.ts translates); everything it shows comes from
 * the recordings, so stepping, stepping back and reverse-continuing never run the model.
 *
 * The "program" is a generated listing, one line per block and module in forward order. Stop points
 * have a depth: model 0, block 1 (and the final logits), module 2, component 3. Step in goes to the
 * next point, step over to the next at the same depth or shallower, step out to the next shallower.
 * Every stop is pushed on a history, so step back restores the previous stop exactly.
 */
import { componentKey, parseComponentKey } from '../engine/catalog/key';
import { readVector, writeVector } from '../engine/catalog/read';
import { ScalpelError } from '../engine/errors';
import { Contributions, TraceAnalysis, norm, topIndices } from '../engine/trace/analysis';
import { Capture } from '../engine/trace/graph';
import { SIDES, Side, captured } from '../engine/trace/trace';
import { Expr, ExpressionHost, Value, evaluateExpression, exprError, parseExpression, truthy } from './expression';

export type PointKind = 'model' | 'block' | 'module' | 'component' | 'output';

export interface Point {
  /** Unique: `model`, `h.1`, `h.1.mlp.c_fc`, `h.1.mlp.c_fc:41`, `logits`. */
  key: string;
  kind: PointKind;
  depth: number;
  /** 1-based line of the listing. */
  line: number;
  block?: string;
  module?: string;
  component?: number;
}

export interface StopEvent {
  reason: 'entry' | 'step' | 'breakpoint' | 'function breakpoint' | 'divergence';
  point: Point;
  /** Shown in the UI next to the pause reason. */
  description?: string;
}

export type RunResult = StopEvent | { reason: 'terminated' };

export interface BreakpointResult {
  verified: boolean;
  line?: number;
  message?: string;
}

/** A variable as the UI shows it; `children` is computed only when expanded. */
export interface VarNode {
  name: string;
  value: string;
  children?: () => VarNode[];
}

export interface Frame {
  /** Index from the top (0 = the current point). */
  index: number;
  name: string;
  line: number;
  point: Point;
}

export interface ScopeView {
  name: 'Activations' | 'Components' | 'Logit lens' | 'Base vs edited';
  variables: () => VarNode[];
}

/** Datasets for `loss(NAME)`: a spec's names, and the loss of a name or data source on both sides. */
export interface DatasetLosses {
  names: string[];
  loss(nameOrSource: string): Promise<Record<Side, number>>;
}

export interface RuntimeOptions {
  analysis: TraceAnalysis;
  /** Name of the model (the listing's first line). */
  modelName: string;
  /** What the edit is, for the Base vs edited scope. */
  editDescription: string;
  position: number;
  /** The token whose logit components are attributed to. */
  target: number;
  /** Components shown per module when stepping in (most active first). */
  componentsPerModule?: number;
  tolerance?: number;
  datasets?: DatasetLosses;
}

interface LineBreakpoint {
  line: number;
  condition?: Expr;
}

interface FunctionBreakpoint {
  name: string;
  condition?: Expr;
}

const TOP_K = 10;

export class DebugRuntime {
  readonly listing: string;
  private readonly lineKinds = new Map<number, Point>();
  private readonly baseline: Point[];
  private history: string[] = [];
  private current: Point;
  private lineBreakpoints: LineBreakpoint[] = [];
  private functionBreakpoints: FunctionBreakpoint[] = [];
  /** Per module, its components by activation at the position (fixed for the session). */
  private readonly ranked = new Map<string, number[]>();
  readonly tolerance: number;

  constructor(readonly opts: RuntimeOptions) {
    const a = opts.analysis;
    if (!Number.isInteger(opts.position) || opts.position < 0 || opts.position >= a.length) {
      throw new ScalpelError(`position ${opts.position} is outside the input's ${a.length} tokens (0..${a.length - 1})`);
    }
    this.tolerance = opts.tolerance ?? 1e-4;
    const { listing, points } = buildListing(opts);
    this.listing = listing;
    this.baseline = points;
    for (const p of points) if (p.kind !== 'component') this.lineKinds.set(p.line, p);
    this.current = points[0];
  }

  /**
   * Reads every catalog module's factors, ranks its components and computes their contributions now,
   * so that no step pays for it (stepping needs each module's most active components to know the next stop).
   */
  prepare(): void {
    for (const m of this.analysis.trace.structure.modules) {
      if (!this.rankedComponents(m.module).length) continue;
      for (const side of SIDES) this.analysis.contributions(m.module, side, this.opts.position, this.opts.target);
    }
  }

  get analysis(): TraceAnalysis {
    return this.opts.analysis;
  }

  get point(): Point {
    return this.current;
  }

  /** Stop points in forward order: the listing's points plus, after each module, its most active components and those with function breakpoints. */
  points(): Point[] {
    const out: Point[] = [];
    const wanted = new Set(this.functionBreakpoints.map((b) => b.name));
    for (const p of this.baseline) {
      out.push(p);
      if (p.kind !== 'module') continue;
      const module = p.module!;
      const ranked = this.rankedComponents(module);
      const shown = ranked.slice(0, this.opts.componentsPerModule ?? 5);
      for (const c of ranked) if (!shown.includes(c) && wanted.has(componentKey(module, c))) shown.push(c);
      for (const c of shown) out.push({ key: componentKey(module, c), kind: 'component', depth: 3, line: p.line, block: p.block, module: p.module, component: c });
    }
    return out;
  }

  /** Components of a module by max(|base|, |edited|) activation at the position, largest first. */
  rankedComponents(module: string): number[] {
    let ranked = this.ranked.get(module);
    if (!ranked) this.ranked.set(module, (ranked = this.rank(module)));
    return ranked;
  }

  private rank(module: string): number[] {
    const acts = SIDES.map((s) => this.analysis.activations(module, s, this.opts.position));
    if (!acts[0] || !acts[1]) return [];
    const score = new Float32Array(acts[0].length);
    for (let c = 0; c < score.length; c++) score[c] = Math.max(Math.abs(acts[0][c]), Math.abs(acts[1][c]));
    return Array.from(score.keys()).sort((x, y) => score[y] - score[x] || x - y);
  }

  // ---- execution -------------------------------------------------------------------------------

  async start(stopOnEntry: boolean, stopOnDivergence: boolean): Promise<RunResult> {
    this.history = [];
    this.current = this.baseline[0];
    if (stopOnDivergence) {
      const d = this.analysis.firstDivergence(this.opts.position, this.tolerance);
      if (d) {
        const target = this.pointOfCapture(d.capture);
        this.history.push(this.current.key);
        this.current = target;
        return { reason: 'divergence', point: target, description: `base and edited first diverge at ${d.capture.id}: relative difference ${fmt(d.relative)}` };
      }
    }
    if (stopOnEntry) return { reason: 'entry', point: this.current };
    return this.continue();
  }

  stepIn(): Promise<RunResult> {
    return this.step(() => true);
  }

  next(): Promise<RunResult> {
    const depth = this.current.depth;
    return this.step((p) => p.depth <= depth);
  }

  stepOut(): Promise<RunResult> {
    const depth = this.current.depth;
    return this.step((p) => p.depth < depth);
  }

  /** Where the current stop is among `points`: a component whose breakpoint was removed since counts as its module. */
  private indexIn(points: Point[]): number {
    const i = points.findIndex((p) => p.key === this.current.key);
    return i >= 0 ? i : points.findIndex((p) => p.key === this.current.module);
  }

  private async step(accept: (p: Point) => boolean): Promise<RunResult> {
    const points = this.points();
    const i = this.indexIn(points);
    if (this.current.kind === 'output') return { reason: 'terminated' };
    const target = points.slice(i + 1).find(accept) ?? points[points.length - 1];
    return this.moveTo(target, 'step');
  }

  /** Runs forward to the next breakpoint; without one, stops at the logits (the end of the pass); from there, terminates. */
  async continue(): Promise<RunResult> {
    if (this.current.kind === 'output') return { reason: 'terminated' };
    const points = this.points();
    const i = this.indexIn(points);
    for (const p of points.slice(i + 1)) {
      const hit = await this.breakpointAt(p);
      if (hit) return this.moveTo(p, hit.reason, hit.description);
    }
    return this.moveTo(points[points.length - 1], 'step', 'end of the forward pass');
  }

  /** Restores the previous stop exactly; at the first stop, stays there. */
  async stepBack(): Promise<RunResult> {
    const key = this.history.pop();
    if (key === undefined) return { reason: 'entry', point: this.current };
    this.current = this.findPoint(key);
    return { reason: 'step', point: this.current };
  }

  /** Steps back through the history to the previous stop at a breakpoint, or to the first stop. */
  async reverseContinue(): Promise<RunResult> {
    while (this.history.length) {
      this.current = this.findPoint(this.history.pop()!);
      const hit = await this.breakpointAt(this.current);
      if (hit) return { reason: hit.reason, point: this.current, description: hit.description };
    }
    return { reason: 'entry', point: this.current };
  }

  private moveTo(p: Point, reason: StopEvent['reason'], description?: string): StopEvent {
    this.history.push(this.current.key);
    this.current = p;
    return { reason, point: p, description };
  }

  private findPoint(key: string): Point {
    const p = this.points().find((x) => x.key === key) ?? this.baseline.find((x) => x.key === key);
    // A component point from before its function breakpoint was removed: rebuild it.
    if (p) return p;
    const { module, index } = parseComponentKey(key)!;
    const m = this.baseline.find((x) => x.key === module)!;
    return { key, kind: 'component', depth: 3, line: m.line, block: m.block, module, component: index };
  }

  private pointOfCapture(c: Capture): Point {
    const byKey = (k: string) => this.baseline.find((p) => p.key === k);
    if (c.module) return byKey(c.module)!;
    if (c.kind === 'sublayer' || (c.kind === 'residual' && !c.id.endsWith('resid_pre') && c.block)) {
      const sub = this.analysis.trace.structure.blocks.find((b) => b.name === c.block)?.sublayers.find((s) => c.id.startsWith(`${c.block}.${s.name}.`));
      const writer = sub?.modules[sub.modules.length - 1];
      if (writer) return byKey(writer.module)!;
    }
    if (c.block) return byKey(c.block)!;
    return this.baseline[this.baseline.length - 1];
  }

  // ---- breakpoints -----------------------------------------------------------------------------

  setLineBreakpoints(requested: { line: number; condition?: string }[]): BreakpointResult[] {
    this.lineBreakpoints = [];
    return requested.map((r) => {
      const p = this.lineKinds.get(r.line);
      if (!p) return { verified: false, line: r.line, message: 'not a block or module line' };
      const condition = this.parseCondition(r.condition);
      if (condition instanceof ScalpelError) return { verified: false, line: r.line, message: condition.format() };
      this.lineBreakpoints.push({ line: r.line, condition });
      return { verified: true, line: r.line };
    });
  }

  setFunctionBreakpoints(requested: { name: string; condition?: string }[]): BreakpointResult[] {
    this.functionBreakpoints = [];
    return requested.map((r) => {
      const name = r.name.trim();
      const m = /^(.+):(\d+)$/.exec(name);
      const known = m
        ? this.baseline.some((p) => p.key === m[1]) && Number(m[2]) < this.analysis.componentCount(m[1])
        : this.baseline.some((p) => p.key === name && p.kind !== 'model');
      if (!known) return { verified: false, message: m ? `no component ${name} in the catalog` : `no block or module named ${name}` };
      const condition = this.parseCondition(r.condition);
      if (condition instanceof ScalpelError) return { verified: false, message: condition.format() };
      this.functionBreakpoints.push({ name, condition });
      const line = this.baseline.find((p) => p.key === (m ? m[1] : name))!.line;
      return { verified: true, line };
    });
  }

  private parseCondition(text: string | undefined): Expr | undefined | ScalpelError {
    if (!text?.trim()) return undefined;
    try {
      return parseExpression(text);
    } catch (err) {
      if (err instanceof ScalpelError) return err;
      throw err;
    }
  }

  private async breakpointAt(p: Point): Promise<{ reason: StopEvent['reason']; description?: string } | undefined> {
    const candidates: { reason: StopEvent['reason']; condition?: Expr }[] = [];
    if (p.kind !== 'component') for (const b of this.lineBreakpoints) if (b.line === p.line) candidates.push({ reason: 'breakpoint', condition: b.condition });
    for (const b of this.functionBreakpoints) if (b.name === p.key) candidates.push({ reason: 'function breakpoint', condition: b.condition });
    for (const c of candidates) {
      if (!c.condition) return { reason: c.reason };
      try {
        if (truthy(await evaluateExpression(c.condition, this.host('edited', p)))) return { reason: c.reason };
      } catch (err) {
        if (!(err instanceof ScalpelError)) throw err;
        // A condition that cannot be evaluated stops, so the user sees why.
        return { reason: c.reason, description: `condition failed: ${err.message}` };
      }
    }
    return undefined;
  }

  // ---- frames and scopes -----------------------------------------------------------------------

  /** Model → block → module (→ component), innermost first. */
  frames(): Frame[] {
    const p = this.current;
    const chain: Point[] = [p];
    const byKey = (k: string | undefined) => (k ? this.baseline.find((x) => x.key === k) : undefined);
    if (p.kind === 'component') chain.push(byKey(p.module)!);
    if ((p.kind === 'component' || p.kind === 'module') && p.block) chain.push(byKey(p.block)!);
    if (p.kind !== 'model') chain.push(this.baseline[0]);
    return chain.map((point, index) => ({ index, point, line: point.line, name: this.frameName(point) }));
  }

  private frameName(p: Point): string {
    if (p.kind === 'model') return `${this.opts.modelName} @ ${this.tokenDescription(this.opts.position)}`;
    if (p.kind === 'component') {
      const label = this.analysis.label(p.key);
      return label ? `${p.key} (${label})` : p.key;
    }
    return p.key;
  }

  private tokenDescription(position: number): string {
    return `token ${position} ${JSON.stringify(this.tokenText(this.analysis.trace.tokens[position]))}`;
  }

  private tokenText(id: number): string {
    return this.analysis.tracer.lm.tokenizer.tokenText(id);
  }

  scopes(frame: Frame): ScopeView[] {
    const p = frame.point;
    return [
      { name: 'Activations', variables: () => this.activationVars(p) },
      { name: 'Components', variables: () => this.componentVars(p) },
      { name: 'Logit lens', variables: () => this.lensVars(p) },
      { name: 'Base vs edited', variables: () => this.diffVars(p) },
    ];
  }

  private get pos(): number {
    return this.opts.position;
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
          { name: 'target', value: JSON.stringify(this.tokenText(this.opts.target)) },
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
          this.vectorVar('output (before bias)', m.outputTensor),
        ];
      }
      case 'component':
        return this.componentDetail(p.module!, p.component!);
    }
  }

  private componentDetail(module: string, c: number): VarNode[] {
    const a = this.analysis;
    const acts = SIDES.map((s) => a.activations(module, s, this.pos)!);
    const contrib = SIDES.map((s) => a.contributions(module, s, this.pos, this.opts.target));
    const f = a.factors(module)!;
    const vars: VarNode[] = [
      { name: 'activation', value: pair(acts[1][c], acts[0][c]) },
      { name: `contribution to ${JSON.stringify(this.tokenText(this.opts.target))}`, value: contributionText(contrib, c) },
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
      for (const c of this.rankedComponents(m).slice(0, TOP_K)) {
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

  private lensLogits(p: Point, side: Side): Float32Array {
    const a = this.analysis;
    // The model's own logits at the model frame, the logits line and the unembedding (the lens of the final residual equals them).
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
    const t = this.opts.target;
    return [
      { name: 'reads', value: source },
      { name: `target ${JSON.stringify(this.tokenText(t))}`, value: `p ${pair(probOf(logits[1], t), probOf(logits[0], t))}  rank ${rank(logits[1], t)} (base ${rank(logits[0], t)})` },
      ...edited.top.map((e, i) => ({ name: `${i + 1}. ${JSON.stringify(e.text)}`, value: `p ${pair(e.prob, probOf(logits[0], e.token))}  logit ${fmt(e.logit)}` })),
      { name: 'base top', value: base.top.slice(0, 5).map((e) => `${JSON.stringify(e.text)} ${fmt(e.prob)}`).join(', '), children: () => base.top.map((e, i) => ({ name: `${i + 1}. ${JSON.stringify(e.text)}`, value: `p ${fmt(e.prob)}  logit ${fmt(e.logit)}` })) },
    ];
  }

  private diffVars(p: Point): VarNode[] {
    const a = this.analysis;
    const vars: VarNode[] = [{ name: 'edit', value: this.opts.editDescription }];
    if (!a.trace.hasEdit) return vars;
    const d = a.firstDivergence(this.pos, this.tolerance);
    vars.push({ name: 'first divergence', value: d ? `${d.capture.id} (relative ${fmt(d.relative)})` : `none above ${this.tolerance}` });
    if (this.pos + 1 < a.length) {
      const [b, e] = SIDES.map((s) => a.tokenLosses(s)[this.pos]);
      vars.push({ name: 'loss at position', value: `${pair(e, b)}  Δ ${fmt(e - b)}` });
    }
    const changed = this.modulesIn(p).filter((m) => a.componentCount(m) > 0 && a.contributionKind(m) !== 'none');
    if (changed.length) {
      vars.push({
        name: `contributions to ${JSON.stringify(this.tokenText(this.opts.target))} that changed most`,
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
      const [b, e] = SIDES.map((s) => a.contributions(m, s, this.pos, this.opts.target).values!);
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
    const lines = [`${p.key} @ ${this.tokenDescription(this.pos)}, target ${JSON.stringify(this.tokenText(this.opts.target))}`];
    try {
      const [b, e] = SIDES.map((s) => a.topTokens(this.lensLogits(p, s), 3).map((t) => `${JSON.stringify(t.text)} ${fmt(t.prob)}`).join(', '));
      lines.push(`  predicts: ${e}${a.trace.hasEdit ? `  (base ${b})` : ''}`);
    } catch (err) {
      if (!(err instanceof ScalpelError)) throw err;
    }
    if (a.trace.hasEdit) {
      const d = a.firstDivergence(this.pos, this.tolerance);
      lines.push(`  edit: ${this.opts.editDescription}; first divergence: ${d ? `${d.capture.id} (relative ${fmt(d.relative)})` : 'none'}`);
    }
    const top = this.componentVars(p).filter((v) => v.children).slice(0, 3);
    if (top.length) lines.push(`  most active: ${top.map((v) => `${v.name} ${v.value}`).join('; ')}`);
    return lines.join('\n');
  }

  // ---- expressions -----------------------------------------------------------------------------

  /** Evaluates an expression at the current point: edited value, with base and Δ when they differ. */
  async evaluate(text: string, frame?: Frame): Promise<string> {
    const expr = parseExpression(text);
    const p = frame?.point ?? this.current;
    const [e, b] = [await evaluateExpression(expr, this.host('edited', p)), await evaluateExpression(expr, this.host('base', p))];
    if (typeof e === 'number' && typeof b === 'number') return e === b || !this.analysis.trace.hasEdit ? fmt(e) : `${fmt(e)}  (base ${fmt(b)}, Δ ${fmt(e - b)})`;
    return e === b ? String(e) : `${String(e)}  (base ${String(b)})`;
  }

  private host(side: Side, p: Point): ExpressionHost {
    const a = this.analysis;
    const str = (v: Value | undefined, what: string, start: number): string => {
      if (typeof v !== 'string') throw exprError(`${what} takes a string`, start);
      return v;
    };
    const token = (text: string, start: number): number => {
      try {
        return singleToken(a, text);
      } catch (err) {
        throw err instanceof ScalpelError ? exprError(err.message, start) : err;
      }
    };
    const component = (key: string, start: number) => {
      const m = /^(.+):(\d+)$/.exec(key);
      if (!m || !a.componentCount(m[1]) || Number(m[2]) >= a.componentCount(m[1])) throw exprError(`no component ${key} in the catalog`, start);
      return { module: m[1], index: Number(m[2]) };
    };
    return {
      side: (name) => (name === 'base' || name === 'edited' ? this.host(name, p) : undefined),
      name: (name, start) => {
        if (name === 'position') return this.pos;
        if (name === 'true' || name === 'false') return name === 'true';
        if (this.opts.datasets?.names.includes(name)) return name;
        const known = this.opts.datasets?.names.length ? `datasets: ${this.opts.datasets.names.join(', ')}` : 'no spec datasets; give a source, e.g. loss("udhr:deu")';
        throw exprError(`unknown name "${name}" (${known})`, start);
      },
      call: async (name, args, start) => {
        const arity = (n: number) => {
          if (args.length !== n) throw exprError(`${name}() takes ${n} argument${n === 1 ? '' : 's'}`, start);
        };
        switch (name) {
          case 'summary':
            arity(0);
            return this.summary(p);
          case 'abs':
            arity(1);
            if (typeof args[0] !== 'number') throw exprError('abs() takes a number', start);
            return Math.abs(args[0]);
          case 'component': {
            arity(1);
            const c = component(str(args[0], 'component()', start), start);
            return a.activations(c.module, side, this.pos)![c.index];
          }
          case 'gate': {
            arity(1);
            const key = str(args[0], 'gate()', start);
            const g = a.gateValues(key);
            if (!g) throw exprError(`${key} is not gated in this edit`, start);
            return g[this.pos];
          }
          case 'contribution': {
            arity(1);
            const c = component(str(args[0], 'contribution()', start), start);
            const r = a.contributions(c.module, side, this.pos, this.opts.target);
            if (!r.values) throw exprError(`no linear path from ${c.module} to the logits`, start);
            return r.values[c.index];
          }
          case 'logit':
          case 'prob': {
            arity(1);
            const t = token(str(args[0], `${name}()`, start), start);
            const logits = this.lensLogits(p, side);
            return name === 'logit' ? logits[t] : a.prob(logits, t);
          }
          case 'loss': {
            if (args.length === 0) {
              const l = a.tokenLosses(side);
              if (!l.length) throw exprError('the input is one token: it has no next token to score', start);
              return l.reduce((x, y) => x + y, 0) / l.length;
            }
            arity(1);
            if (!this.opts.datasets) throw exprError('loss(DATASET) is not available in this session', start);
            return (await this.opts.datasets.loss(str(args[0], 'loss()', start)))[side];
          }
          default:
            throw exprError(`unknown function ${name}() (known: loss, logit, prob, component, gate, contribution, summary, abs, base, edited)`, start);
        }
      },
    };
  }
}

/** The id of a text that is exactly one token of the model's vocabulary. */
export function singleToken(a: TraceAnalysis, text: string): number {
  const ids = a.tracer.lm.tokenizer.encode(text);
  if (ids.length !== 1) throw new ScalpelError(`${JSON.stringify(text)} is ${ids.length} tokens; name a single token`);
  const vocab = a.trace.structure.unembed?.dOut ?? a.tracer.lm.tokenizer.vocabSize;
  if (!Number.isInteger(ids[0]) || ids[0] < 0 || ids[0] >= vocab) throw new ScalpelError(`${JSON.stringify(text)} is not a token of the model's vocabulary`);
  return ids[0];
}

function buildListing(opts: RuntimeOptions): { listing: string; points: Point[] } {
  const a = opts.analysis;
  const s = a.trace.structure;
  const lines: string[] = [];
  const points: Point[] = [];
  const comps = (m: string) => a.componentCount(m);
  const total = s.modules.reduce((n, m) => n + comps(m.module), 0);
  const dModel = s.finalNorm ? a.tracer.weight('base', s.finalNorm.weight).length : undefined;
  lines.push(`model ${opts.modelName}  ${s.blocks.length} blocks${dModel ? `  d_model ${dModel}` : ''}${s.unembed ? `  vocab ${s.unembed.dOut}` : ''}  ${s.modules.length} modules  components ${total}`);
  points.push({ key: 'model', kind: 'model', depth: 0, line: 1 });
  const moduleLine = (module: string, dIn: number, dOut: number, indent: string, block?: string) => {
    lines.push(`${indent}${module}  (${dIn} → ${dOut})  components ${comps(module)}`);
    points.push({ key: module, kind: 'module', depth: 2, line: lines.length, block, module });
  };
  for (const b of s.blocks) {
    lines.push(b.name);
    points.push({ key: b.name, kind: 'block', depth: 1, line: lines.length, block: b.name });
    for (const m of [...b.sublayers.flatMap((x) => x.modules), ...b.otherModules]) moduleLine(m.module, m.dIn, m.dOut, '  ', b.name);
  }
  for (const m of s.topModules) moduleLine(m.module, m.dIn, m.dOut, '');
  lines.push('logits');
  points.push({ key: 'logits', kind: 'output', depth: 1, line: lines.length });
  return { listing: lines.join('\n') + '\n', points };
}

function contributionText(c: Contributions[], index: number): string {
  const [b, e] = c;
  if (!e.values || !b.values) return 'n/a (no linear path to the logits)';
  const how = {
    exact: 'exact',
    direct: 'approximate: direct path',
    secant: 'approximate: secant through the nonlinearity',
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
function pair(edited: number, base: number): string {
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
