/**
 * Launch configuration (`"type": "scalpel"`): the typed attributes, matching the schema under
 * `contributes.debuggers` in package.json, and the work of turning them into a DebugRuntime:
 * open the model and catalog, build the edited weights, tokenize the input, record both passes.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isNeuronKey, neuronKey, parseNeuronKey } from '../engine/catalog/key';
import { CatalogTensors, openCatalogTensors } from '../engine/catalog/read';
import { DataSource, loadDataset, parseDataArg } from '../engine/data';
import { lockFileFor } from '../engine/edit/apply';
import { catalogHash, lockedScales, readLock } from '../engine/edit/lock';
import { GatedPaths, gateText, withGatedPaths } from '../engine/edit/gate';
import { CatalogComponents, Component, WeightEditor, neuronComponent } from '../engine/edit/weights';
import { ScalpelError } from '../engine/errors';
import { modelSha256 } from '../engine/identity';
import { Evaluator, tokenizeDataset } from '../engine/evaluate';
import { LanguageModel, openLanguageModel } from '../engine/lm';
import { OnnxModel } from '../engine/onnx/model';
import { moduleWeights } from '../engine/onnx/modules';
import { initializersAsInputs } from '../engine/onnx/rewrite';
import { RuntimeOptions, parseExecutionProviders } from '../engine/runtime';
import { TraceAnalysis } from '../engine/trace/analysis';
import { SIDES, Side, Tracer, patchFeeds } from '../engine/trace/trace';
import { WorstToken, largestLossIncrease } from '../engine/trace/worst';
import { loadPlan } from '../language/plan';
import { singleToken } from './builtins';
import type { StopContext } from './requests';
import { DebugRuntime } from './runtime';
import { fmt } from './scopes';

export interface ScalpelLaunchArgs {
  /** A .scalpel spec: its model, catalog, datasets and edits. */
  spec?: string;
  /** The spec's edit to debug; optional when the spec has one edit. */
  edit?: string;
  /** With a spec: the edit's scale factor, overriding its literal or locked tuned value (e.g. what a preview just tuned). */
  scale?: number;
  /** Without a spec: a model folder (model.onnx, tokenizer.json) or .onnx file. */
  model?: string;
  /** A component catalog folder; default: `components/` beside the model, when present. */
  catalog?: string;
  /** Without a spec: scale factors by component key (`h.1.mlp.c_fc:41`, or a neuron `h.1.mlp.c_fc:n41`). */
  scales?: Record<string, number>;
  /** The text to run. */
  input?: string;
  /**
   * Or a dataset example: `SOURCE#N` (`udhr:deu#3`) or, with a spec, `DATASET#N`: the N-th document;
   * `#worst`: the document and token where the edit raises the loss most (position defaults to that token).
   */
  example?: string;
  /** Token index to debug; negative counts from the end; default the last token. */
  position?: number;
  /** Token whose logit contributions are shown; default the input's next token, else the base model's top prediction. */
  target?: string;
  stopOnEntry?: boolean;
  /** Stop first where base and edited first differ by more than `tolerance`. */
  stopOnDivergence?: boolean;
  /** Relative L2 difference above which base and edited count as diverged (default 1e-4). */
  tolerance?: number;
  /** Execution providers in order, as `scalpel.executionProvider` (`cpu`, `cuda`, `cuda,cpu`); default cpu. */
  executionProvider?: string;
  /** The GPU for cuda and tensorrt. */
  deviceId?: number;
}

/** Each attribute's JSON type: the schema test compares it with package.json; `satisfies` keeps it complete. */
export const LAUNCH_ATTRIBUTES = {
  spec: 'string',
  edit: 'string',
  scale: 'number',
  model: 'string',
  catalog: 'string',
  scales: 'object',
  input: 'string',
  example: 'string',
  position: 'integer',
  target: 'string',
  stopOnEntry: 'boolean',
  stopOnDivergence: 'boolean',
  tolerance: 'number',
  executionProvider: 'string',
  deviceId: 'integer',
} as const satisfies Record<keyof ScalpelLaunchArgs, 'string' | 'integer' | 'number' | 'boolean' | 'object'>;

