/**
 * The extension's model worker: a child process (forked by extension/jobs.ts) that runs one job —
 * preview, evaluate, apply, review, geometry — with the engine and exits. Running models here keeps the
 * extension host's thread free. A cancel message aborts the job's signal (the engine stops between ORT runs,
 * and an apply cancelled before its write writes nothing); extension/jobs.ts kills the process if it has not exited soon after.
 */
import * as path from 'node:path';
import { keyModule } from '../engine/catalog/key';
import { openCatalogTensors, readCatalogMetadata } from '../engine/catalog/read';
import { ScalpelError, readTextFile } from '../engine/errors';
import { applyPlan } from '../engine/edit/apply';
import { gateText } from '../engine/edit/gate';
import { inUnit } from '../engine/edit/checks';
import { lockMatchesOutput, readLock } from '../engine/edit/lock';
import { EditPlan } from '../engine/edit/plan';
import { linspace, sweep } from '../engine/edit/preview';
import { EditOutcome, PlanRunner } from '../engine/edit/run';
import { TokenizedDataset } from '../engine/evaluate';
import { RuntimeOptions, parseExecutionProviders } from '../engine/runtime';
import { openModel, readFloatTensor } from '../engine/onnx/model';
import { moduleWeights } from '../engine/onnx/modules';
import { bestSelectivity } from '../language/catalog';
import { analyze, defaultEnv } from '../language/checker';
import { loadPlan, lockedFor } from '../language/plan';
import { measureGeometry } from '../engine/geometry';
import { blockOutputs, inForwardOrder } from '../engine/geometry/points';
import { analyzeModel } from '../engine/trace/graph';
import { specSubject, subjectModel } from '../language/geometry';
import type { CancelRequest, CatalogView, CheckView, DatasetView, GeometryData, Job, JobResult, JobRuntime, PreviewResult, ReviewResult, WorkerMessage } from './protocol';

const send = (m: WorkerMessage) => process.send!(m);

/** The one job's cancellation. */
const cancel = new AbortController();
const signal = cancel.signal;

/** The settings' runtime, checked here (a bad setting is the job's error); a fallback is shown as a status line. */
function runtimeOptions(r: JobRuntime | undefined): RuntimeOptions {
  const executionProviders = r?.executionProvider ? parseExecutionProviders(r.executionProvider) : undefined;
  return { threads: r?.threads, executionProviders, deviceId: r?.deviceId, onFallback: (m) => send({ type: 'status', message: `warning: ${m}` }) };
}

function checkViews(o: EditOutcome): CheckView[] {
  return o.checks.map((c) => ({
    kind: c.check.kind,
    edit: c.check.edit ?? o.edits.join('+'),
    dataset: c.check.dataset,
    guard: c.check.guard,
    pass: c.pass,
    value: c.value,
    bound: c.check.bound,
    unit: c.check.unit,
    ...(c.check.probe ? { probe: c.check.probe } : {}),
    ...(c.goal ? { goal: c.goal } : {}),
    message: c.message,
    line: c.check.origin?.line,
  }));
}

function datasetViews(plan: EditPlan, o: EditOutcome): DatasetView[] {
  const edits = plan.edits.filter((e) => o.edits.includes(e.name));
  const targets = new Set<string>([
    ...edits.flatMap((e) => ('tune' in e.scale ? e.scale.tune.datasets : [])),
    ...plan.expectations.filter((x) => (!x.edit || o.edits.includes(x.edit)) && x.change !== 'moves').map((x) => x.dataset),
  ]);
  const kept = new Set(edits.flatMap((e) => e.keep));
  return o.deltas.map((d) => ({
    name: d.name,
    tokens: d.tokens,
    base: d.base,
    edited: d.edited,
    delta: d.delta,
    role: targets.has(d.name) ? 'target' : 'off-target',
    thresholds: plan.guards
      .filter((g) => kept.has(g.name) && g.datasets.includes(d.name))
      // The guard's bound in nats: inUnit is linear in Δ, so the bound over inUnit(1 nat) converts it (its goal too).
      .map((g) => ({ guard: g.name, nats: g.threshold / inUnit(1, g.unit, d.base), ...(g.goal === undefined ? {} : { goalNats: g.goal / inUnit(1, g.unit, d.base) }) })),
  }));
}

/** The first `tokens` scored tokens of a tokenized dataset (its first `tokens + 1` ids). */
function prefix(ds: TokenizedDataset, tokens: number): TokenizedDataset {
  if (ds.ids.length <= tokens + 1) return ds;
  return { ...ds, ids: ds.ids.subarray(0, tokens + 1), documentStarts: ds.documentStarts.filter((s) => s <= tokens) };
}

