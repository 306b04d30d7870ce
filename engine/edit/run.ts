/**
 * Running an edit plan: resolve components, tune scales on the named tuning data only, then
 * measure every dataset and every check. One preview session serves every edit of a spec (its
 * base results are cached per dataset), so checking five guards costs five edited runs.
 */
import { Dataset, datasetHash, loadDataset } from '../data';
import { ActivationCapture } from '../geometry/capture';
import { BaseIdentity, baseProbePath, readBaseProbe, writeBaseProbe } from '../geometry/base-probe';
import { ProbeDefinition, catalogMetadataSha256, planProbeDefinition } from '../geometry/probe-file';
import { modelSha256, sha256File } from '../identity';
import { Probe, ProbeScore, scoreProbe, trainProbe } from '../geometry/probe';
import { ScalpelError } from '../errors';
import { Shard, TokenizedDataset, tokenizeDataset } from '../evaluate';
import { LanguageModel, openLanguageModel } from '../lm';
import { RuntimeOptions, runtimeOf } from '../runtime';
import { CatalogTensors, openCatalogTensors } from '../catalog/read';
import * as path from 'node:path';
import { Check, CheckResult, runCheck, violation } from './checks';
import { EditPlan, PlanEdit, PlanProbe, PlanTune, guardChecks } from './plan';
import { DatasetDelta, PreviewSession } from './preview';
import { minimize, TraceEntry } from './tune';
import { GatedPaths, withGatedPaths } from './gate';
import { CatalogComponents, Component, ComponentSource, ScaleTerm, WeightEditor, checkDistinct } from './weights';

/**
 * Edits run together must scale disjoint components. Two edits of a spec that share a component are
 * alternatives: each is evaluated, previewed and debugged on its own, and applied one at a time
 * (`--edit`); applied together they are refused here, before any tuning (the checker says so as S405).
 */
export function checkDisjoint(edits: PlanEdit[]): void {
  const owner = new Map<string, PlanEdit>();
  for (const e of edits) {
    for (const key of e.components) {
      const first = owner.get(key);
      if (first && first !== e) {
        throw new ScalpelError(`edits ${first.name} and ${e.name} both scale ${key}: edits that share a component are alternatives, apply one of them (--edit ${first.name} or --edit ${e.name})`, e.origin?.file, e.origin);
      }
      owner.set(key, e);
    }
  }
}

export interface TuningRecord {
  /** Edits tuned, in coordinate order, and the values found. */
  edits: string[];
  values: number[];
  objective: string;
  /** The exact tuning tokens: ids (the first is the context start) and their text. */
  tokens: { dataset: string; ids: number[]; text: string[]; scored: number }[];
  trace: TraceEntry[];
  /** Whether the values came from the lock file instead of a search. */
  fromLock: boolean;
  /** Whether guards constrained the search. */
  constrained: boolean;
}

/** Edits with their scales settled (literal, from a lock, or tuned) and the weights they give: all a write needs. */
export interface ResolvedEdits {
  /** The edits applied together. */
  edits: string[];
  terms: ScaleTerm[];
  scales: Record<string, number>;
  weights: Map<string, Float32Array>;
  tuning?: TuningRecord;
}

/**
 * A probe's accuracy on one of its datasets (`name`): the share of the dataset's held-out tokens that the probe's
 * direction for it reads as that dataset (the true-positive rate of "is this token from DATA?"), for the probe
 * trained on the base model, scored on the base model's activations and on the edited model's of the same tokens.
 */
export interface ProbeAccuracy {
  probe: string;
  name: string;
  /** Held-out tokens scored. */
  tokens: number;
  base: number;
  edited: number;
  delta: number;
}

export interface EditOutcome extends ResolvedEdits {
  deltas: DatasetDelta[];
  /** The accuracies the outcome's accuracy checks read (empty without such checks, or when not measured). */
  accuracies: ProbeAccuracy[];
  checks: CheckResult[];
  /** The uniform loss ln V of the model's vocabulary: where a dataset is forgotten rather than inverted. */
  uniform: number;
}

export interface RunOptions {
  /** Tuned values to reuse (from a lock), by edit name. */
  locked?: Record<string, number>;
  /** Use each edit's kept guards as constraints while tuning (a penalty outside them). */
  guardsAsConstraints?: boolean;
  onStatus?: (message: string) => void;
  /** Stops tuning and measuring between ORT runs (the run rejects with CancelledError). */
  signal?: AbortSignal;
  /**
   * Measure only this shard's batches of each dataset (tuning still reads all of its data, so every shard
   * finds the same scales). The deltas then carry partial window sums and NaN means, and no check is run:
   * engine/edit/shard.ts merges the shards and runs the checks.
   */
  shard?: Shard;
  /**
   * false: leave the accuracy checks out (a preview measures losses only). Measuring them captures the probe's
   * datasets at its point on the edited model, and once per runner on the base model, where the probe is trained,
   * unless an earlier run kept that probe beside the spec.
   * A sharded run measures them in shard 0 only, whole.
   */
  probes?: boolean;
}

