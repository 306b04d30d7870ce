/**
 * Loads a webview page — the extension's own HTML (extension/html.ts) with its CSP — into headless
 * Chromium, from the built bundle in dist/webviews, with a stand-in for VS Code's acquireVsCodeApi that
 * records posted messages and state. CSP violations and page errors are collected for the tests to assert.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Browser, Page } from 'playwright-core';
import { ViewKind, webviewHtml } from '../../extension/html';
import { launchChromium } from '../helpers/chromium';

const ORIGIN = 'https://webview.test';
const ROOT = path.resolve('dist/webviews');

export async function launch(): Promise<Browser> {
  if (!fs.existsSync(path.join(ROOT, 'main.js'))) throw new Error(`no webview bundle in ${ROOT}: run "npm run build" first`);
  return launchChromium();
}

export interface Loaded {
  page: Page;
  /** Messages the page posted to the extension, in order. */
  posted(): Promise<{ type: string; [k: string]: unknown }[]>;
  state(): Promise<{ last?: { type: string }; ui?: Record<string, unknown> } | undefined>;
  violations(): Promise<string[]>;
  errors: string[];
  /** Posts a message from the "extension" to the page. */
  send(message: unknown): Promise<void>;
}

/** `screen`: the page's size in CSS pixels and device pixels per CSS pixel (default 1100 × 800, 1). */
export async function load(browser: Browser, view: ViewKind, savedState?: unknown, screen: { width: number; height: number; deviceScaleFactor?: number } = { width: 1100, height: 800 }): Promise<Loaded> {
  const page = await browser.newPage({ viewport: { width: screen.width, height: screen.height }, deviceScaleFactor: screen.deviceScaleFactor ?? 1 });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  if (process.env.SCALPEL_DEBUG) page.on('console', (m) => console.log('console:', m.text()));
  if (process.env.SCALPEL_DEBUG) page.on('pageerror', (e) => console.log('pageerror:', e.message));
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  await page.route(`${ORIGIN}/**`, (route) => {
    const url = new URL(route.request().url());
    if (url.pathname === '/index.html') {
      const html = webviewHtml(view, `Scalpel ${view}`, { cspSource: ORIGIN, script: `${ORIGIN}/main.js`, style: `${ORIGIN}/main.css`, codicons: `${ORIGIN}/codicon.css` });
      return route.fulfill({ contentType: 'text/html', body: html });
    }
    const file = path.join(ROOT, path.normalize(url.pathname));
    if (!file.startsWith(ROOT) || !fs.existsSync(file)) return route.fulfill({ status: 404, body: '' });
    const type = { '.js': 'text/javascript', '.css': 'text/css', '.ttf': 'font/ttf', '.map': 'application/json' }[path.extname(file)] ?? 'application/octet-stream';
    return route.fulfill({ contentType: type, body: fs.readFileSync(file) });
  });
  // tsx compiles these test files with esbuild's keepNames, which wraps functions in `__name(…)`; the
  // functions handed to the page below need that helper there too.
  await page.addInitScript('window.__name = (f) => f');
  // Runs before the page's scripts (and outside its CSP), as VS Code's own preload does.
  await page.addInitScript((saved) => {
    const w = window as unknown as Record<string, unknown>;
    const posted: unknown[] = (w.__posted = []);
    const violations: string[] = (w.__violations = []);
    w.__state = saved;
    document.addEventListener('securitypolicyviolation', (e) => violations.push(`${e.violatedDirective}: ${e.blockedURI || 'inline'} (${e.sourceFile}:${e.lineNumber})`));
    let acquired = false;
    w.acquireVsCodeApi = () => {
      if (acquired) throw new Error('acquireVsCodeApi called twice');
      acquired = true;
      return {
        postMessage: (m: unknown) => posted.push(JSON.parse(JSON.stringify(m))),
        getState: () => w.__state,
        setState: (s: unknown) => (w.__state = JSON.parse(JSON.stringify(s))),
      };
    };
  }, savedState);
  await page.goto(`${ORIGIN}/index.html`);
  await page.waitForFunction(() => (window as unknown as { __posted: { type: string }[] }).__posted.some((m) => m.type === 'ready'));
  return {
    page,
    errors,
    posted: () => page.evaluate(() => (window as unknown as { __posted: { type: string }[] }).__posted),
    state: () => page.evaluate(() => (window as unknown as { __state: { last?: { type: string } } }).__state),
    violations: () => page.evaluate(() => (window as unknown as { __violations: string[] }).__violations),
    send: (message) => page.evaluate((m) => window.postMessage(m, '*'), message),
  };
}
