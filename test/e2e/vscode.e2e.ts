/**
 * End to end in a real VS Code (code-server) with the packaged VSIX: diagnostics, completion of a
 * component key, Preview numbers read from the webview, expectations run in Test Explorer, the model
 * debugger started from Test Explorer's Debug profile and the Debug code lens (Variables, a step, the Geometry
 * panel opened from the stop), the live preview of an unsaved spec, the Geometry panel from its code lens (probe accuracy per layer, base
 * and edited), and an untrusted workspace that refuses to run the model. Screenshots go to test-output/,
 * and the figures (activation, open-to-diagnostics, Preview open-to-numbers, Debug-to-Variables, live
 * change-to-numbers, Geometry open-to-plot, debugger stop to Geometry plot) to test-output/e2e-figures.json.
 *
 *   npm run test:e2e      (provisions code-server into ~/.cache/scalpel-e2e and packages the VSIX first)
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Browser, Frame, Page } from 'playwright-core';
import { outline } from '../../extension/outline';
import { launchChromium } from '../helpers/chromium';
import { scalpel } from '../helpers/cli';
import * as h from './harness';

const SPEC = 'remove-german.scalpel';
const EDIT = 'no_german';
const TARGET = 'german';
const figures: Record<string, number | string> = {};

let browser: Browser;
before(async () => {
  h.requireProvisioned();
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  fs.mkdirSync(h.OUTPUT, { recursive: true });
  fs.writeFileSync(path.join(h.OUTPUT, 'e2e-figures.json'), JSON.stringify(figures, null, 2) + '\n');
  console.log('e2e figures:', JSON.stringify(figures));
});

const lineText = (ws: string, file: string) => fs.readFileSync(path.join(ws, 'examples', file), 'utf8').split('\n');

async function previewFrame(page: Page): Promise<Frame> {
  return h.webviewFrame(page, async (f) => (await f.locator(`scalpel-preview #deltas tr[data-dataset="${TARGET}"] td.delta`).count()) > 0, 300_000);
}

/** Switches the colour theme through its picker, and waits for the workbench to take it. */
async function setTheme(page: Page, theme: 'light' | 'dark'): Promise<void> {
  await h.runCommand(page, 'Preferences: Color Theme');
  const input = page.locator('.quick-input-widget input');
  await input.fill(theme === 'light' ? 'Light Modern' : 'Dark Modern');
  // Enter accepts the focused (first matching) theme; a click or a lost focus may only preview it.
  await page.locator('.quick-input-list .monaco-list-row.focused', { hasText: theme === 'light' ? 'Light Modern' : 'Dark Modern' }).waitFor();
  await page.keyboard.press('Enter');
  await page.locator('.quick-input-widget').waitFor({ state: 'hidden' });
  await page.locator(theme === 'light' ? '.monaco-workbench.vs' : '.monaco-workbench.vs-dark').waitFor();
  await page.waitForTimeout(1000);
}

