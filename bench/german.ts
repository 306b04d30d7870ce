/**
 * The German-removal experiment (issue 5), end to end on the demo model:
 *
 *   - the edits of examples/remove-german.scalpel (the single German-only component and the
 *     top-16 German-related components, each scale tuned on the spec's ≤ 4 German tokens), run
 *     through the same PlanRunner as `scalpel eval` / `scalpel apply`;
 *   - neuron baselines: the most German-selective MLP hidden unit (and the top 16), tuned the same way;
 *   - LoRA baselines (lab/lora.py: rank 1 and 4, on the same tuning tokens and on 4,000 German
 *     training tokens), exported as ONNX and scored by the same Evaluator on the same data;
 *   - "at equal German removal": each method's strength swept (the component's scale; the LoRA's
 *     merged update W + α·ΔW) and the off-target damage read off where German Δloss equals the
 *     single-component edit's.
 *
 *   npm run bench:german                (trains the LoRAs first when .cache/lora/* is missing)
 *   npm run bench:german -- --retrain   (train them again)
 *   npm run bench:german -- --no-train  (leave out LoRAs not trained yet)
 *   npm run bench:german -- --spec FILE (another spec with the same dataset names)
 *
 * Prints markdown tables (the ones in docs/results.md).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { openLanguageModel } from '../engine/lm';
import { readFloatTensor } from '../engine/onnx/model';
import { moduleWeights } from '../engine/onnx/modules';
import { NeuronComponents, WeightEditor } from '../engine/edit/weights';
import { DatasetDelta, DeltaRunner, PreviewSession, deltaOf, linspace } from '../engine/edit/preview';
import { EditPlan } from '../engine/edit/plan';
import { loadDataset, splitDocuments } from '../engine/data';
import { Evaluator, TokenizedDataset, tokenizeDataset } from '../engine/evaluate';
import { EditOutcome, PlanRunner } from '../engine/edit/run';
import { loadPlan } from '../language/plan';

const argValue = (flag: string) => {
  const i = process.argv.indexOf(flag);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const SPEC = argValue('--spec') ?? 'examples/remove-german.scalpel';
const GERMAN = 'german';
const OTHERS = ['french', 'spanish', 'italian', 'english'];
const LORA_DIR = '.cache/lora';
const PYTHON = '/usr/bin/python3';

interface Row {
  method: string;
  germanTokens: number;
  deltas: DatasetDelta[];
  note?: string;
}

const byName = (ds: DatasetDelta[], n: string) => ds.find((d) => d.name === n)!;
function offTarget(ds: DatasetDelta[]): { mean: number; worst: number; worstName: string } {
  const o = OTHERS.map((n) => byName(ds, n));
  const worst = o.reduce((a, b) => (Math.abs(b.delta) > Math.abs(a.delta) ? b : a));
  return { mean: o.reduce((a, d) => a + Math.abs(d.delta), 0) / o.length, worst: worst.delta, worstName: worst.name };
}

const f = (v: number, d = 3) => `${v >= 0 ? '+' : ''}${v.toFixed(d)}`;

function table(rows: Row[], uniform: number, baseGerman: number): string {
  const head = `| method | German tokens | German Δloss | German loss (ln V = ${uniform.toFixed(2)}) | off-target mean \\|Δ\\| | worst off-target Δ | ${OTHERS.map((o) => `${o} Δ`).join(' | ')} |`;
  const sep = `|${' --- |'.repeat(6 + OTHERS.length)}`;
  const lines = rows.map((r) => {
    const de = byName(r.deltas, GERMAN);
    const o = offTarget(r.deltas);
    return `| ${r.method}${r.note ? ` (${r.note})` : ''} | ${r.germanTokens} | ${f(de.delta)} | ${de.edited.toFixed(3)} | ${o.mean.toFixed(4)} | ${f(o.worst)} (${o.worstName}) | ${OTHERS.map((n) => f(byName(r.deltas, n).delta, 4)).join(' | ')} |`;
  });
  return [`German base loss ${baseGerman.toFixed(3)} nats/token.`, '', head, sep, ...lines].join('\n');
}

interface Curve {
  strength: number[];
  german: number[];
  off: number[];
}

/** Off-target mean |Δ| where the curve's German Δloss first reaches `target` (linear between samples). */
function atGerman(c: Curve, target: number): { off: number; strength: number } | undefined {
  for (let i = 1; i < c.german.length; i++) {
    const [g0, g1] = [c.german[i - 1], c.german[i]];
    if ((g0 - target) * (g1 - target) <= 0 && g0 !== g1) {
      const t = (target - g0) / (g1 - g0);
      return { off: c.off[i - 1] + t * (c.off[i] - c.off[i - 1]), strength: c.strength[i - 1] + t * (c.strength[i] - c.strength[i - 1]) };
    }
  }
  return undefined;
}

