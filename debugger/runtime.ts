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
import { ScalpelError } from '../engine/errors';
import { TraceAnalysis } from '../engine/trace/analysis';
import { blockOutputs } from '../engine/geometry/points';
import { Capture } from '../engine/trace/graph';
import { SIDES, Side } from '../engine/trace/trace';
import { DatasetLosses, expressionHost } from './builtins';
import { Expr, evaluateExpression, parseExpression, truthy } from './expression';
import type { Point } from './point';
import type { StopContext } from './requests';
import { ScopeView, StopView, fmt } from './scopes';

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

export interface Frame {
  /** Index from the top (0 = the current point). */
  index: number;
  name: string;
  line: number;
  point: Point;
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
  private readonly view: StopView;

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
    this.view = new StopView({ analysis: opts.analysis, position: opts.position, target: opts.target, editDescription: opts.editDescription, tolerance: this.tolerance, rankedComponents: (m) => this.rankedComponents(m) });
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
    if (p.kind === 'model') return `${this.opts.modelName} @ ${this.view.tokenDescription(this.opts.position)}`;
    if (p.kind === 'component') {
      const label = this.analysis.label(p.key);
      return label ? `${p.key} (${label})` : p.key;
    }
    return p.key;
  }

  scopes(frame: Frame): ScopeView[] {
    return this.view.scopes(frame.point);
  }

  /** A frame's stop (default: the current one) as the Geometry panel names it: debugger/requests.ts's StopContext, less the launch's part. */
  stopContext(frame?: Frame): Pick<StopContext, 'point' | 'geometryPoint' | 'position' | 'token'> {
    const p = frame?.point ?? this.current;
    const position = this.opts.position;
    return { point: p.key, geometryPoint: this.geometryPoint(p), position, token: this.view.tokenText(this.analysis.trace.tokens[position]) };
  }

  /** The capture point activation geometry reads at a stop point (`StopContext.geometryPoint`). */
  private geometryPoint(p: Point): string {
    const outputs = blockOutputs(this.analysis.trace.structure);
    if (p.kind === 'model') return 'embed';
    if (p.kind === 'block' && outputs.includes(`${p.block}.resid`)) return `${p.block}.resid`;
    if (p.module && p.block) return p.module;
    return outputs[outputs.length - 1] ?? 'embed';
  }

  /** One paragraph about a stop, for the Debug Console. */
  summary(p: Point): string {
    return this.view.summary(p);
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

  private host(side: Side, point: Point) {
    return expressionHost({ analysis: this.analysis, view: this.view, point, side, position: this.opts.position, target: this.opts.target, datasets: this.opts.datasets });
  }
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