/** Everything a spec's edits need, opened once. */
export class PlanRunner {
  private readonly tokenized = new Map<string, TokenizedDataset>();
  private opened: PreviewSession | undefined;
  /** Each probe trained on the base model, with its held-out scores there: every edit is measured against the same probe. */
  private readonly baseProbes = new Map<string, Promise<{ probe: Probe; score: ProbeScore }>>();
  /** What every kept probe's identity names of the base model and the catalog, hashed once per runner. */
  private modelIdentity: Omit<BaseIdentity, 'data'> & { catalog: string } | undefined;

  private constructor(
    readonly plan: EditPlan,
    readonly lm: LanguageModel,
    readonly editor: WeightEditor,
    readonly gates: GatedPaths,
    readonly catalog: CatalogTensors | undefined,
    private readonly components: Map<string, Component>,
    private readonly createSession: () => Promise<PreviewSession>,
    private readonly runtime: RuntimeOptions,
  ) {}

  /**
   * `components`: another source than the plan's catalog (e.g. the neuron basis, for baselines).
   * `deferSession`: open the evaluation session on first need (`openSession`), so that an edit with settled
   * scales can be written even where the model cannot be evaluated.
   */
  static async open(plan: EditPlan, opts: RuntimeOptions & { components?: ComponentSource; deferSession?: boolean } = {}): Promise<PlanRunner> {
    const lm = openLanguageModel(plan.model.path, { tokenizer: plan.model.tokenizer, contextLength: plan.model.contextLength });
    if (!plan.edits.length) throw new ScalpelError('the spec has no edit', plan.specFile);
    for (const e of plan.edits) {
      if (!e.components.length) throw new ScalpelError(`edit ${e.name} selects no components`, e.origin?.file ?? plan.specFile, e.origin);
    }
    if (!plan.model.components && !opts.components) {
      throw new ScalpelError(`edit ${plan.edits[0].name} selects components but the model declares no component catalog`, plan.model.origin?.file ?? plan.specFile, plan.model.origin);
    }
    const catalog = plan.model.catalog ? CatalogTensors.open(plan.model.catalog) : plan.model.components ? openCatalogTensors(plan.model.components) : undefined;
    try {
      const components = new Map<string, Component>();
      const source = opts.components ?? (catalog && new CatalogComponents(catalog));
      if (source) for (const e of plan.edits) for (const key of e.components) components.set(key, source.get(key, e.origin));
      // Gated edits run in a graph that has their paths; one session serves every edit and scale.
      const gates = new GatedPaths(lm.onnx, plan.edits.flatMap((e) => (e.gate ? e.components.map((key) => ({ component: components.get(key)!, gate: e.gate!, origin: e.origin })) : [])));
      const editor = new WeightEditor(withGatedPaths(lm.onnx, gates), gates);
      const ungated = plan.edits.flatMap((e) => (e.gate ? [] : e.components.map((key) => components.get(key)!)));
      const runner = new PlanRunner(plan, lm, editor, gates, catalog, components, () => PreviewSession.create(lm, editor, [...editor.initializers(ungated), ...gates.scaleTensors], runtimeOf(opts)), runtimeOf(opts));
      if (!opts.deferSession) await runner.openSession();
      return runner;
    } catch (err) {
      catalog?.close();
      throw err;
    }
  }

  /** The evaluation session (opened by `open`, or by `openSession` when deferred). */
  get session(): PreviewSession {
    if (!this.opened) throw new ScalpelError('internal: the evaluation session was deferred and has not been opened');
    return this.opened;
  }

  async openSession(): Promise<PreviewSession> {
    this.opened ??= await this.createSession();
    return this.opened;
  }

  /** The session, or one error saying what needed it. */
  private async sessionFor(why: string): Promise<PreviewSession> {
    try {
      return await this.openSession();
    } catch (err) {
      if (err instanceof ScalpelError) throw new ScalpelError(`${why}: ${err.message}`, err.file, err.position);
      throw err;
    }
  }

  edit(name: string): PlanEdit {
    const e = this.plan.edits.find((x) => x.name === name);
    if (!e) throw new ScalpelError(`the spec has no edit named "${name}" (it has ${this.plan.edits.map((x) => x.name).join(', ') || 'none'})`, this.plan.specFile);
    return e;
  }