/** Δloss on each evaluation set under edited weights. */
async function measure(runner: DeltaRunner, sets: TokenizedDataset[], w: Map<string, Float32Array>): Promise<DatasetDelta[]> {
  const out: DatasetDelta[] = [];
  for (const ds of sets) out.push(await runner.delta(ds, w));
  return out;
}

async function curve(runner: DeltaRunner, sets: TokenizedDataset[], strengths: number[], weightsAt: (s: number) => Map<string, Float32Array>): Promise<Curve> {
  const c: Curve = { strength: strengths, german: [], off: [] };
  for (const s of strengths) {
    const ds = await measure(runner, sets, weightsAt(s));
    c.german.push(byName(ds, GERMAN).delta);
    c.off.push(offTarget(ds).mean);
  }
  return c;
}

/**
 * A half of a spec dataset's documents. The catalog's labeller uses the train part of
 * splitDocuments(articles, 0.5, seed 0) (docs/components.md); results are measured on the held-out
 * part, so selecting components (or neurons) never peeks at the text they are judged on.
 */
function half(plan: EditPlan, name: string, runner: PlanRunner, part: 'train' | 'heldout'): TokenizedDataset {
  const d = plan.datasets.find((x) => x.name === name)!;
  const ds = loadDataset(d.name, d.source, path.dirname(plan.specFile!));
  return tokenizeDataset({ ...ds, source: `${ds.source}#${part}`, documents: splitDocuments(ds.documents, 0.5, 0)[part] }, runner.lm.tokenizer);
}

/**
 * The neuron baseline: MLP hidden units (inputs of h.*.mlp.c_proj) ranked by German mean |activation|
 * over the other languages' mean, measured on the train half of the spec's datasets (as the catalog's labels).
 */
async function germanNeurons(runner: PlanRunner, k: number): Promise<{ key: string; selectivity: number }[]> {
  const plan = runner.plan;
  const lm = runner.lm;
  const mlp = moduleWeights(lm.onnx).filter((m) => /\.mlp\.c_proj$/.test(m.module));
  const edit = { addOutputs: mlp.map((m) => ({ name: m.inputTensor, elemType: 0, shape: [] })) };
  const batchSize = 8;
  const ev = await Evaluator.create(lm, { edit, threads: 1, batchSize });
  const meanAbs = new Map<string, Float64Array[]>();
  for (const name of [GERMAN, ...OTHERS]) {
    const ds = half(plan, name, runner, 'train');
    const n = ds.ids.length - 1;
    const sums = mlp.map((m) => new Float64Array(m.dIn));
    let count = 0;
    await ev.evaluate(ds, {
      fetches: mlp.map((m) => m.inputTensor),
      onBatch: (b, out) => {
        mlp.forEach((m, li) => {
          const t = out[m.inputTensor];
          const [rows, len, width] = t.dims;
          const data = t.data as Float32Array;
          for (let r = 0; r < rows; r++) {
            // Right-padded windows: only the positions that score a real token count.
            const valid = Math.min(lm.contextLength, n - (b * batchSize + r) * lm.contextLength);
            for (let p = 0; p < Math.min(valid, len); p++) for (let j = 0; j < width; j++) sums[li][j] += Math.abs(data[(r * len + p) * width + j]);
            if (li === 0) count += Math.min(valid, len);
          }
        });
      },
    });
    meanAbs.set(name, sums.map((s) => s.map((v) => v / count)));
  }
  await ev.release();
  const ranked = mlp.flatMap((m, li) =>
    Array.from({ length: m.dIn }, (_, j) => {
      const de = meanAbs.get(GERMAN)![li][j];
      const others = OTHERS.reduce((a, o) => a + meanAbs.get(o)![li][j], 0) / OTHERS.length;
      return { key: `${m.module}:i${j}`, selectivity: de / others };
    }),
  );
  return ranked.sort((a, b) => b.selectivity - a.selectivity).slice(0, k);
}

const LORAS = [
  { name: 'r1-tuning', rank: 1, data: 'tuning' },
  { name: 'r4-tuning', rank: 4, data: 'tuning' },
  { name: 'r1-4000', rank: 1, data: 'corpus', tokens: 4000 },
  { name: 'r4-4000', rank: 4, data: 'corpus', tokens: 4000 },
];

