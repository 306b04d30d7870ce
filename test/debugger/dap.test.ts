/**
 * The debug adapter over DAP, as an editor drives it: `scalpel dap` spawned on stdio and driven by
 * @vscode/debugadapter-testsupport's DebugClient. Each scenario records a transcript (stops, stack,
 * scopes, variables, evaluations) and compares it with test/debugger/golden/NAME.txt; ids in it are
 * deterministic by design (thread 1, frame = 1 + depth from the top, variables from 1000 per stop).
 * Rewrite the goldens with UPDATE_GOLDEN=1 and review the diff; a missing golden fails. The demo golden names the
 * model, catalog and spec bytes it was recorded from, and fails, saying so, when they change.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { DebugClient } from '@vscode/debugadapter-testsupport';
import { DebugProtocol } from '@vscode/debugprotocol';
import { DEMO, tinyWithCatalog } from './helpers';
import { STOP_CONTEXT, StopContext } from '../../debugger/requests';
import { resolvePoint } from '../../engine/geometry/points';
import { openLanguageModel } from '../../engine/lm';
import { analyzeModel } from '../../engine/trace/graph';
import { UPDATING, expectGolden } from '../helpers/golden';

const ROOT = path.join(__dirname, '..', '..');
const GOLDEN = path.join(__dirname, 'golden');

/** `node --import tsx cli/main.ts dap`: the CLI command itself, without needing a build. */
function adapter(): DebugClient {
  const dc = new DebugClient(process.execPath, '--import tsx cli/main.ts dap', 'scalpel', { cwd: ROOT, shell: true }, true);
  dc.defaultTimeout = 20000;
  return dc;
}

class Transcript {
  readonly lines: string[] = [];

  constructor(readonly dc: DebugClient, readonly root: string) {
    dc.on('output', (e: DebugProtocol.OutputEvent) => this.lines.push(`output (${e.body.category}): ${this.clean(e.body.output.trimEnd())}`));
    dc.on('terminated', () => this.lines.push('terminated'));
  }

  private clean(s: string): string {
    return s.split(this.root).join('<model>');
  }

  log(line: string): void {
    this.lines.push(this.clean(line));
  }

  /** Sends a movement and records the stop it causes. */
  async move(request: 'continue' | 'next' | 'stepIn' | 'stepOut' | 'stepBack' | 'reverseContinue'): Promise<DebugProtocol.StoppedEvent> {
    this.log(`> ${request}`);
    const stopped = this.dc.waitForEvent('stopped') as Promise<DebugProtocol.StoppedEvent>;
    await (this.dc[`${request}Request`] as (a: { threadId: number }) => Promise<unknown>).call(this.dc, { threadId: 1 });
    const e = await stopped;
    await this.stop(e);
    return e;
  }

  async stop(e: DebugProtocol.StoppedEvent): Promise<void> {
    this.log(`< stopped ${e.body.reason}${e.body.description ? ` (${e.body.description})` : ''}`);
    const st = await this.dc.stackTraceRequest({ threadId: 1 });
    for (const f of st.body.stackFrames) this.log(`  frame ${f.id} ${f.name} @ ${f.source?.name}:${f.line}`);
    const scopes = await this.dc.scopesRequest({ frameId: 1 });
    for (const s of scopes.body.scopes) {
      this.log(`  scope ${s.name} [${s.variablesReference}]`);
      const vars = await this.dc.variablesRequest({ variablesReference: s.variablesReference });
      for (const v of vars.body.variables) this.log(`    ${v.name} = ${v.value}${v.variablesReference ? ` [${v.variablesReference}]` : ''}`);
    }
  }

  /** Expands a variable of the top frame's scope, one level. */
  async expand(scope: string, variable: string): Promise<void> {
    const scopes = await this.dc.scopesRequest({ frameId: 1 });
    const ref = scopes.body.scopes.find((s) => s.name === scope)!.variablesReference;
    const v = (await this.dc.variablesRequest({ variablesReference: ref })).body.variables.find((x) => x.name.startsWith(variable))!;
    this.log(`  expand ${scope} / ${v.name}`);
    for (const c of (await this.dc.variablesRequest({ variablesReference: v.variablesReference })).body.variables) {
      this.log(`    ${c.name} = ${c.value}${c.variablesReference ? ` [${c.variablesReference}]` : ''}`);
    }
  }