  /** A plan dataset's documents, read relative to the spec. */
  private documents(name: string): { dataset: Dataset; limit?: number; origin?: PlanEdit['origin'] } {
    const d = this.plan.datasets.find((x) => x.name === name);
    if (!d) throw new ScalpelError(`no dataset named "${name}"`, this.plan.specFile);
    const base = this.plan.specFile ? path.dirname(this.plan.specFile) : process.cwd();
    return { dataset: loadDataset(d.name, d.source, base), limit: d.limit, origin: d.origin };
  }

  dataset(name: string): TokenizedDataset {
    let t = this.tokenized.get(name);
    if (!t) {
      const d = this.documents(name);
      // `limit N tokens` scores N tokens: N + 1 ids, the first being the context start.
      t = tokenizeDataset(d.dataset, this.lm.tokenizer, d.limit !== undefined ? d.limit + 1 : Infinity);
      if (t.ids.length < 2) throw new ScalpelError(`dataset ${name} has no tokens to score`, d.origin?.file ?? this.plan.specFile, d.origin);
      this.tokenized.set(name, t);
    }
    return t;
  }

  private terms(edits: PlanEdit[], scales: Record<string, number>): ScaleTerm[] {
    const terms = edits.flatMap((e) => e.components.map((key) => ({ component: this.components.get(key)!, scale: scales[e.name], origin: e.origin, ...(e.gate ? { gate: e.gate } : {}) })));
    checkDistinct(terms);
    return terms;
  }

  /** The checks that belong to these edits: their kept guards and the expectations naming them. */
  checksFor(edits: PlanEdit[]): Check[] {
    const names = new Set(edits.map((e) => e.name));
    const guards = edits.flatMap((e) =>
      e.keep.flatMap((g) => {
        const guard = this.plan.guards.find((x) => x.name === g);
        if (!guard) throw new ScalpelError(`edit ${e.name} keeps an unknown guard "${g}"`, e.origin?.file ?? this.plan.specFile, e.origin);
        return guardChecks(guard, e.name);
      }),
    );
    const expectations = this.plan.expectations.filter((x) => !x.edit || names.has(x.edit));
    return [...guards, ...expectations];
  }

  /** Runs `editNames` together (all edits when empty): tune, measure, check. */
  async run(editNames: string[], opts: RunOptions = {}): Promise<EditOutcome> {
    return this.measure(await this.resolve(editNames, opts), opts);
  }

  /** Settles the scales of `editNames` (all edits when empty): literal, from `opts.locked`, or tuned (which evaluates). */
  async resolve(editNames: string[], opts: RunOptions = {}): Promise<ResolvedEdits> {
    const edits = editNames.length ? editNames.map((n) => this.edit(n)) : this.plan.edits;
    const scales: Record<string, number> = {};
    const tuned = edits.filter((e) => 'tune' in e.scale);
    for (const e of edits) if ('value' in e.scale) scales[e.name] = e.scale.value;
    // Checked before tuning, so that a clash fails fast.
    checkDisjoint(edits);
    let tuning: TuningRecord | undefined;
    if (tuned.length) tuning = await this.tune(edits, tuned, scales, opts);
    const terms = this.terms(edits, scales);
    return { edits: edits.map((e) => e.name), terms, scales, weights: this.editor.weights(terms), tuning };
  }

  /** Every dataset before and after the resolved edits, and their checks. */
  async measure(resolved: ResolvedEdits, opts: RunOptions = {}): Promise<EditOutcome> {
    const session = await this.openSession();
    const checks = this.checksFor(resolved.edits.map((n) => this.edit(n)));
    const names = [...new Set([...this.plan.datasets.map((d) => d.name)])];
    const deltas: DatasetDelta[] = [];
    let offset = 0;
    for (const name of names) {
      opts.onStatus?.(`measuring ${name}`);
      const ds = this.dataset(name);
      deltas.push(await session.delta(ds, resolved.weights, { signal: opts.signal, shard: opts.shard && { ...opts.shard, offset } }));
      offset += session.evaluator.batches(ds);
    }
    const withProbes = opts.probes !== false;
    const measured = withProbes ? checks : checks.filter((c) => !c.probe);
    const accuracies = withProbes && (opts.shard?.index ?? 0) === 0 ? await this.accuracies(resolved, measured, opts) : [];
    const results = opts.shard ? [] : measured.map((c) => runCheck(c, c.probe ? accuracies.find((a) => a.probe === c.probe && a.name === c.dataset)! : deltas.find((d) => d.name === c.dataset)!));
    return { ...resolved, deltas, accuracies, checks: results, uniform: Math.log(session.vocabSize) };
  }