async function main(): Promise<void> {
  const retrain = process.argv.includes('--retrain');
  const noTrain = process.argv.includes('--no-train');
  const plan = loadPlan(SPEC);
  const runner = await PlanRunner.open(plan, { threads: 1 });
  const lm = runner.lm;
  const uniform = Math.log(runner.session.vocabSize);
  const sets = [GERMAN, ...OTHERS].map((n) => half(plan, n, runner, 'heldout'));
  const rows: Row[] = [];
  const outcomes: EditOutcome[] = [];
  for (const e of plan.edits) {
    const t0 = performance.now();
    const o = await runner.run([e.name]);
    outcomes.push(o);
    const tok = o.tuning?.tokens.reduce((a, t) => a + t.scored, 0) ?? 0;
    rows.push({ method: `Scalpel ${e.name}: ${o.terms.length} component${o.terms.length > 1 ? 's' : ''}, scale ${o.scales[e.name].toFixed(3)}`, germanTokens: tok, deltas: await measure(runner.session, sets, o.weights), note: `tuned in ${((performance.now() - t0) / 1000).toFixed(1)} s` });
    console.error(`${e.name}: ${o.terms.map((t) => `${t.component.key} "${t.component.label ?? ''}"`).join(', ')}`);
    if (o.tuning) console.error(`  tuning tokens: ${o.tuning.tokens.map((t) => JSON.stringify(t.text.slice(1))).join(' ')}`);
  }
  // Neuron baselines: the most German-selective MLP unit(s), tuned exactly like the first edit.
  const neurons = await germanNeurons(runner, 16);
  console.error(`most German-selective MLP neurons: ${neurons.slice(0, 5).map((n) => `${n.key} ${n.selectivity.toFixed(1)}×`).join(', ')}`);
  const neuronPlan = { ...plan, edits: [1, 16].map((k) => ({ ...plan.edits[0], name: `neurons_${k}`, components: neurons.slice(0, k).map((n) => n.key) })) };
  const neuronRunner = await PlanRunner.open(neuronPlan, { threads: 1, components: new NeuronComponents(new WeightEditor(lm.onnx)) });
  let neuronCurve: Curve | undefined;
  for (const e of neuronPlan.edits) {
    const o = await neuronRunner.run([e.name]);
    if (!neuronCurve) {
      const s0 = o.scales[e.name];
      neuronCurve = await curve(neuronRunner.session, sets, linspace(Math.min(1, s0), Math.max(1, s0), 25), (x) => neuronRunner.editor.weights(o.terms.map((t) => ({ ...t, scale: x }))));
    }
    rows.push({ method: `neuron baseline: ${e.components.length === 1 ? `the most German-selective MLP neuron (${e.components[0]}, ${neurons[0].selectivity.toFixed(1)}×)` : `the ${e.components.length} most German-selective MLP neurons`}, scale ${o.scales[e.name].toFixed(3)}`, germanTokens: o.tuning?.tokens.reduce((a, t) => a + t.scored, 0) ?? 0, deltas: await measure(neuronRunner.session, sets, o.weights) });
  }
  await neuronRunner.close();

  const tuningEdit = plan.edits[0];
  const tune = 'tune' in tuningEdit.scale ? tuningEdit.scale.tune : undefined;
  const tuningText = tune ? plan.datasets.find((d) => d.name === tune.datasets[0]) : undefined;
  if (!tuningText || tuningText.source.kind !== 'inline' || tuningText.limit === undefined) throw new Error(`${SPEC}: the first edit must tune on an inline dataset with a token limit`);

  // LoRA baselines: trained by lab/lora.py (skipped when their export exists), scored by the engine.
  const loraRows: { cfg: (typeof LORAS)[number]; dir: string; row: Row; info: Record<string, unknown> }[] = [];
  for (const cfg of LORAS) {
    const dir = path.join(LORA_DIR, cfg.name);
    const exists = fs.existsSync(path.join(dir, 'lora.json'));
    if (noTrain && !exists) continue;
    if (retrain || !exists) {
      const args = ['lab/lora.py', '--rank', String(cfg.rank), '--data', cfg.data, '--out', dir];
      if (cfg.data === 'tuning') args.push('--text', tuningText.source.text, '--tokens', String(tuningText.limit));
      else args.push('--tokens', String(cfg.tokens));
      console.error(`training LoRA ${cfg.name}: ${PYTHON} ${args.join(' ')}`);
      execFileSync(PYTHON, args, { stdio: ['ignore', 'inherit', 'inherit'] });
    }
    const info = JSON.parse(fs.readFileSync(path.join(dir, 'lora.json'), 'utf8'));
    const loraLm = openLanguageModel(dir);
    const ev = await Evaluator.create(loraLm, { threads: 1 });
    const deltas: DatasetDelta[] = [];
    for (const ds of sets) deltas.push(deltaOf(await runner.session.base(ds), await ev.evaluate(ds)));
    await ev.release();
    loraRows.push({ cfg, dir, info, row: { method: `LoRA rank ${cfg.rank}, ${cfg.data === 'tuning' ? 'tuning tokens' : `${cfg.tokens} corpus tokens`}`, germanTokens: info.german_tokens, deltas, note: `${info.steps} steps, ${info.seconds} s` } });
  }
  rows.push(...loraRows.map((l) => l.row));
  const baseGerman = byName(rows[0].deltas, GERMAN).base;
  console.log(`## German removal on the demo model\n\nΔloss in nats/token on the held-out half of the UDHR (${sets.map((d) => `${d.name} ${d.ids.length - 1}`).join(', ')} tokens). ${table(rows, uniform, baseGerman)}\n`);

  // Equal removal: sweep the single component's scale and each LoRA's α.
  const single = outcomes[0];
  const singleDeltas = rows[0].deltas;
  const target = byName(singleDeltas, GERMAN).delta;
  const s0 = single.scales[single.edits[0]];
  const compCurve = await curve(runner.session, sets, linspace(Math.min(1, s0), Math.max(1, s0), 25), (s) => runner.editor.weights(single.terms.map((t) => ({ ...t, scale: s }))));
  // Off-target damage of every method where its German Δloss equals a target: the issue's +2 nats, and
  // what the single-component edit reached.
  const targets = [2, target];
  const loraCurves: Curve[] = [];
  for (const l of loraRows) {
    const changed = [...runner.editor.modules.values()].map((m) => m.initializer);
    const loraModel = openLanguageModel(l.dir).onnx;
    const delta = new Map(changed.map((name) => {
      const a = readFloatTensor(loraModel, name);
      const b = runner.editor.baseWeight(name);
      return [name, a.map((v, i) => v - b[i])] as const;
    }));
    const session = await PreviewSession.create(lm, runner.editor, changed, { threads: 1 });
    loraCurves.push(await curve(session, sets, linspace(0, 3, 16), (a) => new Map([...delta].map(([name, d]) => [name, runner.editor.baseWeight(name).map((v, i) => v + a * d[i])]))));
    await session.release();
  }
  for (const t of targets) {
    console.log(`## At equal German removal: German Δloss = ${f(t)} nats\n`);
    console.log('| method | strength at that removal | off-target mean \\|Δ\\| | vs Scalpel |');
    console.log('| --- | --- | --- | --- |');
    const own = atGerman(compCurve, t);
    console.log(`| Scalpel ${single.edits[0]} | ${own ? `scale ${own.strength.toFixed(2)}` : 'not reached'} | ${own ? own.off.toFixed(4) : '—'} | 1.00× |`);
    const nAt = neuronCurve && atGerman(neuronCurve, t);
    console.log(`| Scalpel, the most German-selective neuron | ${nAt ? `scale ${nAt.strength.toFixed(2)}` : `not reached (German Δ ≤ ${f(Math.max(...neuronCurve!.german))})`} | ${nAt ? nAt.off.toFixed(4) : '—'} | ${nAt && own ? `${(nAt.off / own.off).toFixed(2)}×` : '—'} |`);
    loraRows.forEach((l, i) => {
      const c = loraCurves[i];
      const at = atGerman(c, t);
      console.log(`| ${l.row.method} | ${at ? `α = ${at.strength.toFixed(2)}` : `not reached (α ≤ 3 gives German Δ ≤ ${f(Math.max(...c.german))})`} | ${at ? at.off.toFixed(4) : '—'} | ${at && own ? `${(at.off / own.off).toFixed(2)}×` : '—'} |`);
    });
    console.log('');
  }
  console.log(`\nScalpel curve (scale → German Δ, off-target mean |Δ|): ${compCurve.strength.map((s, i) => `${s.toFixed(2)}→${f(compCurve.german[i], 2)}/${compCurve.off[i].toFixed(3)}`).join(', ')}`);
  await runner.close();
}

main().catch((err) => {
  console.error(err?.format?.() ?? err);
  process.exitCode = 1;
});