  async evaluate(expression: string): Promise<void> {
    try {
      const r = await this.dc.evaluateRequest({ expression, frameId: 1, context: 'watch' });
      this.log(`  eval ${expression} = ${r.body.result}`);
    } catch (err) {
      this.log(`  eval ${expression} ! ${(err as Error).message}`);
    }
  }

  check(name: string): void {
    expectGolden(path.join(GOLDEN, `${name}.txt`), this.lines.join('\n') + '\n', `transcript ${name}`);
  }
}

/** initialize → launch → (initialized) breakpoints → configurationDone → first stop, all recorded. */
async function start(t: Transcript, args: Record<string, unknown>, breakpoints: { lines?: { line: number; condition?: string }[]; functions?: string[] } = {}) {
  const { dc } = t;
  await dc.start();
  const stopped = dc.waitForEvent('stopped') as Promise<DebugProtocol.StoppedEvent>;
  const configured = dc.waitForEvent('initialized').then(async () => {
    const src = await dc.sourceRequest({ sourceReference: 1, source: { sourceReference: 1 } } as DebugProtocol.SourceArguments);
    t.log('source:');
    for (const l of src.body.content.trimEnd().split('\n')) t.log(`  | ${l}`);
    if (breakpoints.lines) {
      const r = await dc.setBreakpointsRequest({ source: { sourceReference: 1 }, breakpoints: breakpoints.lines });
      for (const b of r.body.breakpoints) t.log(`breakpoint line ${b.line}: ${b.verified ? 'verified' : `unverified (${b.message})`}`);
    }
    if (breakpoints.functions) {
      const r = await dc.setFunctionBreakpointsRequest({ breakpoints: breakpoints.functions.map((name) => ({ name })) });
      r.body.breakpoints.forEach((b, i) => t.log(`breakpoint ${breakpoints.functions![i]}: ${b.verified ? `verified at line ${b.line}` : `unverified (${b.message})`}`));
    }
    await dc.configurationDoneRequest();
  });
  await Promise.all([configured, dc.launch(args as DebugProtocol.LaunchRequestArguments)]);
  await t.stop(await stopped);
}

test('DAP transcript: stepping, breakpoints, scopes, step back and reverse continue on the tiny GPT', { timeout: 60000 }, async () => {
  const model = tinyWithCatalog();
  const t = new Transcript(adapter(), model);
  try {
    await start(
      t,
      { model, input: 'alle Mensch ist frei und die Würde der Mensch ist', scales: { 'h.1.mlp.c_fc:n5': 0 }, stopOnEntry: true },
      { lines: [{ line: 7 }, { line: 11, condition: 'component("h.1.mlp.c_fc:3") > 1000' }, { line: 99 }], functions: ['h.1.mlp.c_fc:3', 'h.7'] },
    );
    await t.move('stepIn');
    await t.move('continue');
    await t.move('stepIn');
    await t.move('next');
    await t.move('stepIn');
    await t.evaluate('component("h.1.mlp.c_proj:5")');
    await t.evaluate('logit("der")');
    await t.evaluate('loss()');
    await t.evaluate('logit("nicht")');
    await t.evaluate('summary()');
    await t.move('continue');
    await t.expand('Base vs edited', 'contributions to');
    await t.expand('Components', 'h.1.mlp.c_fc:');
    await t.move('stepIn');
    await t.move('stepBack');
    await t.move('reverseContinue');
    await t.move('continue');
    await t.move('continue');
    t.log('> continue');
    const terminated = t.dc.waitForEvent('terminated');
    await t.dc.continueRequest({ threadId: 1 });
    await terminated;
    t.check('tiny');
  } finally {
    await t.dc.stop();
  }
});

