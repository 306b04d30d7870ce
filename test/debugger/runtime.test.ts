import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ScalpelError } from '../../engine/errors';
import { Launched, ScalpelLaunchArgs, launchRuntime } from '../../debugger/launch';
import { DebugRuntime, RunResult } from '../../debugger/runtime';
import type { VarNode } from '../../debugger/scopes';
import { BUILTINS } from '../../debugger/builtins';
import { SIDES } from '../../engine/trace/trace';
import { captured } from '../../engine/trace/trace';
import { writeVector } from '../../engine/catalog/read';
import { CI_HIDDEN, TINY, ciParams, tinyWithCatalog } from './helpers';

const INPUT = 'alle Mensch ist frei und die Würde der Mensch ist';
const ABLATE = { 'h.1.mlp.c_fc:n5': 0 };

async function launch(extra: Partial<ScalpelLaunchArgs> = {}): Promise<Launched> {
  return launchRuntime({ model: tinyWithCatalog(), input: INPUT, scales: ABLATE, ...extra });
}

const where = (r: RunResult) => (r.reason === 'terminated' ? 'terminated' : `${r.reason} ${r.point.key}`);

/** Everything the UI can see at the current stop: frames and every scope, children expanded. */
function snapshot(rt: DebugRuntime): unknown {
  const expand = (vars: VarNode[], depth: number): unknown =>
    vars.map((v) => ({ name: v.name, value: v.value, children: v.children && depth > 0 ? expand(v.children(), depth - 1) : undefined }));
  return rt.frames().map((f) => ({ name: f.name, line: f.line, scopes: rt.scopes(f).map((s) => ({ name: s.name, vars: expand(s.variables(), 2) })) }));
}

test('the listing has one line per block and module, in forward order, with shapes and component counts', async () => {
  const l = await launch();
  const lines = l.runtime.listing.trimEnd().split('\n');
  assert.match(lines[0], /^model \S+ {2}2 blocks {2}d_model 16 {2}vocab 32 {2}9 modules {2}components 96$/);
  assert.deepEqual(lines.slice(1, 4), ['h.0', '  h.0.attn.c_attn  (16 → 48)  components 0', '  h.0.attn.c_proj  (16 → 16)  components 0']);
  assert.ok(lines.includes('  h.1.mlp.c_fc  (16 → 32)  components 16'));
  assert.deepEqual(lines.slice(-2), ['lm_head  (16 → 32)  components 16', 'logits']);
  await l.release();
});

test('step in walks block → module → components; step over stays at depth; step out leaves it', async () => {
  const l = await launch();
  const rt = l.runtime;
  assert.equal(where(await rt.start(true, false)), 'entry model');
  assert.equal(where(await rt.stepIn()), 'step h.0');
  assert.equal(where(await rt.next()), 'step h.1', 'step over a block skips its modules');
  assert.equal(where(await rt.stepIn()), 'step h.1.attn.c_attn');
  assert.equal(where(await rt.next()), 'step h.1.attn.c_proj', 'step over skips a module\'s components');
  assert.equal(where(await rt.next()), 'step h.1.mlp.c_fc');
  const ranked = rt.rankedComponents('h.1.mlp.c_fc');
  assert.equal(where(await rt.stepIn()), `step h.1.mlp.c_fc:${ranked[0]}`, 'the most active component first');
  assert.equal(where(await rt.next()), `step h.1.mlp.c_fc:${ranked[1]}`);
  assert.deepEqual(rt.frames().map((f) => f.point.key), [`h.1.mlp.c_fc:${ranked[1]}`, 'h.1.mlp.c_fc', 'h.1', 'model']);
  assert.equal(where(await rt.stepOut()), 'step h.1.mlp.c_proj');
  assert.equal(where(await rt.stepOut()), 'step logits', 'out of the last block');
  assert.equal(where(await rt.next()), 'terminated');
  await l.release();
});