function launchRuntimeOptions(args: ScalpelLaunchArgs, onFallback: (message: string) => void): RuntimeOptions {
  const executionProviders = args.executionProvider === undefined ? undefined : parseExecutionProviders(args.executionProvider);
  return { executionProviders, deviceId: args.deviceId, onFallback };
}

/** Editors check the schema as users type; a launch request can still carry anything. */
function checkTypes(args: Record<string, unknown>): void {
  for (const [key, type] of Object.entries(LAUNCH_ATTRIBUTES)) {
    const v = args[key];
    if (v === undefined) continue;
    const ok =
      type === 'integer' ? Number.isInteger(v) :
      type === 'object' ? typeof v === 'object' && v !== null && !Array.isArray(v) :
      typeof v === type;
    if (!ok) throw new ScalpelError(`launch attribute "${key}" must be ${type === 'integer' || type === 'object' ? `an ${type}` : `a ${type}`}, not ${JSON.stringify(v)}`);
  }
}

export interface Launched {
  runtime: DebugRuntime;
  /** What was launched, as debugger/requests.ts's StopContext reports it. */
  launched: Pick<StopContext, 'spec' | 'edit' | 'scale' | 'example'>;
  /** Lines for the Debug Console. */
  summary: string[];
  release(): Promise<void>;
}

const EXAMPLE_MAX_TOKENS = 1 << 20;
/** loss(DATASET) scores at most this many tokens per side unless the spec sets a limit. */
const LOSS_MAX_TOKENS = 4096;

interface NamedDataset {
  source: DataSource;
  maxTokens?: number;
  baseDir: string;
}

/** What a launch debugs: the model, its catalog, the edited weights, and the spec's named datasets. */
interface Subject {
  lm: LanguageModel;
  catalog: CatalogTensors | undefined;
  patches: Map<string, Float32Array> | undefined;
  /** Scale factor per edited catalog component (for the edited side's component activations). */
  editScales: Map<string, number>;
  /** A gated edit's paths, and the graph that has them (both sides run it; `patches` sets its scales). */
  gates?: { paths: GatedPaths; model: OnnxModel };
  description: string;
  datasets: Map<string, NamedDataset>;
  /** With a spec: its file, the edit debugged and its scale. */
  spec?: { file: string; edit?: string; scale?: number };
}