test('DAP: step back returns exactly to the previous state (stack, scopes, variables and their children)', { timeout: 60000 }, async () => {
  const model = tinyWithCatalog();
  const dc = adapter();
  const t = new Transcript(dc, model);
  /** The whole visible state: every frame's scopes, variables, and one level of children. */
  const state = async () => {
    const out: unknown[] = [];
    const st = await dc.stackTraceRequest({ threadId: 1 });
    for (const f of st.body.stackFrames) {
      const scopes = await dc.scopesRequest({ frameId: f.id });
      for (const s of scopes.body.scopes) {
        const vars = (await dc.variablesRequest({ variablesReference: s.variablesReference })).body.variables;
        for (const v of vars) {
          const children = v.variablesReference ? (await dc.variablesRequest({ variablesReference: v.variablesReference })).body.variables : [];
          out.push([f.id, f.name, f.line, s.name, v.name, v.value, children.map((c) => [c.name, c.value])]);
        }
      }
    }
    return out;
  };
  try {
    await start(t, { model, input: 'alle Mensch ist frei', scales: { 'h.1.mlp.c_fc:n5': 0 }, stopOnDivergence: true });
    for (const move of ['stepIn', 'stepOut', 'next', 'stepIn'] as const) {
      const before = await state();
      await t.move(move);
      const after = await state();
      assert.notDeepEqual(after, before, `${move} moved`);
      await t.move('stepBack');
      assert.deepEqual(await state(), before, `stepping back after ${move} restores the state`);
      await t.move(move);
    }
  } finally {
    await dc.stop();
  }
});

test('DAP: a bad launch answers with one error message and ends the session', { timeout: 60000 }, async () => {
  const dc = adapter();
  try {
    await dc.start();
    await dc.initializeRequest();
    const terminated = dc.waitForEvent('terminated');
    await assert.rejects(dc.launchRequest({ model: '/nonexistent/polyglot', input: 'x' } as DebugProtocol.LaunchRequestArguments), (e: Error) => e.message === '/nonexistent/polyglot: cannot open model: no such file');
    await terminated;
  } finally {
    await dc.stop();
  }
});