test('trusted workspace: diagnostics, completion, Preview numbers, Test Explorer, Components', { timeout: 600_000 }, async () => {
  const source = fs.readFileSync(path.join(h.SOURCE, 'examples', SPEC), 'utf8');
  // A copy to break and complete in, so the spec itself stays intact for Preview; a fixture under test/ and a spec
  // in a folder that files.exclude hides, which Test Explorer must not list.
  const ws = h.makeWorkspace({
    'examples/scratch.scalpel': source,
    'test/fixture-spec.scalpel': source,
    'drafts/hidden-spec.scalpel': source,
    '.vscode/settings.json': JSON.stringify({ 'files.exclude': { '**/drafts': true } }),
  });
  const server = await h.startCodeServer({ trusted: true });
  try {
    const page = await h.openWorkbench(browser, server, ws);
    // Activation is on workspaceContains:**/*.scalpel: the extension logs how long activate() took.
    figures.activationMs = Number((await waitForLog(server, /Scalpel activated in ([\d.]+) ms/, 60_000))[1]);
    await page.locator('.statusbar-item', { hasText: 'Scalpel' }).first().waitFor();

    // 1. A broken line gets a diagnostic (the language server runs in its own process).
    let t = Date.now();
    await h.openFile(page, 'scratch.scalpel');
    const editor = page.locator('.editor-instance .monaco-editor').first();
    await editor.locator('.view-lines').click();
    await page.keyboard.press('Control+End');
    await page.keyboard.type('\nguard broken = [no_such_data] within 1 nats\n');
    await page.locator('.squiggly-error').first().waitFor({ timeout: 60_000 });
    // From Quick Open of a spec, through typing the broken line, to the squiggle.
    figures.openToFirstDiagnosticMs = Date.now() - t;
    await page.keyboard.press('Control+S');
    await page.locator('.statusbar-item[aria-label*="Error"], .statusbar-item:has(.codicon-error)').first().waitFor();
    await h.screenshot(page, 'diagnostic');
    await runHover(page, 'no_such_data');

    // 2. Completion of a component key inside an edit: a module prefix, then the index.
    const text = lineText(ws, 'scratch.scalpel');
    const selectLine = text.findIndex((l) => /^\s*select\b/.test(l)) + 1;
    assert.ok(selectLine > 0, 'the spec has a select line');
    // From the top, where the select line is in view (the editor renders only the lines it shows).
    await page.keyboard.press('Control+Home');
    await page.locator('.view-line', { hasText: text[selectLine - 1].trim() }).first().click();
    await page.keyboard.press('End');
    await page.keyboard.press('Enter');
    const module = 'h.1.mlp.c_fc';
    await page.keyboard.type(`select "${module}:`);
    await page.keyboard.press('Control+Space');
    const row = page.locator('.suggest-widget.visible .monaco-list-row').first();
    await row.waitFor({ timeout: 30_000 });
    const offered = (await row.getAttribute('aria-label')) ?? '';
    await h.screenshot(page, 'completion');
    await page.keyboard.press('Enter');
    await page.keyboard.press('Control+S');
    // The accepted item completes the key with an index (the closing quote depends on auto-closing).
    const wanted = new RegExp(`^\\s*select "${module.replace(/\./g, '\\.')}:\\d+"?\\s*$`);
    const saved = Date.now();
    while (!lineText(ws, 'scratch.scalpel').some((l) => wanted.test(l))) {
      assert.ok(Date.now() - saved < 10_000, `completion "${offered}" gave:\n${lineText(ws, 'scratch.scalpel').join('\n')}`);
      await page.waitForTimeout(200);
    }

    // 3. Preview. First cancelled: cancelling the progress notification stops the model worker (or kills it after a grace period).
    await h.openFile(page, SPEC);
    await h.runCommand(page, 'Scalpel: Preview Edit');
    const toast = page.locator('.notification-toast', { hasText: 'Scalpel: previewing' });
    await toast.locator('.monaco-button', { hasText: 'Cancel' }).click({ timeout: 30_000 });
    const cancelled = await waitForLog(server, /\[preview\] cancelled after (\d+) ms: worker (\d+) asked to stop/);
    const alive = () => {
      try {
        process.kill(Number(cancelled[2]), 0);
        return true;
      } catch {
        return false;
      }
    };
    for (const gone = Date.now() + 6000; alive(); await page.waitForTimeout(100)) assert.ok(Date.now() < gone, 'the worker process is gone');
    figures.previewCancelledAfterMs = Number(cancelled[1]);

    // Then run to the end, and read the numbers from the webview.
    t = Date.now();
    await h.runCommand(page, 'Scalpel: Preview Edit');
    const frame = await previewFrame(page);
    figures.previewOpenToNumbersMs = Date.now() - t;
    const delta = Number(await frame.locator(`scalpel-preview #deltas tr[data-dataset="${TARGET}"] td.delta`).textContent());
    const rows = await frame.locator('scalpel-preview #deltas tbody tr').count();
    assert.ok(Number.isFinite(delta), 'a number');
    assert.ok(rows >= 2, `${rows} datasets`);
    figures.previewTargetDelta = delta;
    assert.match((await frame.locator('scalpel-preview h2').first().textContent()) ?? '', new RegExp(`Edit ${EDIT} at scale`));
    await frame.locator('scalpel-preview canvas#bars').waitFor();
    await page.waitForTimeout(500);
    await h.screenshot(page, 'preview-dark');
    // The last measured Δloss is shown after the edit line (CSS content, so read it from the hover).
    await page.locator('.view-line', { hasText: `edit ${EDIT} on` }).locator('span', { hasText: EDIT }).last().hover();
    await page.locator('.monaco-hover', { hasText: `Last measured Δloss of ${EDIT}` }).first().waitFor({ timeout: 15_000 });
    await page.mouse.move(0, 0);

    // 4. Test Explorer: run the spec's item. Each guard and expectation item shows the verdict the CLI
    // (`scalpel eval SPEC --json`, the same engine in another process) gives for its line.
    const cli = scalpel(['eval', path.join(ws, 'examples', SPEC), '--json']);
    const cliChecks: { line: number; pass: boolean; dataset: string; goal?: { met: boolean } }[] = JSON.parse(cli.stdout).edits.flatMap((e: { checks: unknown[] }) => e.checks);
    const items = outline(source).filter((i) => i.kind === 'guard' || i.kind === 'expect');
    await h.runCommand(page, 'Testing: Focus on Test Explorer View');
    const specRow = page.locator('.test-explorer .monaco-list-row', { hasText: SPEC }).first();
    await specRow.waitFor({ timeout: 30_000 });
    // Only the specs the user owns: the examples, not the test/ fixture nor what files.exclude hides.
    const listed = await page.locator('.test-explorer .monaco-list-row').allInnerTexts();
    assert.ok(listed.some((t) => t.includes('scratch.scalpel')), `Test Explorer lists ${listed.join(' | ')}`);
    assert.ok(!listed.some((t) => t.includes('fixture-spec.scalpel') || t.includes('hidden-spec.scalpel')), `Test Explorer lists ${listed.join(' | ')}`);
    await h.runSpecTests(page, SPEC, specRow);
    const verdicts: string[] = [];
    for (const item of items) {
      const mine = cliChecks.filter((c) => c.line === item.line);
      assert.ok(mine.length, `the CLI measured ${item.kind} ${item.label}`);
      const pass = mine.every((c) => c.pass);
      const row = page.locator('.test-explorer .monaco-list-row', { hasText: `${item.kind} ${item.label}` }).first();
      await row.locator(pass ? '.codicon-testing-passed-icon' : '.codicon-testing-failed-icon').waitFor({ timeout: 10_000 });
      // A goal the edit misses is said beside the item's name, the check still passed.
      const missed = mine.filter((c) => c.goal && !c.goal.met);
      if (missed.length) assert.match(await row.innerText(), new RegExp(`goal .* missed: ${missed.map((c) => c.dataset).join(' by .*, ')} by `), `${item.kind} ${item.label}`);
      verdicts.push(`${item.kind} ${item.label}: ${pass ? 'passed' : 'failed'}${missed.length ? `, goal missed on ${missed.length}` : ''}`);
    }
    figures.testExplorer = verdicts.join('; ');
    await h.screenshot(page, 'test-explorer');

    // 5. Apply, then Review: the lock's numbers are the ones Preview showed.
    await h.runCommand(page, 'Scalpel: Apply Edit');
    if (outline(source).filter((i) => i.kind === 'edit').length > 1) await page.getByRole('option', { name: EDIT, exact: true }).click();
    const applied = page.locator('.notification-toast', { hasText: 'Scalpel: wrote' });
    await applied.locator('.monaco-button', { hasText: 'Review' }).click({ timeout: 300_000 });
    const review = await h.webviewFrame(page, async (f) => (await f.locator(`scalpel-review #metrics tr[data-dataset="${TARGET}"] td.delta`).count()) > 0, 120_000);
    const reviewed = Number(await review.locator(`scalpel-review #metrics tr[data-dataset="${TARGET}"] td.delta`).textContent());
    assert.ok(Math.abs(reviewed - delta) < 1e-3, `review ${reviewed} vs preview ${delta}`);
    assert.ok((await review.locator('scalpel-review #weights tr').count()) >= 2, 'a weight-diff row per edited initializer');
    assert.ok(fs.existsSync(path.join(ws, 'examples', SPEC.replace(/\.scalpel$/, '.onnx'))), 'the edited model was written');
    await page.waitForTimeout(300);
    await h.screenshot(page, 'review-dark');
    await review.locator('scalpel-review #diff').click();
    await page.locator('.monaco-diff-editor').first().waitFor({ timeout: 30_000 });
    await h.screenshot(page, 'review-diff');

    // 6. Components panel.
    await h.runCommand(page, 'Scalpel: Show Components');
    const comp = await h.webviewFrame(page, async (f) => (await f.locator('scalpel-components .tr[data-key]').count()) > 0, 60_000);
    assert.match((await comp.locator('scalpel-components #count').textContent()) ?? '', /\d+ of \d+ components/);
    await page.waitForTimeout(300);
    await h.screenshot(page, 'components-dark');
    // The same panels in the light theme (charts take the new theme's colours).
    await setTheme(page, 'light');
    await h.screenshot(page, 'components-light');
    for (const [tab, name] of [['Scalpel: Review', 'review-light'], ['Scalpel: Edit Preview', 'preview-light']]) {
      await page.locator(`.tab[aria-label*="${tab}"]`).first().click();
      await page.waitForTimeout(1500);
      await h.screenshot(page, name);
    }
  } finally {
    await server.stop();
    fs.rmSync(ws, { recursive: true, force: true });
  }
});

