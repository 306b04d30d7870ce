/**
 * Specs on the command line: `scalpel eval SPEC.scalpel`, which runs every expectation and guard
 * (the spec becomes an edit plan through language/plan.ts), and the tables and reports it prints.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { ScalpelError, fileError } from '../engine/errors';
import { gateText } from '../engine/edit/gate';
import { EditOutcome, PlanRunner } from '../engine/edit/run';
import { loadPlan, lockedFor } from '../language/plan';
import { runtimeFlags, runtimeFromFlags, runtimeUsage } from './runtime-flags';
import { formatTable } from './table';

/** Per dataset: loss before and after, the change, and the loss after against the uniform loss ln V (0: forgotten). */
export function metricsTable(o: EditOutcome): string {
  return formatTable(
    ['dataset', 'tokens', 'before', 'after', 'Δ nats', 'Δ bits', 'Δ %', 'after − ln V'],
    o.deltas.map((d) => [d.name, d.tokens, d.base.toFixed(4), d.edited.toFixed(4), signed(d.delta, 4), signed(d.delta / Math.LN2, 4), signed((d.delta / d.base) * 100, 2), signed(d.edited - o.uniform, 4)]),
  );
}

const signed = (v: number, digits: number) => `${v >= 0 ? '+' : ''}${v.toFixed(digits)}`;

export function describeOutcome(o: EditOutcome, runner: PlanRunner): string {
  const lines: string[] = [];
  const gates = [...new Set(o.terms.map((t) => (t.gate ? gateText(t.gate) : '')))].filter(Boolean);
  const gated = gates.length ? ` (${gates.join(', ')})` : '';
  lines.push(`edit ${o.edits.join(' + ')}: ${o.terms.length} component${o.terms.length === 1 ? '' : 's'}${gated}, scale ${o.edits.map((e) => `${e} = ${fmtScale(o.scales[e])}`).join(', ')}`);
  if (o.tuning) {
    const t = o.tuning;
    const toks = t.tokens.map((x) => `${x.scored} tokens of ${x.dataset} ${JSON.stringify(runner.lm.tokenizer.decode(x.ids.slice(1)))}`).join(', ');
    lines.push(t.fromLock ? `  tuned scale from the lock file (tuned on ${toks})` : `  tuned: ${t.objective} on ${toks}; ${t.trace.length} evaluations${t.constrained ? ', guards as constraints' : ''}`);
  }
  lines.push(`  uniform loss ln V = ${o.uniform.toFixed(4)} nats (V = ${Math.round(Math.exp(o.uniform))}): a dataset at it is forgotten, above it confidently wrong`);
  lines.push('', metricsTable(o));
  return lines.join('\n');
}

function fmtScale(s: number): string {
  return Number.isInteger(s) ? String(s) : s.toPrecision(6);
}

function xmlEscape(s: string): string {
  return s.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]!);
}

export function junitXml(specFile: string, outcomes: EditOutcome[], seconds: number): string {
  const all = outcomes.flatMap((o) => o.checks.map((c) => ({ o, c })));
  const failures = all.filter((x) => !x.c.pass).length;
  const suites = outcomes.map((o) => {
    const f = o.checks.filter((c) => !c.pass).length;
    const cases = o.checks.map((c) => {
      const name = xmlEscape(c.message.split(':').slice(0, 2).join(':'));
      const loc = c.check.origin?.line ? ` file="${xmlEscape(path.relative(process.cwd(), specFile))}" line="${c.check.origin.line}"` : '';
      return `    <testcase classname="${xmlEscape(o.edits.join('+'))}" name="${name}"${loc}>${c.pass ? '' : `\n      <failure message="${xmlEscape(c.message)}"/>\n    `}</testcase>`;
    });
    return `  <testsuite name="${xmlEscape(o.edits.join('+'))}" tests="${o.checks.length}" failures="${f}">\n${cases.join('\n')}\n  </testsuite>`;
  });
  return `<?xml version="1.0" encoding="UTF-8"?>\n<testsuites name="${xmlEscape(path.basename(specFile))}" tests="${all.length}" failures="${failures}" time="${seconds.toFixed(3)}">\n${suites.join('\n')}\n</testsuites>\n`;
}