async function preview(job: Extract<Job, { kind: 'preview' }>): Promise<PreviewResult> {
  const started = performance.now();
  // An unsaved text is its own spec: the lock matches (or not) against it, not against the file on disk.
  const plan = loadPlan(job.spec, job.text);
  const runner = await PlanRunner.open(plan, runtimeOptions(job.runtime));
  try {
    const edit = job.edit ? runner.edit(job.edit) : plan.edits[0];
    // A preview measures losses as the spec is typed; probe accuracies are for Evaluate, Apply and Test Explorer runs.
    const o = await runner.run([edit.name], { locked: lockedFor(runner), signal, probes: false, onStatus: (message) => send({ type: 'status', message }) });
    const scale = o.scales[edit.name];
    // The sweep is a shape, not a measurement: each dataset's first sweepTokens tokens keep it to seconds.
    const datasets = plan.datasets.map((d) => prefix(runner.dataset(d.name), job.sweepTokens));
    // From ablation (0) through the base model (1) to the edit's own scale, whichever side it lies.
    const scales = [...new Set([...linspace(Math.min(0, scale), Math.max(1, scale), job.sweepPoints), scale])].sort((a, b) => a - b);
    send({ type: 'status', message: `sweeping ${scales.length} scales` });
    const rows = await sweep(runner.session, datasets, scales, (s) => runner.editor.weights(o.terms.map((t) => ({ ...t, scale: s }))), signal);
    const tokenizer = runner.lm.tokenizer;
    const heatmap: PreviewResult['heatmap'] = {};
    for (const d of o.deltas) {
      const ids = runner.dataset(d.name).ids;
      // perToken[i] scores ids[i + 1].
      heatmap[d.name] = Array.from(d.perToken.subarray(0, job.heatmapTokens), (delta, i) => ({ text: tokenizer.tokenText(ids[i + 1]), delta }));
    }
    return {
      spec: job.spec,
      edit: edit.name,
      scale,
      components: o.terms.map((t) => ({ key: t.component.key, label: t.component.label, module: t.component.module, ...(t.gate ? { gate: gateText(t.gate) } : {}) })),
      datasets: datasetViews(plan, o),
      checks: checkViews(o),
      sweep: rows.map((r) => ({ scale: r.scale, deltas: Object.fromEntries(r.deltas.map((d) => [d.name, d.delta])) })),
      sweepTokens: job.sweepTokens,
      heatmap,
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    await runner.close();
  }
}

async function run(job: Job): Promise<JobResult> {
  switch (job.kind) {
    case 'preview':
      return preview(job);
    case 'evaluate': {
      const started = performance.now();
      const plan = loadPlan(job.spec);
      const runner = await PlanRunner.open(plan, runtimeOptions(job.runtime));
      try {
        const locked = lockedFor(runner);
        const outcomes: EditOutcome[] = [];
        // Each edit on its own, as `scalpel eval SPEC` does.
        for (const e of plan.edits) outcomes.push(await runner.run([e.name], { locked, signal, onStatus: (message) => send({ type: 'status', message: `${e.name}: ${message}` }) }));
        return {
          spec: job.spec,
          edits: outcomes.map((o) => ({ edit: o.edits[0], scale: o.scales[o.edits[0]], datasets: datasetViews(plan, o) })),
          checks: outcomes.flatMap(checkViews),
          seconds: (performance.now() - started) / 1000,
        };
      } finally {
        await runner.close();
      }
    }
    case 'apply': {
      const started = performance.now();
      const plan = loadPlan(job.spec);
      const runner = await PlanRunner.open(plan, { ...runtimeOptions(job.runtime), deferSession: true });
      try {
        const r = await applyPlan(runner, { edits: job.edits, outFile: job.out, signal, onStatus: (message) => send({ type: 'status', message }) });
        if (!r.outcome) throw new ScalpelError(`${r.outFile} and ${r.lockFile} are written, but ${r.unmeasured}`, job.spec);
        return { spec: job.spec, out: r.outFile, lock: r.lockFile, checks: checkViews(r.outcome), datasets: datasetViews(plan, r.outcome), seconds: (performance.now() - started) / 1000 };
      } finally {
        await runner.close();
      }
    }
    case 'review':
      return review(job.spec);
    case 'catalog':
      return catalogView(job.spec);
    case 'geometry':
      return geometry(job);
  }
}

/** Every block's output for the spec's checked datasets, base and edited, as `scalpel geometry --spec --layers` computes it. */
async function geometry(job: Extract<Job, { kind: 'geometry' }>): Promise<GeometryData> {
  const subject = await specSubject(job.spec, job.edit, { scale: job.scale, runtime: runtimeOptions(job.runtime), onStatus: (message) => send({ type: 'status', message }) });
  const declared = job.probe !== undefined ? subject.probes.find((p) => p.name === job.probe) : undefined;
  if (job.probe !== undefined && !declared) throw new ScalpelError(`the spec declares no probe "${job.probe}"`, job.spec);
  const names = declared?.datasets ?? (subject.checked.length >= 2 ? subject.checked : [...subject.datasets.keys()]);
  if (names.length < 2) throw new ScalpelError('geometry compares datasets: the spec needs at least two', job.spec);
  const lm = subjectModel(subject);
  const catalog = subject.components ? openCatalogTensors(subject.components) : undefined;
  try {
    const structure = analyzeModel(lm.onnx, lm.logitsName);
    const layers = ['embed', ...blockOutputs(structure)];
    const initialPoint = job.point ?? declared?.point;
    let last = '';
    const r = await measureGeometry(lm, {
      points: inForwardOrder(structure, [...layers, ...(initialPoint ? [initialPoint] : [])]),
      sources: names.map((n) => subject.tagged(n)),
      text: job.text,
      patches: subject.edit?.weights, editedGraph: subject.edit?.graph,
      catalog,
      maxPerTag: job.maxPerTag,
      mark: job.mark,
      probe: declared?.kind ?? 'mean-difference',
      dimensions: 3,
      runtime: runtimeOptions(job.runtime),
      signal,
      onProgress: (p) => {
        if (p.stage !== last) send({ type: 'status', message: (last = p.stage) });
      },
    });
    return { ...r, spec: job.spec, ...(declared ? { probe: declared.name } : {}), ...(initialPoint ? { initialPoint } : {}), ...(subject.edit ? { edit: subject.edit.name, scale: subject.edit.scales[subject.edit.name] } : {}) };
  } finally {
    catalog?.close();
  }
}

/** The catalog of the spec's (first) model that declares one, flattened for the Components panel. */
function catalogView(spec: string): CatalogView {
  const models = [...analyze(readTextFile(spec, 'read spec'), defaultEnv(path.dirname(spec))).models.values()];
  const model = models.find((m) => m.components);
  if (!model?.components) throw new ScalpelError('the spec declares no model with a component catalog (model NAME from "…" { components "…" })', spec);
  const catalog = model.catalog?.catalog ?? readCatalogMetadata(model.components);
  const tags = [...new Set(catalog.components.flatMap((c) => Object.keys(c.stats ?? {})))];
  return {
    catalog: catalog.dir,
    tags,
    components: catalog.components.map((c) => ({
      key: c.key,
      module: c.module,
      label: c.label?.text,
      norm: c.norm,
      activation: Object.fromEntries(Object.entries(c.stats ?? {}).map(([t, s]) => [t, s.meanAbs])),
      selectivity: bestSelectivity(c),
      contexts: c.contexts ?? [],
    })),
  };
}

/** The last apply's lock, and how far the written weights moved from the base model's. */
function review(spec: string): ReviewResult {
  const lockFile = `${spec}.lock`;
  const lock = readLock(lockFile);
  if (!lock) throw new ScalpelError('no lock file: apply the spec first (Scalpel: Apply Edit)', lockFile);
  const dir = path.dirname(lockFile);
  const output = path.resolve(dir, lock.output.file);
  if (!lockMatchesOutput(lock, output)) throw new ScalpelError(`${lock.output.file} is not the model this lock describes (its sha256 differs): apply the spec again`, lockFile);
  const base = openModel(path.resolve(dir, lock.model.file));
  const out = openModel(output);
  const modules = new Set(lock.components.map((c) => keyModule(c.key)));
  const weights: ReviewResult['weights'] = [];
  // The initializer each edited module applies, as the edit engine maps it (`onnx::MatMul_N` in folded exports).
  for (const name of moduleWeights(base).filter((w) => modules.has(w.module)).map((w) => w.initializer)) {
    const a = readFloatTensor(base, name);
    const b = readFloatTensor(out, name);
    let changed = 0, diff2 = 0, norm2 = 0, maxAbs = 0;
    for (let i = 0; i < a.length; i++) {
      const d = b[i] - a[i];
      if (d !== 0) changed++;
      diff2 += d * d;
      norm2 += a[i] * a[i];
      maxAbs = Math.max(maxAbs, Math.abs(d));
    }
    weights.push({ initializer: name, shape: base.initializers.get(name)!.dims, changed, relFrobenius: Math.sqrt(diff2 / (norm2 || 1)), maxAbs });
  }
  return {
    spec,
    lock: lockFile,
    output: path.resolve(dir, lock.output.file),
    edits: lock.edits,
    scales: lock.scales,
    components: lock.components,
    metrics: Object.entries(lock.metrics).map(([name, m]) => ({ name, ...m })),
    checks: lock.checks,
    weights,
  };
}

function errorMessage(err: unknown): WorkerMessage {
  if (err instanceof ScalpelError) return { type: 'error', message: err.message, file: err.file, line: err.position?.line, column: err.position?.column };
  return { type: 'error', message: err instanceof Error ? `internal error: ${err.stack ?? err.message}` : String(err) };
}

let started = false;
process.on('message', (m: Job | CancelRequest) => {
  if (m.kind === 'cancel') return cancel.abort();
  if (started) return;
  started = true;
  run(m).then(
    (result): WorkerMessage => ({ type: 'result', result }),
    errorMessage,
  ).then((m) => {
    // Disconnect only once the answer is written: a large one (a whole catalog) is still in flight after send returns.
    process.send!(m, () => process.disconnect());
  });
});