test('Test Explorer with scalpel.testing.failOnMissedGoal: a check that passes its bound but misses its goal fails, one that meets it passes', { timeout: 300_000 }, async () => {
  const source = fs.readFileSync(path.join(h.SOURCE, 'examples', SPEC), 'utf8');
  const ws = h.makeWorkspace({ [`examples/${SPEC}`]: source, '.vscode/settings.json': JSON.stringify({ 'scalpel.testing.failOnMissedGoal': true }) });
  // The verdicts the CLI gives with --goals, line by line.
  const cliChecks: { line: number; pass: boolean; goal?: { met: boolean } }[] = JSON.parse(scalpel(['eval', path.join(ws, 'examples', SPEC), '--json', '--goals']).stdout).edits.flatMap((e: { checks: unknown[] }) => e.checks);
  const items = outline(source).filter((i) => i.kind === 'guard' || i.kind === 'expect');
  const verdict = (line: number) => cliChecks.filter((c) => c.line === line).every((c) => c.pass && (!c.goal || c.goal.met));
  assert.ok(items.some((i) => !verdict(i.line)) && items.some((i) => verdict(i.line)), `the example has a missed goal and a passing check: ${JSON.stringify(cliChecks)}`);
  const server = await h.startCodeServer({ trusted: true });
  try {
    const page = await h.openWorkbench(browser, server, ws);
    await page.locator('.statusbar-item', { hasText: 'Scalpel' }).first().waitFor();
    await h.runCommand(page, 'Testing: Focus on Test Explorer View');
    const specRow = page.locator('.test-explorer .monaco-list-row', { hasText: SPEC }).first();
    await specRow.waitFor({ timeout: 30_000 });
    await h.runSpecTests(page, SPEC, specRow);
    for (const item of items) {
      const row = page.locator('.test-explorer .monaco-list-row', { hasText: `${item.kind} ${item.label}` }).first();
      await row.locator(verdict(item.line) ? '.codicon-testing-passed-icon' : '.codicon-testing-failed-icon').waitFor({ timeout: 10_000 });
    }
  } finally {
    await server.stop();
    fs.rmSync(ws, { recursive: true, force: true });
  }
});