/** `signal` stops the launch between ORT runs (finding the worst token, tracing): it rejects with CancelledError. */
export async function launchRuntime(args: ScalpelLaunchArgs, signal?: AbortSignal): Promise<Launched> {
  checkTypes(args as Record<string, unknown>);
  if (args.input !== undefined && args.example !== undefined) throw new ScalpelError('give "input" or "example", not both');
  if (args.input === undefined && args.example === undefined) throw new ScalpelError('the launch configuration needs "input" (text) or "example" (SOURCE#N, or DATASET#N with a spec)');
  const subject = args.spec ? fromSpec(args) : fromModel(args);
  const { lm, catalog, patches, datasets } = subject;
  const fallbacks: string[] = [];
  const rt = launchRuntimeOptions(args, (m) => fallbacks.push(m));
  let tracer: Tracer | undefined;
  const evaluators = new Map<Side, Promise<Evaluator>>();
  const evaluator = (side: Side) => {
    const key = patches ? side : 'base';
    const graph = subject.gates?.model ?? lm.onnx;
    if (!evaluators.has(key)) evaluators.set(key, Evaluator.create(lm, key === 'edited' ? { ...rt, model: graph, edit: initializersAsInputs(graph, [...patches!.keys()]), feeds: patchFeeds(graph, patches!) } : rt));
    return evaluators.get(key)!;
  };
  try {
    const gates = subject.gates;
    tracer = await Tracer.create(lm, { ...rt, patches, ...(gates ? { model: gates.model, record: gates.paths.modules.map((m) => m.gateTensor) } : {}) });
    let text = args.input;
    let worst: WorstToken | undefined;
    let example: StopContext['example'];
    if (text === undefined) {
      const { dataset, n } = parseExample(args.example!);
      const ds = loadNamed(dataset, datasets);
      if (n === 'worst') {
        if (!patches) throw new ScalpelError(`"example": ${args.example} needs an edit: without one, no token's loss changes`);
        worst = await largestLossIncrease(await evaluator('base'), await evaluator('edited'), ds, undefined, signal);
        text = ds.documents[worst.document].text;
      } else {
        if (n >= ds.documents.length) throw new ScalpelError(`"example": ${dataset} has ${ds.documents.length} documents (0..${ds.documents.length - 1}), not #${n}`);
        text = ds.documents[n].text;
      }
      example = { dataset, document: worst?.document ?? (n as number) };
    }
    const ids = tokenizeDataset({ name: 'input', source: 'input', documents: [{ text, tags: {} }] }, lm.tokenizer, EXAMPLE_MAX_TOKENS).ids;
    const tokens = ids.subarray(0, lm.contextLength);
    if (tokens.length === 0) throw new ScalpelError('the input has no tokens');
    const trace = await tracer.trace(tokens, signal);
    const analysis = new TraceAnalysis(tracer, trace, catalog, subject.editScales, gates?.paths);
    const position = resolvePosition(args.position ?? worst?.position, tokens.length);
    const target = resolveTarget(analysis, args.target, position);
    const runtime = new DebugRuntime({
      analysis,
      modelName: path.basename(path.dirname(lm.file)) || path.basename(lm.file),
      editDescription: subject.description,
      position,
      target,
      tolerance: args.tolerance,
      datasets: { names: [...datasets.keys()], loss: (name) => datasetLoss(lm, evaluator, datasets, name) },
    });
    const summary = [
      `traced ${tokens.length} tokens${ids.length > tokens.length ? ` (input cut to the model's context of ${lm.contextLength})` : ''} through ${trace.hasEdit ? 'base and edited' : 'the base model (no edit)'}; position ${position}, target ${JSON.stringify(lm.tokenizer.tokenText(target))}`,
      `edit: ${subject.description}`,
      ...fallbacks.map((m) => `warning: ${m}`),
    ];
    runtime.prepare();
    const losses = SIDES.map((side) => analysis.tokenLosses(side));
    const predicted = SIDES.map((side) => analysis.topTokens(analysis.logits(side, position), 1)[0]);
    // The logit lens reads the final norm and unembedding weights on first use: done now rather than at the first step.
    if (trace.structure.finalNorm && trace.structure.unembed) for (const side of SIDES) analysis.lens(trace.structure.finalNorm.input, side, position);
    const said = (i: number) => `${JSON.stringify(predicted[i].text)} (p ${fmt(predicted[i].prob)})`;
    const scored = losses[0].length ? `loss of the input: ${fmt(mean(losses[1]))}${trace.hasEdit ? ` (base ${fmt(mean(losses[0]))})` : ''} nats/token; ` : '';
    summary.push(`${scored}predicted next: ${said(1)}${trace.hasEdit ? `, base ${said(0)}` : ''}`);
    if (worst) {
      summary.push(`largest loss increase in ${args.example!.replace(/#worst$/, '')}: document ${worst.document}, token ${worst.position}: ${fmt(worst.base)} → ${fmt(worst.edited)} nats`);
    }
    if (trace.hasEdit) {
      const d = analysis.firstDivergence(position, runtime.tolerance);
      summary.push(d ? `base and edited first diverge at ${d.capture.id} (relative ${fmt(d.relative)})` : `base and edited agree within ${runtime.tolerance} at this position`);
    }
    const owned = tracer;
    const spec = subject.spec;
    return {
      runtime,
      launched: { ...(spec ? { spec: spec.file, edit: spec.edit, scale: spec.scale } : {}), ...(example ? { example } : {}) },
      summary,
      async release() {
        for (const e of evaluators.values()) await e.then((ev) => ev.release(), () => undefined);
        await owned.release();
        catalog?.close();
      },
    };
  } catch (err) {
    await tracer?.release();
    for (const e of evaluators.values()) await e.then((ev) => ev.release(), () => undefined);
    catalog?.close();
    throw err;
  }
}

function fromModel(args: ScalpelLaunchArgs): Subject {
  if (!args.model) throw new ScalpelError('the launch configuration needs "spec" or "model"');
  const lm = openLanguageModel(args.model);
  const catalogDir = args.catalog ?? defaultCatalog(lm);
  const catalog = catalogDir ? openCatalogTensors(catalogDir) : undefined;
  try {
    return { lm, catalog, ...editFromScales(lm, catalog, args.scales ?? {}), datasets: new Map() };
  } catch (err) {
    catalog?.close();
    throw err;
  }
}

/**
 * A spec's edit, through the same edit plan `scalpel apply` uses (language/plan.ts): its components
 * (selectors resolved against the catalog) and its scale, literal or tuned. A tuned scale comes from
 * "scale", else from the spec's lock file (`scalpel apply` writes it), valid only for this very spec
 * text, model and catalog; tuning inside a launch would take longer than a launch may.
 */
function fromSpec(args: ScalpelLaunchArgs): Subject {
  if (args.model || args.scales) throw new ScalpelError('with "spec", the model and the edit come from the spec: drop "model" and "scales"', args.spec);
  if (args.scale !== undefined && !Number.isFinite(args.scale)) throw new ScalpelError('"scale" must be a finite number', args.spec);
  const plan = loadPlan(args.spec!);
  const specFile = plan.specFile!;
  const edit = args.edit !== undefined ? plan.edits.find((e) => e.name === args.edit) : plan.edits.length === 1 ? plan.edits[0] : undefined;
  if (args.edit !== undefined && !edit) throw new ScalpelError(`the spec has no edit named "${args.edit}" (it has ${plan.edits.map((e) => e.name).join(', ') || 'none'})`, specFile);
  if (!edit && plan.edits.length > 1) throw new ScalpelError(`the spec has ${plan.edits.length} edits (${plan.edits.map((e) => e.name).join(', ')}): name one with "edit"`, specFile);
  const lm = openLanguageModel(plan.model.path, { tokenizer: plan.model.tokenizer, contextLength: plan.model.contextLength });
  const catalogDir = args.catalog ?? plan.model.components;
  const catalog = catalogDir ? openCatalogTensors(catalogDir) : undefined;
  const datasets = new Map(plan.datasets.map((d) => [d.name, { source: d.source, maxTokens: d.limit, baseDir: path.dirname(specFile) }]));
  try {
    if (!edit) return { lm, catalog, patches: undefined, editScales: new Map(), description: 'none: the spec has no edit (edited = base)', datasets, spec: { file: path.resolve(specFile) } };
    let scale: number;
    let how = '';
    if (args.scale !== undefined) {
      scale = args.scale;
      how = ' (from the launch configuration)';
    } else if ('value' in edit.scale) {
      scale = edit.scale.value;
    } else {
      const lockFile = lockFileFor(specFile);
      const c = catalog!.catalog;
      const locked = lockedScales(readLock(lockFile), plan.specText!, modelSha256(lm.file), catalogHash(c.dir, c.tensors ?? 'components.safetensors'));
      if (locked?.[edit.name] === undefined) {
        throw new ScalpelError(`edit ${edit.name} tunes its scale and ${path.basename(lockFile)} holds no tuned value for this spec, model and catalog: run \`scalpel apply\` first, or give "scale"`, specFile, edit.origin);
      }
      scale = locked[edit.name];
      how = ` (tuned, from ${path.basename(lockFile)})`;
    }
    const components = new CatalogComponents(catalog!);
    const keys = edit.components;
    const terms = keys.map((key) => ({ component: components.get(key, edit.origin), scale, ...(edit.gate ? { gate: edit.gate } : {}) }));
    // A gated edit traces the graph with its gated path (as `scalpel apply` writes it), scale fed as an input.
    const paths = edit.gate ? new GatedPaths(lm.onnx, terms.map((t) => ({ component: t.component, gate: edit.gate!, origin: edit.origin }))) : undefined;
    const gates = paths && { paths, model: withGatedPaths(lm.onnx, paths) };
    const patches = new WeightEditor(gates?.model ?? lm.onnx, paths).weights(terms);
    const shown = keys.length <= 3 ? keys.join(', ') : `${keys.slice(0, 3).join(', ')} and ${keys.length - 3} more`;
    const gated = edit.gate ? ` ${gateText(edit.gate)}` : '';
    return { lm, catalog, patches, editScales: new Map(keys.map((k) => [k, scale])), gates, description: `${edit.name}: ${shown} × ${fmt(scale)}${gated}${how}`, datasets, spec: { file: path.resolve(specFile), edit: edit.name, scale } };
  } catch (err) {
    catalog?.close();
    throw err;
  }
}

function defaultCatalog(lm: LanguageModel): string | undefined {
  const dir = path.join(path.dirname(lm.file), 'components');
  return fs.existsSync(path.join(dir, 'catalog.json')) ? dir : undefined;
}

function mean(x: Float32Array): number {
  return x.reduce((a, b) => a + b, 0) / x.length;
}

/** Scale factors by key → patched initializers, through the edit engine's weight editor. */
function editFromScales(lm: LanguageModel, catalog: CatalogTensors | undefined, scales: Record<string, number>) {
  const entries = Object.entries(scales);
  if (!entries.length) return { patches: undefined, editScales: new Map<string, number>(), description: 'none (base only: edited = base)' };
  const editor = new WeightEditor(lm.onnx);
  const fromCatalog = catalog ? new CatalogComponents(catalog) : undefined;
  const terms = entries.map(([key, scale]) => {
    if (typeof scale !== 'number' || !Number.isFinite(scale)) throw new ScalpelError(`"scales": the factor for ${key} must be a number`);
    const neuron = parseNeuronKey(key);
    let component: Component;
    if (neuron) component = neuronComponent(lm.onnx, editor.module(neuron.module), neuron.side, neuron.index);
    else if (fromCatalog) component = fromCatalog.get(key);
    else {
      const first = moduleWeights(lm.onnx)[0]?.module;
      throw new ScalpelError(`"scales": ${key} needs a component catalog (or name a neuron, e.g. ${first ? neuronKey(first, 'out', 0) : '<module>:n<index>'})`);
    }
    return { component, scale };
  });
  const editScales = new Map(terms.filter((t) => !isNeuronKey(t.component.key)).map((t) => [t.component.key, t.scale]));
  return { patches: editor.weights(terms), editScales, description: entries.map(([k, s]) => `${k} × ${s}`).join(', ') };
}

/** `SOURCE#N` or, with a spec, `DATASET#N`: the N-th document; `#worst`: the one where the edit raises a token's loss most. */
function parseExample(example: string): { dataset: string; n: number | 'worst' } {
  const m = /^(.*)#(\d+|worst)$/s.exec(example);
  if (!m) throw new ScalpelError(`"example" must be SOURCE#N or DATASET#N (e.g. udhr:deu#3, german#worst), not ${JSON.stringify(example)}`);
  return { dataset: m[1], n: m[2] === 'worst' ? 'worst' : Number(m[2]) };
}

function resolvePosition(position: number | undefined, length: number): number {
  if (position === undefined) return length - 1;
  if (!Number.isInteger(position) || position >= length || position < -length) {
    throw new ScalpelError(`"position" ${position} is outside the input's ${length} tokens (0..${length - 1}, or -1..-${length} from the end)`);
  }
  return position < 0 ? length + position : position;
}

function resolveTarget(a: TraceAnalysis, target: string | undefined, position: number): number {
  if (target !== undefined) {
    try {
      return singleToken(a, target);
    } catch (err) {
      throw err instanceof ScalpelError ? new ScalpelError(`"target": ${err.message}`) : err;
    }
  }
  if (position + 1 < a.length) return a.trace.tokens[position + 1];
  return a.topTokens(a.logits('base', position), 1)[0].token;
}

function loadNamed(name: string, datasets: Map<string, NamedDataset>) {
  const named = datasets.get(name);
  return named ? loadDataset(name, named.source, named.baseDir) : loadDataset(name, parseDataArg(name));
}

/** loss(DATASET or SOURCE) on both sides. */
async function datasetLoss(lm: LanguageModel, evaluator: (side: Side) => Promise<Evaluator>, datasets: Map<string, NamedDataset>, name: string) {
  // `limit N tokens` scores N tokens: N + 1 ids, the first being the context start.
  const limit = datasets.get(name)?.maxTokens;
  const ds = tokenizeDataset(loadNamed(name, datasets), lm.tokenizer, limit !== undefined ? limit + 1 : LOSS_MAX_TOKENS);
  const [base, edited] = [(await (await evaluator('base')).evaluate(ds)).loss, (await (await evaluator('edited')).evaluate(ds)).loss];
  return { base, edited };
}
