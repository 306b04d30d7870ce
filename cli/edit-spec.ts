/**
 * Specs on the command line: `scalpel eval SPEC.scalpel`, which runs every expectation and guard
 * (the spec becomes an edit plan through language/plan.ts), sharded (`--shard I/N --out PART`) or
 * whole, and `scalpel merge`, which combines the parts; both print through the same reports.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { ScalpelError, fileError } from '../engine/errors';
import { gateText } from '../engine/edit/gate';
import { EditOutcome, PlanRunner, ProbeAccuracy, ResolvedEdits } from '../engine/edit/run';
import { interruptible } from './interrupt';
import { lockFileFor } from '../engine/edit/apply';
import { CheckResult, failing, missedGoals } from '../engine/edit/checks';
import { EvalPart, MergedEval, PART_FORMAT, lockSha256, parseShard, partEdit, partJson, resultOf } from '../engine/edit/shard';
import { writeFileAtomic } from '../engine/safetensors';
import { trainMissingProbes } from '../language/geometry';
import { loadPlan, lockedFor } from '../language/plan';
import { runtimeFlags, runtimeFromFlags, runtimeUsage } from './runtime-flags';
import { formatTable } from './table';
import { sayAssumedContext } from './context';

type Measured = { name: string; tokens: number; base: number; edited: number; delta: number };

/** Per dataset: loss before and after, the change, and the loss after against the uniform loss ln V (0: forgotten). */
export function metricsTable(o: { deltas: Measured[]; uniform: number }): string {
  return formatTable(
    ['dataset', 'tokens', 'before', 'after', 'Δ nats', 'Δ bits', 'Δ %', 'after − ln V'],
    o.deltas.map((d) => [d.name, d.tokens, d.base.toFixed(4), d.edited.toFixed(4), signed(d.delta, 4), signed(d.delta / Math.LN2, 4), signed((d.delta / d.base) * 100, 2), signed(d.edited - o.uniform, 4)]),
  );
}

const signed = (v: number, digits: number) => `${v >= 0 ? '+' : ''}${v.toFixed(digits)}`;

/** Per probe and dataset that an accuracy check reads: the base probe's accuracy on its held-out tokens, before and after. */
export function accuracyTable(accuracies: ProbeAccuracy[]): string {
  return formatTable(
    ['probe', 'dataset', 'held-out tokens', 'accuracy before', 'after', 'Δ'],
    accuracies.map((a) => [a.probe, a.name, a.tokens, a.base.toFixed(4), a.edited.toFixed(4), signed(a.delta, 4)]),
  );
}

/** The metrics table, and the accuracy table when accuracy checks were measured. */
function tables(o: { deltas: Measured[]; accuracies: ProbeAccuracy[]; uniform: number }): string[] {
  return [metricsTable(o), ...(o.accuracies.length ? ['', accuracyTable(o.accuracies)] : [])];
}

export function describeOutcome(o: EditOutcome, runner: PlanRunner): string {
  return [...outcomeSummary(o, runner), '', ...tables(o)].join('\n');
}

/** What was edited and how its scale was found: the lines above the metrics table. */
export function outcomeSummary(o: ResolvedEdits & { uniform?: number }, runner: PlanRunner): string[] {
  const lines: string[] = [];
  const gates = [...new Set(o.terms.map((t) => (t.gate ? gateText(t.gate) : '')))].filter(Boolean);
  const gated = gates.length ? ` (${gates.join(', ')})` : '';
  lines.push(`edit ${o.edits.join(' + ')}: ${o.terms.length} component${o.terms.length === 1 ? '' : 's'}${gated}, scale ${o.edits.map((e) => `${e} = ${fmtScale(o.scales[e])}`).join(', ')}`);
  if (o.tuning) {
    const t = o.tuning;
    const toks = t.tokens.map((x) => `${x.scored} tokens of ${x.dataset} ${JSON.stringify(runner.lm.tokenizer.decode(x.ids.slice(1)))}`).join(', ');
    lines.push(t.fromLock ? `  tuned scale from the lock file (tuned on ${toks})` : `  tuned: ${t.objective} on ${toks}; ${t.trace.length} evaluations${t.constrained ? ', guards as constraints' : ''}`);
  }
  if (o.uniform !== undefined) lines.push(`  uniform loss ln V = ${o.uniform.toFixed(4)} nats (V = ${Math.round(Math.exp(o.uniform))}): a dataset at it is forgotten, above it confidently wrong`);
  return lines;
}

function fmtScale(s: number): string {
  return Number.isInteger(s) ? String(s) : s.toPrecision(6);
}

function xmlEscape(s: string): string {
  return s.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]!);
}

/** `--goals`: a missed goal fails CI like a failed check (without it, goals are only reported). */
export const goalsUsage = '  --goals              exit 1 when a check misses its goal (goals are reported either way)';