  /** The accuracy of each probe the checks name, on each of its datasets, before and after the resolved edits. */
  private async accuracies(resolved: ResolvedEdits, checks: Check[], opts: RunOptions): Promise<ProbeAccuracy[]> {
    const out: ProbeAccuracy[] = [];
    for (const name of [...new Set(checks.flatMap((c) => (c.probe ? [c.probe] : [])))]) {
      const p = this.plan.probes?.find((x) => x.name === name);
      if (!p) throw new ScalpelError(`a check reads probe "${name}", which the plan does not declare`, this.plan.specFile);
      let base = this.baseProbes.get(name);
      if (!base) {
        base = this.baseProbe(p, opts);
        this.baseProbes.set(name, base);
        // A failed or cancelled training is not kept: the next run trains again.
        base.catch(() => this.baseProbes.delete(name));
      }
      const { probe, score } = await base;
      opts.onStatus?.(`scoring probe ${name} on ${resolved.edits.join(' + ')}`);
      const edited = scoreProbe(probe, await this.capture(p, resolved.weights, opts));
      p.datasets.forEach((dataset, t) => {
        if (!score.perTag[t].positives) throw new ScalpelError(`probe ${name}: dataset ${dataset} has no held-out tokens to score its accuracy on`, p.origin?.file ?? this.plan.specFile, p.origin);
        const before = score.perTag[t].truePositiveRate;
        const after = edited.perTag[t].truePositiveRate;
        out.push({ probe: name, name: dataset, tokens: score.perTag[t].positives, base: before, edited: after, delta: after - before });
      });
    }
    return out;
  }

  /** The probe trained on the base model and its held-out scores there: kept beside the spec from an earlier run, or trained now (and kept). */
  private async baseProbe(p: PlanProbe, opts: RunOptions): Promise<{ probe: Probe; score: ProbeScore }> {
    const kept = this.keptProbe(p);
    const found = kept && readBaseProbe(kept.file, kept.definition, kept.base);
    if (found) {
      opts.onStatus?.(`probe ${p.name} (${p.kind} on ${p.point}): trained on the base model by an earlier run (${path.relative(path.dirname(this.plan.specFile!), kept.file)})`);
      return found;
    }
    opts.onStatus?.(`training probe ${p.name} (${p.kind} on ${p.point}) on the base model`);
    const a = await this.capture(p, undefined, opts);
    const probe = await trainProbe(a, p.kind, { signal: opts.signal, runtime: this.runtime });
    const score = scoreProbe(probe, a);
    if (kept) {
      try {
        writeBaseProbe(kept.file, p.name, kept.definition, kept.base, probe, score);
      } catch (err) {
        // A folder it cannot write costs the next run a training, not this run its result.
        opts.onStatus?.(`probe ${p.name}: not kept for later runs: ${(err as Error).message}`);
      }
    }
    return { probe, score };
  }

  /**
   * Where the base-trained probe `p` is kept between runs (engine/geometry/base-probe.ts): beside the spec, named by
   * its definition (as its figures are) and the base model's identity. Undefined without a spec file or a catalog.
   */
  private keptProbe(p: PlanProbe): { file: string; definition: ProbeDefinition; base: BaseIdentity } | undefined {
    const catalog = this.plan.model.components ?? this.plan.model.catalog?.dir;
    if (!this.plan.specFile || !catalog) return undefined;
    try {
      this.modelIdentity ??= {
        model: modelSha256(this.lm.file),
        tokenizer: this.lm.tokenizer.source === 'bytes' ? 'bytes' : sha256File(this.lm.tokenizer.source),
        contextLength: this.lm.contextLength,
        catalog: catalogMetadataSha256(catalog),
      };
    } catch {
      return undefined;
    }
    const { catalog: catalogSha, ...model } = this.modelIdentity;
    const definition = planProbeDefinition(p, this.plan.datasets, catalogSha);
    const base: BaseIdentity = { ...model, data: Object.fromEntries(p.datasets.map((d) => [d, datasetHash(this.documents(d).dataset)])) };
    return { file: baseProbePath(path.dirname(this.plan.specFile), definition, base), definition, base };
  }