test('step back restores exactly the previous state, all the way to the start', async () => {
  const l = await launch();
  const rt = l.runtime;
  await rt.start(true, false);
  const states = [snapshot(rt)];
  const moves = [() => rt.stepIn(), () => rt.next(), () => rt.stepIn(), () => rt.stepIn(), () => rt.stepIn(), () => rt.stepIn(), () => rt.stepIn(), () => rt.stepOut(), () => rt.continue()];
  for (const move of moves) {
    await move();
    states.push(snapshot(rt));
  }
  assert.notDeepEqual(states[states.length - 1], states[0]);
  for (let i = states.length - 2; i >= 0; i--) {
    await rt.stepBack();
    assert.deepEqual(snapshot(rt), states[i], `after stepping back to state ${i}`);
  }
  assert.equal((await rt.stepBack()).reason, 'entry', 'stepping back at the start stays there');
  await l.release();
});

test('line, function and conditional breakpoints; reverse continue goes back to the previous hit', async () => {
  const l = await launch();
  const rt = l.runtime;
  const lines = rt.listing.split('\n');
  const line = (text: string) => lines.findIndex((x) => x.trim().startsWith(text)) + 1;
  const set = rt.setLineBreakpoints([{ line: line('h.0.mlp.c_proj') }, { line: line('h.1') }, { line: 999 }, { line: line('h.1.attn.c_proj'), condition: 'component("h.1.mlp.c_fc:3") >' }]);
  assert.deepEqual(set.map((b) => b.verified), [true, true, false, false]);
  assert.match(set[3].message!, /^expression:1:30: /);
  const ranked = rt.rankedComponents('h.1.mlp.c_fc');
  const quiet = ranked[ranked.length - 1];
  const fns = rt.setFunctionBreakpoints([{ name: `h.1.mlp.c_fc:${quiet}` }, { name: 'h.9.mlp' }, { name: 'h.1.mlp.c_fc:99' }]);
  assert.deepEqual(fns.map((b) => b.verified), [true, false, false]);
  await rt.start(true, false);
  assert.equal(where(await rt.continue()), 'breakpoint h.0.mlp.c_proj');
  assert.equal(where(await rt.continue()), 'breakpoint h.1');
  assert.equal(where(await rt.continue()), `function breakpoint h.1.mlp.c_fc:${quiet}`, 'a quiet component becomes a stop point when it has a breakpoint');
  const end = await rt.continue();
  assert.equal(where(end), 'step logits');
  assert.equal(end.reason !== 'terminated' && end.description, 'end of the forward pass');
  assert.equal(where(await rt.reverseContinue()), `function breakpoint h.1.mlp.c_fc:${quiet}`);
  assert.equal(where(await rt.reverseContinue()), 'breakpoint h.1');
  // Conditions are evaluated on the edited model at the stop point.
  const act = l.runtime.analysis.activations('h.1.mlp.c_fc', 'edited', rt.opts.position)![3];
  rt.setFunctionBreakpoints([]);
  rt.setLineBreakpoints([{ line: line('h.1.mlp.c_proj'), condition: `component("h.1.mlp.c_fc:3") > ${act + 1}` }, { line: line('lm_head'), condition: `component("h.1.mlp.c_fc:3") > ${act - 1}` }]);
  await rt.start(true, false);
  assert.equal(where(await rt.continue()), 'breakpoint lm_head');
  await l.release();
});

test('Base vs edited lists the components whose contribution to the target changed most', async () => {
  const l = await launch();
  const rt = l.runtime;
  await rt.start(true, false);
  const diff = rt.scopes(rt.frames()[0]).find((s) => s.name === 'Base vs edited')!.variables();
  const changed = diff.find((v) => v.name.startsWith('contributions to '))!;
  const rows = changed.children!();
  assert.equal(rows.length, 10);
  // Independently: the largest |Δ contribution| over every module with a linear path to the logits.
  const a = rt.analysis;
  let best = { key: '', delta: 0 };
  for (const m of ['h.1.mlp.c_fc', 'h.1.mlp.c_proj', 'lm_head']) {
    const [b, e] = (['base', 'edited'] as const).map((s) => a.contributions(m, s, rt.opts.position, rt.opts.target).values!);
    e.forEach((v, c) => {
      if (Math.abs(v - b[c]) > Math.abs(best.delta)) best = { key: `${m}:${c}`, delta: v - b[c] };
    });
  }
  assert.equal(rows[0].name, best.key);
  assert.ok(rows[0].value.startsWith(`Δ ${fmtNum(best.delta)} `), rows[0].value);
  const deltas = rows.map((r) => Math.abs(Number(/^Δ (\S+)/.exec(r.value)![1])));
  assert.deepEqual(deltas, [...deltas].sort((x, y) => y - x));
  await l.release();
});