test('debugger: Debug from Test Explorer stops with the Variables view populated, and steps; the Debug code lens; Geometry at the stop', { timeout: 900_000 }, async () => {
  // A fresh workspace: no lock file, so the tuned scale of no_german is known only from a measurement.
  const ws = h.makeWorkspace();
  assert.ok(!fs.existsSync(path.join(ws, 'examples', `${SPEC}.lock`)));
  const server = await h.startCodeServer({ trusted: true });
  try {
    const page = await h.openWorkbench(browser, server, ws);
    await page.locator('.statusbar-item', { hasText: 'Scalpel' }).first().waitFor({ timeout: 180_000 });
    await h.openFile(page, SPEC);
    await h.runCommand(page, 'Testing: Focus on Test Explorer View');
    const specRow = page.locator('.test-explorer .monaco-list-row', { hasText: SPEC }).first();
    await specRow.waitFor({ timeout: 30_000 });
    await specRow.click();
    await page.keyboard.press('ArrowRight');
    const guardRow = page.locator('.test-explorer .monaco-list-row', { hasText: 'guard others' }).first();
    await guardRow.waitFor({ timeout: 10_000 });
    await guardRow.hover();
    let t = Date.now();
    await guardRow.locator('.action-label[aria-label="Debug Test"]').click();

    // Stopped: the four scopes (Test Explorer stays in front: open Run and Debug), each with values.
    await page.locator('.debug-toolbar').waitFor({ timeout: 150_000 });
    await page.keyboard.press('Control+Shift+D');
    const variables = page.locator('.debug-variables .monaco-list-row');
    const values = variables.filter({ has: page.locator('.value') });
    await variables.filter({ hasText: 'Activations' }).first().waitFor({ timeout: 150_000 });
    // One scope open at a time (the view is short): each one's variables have values. VS Code may or may not have
    // expanded the first scope by itself, so a row is clicked only when it is not in the state wanted.
    const expand = async (scope: string, open: boolean) => {
      const row = variables.filter({ hasText: scope }).first();
      if ((await row.getAttribute('aria-expanded')) !== String(open)) await row.click();
      await (open ? values.first().waitFor({ timeout: 10_000 }) : values.first().waitFor({ state: 'detached', timeout: 10_000 }));
    };
    for (const scope of ['Activations', 'Components', 'Logit lens', 'Base vs edited']) {
      await expand(scope, true);
      figures.debugFromTestExplorerToVariablesMs ??= Date.now() - t;
      if (scope !== 'Base vs edited') await expand(scope, false);
    }
    // The edit runs at the scale the extension measured: no lock exists.
    const edit = variables.filter({ hasText: 'from the launch configuration' }).first();
    await edit.waitFor({ timeout: 10_000 });
    assert.match((await edit.textContent()) ?? '', new RegExp(`${EDIT}: .*×.*\\(from the launch configuration\\)`));
    const evaluations = () => h.scalpelLog(server).match(/\[evaluate\] \//g)?.length ?? 0;
    const measuredOnce = evaluations();
    assert.equal(measuredOnce, 1, 'the scale was measured before the launch');
    await page.waitForTimeout(500);
    await h.screenshot(page, 'debug-variables-dark');

    // Step Over (F10) moves the stop: the top stack frame changes.
    const top = page.locator('.debug-call-stack .monaco-list-row .stack-frame').first();
    const before = (await top.innerText()).replace(/\s+/g, ' ');
    assert.ok(before, 'a stack frame at the stop');
    await page.keyboard.press('F10');
    const moved = Date.now();
    while ((await top.innerText()).replace(/\s+/g, ' ') === before) {
      assert.ok(Date.now() - moved < 30_000, `F10 left the stop at ${before}`);
      await page.waitForTimeout(200);
    }
    await variables.filter({ has: page.locator('.value') }).first().waitFor({ timeout: 30_000 });
    figures.debugStep = `${before} → ${(await top.innerText()).replace(/\s+/g, ' ')}`;
    await h.screenshot(page, 'debug-step');
    await page.keyboard.press('Shift+F5');
    await page.locator('.debug-toolbar').waitFor({ state: 'hidden', timeout: 30_000 });

    // The Debug code lens over the edit: the scale is already measured for this text, so it launches at once.
    await h.openFile(page, SPEC);
    const lens = page.locator('.codelens-decoration a', { hasText: 'Debug' }).first();
    await lens.waitFor({ timeout: 30_000 });
    t = Date.now();
    await lens.click();
    await variables.filter({ has: page.locator('.value') }).first().waitFor({ timeout: 120_000 });
    figures.debugCodeLensToVariablesMs = Date.now() - t;
    assert.equal(evaluations(), measuredOnce, 'no second evaluation');

    // Stopped where base and edited diverge: the debug toolbar's Show Geometry at This Stop opens the panel for the
    // session's spec and edit (at the scale it debugs: no tuning), at the stop's capture point, the token debugged marked.
    const stopKey = (await top.innerText()).trim().split(/\s+/)[0].replace(/:\d+$/, '');
    assert.match(stopKey, /^h\.\d+(\.|$)/, `a block or module stop: ${stopKey}`);
    const atStop = page.locator('.debug-toolbar .action-label[aria-label*="Show Geometry at This Stop"]');
    await atStop.waitFor({ timeout: 30_000 });
    t = Date.now();
    await atStop.click();
    const frame = await h.webviewFrame(page, async (f) => (await f.locator('scalpel-geometry #marked').count()) > 0, 480_000);
    figures.geometryFromDebuggerToPlotMs = Date.now() - t;
    assert.equal(await frame.locator('scalpel-geometry #point-name').textContent(), /^h\.\d+$/.test(stopKey) ? `${stopKey}.resid` : stopKey);
    assert.match((await frame.locator('scalpel-geometry #marked').textContent()) ?? '', new RegExp(`debugged: ${TARGET} · .* · document \\d+, token \\d+`));
    assert.match((await frame.locator('scalpel-geometry h2').first().textContent()) ?? '', new RegExp(`Geometry of ${EDIT}`));
    assert.doesNotMatch(h.scalpelLog(server), /\[geometry\] tuning/, 'the scale the session debugs, not tuned again');
    await page.waitForTimeout(500);
    await h.screenshot(page, 'geometry-from-debugger');
    await page.keyboard.press('Shift+F5');
  } finally {
    await server.stop();
    fs.rmSync(ws, { recursive: true, force: true });
  }
});

test('live preview: an unsaved change of a literal scale updates the Preview numbers', { timeout: 300_000 }, async () => {
  const source = fs.readFileSync(path.join(h.SOURCE, 'examples', SPEC), 'utf8');
  // The first edit with a literal scale in place of its tuned one.
  const live = source.replace(/^(\s*)scale tune .*$/m, '$1scale -2');
  assert.notEqual(live, source);
  const ws = h.makeWorkspace({ 'examples/live.scalpel': live });
  const server = await h.startCodeServer({ trusted: true });
  try {
    const page = await h.openWorkbench(browser, server, ws);
    await page.locator('.statusbar-item', { hasText: 'Scalpel' }).first().waitFor({ timeout: 180_000 });
    await h.openFile(page, 'live.scalpel');
    await h.runCommand(page, 'Scalpel: Preview Edit');
    const at = async (f: Frame, scale: number) => Number(await f.locator('scalpel-preview #scale').textContent()) === scale;
    const frame = await h.webviewFrame(page, (f) => at(f, -2), 300_000);
    const first = Number(await frame.locator(`scalpel-preview #deltas tr[data-dataset="${TARGET}"] td.delta`).textContent());
    const previews = () => h.scalpelLog(server).match(/\[preview\] \//g)?.length ?? 0;
    const started = previews();

    // Type a new scale without saving; once its preview starts, type another: the first is cancelled.
    const retype = async (from: string, scale: string) => {
      await page.locator('.view-line', { hasText: `scale ${from}` }).first().click();
      await page.keyboard.press('End');
      await page.keyboard.press('Shift+Home');
      await page.keyboard.type(`scale ${scale}`);
    };
    await retype('-2', '0.5');
    const deadline = Date.now() + 30_000;
    while (previews() === started) {
      assert.ok(Date.now() < deadline, 'no preview started after the change');
      await page.waitForTimeout(50);
    }
    const t = Date.now();
    await retype('0.5', '0.25');
    const updated = await h.webviewFrame(page, (f) => at(f, 0.25), 120_000);
    figures.livePreviewChangeToNumbersMs = Date.now() - t;
    const second = Number(await updated.locator(`scalpel-preview #deltas tr[data-dataset="${TARGET}"] td.delta`).textContent());
    assert.ok(Number.isFinite(second) && second !== first, `Δloss(${TARGET}) ${first} at scale -2, ${second} at 0.25`);
    figures.livePreviewTargetDelta = `${first} at scale -2 → ${second} at 0.25`;
    assert.match(h.scalpelLog(server), /\[preview\] cancelled after \d+ ms: worker \d+ asked to stop/, 'the superseded preview was cancelled');
    // Nothing was saved: the preview ran on the editor's text.
    const onDisk = fs.readFileSync(path.join(ws, 'examples', 'live.scalpel'), 'utf8').split('\n').filter((l) => /^\s*scale /.test(l));
    assert.equal(onDisk[0].trim(), 'scale -2', `on disk: ${onDisk.join(' | ')}`);
    await page.locator('.tab.active.dirty[aria-label*="live.scalpel"]').waitFor({ timeout: 5000 });
    await page.keyboard.press('Home');
    await h.screenshot(page, 'preview-live');
  } finally {
    await server.stop();
    fs.rmSync(ws, { recursive: true, force: true });
  }
});

async function waitForLog(server: h.CodeServer, re: RegExp, timeoutMs = 30_000): Promise<RegExpExecArray> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = re.exec(h.scalpelLog(server));
    if (m) return m;
    assert.ok(Date.now() < deadline, `no ${re} in the Scalpel log:\n${h.scalpelLog(server).slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Hovering the broken name shows the diagnostic's message (a check that the problem is the name). */
async function runHover(page: Page, word: string): Promise<void> {
  // A hover that arrives while the machine is busy can miss its first mouse-over: move away and hover again.
  for (let attempt = 1; ; attempt++) {
    await page.locator('.view-line span', { hasText: word }).last().hover();
    try {
      await page.locator('.monaco-hover', { hasText: word }).first().waitFor({ timeout: 10_000 });
      break;
    } catch (err) {
      if (attempt === 3) throw err;
      await page.mouse.move(0, 0);
    }
  }
  await page.mouse.move(0, 0);
}

test('untrusted workspace: the spec is checked, but Preview refuses to run the model', { timeout: 300_000 }, async () => {
  const ws = h.makeWorkspace();
  const server = await h.startCodeServer({ trusted: false });
  try {
    const page = await h.openWorkbench(browser, server, ws);
    await page.locator('.statusbar-item', { hasText: 'Scalpel: restricted' }).first().waitFor({ timeout: 180_000 });
    await h.openFile(page, SPEC);
    // Code lenses still show (no model runs to draw them).
    await page.locator('.codelens-decoration', { hasText: 'Preview' }).first().waitFor({ timeout: 60_000 });
    await h.runCommand(page, 'Scalpel: Preview Edit');
    await page.locator('.notifications-toasts', { hasText: 'runs no model in Restricted Mode' }).waitFor({ timeout: 30_000 });
    await h.screenshot(page, 'untrusted');
    // No preview panel opened and no worker ran.
    await page.waitForTimeout(1000);
    assert.equal(page.frames().filter((f) => f.name() === 'active-frame').length, 0);
    assert.doesNotMatch(h.scalpelLog(server), /\[preview\]/);
    assert.match(h.scalpelLog(server), /workspace restricted/);
  } finally {
    await server.stop();
    fs.rmSync(ws, { recursive: true, force: true });
  }
});

test('Geometry panel: the code lens over an edit opens the panel, base and edited, with probe accuracy per layer', { timeout: 600_000 }, async () => {
  const ws = h.makeWorkspace();
  const server = await h.startCodeServer({ trusted: true });
  try {
    const page = await h.openWorkbench(browser, server, ws);
    await h.openFile(page, SPEC);
    const lens = page.locator('.codelens-decoration a', { hasText: 'Geometry' }).first();
    await lens.waitFor({ timeout: 60_000 });
    const t = Date.now();
    await lens.click();
    const frame = await h.webviewFrame(page, async (f) => (await f.locator('scalpel-geometry #point-name').count()) > 0, 480_000);
    // Panel open (the lens's click) → first plot: capture of base and edited, PCA and probes at every layer.
    figures.geometryOpenToPlotMs = Date.now() - t;
    assert.match((await frame.locator('scalpel-geometry h2').first().textContent()) ?? '', new RegExp(`Geometry of ${EDIT}`));
    const accuracy = async () => Number(((await frame.locator('scalpel-geometry #accuracy').textContent()) ?? '').replace('%', ''));
    // The middle point (h.1.resid of embed, h.0 … h.3) separates the languages; the edit (in h.2) has not acted yet there.
    assert.equal(await frame.locator('scalpel-geometry #point-name').textContent(), 'h.1.resid');
    assert.ok((await accuracy()) > 90, `held-out accuracy ${await accuracy()}%`);
    assert.equal(await frame.locator('scalpel-geometry #accuracy-edited').textContent(), await frame.locator('scalpel-geometry #accuracy').textContent());
    await frame.locator('scalpel-geometry #layer').fill('3');
    await frame.locator('scalpel-geometry #point-name', { hasText: 'h.2.resid' }).waitFor();
    figures.geometryH2Accuracy = `${await frame.locator('scalpel-geometry #accuracy').textContent()} → ${await frame.locator('scalpel-geometry #accuracy-edited').textContent()} edited`;
    assert.equal(await frame.locator(`scalpel-geometry #probe tr[data-tag="${TARGET}"]`).count(), 1);
    await page.waitForTimeout(500);
    await h.screenshot(page, 'geometry-dark');
    // The 3-D view of the same point, turned by a drag.
    await frame.locator('scalpel-geometry vscode-single-select#view').click();
    await frame.locator('scalpel-geometry vscode-single-select#view >> li', { hasText: '3-D' }).click();
    await frame.locator('scalpel-geometry #reset-view').waitFor();
    const box = (await frame.locator('scalpel-geometry canvas#scatter').boundingBox())!;
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width / 2 + 60, box.y + box.height / 2 + 20, { steps: 6 });
    await page.mouse.up();
    await page.waitForTimeout(300);
    await h.screenshot(page, 'geometry-3d-dark');
  } finally {
    await server.stop();
    fs.rmSync(ws, { recursive: true, force: true });
  }
});