test('DAP scalpel/stopContext: the launch\'s spec, edit, scale and example, and every stop\'s capture point for the Geometry panel', { timeout: 60000 }, async () => {
  const dir = tinyWithCatalog();
  const spec = path.join(dir, 'edit.scalpel');
  fs.writeFileSync(path.join(dir, 'docs.txt'), 'alle Mensch ist frei\n\ndie Würde der Mensch ist frei und alle\n\nle homme est libre et la dignité\n');
  fs.writeFileSync(spec, 'model tiny from "." {\n  components "components"\n}\n\ndata sample = text "docs.txt"\n\nedit drop on tiny {\n  select "h.1.mlp.c_fc:3"\n  scale tune in [-2, 1] maximize loss(sample)\n}\n');
  const dc = adapter();
  const t = new Transcript(dc, dir);
  const at = async (frameId?: number) => (await dc.customRequest(STOP_CONTEXT, frameId === undefined ? {} : { frameId })).body as StopContext;
  try {
    await start(t, { spec, example: 'sample#worst', scale: -1.5, stopOnEntry: true }, { functions: ['h.1.mlp.c_fc:3'] });
    const entry = await at();
    const worst = /largest loss increase in sample: document (\d+), token (\d+)/.exec(t.lines.join('\n'))!;
    assert.deepEqual(
      { ...entry, token: undefined },
      { spec: path.resolve(spec), edit: 'drop', scale: -1.5, example: { dataset: 'sample', document: Number(worst[1]) }, position: Number(worst[2]), token: undefined, point: 'model', geometryPoint: 'embed' },
    );
    const model = (await dc.stackTraceRequest({ threadId: 1 })).body.stackFrames[0].name;
    assert.ok(model.endsWith(`token ${entry.position} ${JSON.stringify(entry.token)}`), `${model} names the token debugged`);
    // Every stop of the pass, in order: its point and the capture point geometry reads there.
    const seen: [string, string][] = [[entry.point, entry.geometryPoint]];
    while (seen[seen.length - 1][0] !== 'logits') {
      await t.move('stepIn');
      const c = await at();
      seen.push([c.point, c.geometryPoint]);
      if (c.point === 'h.1.mlp.c_fc:3') {
        // A deeper frame of the same stop: the module, its block, the model.
        assert.deepEqual([(await at(2)).geometryPoint, (await at(3)).geometryPoint, (await at(4)).geometryPoint], ['h.1.mlp.c_fc', 'h.1.resid', 'embed']);
        await assert.rejects(at(5), /no frame 5 at this stop/);
      }
    }
    const of = new Map(seen);
    assert.deepEqual(['model', 'h.0', 'h.0.attn.c_attn', 'h.1', 'h.1.mlp.c_fc:3', 'lm_head', 'logits'].map((p) => of.get(p)), ['embed', 'h.0.resid', 'h.0.attn.c_attn', 'h.1.resid', 'h.1.mlp.c_fc', 'h.1.resid', 'h.1.resid']);
    // Each is a point `scalpel geometry --at` and the panel's job accept.
    const lm = openLanguageModel(dir);
    const structure = analyzeModel(lm.onnx, lm.logitsName);
    for (const [, g] of seen) assert.doesNotThrow(() => resolvePoint(structure, g), g);
    await assert.rejects(dc.customRequest('scalpel/noSuchRequest', {}));
  } finally {
    await dc.stop();
  }
  // A launch with a model rather than a spec: no spec, edit, scale or example to open the panel with.
  const bare = adapter();
  try {
    await start(new Transcript(bare, dir), { model: dir, input: 'alle Mensch ist frei', stopOnEntry: true });
    assert.deepEqual(Object.keys((await bare.customRequest(STOP_CONTEXT, {})).body).sort(), ['geometryPoint', 'point', 'position', 'token']);
  } finally {
    await bare.stop();
  }
});

const SPEC = path.join(ROOT, 'examples', 'one-component.scalpel');

/** The demo model, its catalog and the example spec change when retrained, re-decomposed or edited: the golden names the bytes it was made from. */
function demoInputs(): string {
  const hash = (f: string) => createHash('sha256').update(fs.readFileSync(f)).digest('hex').slice(0, 16);
  const files = [path.join(DEMO, 'model.onnx'), path.join(DEMO, 'components', 'catalog.json'), path.join(DEMO, 'components', 'components.safetensors'), SPEC];
  return `# demo inputs: ${files.map((f) => `${path.relative(ROOT, f)} ${hash(f)}`).join(', ')}`;
}

// The demo model, its catalog and the example are committed: without them this test fails rather than skips.
test('DAP transcript on the demo model: a spec\'s edit, the German example it hurts most, stop where base and edited diverge', { timeout: 120000 }, async () => {
  const inputs = demoInputs();
  const golden = path.join(GOLDEN, 'demo.txt');
  // A changed model, catalog or spec is a changed transcript: it fails until re-recorded and reviewed.
  if (!UPDATING && fs.existsSync(golden)) {
    assert.equal(inputs, fs.readFileSync(golden, 'utf8').split('\n')[0], 'the demo model, its catalog or the example spec changed since test/debugger/golden/demo.txt was recorded: re-record it with UPDATE_GOLDEN=1 and review');
  }
  const t = new Transcript(adapter(), ROOT);
  t.log(inputs);
  try {
    await start(t, { spec: SPEC, example: 'german#worst', stopOnDivergence: true });
    await t.move('stepIn');
    await t.expand('Components', 'h.2.mlp.c_fc:');
    await t.move('stepOut');
    await t.move('next');
    await t.evaluate('logit("der")');
    await t.evaluate('component("h.2.mlp.c_fc:41")');
    await t.evaluate('summary()');
    await t.move('stepBack');
    await t.move('continue');
    t.check('demo');
  } finally {
    await t.dc.stop();
  }
});