  /**
   * The probe's datasets at its point, each within its `limit N tokens` (the held-out documents and the kept sample
   * as `scalpel geometry` chooses them), on the base model or with the edit's weights (in the graph with the gated paths).
   */
  private async capture(p: PlanProbe, weights: Map<string, Float32Array> | undefined, opts: RunOptions) {
    let capture: ActivationCapture | undefined;
    try {
      capture = await ActivationCapture.create(this.lm, [p.point], { ...this.runtime, ...(weights ? { patches: weights, graph: this.editor.model } : {}) });
      const sources = p.datasets.map((tag) => {
        const { dataset, limit } = this.documents(tag);
        return { tag, dataset, ...(limit !== undefined ? { maxTokens: limit } : {}) };
      });
      return [...(await capture.datasets(sources, { signal: opts.signal })).values()][0];
    } catch (err) {
      // An unknown point or a dataset too small to hold tokens out: said at the probe's declaration.
      if (err instanceof ScalpelError && !err.file) throw new ScalpelError(`probe ${p.name}: ${err.message}`, p.origin?.file ?? this.plan.specFile, p.origin);
      throw err;
    } finally {
      await capture?.release();
    }
  }

  private async tune(edits: PlanEdit[], tuned: PlanEdit[], scales: Record<string, number>, opts: RunOptions): Promise<TuningRecord> {
    const specs = tuned.map((e) => (e.scale as { tune: PlanTune }).tune);
    const tokens = [...new Set(specs.flatMap((t) => t.datasets))].map((name) => {
      const ds = this.dataset(name);
      const ids = [...ds.ids];
      return { dataset: name, ids, text: ids.map((id) => this.lm.tokenizer.tokenText(id)), scored: ids.length - 1 };
    });
    const locked = opts.locked;
    const fromLock = Boolean(locked && tuned.every((e) => Number.isFinite(locked[e.name])));
    const declared = fromLock ? declaredVocabulary(this.lm) : undefined;
    const uniform = Math.log(declared ?? (await this.sessionFor(`edit ${tuned.map((e) => e.name).join(', ')} tunes its scale, which evaluates the model`)).vocabSize);
    const target = (t: PlanTune) => (t.toward === 'uniform' || t.toward === undefined ? uniform : t.toward);
    const objective = specs
      .map((t) => (t.objective === 'toward' ? `loss(${t.datasets.join(', ')}) toward ${t.toward === 'uniform' ? `uniform (ln V = ${uniform.toFixed(4)} nats)` : `${target(t)} nats`}` : `${t.objective} loss(${t.datasets.join(', ')})`))
      .join(' + ');
    if (fromLock) {
      tuned.forEach((e) => (scales[e.name] = locked![e.name]));
      return { edits: tuned.map((e) => e.name), values: tuned.map((e) => scales[e.name]), objective, tokens, trace: [], fromLock: true, constrained: false };
    }
    const constraints = opts.guardsAsConstraints ? this.checksFor(edits).filter((c) => c.kind === 'guard') : [];
    opts.onStatus?.(`tuning ${tuned.map((e) => e.name).join(', ')} on ${tokens.map((t) => `${t.scored} tokens of ${t.dataset}`).join(', ')}`);
    const f = async (x: number[]) => {
      const s = { ...scales };
      tuned.forEach((e, i) => (s[e.name] = x[i]));
      const w = this.editor.weights(this.terms(edits, s));
      let total = 0;
      for (const t of specs) {
        let loss = 0;
        for (const name of t.datasets) loss += (await this.session.evaluate(this.dataset(name), w, { signal: opts.signal })).loss / t.datasets.length;
        // A loss above the uniform loss ln V is confident mistakes, not less knowledge: maximizing
        // stops counting there, and among scales that reach it the smallest change (nearest 1) wins.
        total += t.objective === 'maximize' ? -Math.min(loss, uniform) : t.objective === 'toward' ? Math.abs(loss - target(t)) : loss;
      }
      total += 1e-6 * x.reduce((a, v) => a + Math.abs(v - 1), 0);
      // Each unit of guard violation costs more than any loss difference can gain.
      for (const c of constraints) total += 1e3 * violation(c, await this.session.delta(this.dataset(c.dataset), w, { signal: opts.signal }));
      return total;
    };
    const result = await minimize(f, specs.map((t) => [t.low, t.high]));
    tuned.forEach((e, i) => (scales[e.name] = result.x[i]));
    return { edits: tuned.map((e) => e.name), values: result.x, objective, tokens, trace: result.trace, fromLock: false, constrained: constraints.length > 0 };
  }

  async close(): Promise<void> {
    await this.opened?.release();
    this.catalog?.close();
  }
}

/** The vocabulary size the graph declares for its logits (their last dimension), when it is a number. */
function declaredVocabulary(lm: LanguageModel): number | undefined {
  const last = lm.onnx.outputs.find((o) => o.name === lm.logitsName)?.shape?.at(-1);
  return typeof last === 'number' && last > 0 ? last : undefined;
}