/** `9 of 9 checks passed`, and when checks name goals, `, 1 of 3 goals met (2 missed)`. */
export function checksSummary(checks: readonly CheckResult[]): string {
  const failed = checks.filter((c) => !c.pass).length;
  const goals = checks.filter((c) => c.goal).length;
  const missed = missedGoals(checks).length;
  return `${checks.length - failed} of ${checks.length} checks passed${goals ? `, ${goals - missed} of ${goals} goal${goals === 1 ? '' : 's'} met${missed ? ` (${missed} missed)` : ''}` : ''}`;
}

/** The status column of a check's row: pass, FAIL, or pass with its goal missed. */
export const checkStatus = (c: CheckResult): string => (!c.pass ? 'FAIL' : c.goal && !c.goal.met ? 'pass, goal missed' : 'pass');

export function junitXml(specFile: string, outcomes: { edits: string[]; checks: CheckResult[] }[], seconds: number, goals = false): string {
  const all = outcomes.flatMap((o) => o.checks.map((c) => ({ o, c })));
  const failures = all.filter((x) => failing(x.c, goals)).length;
  const suites = outcomes.map((o) => {
    const f = o.checks.filter((c) => failing(c, goals)).length;
    const cases = o.checks.map((c) => {
      const name = xmlEscape(c.message.split(':').slice(0, 2).join(':'));
      const loc = c.check.origin?.line ? ` file="${xmlEscape(path.relative(process.cwd(), specFile))}" line="${c.check.origin.line}"` : '';
      // A goal missed by a passing check is said in its output; with --goals it is the failure.
      const body = failing(c, goals) ? `<failure message="${xmlEscape(c.message)}"/>` : c.goal && !c.goal.met ? `<system-out>${xmlEscape(c.message)}</system-out>` : '';
      return `    <testcase classname="${xmlEscape(o.edits.join('+'))}" name="${name}"${loc}>${body ? `\n      ${body}\n    ` : ''}</testcase>`;
    });
    return `  <testsuite name="${xmlEscape(o.edits.join('+'))}" tests="${o.checks.length}" failures="${f}">\n${cases.join('\n')}\n  </testsuite>`;
  });
  return `<?xml version="1.0" encoding="UTF-8"?>\n<testsuites name="${xmlEscape(path.basename(specFile))}" tests="${all.length}" failures="${failures}" time="${seconds.toFixed(3)}">\n${suites.join('\n')}\n</testsuites>\n`;
}

export const specEvalUsage = `scalpel eval SPEC.scalpel [--edit NAME …] [--json] [--junit FILE] [options]

Runs every expectation and guard of a spec's edits (each edit on its own); exit 1 when one fails.
Tuned scales come from SPEC.scalpel.lock when it was written for this spec, model and catalog.
With --shard, measures a deterministic 1/N of every dataset's batches and writes a part for
\`scalpel merge\` (exit 0 once written; the merge runs the checks): docs/scale.md.

  --edit NAME          only this edit (repeatable)
  --retune             ignore the lock file and tune again
  --tune-with-guards   use each edit's kept guards as constraints while tuning
  --json               machine-readable results
  --junit FILE         also write JUnit XML (one testcase per check)
${goalsUsage}
  --shard I/N          shard I of N (from 0); --shard N takes I from JOB_COMPLETION_INDEX
  --out FILE|DIR/      where a shard's part goes (in a folder: part-I-of-N.json); without --shard,
                       the whole evaluation as one part (what merging all parts gives, byte for byte)
${runtimeUsage}`;

export async function evalSpec(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      edit: { type: 'string', multiple: true },
      retune: { type: 'boolean', default: false },
      'tune-with-guards': { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      junit: { type: 'string' },
      goals: { type: 'boolean', default: false },
      shard: { type: 'string' },
      out: { type: 'string' },
      ...runtimeFlags,
    },
    strict: true,
    allowPositionals: true,
  });
  if (positionals.length !== 1) throw new ScalpelError('eval takes one spec file (or --model and --data)');
  if (values.shard !== undefined && values.out === undefined) throw new ScalpelError('--shard needs --out FILE (or a folder) for the part');
  if (values.out !== undefined && (values.json || values.junit || values.goals)) throw new ScalpelError('--out writes a part: print or report it with scalpel merge PART… [--json] [--junit FILE] [--goals]');
  const started = performance.now();
  const shard = values.shard === undefined ? undefined : parseShard(values.shard);
  const part = await interruptible((signal) => evaluatePart(positionals[0], { ...values, shard, signal }, runtimeFromFlags(values)));
  if (values.out !== undefined) {
    const file = partFile(values.out, part);
    writeFileAtomic(file, [partJson(part)]);
    const windows = part.edits[0]?.datasets.reduce((a, d) => a + d.base.filter((v) => v !== null).length, 0) ?? 0;
    process.stdout.write(`shard ${part.shard.index}/${part.shard.count}: ${windows} windows of ${part.edits[0]?.datasets.length ?? 0} datasets, ${part.edits.length} edit${part.edits.length === 1 ? '' : 's'} → ${file}\n`);
    return 0;
  }
  // Through the part's bytes, exactly as a merge reads them back.
  return report(resultOf(JSON.parse(partJson(part))), { json: values.json, junit: values.junit, goals: values.goals, seconds: (performance.now() - started) / 1000 });
}

