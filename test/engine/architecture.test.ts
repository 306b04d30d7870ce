// The architecture invariants of docs/ARCHITECTURE.md, checked on every import in the tree.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return e.name === 'node_modules' ? [] : sources(p);
    return /\.(ts|mts|mjs)$/.test(e.name) && !e.name.endsWith('.d.ts') ? [p] : [];
  });
}

/** Every module specifier a file imports or requires. */
function imports(file: string): string[] {
  const text = fs.readFileSync(file, 'utf8');
  return [...text.matchAll(/(?:from\s+|import\s*\(\s*|require\(\s*|^import\s+)['"]([^'"]+)['"]/gm)].map((m) => m[1]);
}

const FOLDERS = ['engine', 'language', 'debugger', 'extension', 'webviews', 'cli'];
const all = FOLDERS.flatMap((f) => sources(f).map((file) => ({ folder: f, file, specs: imports(file) })));

function offenders(allowed: (folder: string, file: string) => boolean, matches: (spec: string) => boolean): string[] {
  return all.filter((s) => !allowed(s.folder, s.file)).flatMap((s) => s.specs.filter(matches).map((spec) => `${s.file} imports ${spec}`));
}

test('the scan sees the tree', () => {
  assert.ok(all.length > 50, `${all.length} files`);
  assert.ok(all.some((s) => s.specs.includes('vscode')), 'finds vscode imports at all');
});

test('only extension/ imports vscode (and the language client)', () => {
  assert.deepEqual(offenders((f) => f === 'extension', (s) => s === 'vscode' || s.startsWith('vscode-languageclient')), []);
});

test('only language/ knows LSP', () => {
  assert.deepEqual(offenders((f) => f === 'language', (s) => s.startsWith('vscode-languageserver') || s.startsWith('vscode-jsonrpc')), []);
});

test('only debugger/ knows DAP', () => {
  assert.deepEqual(offenders((f) => f === 'debugger', (s) => s.startsWith('@vscode/debugadapter') || s.startsWith('@vscode/debugprotocol')), []);
});

test('engine/ depends on no front end', () => {
  const frontEnds = /(^|\/)(language|debugger|extension|webviews|cli)(\/|$)/;
  assert.deepEqual(offenders((f) => f !== 'engine', (s) => s.startsWith('.') && frontEnds.test(s)), []);
});

test('language/ depends on neither the debugger, the extension nor the CLI', () => {
  const above = /(^|\/)(debugger|extension|webviews|cli)(\/|$)/;
  assert.deepEqual(offenders((f) => f !== 'language', (s) => s.startsWith('.') && above.test(s)), []);
});

test('language/ has no import cycles (types included): each module builds on the ones below it', () => {
  const files = all.filter((s) => s.folder === 'language');
  const resolve = (from: string, spec: string) => path.join(path.dirname(from), spec) + '.ts';
  const edges = new Map(files.map((s) => [s.file, s.specs.filter((x) => x.startsWith('./')).map((x) => resolve(s.file, x))]));
  const cycles: string[] = [];
  const state = new Map<string, 'open' | 'done'>();
  const visit = (f: string, trail: string[]) => {
    if (state.get(f) === 'done') return;
    if (state.get(f) === 'open') {
      cycles.push([...trail.slice(trail.indexOf(f)), f].map((x) => path.basename(x)).join(' → '));
      return;
    }
    state.set(f, 'open');
    for (const g of edges.get(f) ?? []) visit(g, [...trail, f]);
    state.set(f, 'done');
  };
  for (const f of edges.keys()) visit(f, []);
  assert.deepEqual(cycles, []);
});
