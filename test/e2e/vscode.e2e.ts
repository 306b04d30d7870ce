/**
 * End to end in a real VS Code (code-server) with the packaged VSIX: diagnostics, completion of a
 * component key, Preview numbers read from the webview, expectations run in Test Explorer, and an
 * untrusted workspace that refuses to run the model. Screenshots go to test-output/, and the figures
 * (activation, open-to-diagnostics, Preview open-to-numbers) to test-output/e2e-figures.json.
 *
 *   npm run test:e2e      (provisions code-server into ~/.cache/scalpel-e2e and packages the VSIX first)
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Browser, Frame, Page } from 'playwright-core';
import { outline } from '../../extension/outline';
import * as h from './harness';

const SPEC = 'remove-german.scalpel';
const EDIT = 'no_german';
const TARGET = 'german';
const figures: Record<string, number | string> = {};

let browser: Browser;
before(async () => {
  h.requireProvisioned();
  browser = await h.launchBrowser();
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
  // A copy to break and complete in, so the spec itself stays intact for Preview.
  const ws = h.makeWorkspace({ 'examples/scratch.scalpel': source });
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

    // 3. Preview. First cancelled: cancelling the progress notification kills the model worker.
    await h.openFile(page, SPEC);
    await h.runCommand(page, 'Scalpel: Preview Edit');
    const toast = page.locator('.notification-toast', { hasText: 'Scalpel: previewing' });
    await toast.locator('.monaco-button', { hasText: 'Cancel' }).click({ timeout: 30_000 });
    const killed = await waitForLog(server, /\[preview\] cancelled after (\d+) ms: worker (\d+) killed/);
    await page.waitForTimeout(500);
    assert.throws(() => process.kill(Number(killed[2]), 0), /ESRCH/, 'the worker process is gone');
    figures.previewCancelledAfterMs = Number(killed[1]);

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
    const cli = spawnSync(process.execPath, ['dist/cli.js', 'eval', path.join(ws, 'examples', SPEC), '--json'], { encoding: 'utf8' });
    const cliChecks: { line: number; pass: boolean }[] = JSON.parse(cli.stdout).edits.flatMap((e: { checks: unknown[] }) => e.checks);
    const items = outline(source).filter((i) => i.kind === 'guard' || i.kind === 'expect');
    await h.runCommand(page, 'Testing: Focus on Test Explorer View');
    const specRow = page.locator('.test-explorer .monaco-list-row', { hasText: SPEC }).first();
    await specRow.waitFor({ timeout: 30_000 });
    await specRow.hover();
    await specRow.locator('.action-label[aria-label="Run Test"]').click();
    await specRow.locator('.codicon-testing-passed-icon, .codicon-testing-failed-icon').first().waitFor({ timeout: 300_000 });
    await specRow.click();
    await page.keyboard.press('ArrowRight');
    await page.waitForTimeout(500);
    const verdicts: string[] = [];
    for (const item of items) {
      const mine = cliChecks.filter((c) => c.line === item.line);
      assert.ok(mine.length, `the CLI measured ${item.kind} ${item.label}`);
      const pass = mine.every((c) => c.pass);
      const row = page.locator('.test-explorer .monaco-list-row', { hasText: `${item.kind} ${item.label}` }).first();
      await row.locator(pass ? '.codicon-testing-passed-icon' : '.codicon-testing-failed-icon').waitFor({ timeout: 10_000 });
      verdicts.push(`${item.kind} ${item.label}: ${pass ? 'passed' : 'failed'}`);
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
  await page.locator('.view-line span', { hasText: word }).last().hover();
  await page.locator('.monaco-hover', { hasText: word }).first().waitFor({ timeout: 15_000 });
  await page.mouse.move(0, 0);
}

test('untrusted workspace: the spec is checked, but Preview refuses to run the model', { timeout: 300_000 }, async () => {
  const ws = h.makeWorkspace();
  const server = await h.startCodeServer({ trusted: false });
  try {
    const page = await h.openWorkbench(browser, server, ws);
    await page.locator('.statusbar-item', { hasText: 'Scalpel: restricted' }).first().waitFor({ timeout: 60_000 });
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