export const specEvalUsage = `scalpel eval SPEC.scalpel [--edit NAME …] [--json] [--junit FILE] [options]

Runs every expectation and guard of a spec's edits (each edit on its own); exit 1 when one fails.
Tuned scales come from SPEC.scalpel.lock when it was written for this spec, model and catalog.

  --edit NAME          only this edit (repeatable)
  --retune             ignore the lock file and tune again
  --tune-with-guards   use each edit's kept guards as constraints while tuning
  --json               machine-readable results
  --junit FILE         also write JUnit XML (one testcase per check)
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
      ...runtimeFlags,
    },
    strict: true,
    allowPositionals: true,
  });
  if (positionals.length !== 1) throw new ScalpelError('eval takes one spec file (or --model and --data)');
  const started = performance.now();
  const plan = loadPlan(positionals[0]);
  const runner = await PlanRunner.open(plan, runtimeFromFlags(values));
  const outcomes: EditOutcome[] = [];
  try {
    const locked = values.retune ? undefined : lockedFor(runner);
    const names = values.edit?.length ? values.edit : plan.edits.map((e) => e.name);
    for (const name of names) {
      outcomes.push(await runner.run([name], { locked, guardsAsConstraints: values['tune-with-guards'], onStatus: (m) => process.stderr.isTTY && process.stderr.write(`\r${m}\x1b[K`) }));
      if (process.stderr.isTTY) process.stderr.write('\r\x1b[K');
    }
  } finally {
    await runner.close();
  }
  const seconds = (performance.now() - started) / 1000;
  const failed = outcomes.flatMap((o) => o.checks).filter((c) => !c.pass);
  if (values.junit) {
    try {
      fs.writeFileSync(values.junit, junitXml(plan.specFile!, outcomes, seconds));
    } catch (err) {
      throw fileError(err, values.junit, 'write JUnit report');
    }
  }
  if (values.json) {
    const out = {
      spec: plan.specFile,
      pass: failed.length === 0,
      edits: outcomes.map((o) => ({
        edits: o.edits,
        scales: o.scales,
        components: o.terms.map((t) => t.component.key),
        gates: Object.fromEntries(o.terms.filter((t) => t.gate).map((t) => [t.component.key, gateText(t.gate!)])),
        uniform: o.uniform,
        tuning: o.tuning ? { objective: o.tuning.objective, values: o.tuning.values, fromLock: o.tuning.fromLock, tokens: o.tuning.tokens, evaluations: o.tuning.trace.length } : null,
        datasets: o.deltas.map((d) => ({ name: d.name, tokens: d.tokens, before: d.base, after: d.edited, delta: d.delta })),
        checks: o.checks.map((c) => ({ kind: c.check.kind, dataset: c.check.dataset, pass: c.pass, value: c.value, bound: c.check.bound, unit: c.check.unit, message: c.message, line: c.check.origin?.line })),
      })),
      seconds,
    };
    process.stdout.write(JSON.stringify(out, null, 2) + '\n');
  } else {
    for (const o of outcomes) {
      process.stdout.write(describeOutcome(o, runner) + '\n\n');
      if (o.checks.length) process.stdout.write(formatTable(['', 'check', 'at'], o.checks.map((c) => [c.pass ? 'pass' : 'FAIL', c.message, c.check.origin?.line ? `line ${c.check.origin.line}` : ''])) + '\n\n');
    }
    const total = outcomes.reduce((a, o) => a + o.checks.length, 0);
    process.stdout.write(`${total - failed.length} of ${total} checks passed in ${seconds.toFixed(1)} s\n`);
  }
  for (const f of failed) {
    const at = f.check.origin?.line ? `${path.relative(process.cwd(), plan.specFile!)}:${f.check.origin.line}:${f.check.origin.column ?? 1}: ` : '';
    process.stderr.write(`scalpel: ${at}${f.message}\n`);
  }
  return failed.length ? 1 : 0;
}