/** The part of a spec's evaluation that `shard` measures (all of it without one). */
async function evaluatePart(specFile: string, opts: { edit?: string[]; retune: boolean; 'tune-with-guards': boolean; shard?: EvalPart['shard']; signal?: AbortSignal }, runtime: ReturnType<typeof runtimeFromFlags>): Promise<EvalPart> {
  await trainMissingProbes(specFile, { runtime, signal: opts.signal, onStatus: (m) => process.stderr.isTTY && process.stderr.write(`${m}\n`) });
  const plan = loadPlan(specFile);
  const runner = await PlanRunner.open(plan, runtime);
  sayAssumedContext(runner.lm);
  try {
    const locked = opts.retune ? undefined : lockedFor(runner);
    const names = opts.edit?.length ? opts.edit : plan.edits.map((e) => e.name);
    const edits = [];
    for (const name of names) {
      const o = await runner.run([name], { locked, guardsAsConstraints: opts['tune-with-guards'], shard: opts.shard, signal: opts.signal, onStatus: (m) => process.stderr.isTTY && process.stderr.write(`\r${m}\x1b[K`) });
      if (process.stderr.isTTY) process.stderr.write('\r\x1b[K');
      edits.push(partEdit(runner, o, outcomeSummary(o, runner)));
    }
    return {
      format: PART_FORMAT,
      spec: plan.specFile!,
      specSha256: createHash('sha256').update(plan.specText ?? '').digest('hex'),
      lockSha256: opts.retune ? null : lockSha256(lockFileFor(plan.specFile!)),
      shard: opts.shard ?? { index: 0, count: 1 },
      batchSize: runner.session.evaluator.batchSize,
      edits,
    };
  } finally {
    await runner.close();
  }
}

function partFile(out: string, part: EvalPart): string {
  const isDir = out.endsWith('/') || (fs.existsSync(out) && fs.statSync(out).isDirectory());
  if (!isDir) return out;
  try {
    fs.mkdirSync(out, { recursive: true });
  } catch (err) {
    throw fileError(err, out, 'create the folder for parts');
  }
  return path.join(out, `part-${part.shard.index}-of-${part.shard.count}.json`);
}

/** The JSON form of a check's result (`--json`): its goal, when it names one, as `{ goal, met, distance }` in the check's unit. */
export function checkJson(c: CheckResult) {
  return { kind: c.check.kind, dataset: c.check.dataset, ...(c.check.probe ? { probe: c.check.probe } : {}), pass: c.pass, value: c.value, bound: c.check.bound, unit: c.check.unit, ...(c.goal ? { goal: c.goal } : {}), message: c.message, line: c.check.origin?.line };
}

/**
 * The table (or --json), the JUnit file, one stderr line per failed check, and the exit code.
 * `goals`: a missed goal fails too (exit 1, a stderr line, a JUnit failure, `pass: false`).
 */
export function report(result: MergedEval, opts: { json: boolean; junit?: string; goals?: boolean; seconds: number }): number {
  const { edits, spec } = result;
  const checks = edits.flatMap((o) => o.checks);
  const failed = checks.filter((c) => failing(c, opts.goals));
  if (opts.junit) {
    try {
      fs.writeFileSync(opts.junit, junitXml(spec, edits, opts.seconds, opts.goals));
    } catch (err) {
      throw fileError(err, opts.junit, 'write JUnit report');
    }
  }
  if (opts.json) {
    const out = {
      spec,
      pass: failed.length === 0,
      edits: edits.map((o) => ({
        edits: o.edits,
        scales: o.scales,
        components: o.components,
        gates: o.gates,
        uniform: o.uniform,
        tuning: o.tuning,
        datasets: o.deltas.map((d) => ({ name: d.name, tokens: d.tokens, before: d.base, after: d.edited, delta: d.delta })),
        accuracy: o.accuracies.map((a) => ({ probe: a.probe, dataset: a.name, tokens: a.tokens, before: a.base, after: a.edited, delta: a.delta })),
        checks: o.checks.map(checkJson),
      })),
      goals: { set: checks.filter((c) => c.goal).length, missed: missedGoals(checks).length },
      seconds: opts.seconds,
    };
    process.stdout.write(JSON.stringify(out, null, 2) + '\n');
  } else {
    for (const o of edits) {
      process.stdout.write([...o.summary, '', ...tables(o)].join('\n') + '\n\n');
      if (o.checks.length) process.stdout.write(formatTable(['', 'check', 'at'], o.checks.map((c) => [checkStatus(c), c.message, c.check.origin?.line ? `line ${c.check.origin.line}` : ''])) + '\n\n');
    }
    process.stdout.write(`${checksSummary(checks)} in ${opts.seconds.toFixed(1)} s\n`);
  }
  for (const f of failed) {
    const at = f.check.origin?.line ? `${path.relative(process.cwd(), spec)}:${f.check.origin.line}:${f.check.origin.column ?? 1}: ` : '';
    process.stderr.write(`scalpel: ${at}${f.message}\n`);
  }
  return failed.length ? 1 : 0;
}