test('stopOnDivergence stops where base and edited first differ', async () => {
  const l = await launch({ stopOnDivergence: true });
  const r = await l.runtime.start(false, true);
  assert.equal(where(r), 'divergence h.1.mlp.c_fc');
  assert.match(r.reason !== 'terminated' ? r.description! : '', /first diverge at h\.1\.mlp\.c_fc\.out/);
  assert.ok(l.summary.some((s) => /first diverge at h\.1\.mlp\.c_fc\.out/.test(s)));
  await l.release();
  const base = await launch({ scales: {} });
  assert.equal(where(await base.runtime.start(false, true)), 'step logits', 'no edit: nothing diverges, runs to the end');
  await base.release();
});

test('evaluate: spec-style expressions on the edited model, with base and Δ', async () => {
  const l = await launch();
  const rt = l.runtime;
  const a = rt.analysis;
  const pos = rt.opts.position;
  await rt.start(true, false);
  const act = (side: 'base' | 'edited', module: string, c: number) => a.activations(module, side, pos)![c];
  // c_fc's inputs are upstream of the ablated unit: equal; c_proj's input 5 is that unit: it moves.
  assert.equal(await rt.evaluate('component("h.1.mlp.c_fc:3")'), fmtNum(act('edited', 'h.1.mlp.c_fc', 3)));
  const [e5, b5] = [act('edited', 'h.1.mlp.c_proj', 5), act('base', 'h.1.mlp.c_proj', 5)];
  assert.notEqual(e5, b5);
  assert.equal(await rt.evaluate('component("h.1.mlp.c_proj:5")'), `${fmtNum(e5)}  (base ${fmtNum(b5)}, Δ ${fmtNum(e5 - b5)})`);
  assert.equal(await rt.evaluate('base(component("h.1.mlp.c_proj:5")) == edited(component("h.1.mlp.c_proj:5"))'), 'false');
  assert.equal(await rt.evaluate('component("h.1.mlp.c_fc:3") > 1000 or not position > 100'), 'true');
  await rt.continue();
  const logits = a.logits('edited', pos);
  const der = a.tracer.lm.tokenizer.encode('der')[0];
  assert.match(await rt.evaluate('logit("der")'), new RegExp(`^${fmtNum(logits[der]).replace('.', '\\.')}`));
  assert.match(await rt.evaluate('loss()'), /^\d+\.\d{4} {2}\(base \d+\.\d{4}, Δ /);
  for (const [bad, why] of [
    ['nope(1)', new RegExp(`unknown function nope\\(\\) \\(known: ${[...Object.keys(BUILTINS), ...SIDES].join(', ')}\\)`)],
    ['abs(1, 2)', /abs\(\) takes 1 argument$/],
    ['constructor()', /unknown function constructor\(\)/],
    ['logit("der die")', /is 2 tokens/],
    ['component("h.0.mlp.c_fc:1")', /no component h\.0\.mlp\.c_fc:1/],
    ['loss(german)', /unknown name "german"/],
    ['1 >', /expected a number/],
  ] as const) {
    await assert.rejects(rt.evaluate(bad), (e: unknown) => e instanceof ScalpelError && why.test(e.message), bad);
  }
  await l.release();
});

test('every function of the expression language is documented in docs/debugger.md', () => {
  const table = fs.readFileSync('docs/debugger.md', 'utf8').split('## Expressions')[1].split('\n## ')[0];
  for (const name of [...Object.keys(BUILTINS), ...SIDES]) assert.ok(table.includes(`\`${name}(`), name);
});

test('a one-token input traces; loss() says there is nothing to score', async () => {
  const l = await launch({ input: '' });
  assert.equal(l.runtime.analysis.length, 1);
  assert.match(l.summary.join('\n'), /^predicted next: /m);
  await l.runtime.start(true, false);
  await assert.rejects(l.runtime.evaluate('loss()'), (e: unknown) => e instanceof ScalpelError && /no next token/.test(e.message));
  await l.release();
});

test('launch errors are one ScalpelError each', async () => {
  const cases: [Partial<ScalpelLaunchArgs>, RegExp][] = [
    [{ model: undefined }, /needs "spec" or "model"/],
    [{ input: undefined }, /needs "input" \(text\) or "example"/],
    [{ example: 'udhr:deu#1' }, /not both/],
    [{ input: undefined, example: 'udhr:deu' }, /SOURCE#N/],
    [{ input: undefined, example: 'udhr:deu#999' }, /has \d+ documents/],
    [{ position: 40 }, /outside the input's 11 tokens/],
    [{ target: 'der die' }, /2 tokens/],
    [{ scales: { 'h.1.mlp.c_fc:41': 0 }, catalog: undefined, model: TINY }, /needs a component catalog/],
    // The neuron key it suggests is in the model's own module names (an exporter's, here).
    [{ scales: { 'model.layers.1.mlp.down_proj:3': 0 }, catalog: undefined, model: path.resolve('test/fixtures/real/llama') }, /e\.g\. model\.layers\.0\.[a-z_.]+:n0\)/],
    [{ model: '/nonexistent/model' }, /no such file/],
  ];
  for (const [args, why] of cases) {
    await assert.rejects(launch(args), (e: unknown) => e instanceof ScalpelError && why.test(e.message), JSON.stringify(args));
  }
});

function fmtNum(x: number): string {
  const a = Math.abs(x);
  return x === 0 ? '0' : a >= 1e4 || a < 1e-3 ? x.toExponential(3) : x.toFixed(4);
}

test('a spec launch debugs its edit: selectors resolved in the catalog, its scale, its named datasets', async () => {
  const dir = tinyWithCatalog();
  const spec = path.join(dir, 'edit.scalpel');
  const edit = (scale: string) =>
    `model tiny from "." {\n  components "components"\n}\n\ndata sample = inline "alle Mensch ist frei und die Würde"\n\nedit drop on tiny {\n  select "h.1.mlp.c_fc:3"\n  scale ${scale}\n}\n`;
  fs.writeFileSync(spec, edit('0'));
  const l = await launchRuntime({ spec, example: 'sample#0' });
  assert.ok(l.summary.includes('edit: drop: h.1.mlp.c_fc:3 × 0'), l.summary.join('\n'));
  // Component 3 of the neuron-by-input catalog is row 3 of the weight: c_fc's output is the first to move.
  assert.equal(where(await l.runtime.start(false, true)), 'divergence h.1.mlp.c_fc');
  assert.match(await l.runtime.evaluate('loss(sample)'), /^\d+\.\d{4} {2}\(base \d+\.\d{4}, Δ /);
  // On the edited side the ablated component's activation includes its scale: 0.
  const base3 = l.runtime.analysis.activations('h.1.mlp.c_fc', 'base', l.runtime.opts.position)![3];
  assert.notEqual(base3, 0);
  assert.equal(await l.runtime.evaluate('component("h.1.mlp.c_fc:3")'), `0  (base ${fmtNum(base3)}, Δ ${fmtNum(-base3)})`);
  await assert.rejects(l.runtime.evaluate('loss(german)'), (e: unknown) => e instanceof ScalpelError && /unknown name "german" \(datasets: sample\)/.test(e.message));
  await l.release();
  await assert.rejects(launchRuntime({ spec, edit: 'nope', input: 'alle' }), (e: unknown) => e instanceof ScalpelError && /no edit named "nope" \(it has drop\)/.test(e.message));
  // DATASET#worst: the document and token where the edit raises the loss most, as the trace itself sees it.
  fs.writeFileSync(path.join(dir, 'docs.txt'), 'alle Mensch ist frei\n\ndie Würde der Mensch ist frei und alle\n\nle homme est libre et la dignité\n');
  fs.writeFileSync(spec, edit('0').replace('data sample = inline "alle Mensch ist frei und die Würde"', 'data sample = text "docs.txt"'));
  const w = await launchRuntime({ spec, example: 'sample#worst' });
  const a = w.runtime.analysis;
  const [b, e] = [a.tokenLosses('base'), a.tokenLosses('edited')];
  let best = 0;
  for (let p = 1; p < b.length; p++) if (e[p] - b[p] > e[best] - b[best]) best = p;
  assert.equal(w.runtime.opts.position, best);
  assert.ok(e[best] > b[best]);
  assert.ok(w.summary.some((l) => /^largest loss increase in sample: document \d, token \d+: /.test(l)), w.summary.join('\n'));
  await w.release();
  fs.writeFileSync(spec, edit('tune in [-2, 1] maximize loss(sample)'));
  await assert.rejects(launchRuntime({ spec, input: 'alle' }), (e: unknown) => e instanceof ScalpelError && /tunes its scale .* run `scalpel apply` first/.test(e.message) && e.position?.line === 7);
  const given = await launchRuntime({ spec, input: 'alle Mensch', scale: -1.5 });
  assert.ok(given.summary.includes('edit: drop: h.1.mlp.c_fc:3 × -1.5000 (from the launch configuration)'), given.summary.join('\n'));
  await given.release();
});

test('a gated edit is traced through its gated path: the gate per token, the edited product and activation follow it', async () => {
  const dir = tinyWithCatalog({ ci: true });
  const spec = path.join(dir, 'gated.scalpel');
  fs.writeFileSync(spec, `model tiny from "." {\n  components "components"\n}\n\nedit drop on tiny {\n  select "h.1.mlp.c_fc:3"\n  scale -2 gated\n}\n`);
  const l = await launchRuntime({ spec, input: INPUT });
  try {
    assert.ok(l.summary.includes('edit: drop: h.1.mlp.c_fc:3 × -2.0000 gated'), l.summary.join('\n'));
    const a = l.runtime.analysis;
    const mw = a.modules.get('h.1.mlp.c_fc')!;
    const C = mw.dIn;
    const ci = ciParams(C);
    const gelu = (x: number) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
    const gates = a.gateValues('h.1.mlp.c_fc:3')!;
    assert.equal(gates.length, a.length);
    const U = writeVector(a.factors('h.1.mlp.c_fc')!, 3);
    for (let t = 0; t < a.length; t++) {
      // V = I: the component's activation is input unit 3; its CI computed here from the catalog's parameters.
      const x = captured(a.trace, 'base', mw.inputTensor, t);
      const act = x[3];
      let g = ci.bOut[3];
      for (let h = 0; h < CI_HIDDEN; h++) g += ci.wOut[3 * CI_HIDDEN + h] * gelu(act * ci.wIn[3 * CI_HIDDEN + h] + ci.bIn[3 * CI_HIDDEN + h]);
      g = Math.min(1, Math.max(0, g));
      assert.ok(Math.abs(gates[t] - g) < 1e-5, `gate at ${t}: ${gates[t]} vs ${g}`);
      // The edited product is the base one plus (s − 1)·gate·a·U[3]; the edited activation is a·(1 + (s − 1)·gate).
      const [yb, ye] = (['base', 'edited'] as const).map((s) => captured(a.trace, s, mw.outputTensor, t));
      for (let j = 0; j < mw.dOut; j++) assert.ok(Math.abs(ye[j] - (yb[j] - 3 * g * act * U[j])) < 1e-4, `product [${t}, ${j}]`);
      assert.ok(Math.abs(a.activations('h.1.mlp.c_fc', 'edited', t)![3] - act * (1 - 3 * g)) < 1e-4);
    }
    assert.ok(gates.some((g) => g > 0.05 && g < 0.95), `gates ${[...gates].map((g) => g.toFixed(2))}`);
    assert.equal(await l.runtime.evaluate('gate("h.1.mlp.c_fc:3")'), fmtNum(gates[l.runtime.opts.position]));
    await assert.rejects(l.runtime.evaluate('gate("h.1.mlp.c_fc:4")'), /h\.1\.mlp\.c_fc:4 is not gated in this edit/);
  } finally {
    await l.release();
  }
});
