/**
 * Hostile specs and files: inputs that once killed or stalled the language server (deep nesting,
 * long chains, catastrophic regexes, devices and FIFOs as paths, malformed catalogs) give one clear
 * diagnostic, quickly, and the real stdio server survives every one of them.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { ScalpelError, readTextFile } from '../../engine/errors';
import { analyze, defaultEnv } from '../../language/checker';
import { MAX_LINE_LENGTH } from '../../language/lexer';
import { MAX_SELECTOR_DEPTH, parse } from '../../language/parser';
import * as S from '../../language/services';
import { RpcClient } from './rpc';
import { startScalpel } from '../helpers/cli';

const ROOT = path.join(__dirname, '..', '..');
const FIXTURE = path.join(ROOT, 'test', 'fixtures', 'lang');
const HEAD = [
  `model m from ${JSON.stringify(FIXTURE)} { components ${JSON.stringify(path.join(FIXTURE, 'components'))} }`,
  'data german = udhr "deu"',
  'guard g = [german] within 1 nats',
  '',
].join('\n');
const edit = (selector: string) => `${HEAD}edit e on m { select ${selector} scale 0 keep g }\n`;
const keys = (n: number, op: string) => Array.from({ length: n }, (_, i) => `"h.2.mlp.c_fc:${i % 40}"`).join(` ${op} `);

/** Each case: the spec, and the code that must report it (or none for a spec that must simply check). */
const HOSTILE: [string, string, string | undefined][] = [
  ['5,000 nested parentheses', edit(`${'('.repeat(5000)}"h.2.mlp.c_fc:1"${')'.repeat(5000)}`), 'S008'],
  ['an or chain of 3,500 keys', edit(keys(3500, 'or')), undefined],
  ['a minus chain of 3,500 keys', edit(keys(3500, 'minus')), 'S008'],
  ['3,500 levels of top … where', edit(`${'top 1 by norm where '.repeat(3500)}"h.2.mlp.c_fc:1"`), 'S008'],
  ['a catastrophic label regex', edit('label /^(.|.)*(.|.)*(.|.)*(.|.)*!$/'), undefined],
  ['a 40,000-character label regex', edit(`label /${'(a|b)'.repeat(8000)}/`), 'S004'],
  ['a backreference (not RE2)', edit('label /(a)\\1/'), 'S004'],
  ['a line over the limit', `${HEAD}# ${'x'.repeat(MAX_LINE_LENGTH)}\n`, 'S007'],
  ['200,000 unexpected characters', ';\n'.repeat(200000), 'S001'],
];

const cpuMs = (f: () => void) => {
  const t = process.cpuUsage();
  f();
  const d = process.cpuUsage(t);
  return (d.user + d.system) / 1000;
};

test('hostile specs: one clear diagnostic, no throw, and each step stays fast', () => {
  const env = defaultEnv(FIXTURE);
  for (const [what, text, code] of HOSTILE) {
    let a!: ReturnType<typeof analyze>;
    const ms = cpuMs(() => {
      a = analyze(text, env);
      S.lspDiagnostics(a);
      S.codeActions(a, { start: 0, end: text.length }, 'file:///x.scalpel');
      S.semanticTokens(a);
      S.formatting(a);
    });
    const codes = new Set(a.diagnostics.map((d) => d.code));
    if (code) assert.ok(codes.has(code as never), `${what}: reported as ${code} (got ${[...codes].join(', ') || 'nothing'})`);
    else assert.deepEqual(a.diagnostics.filter((d) => d.severity === 'error').map((d) => d.message), [], `${what}: checks without errors`);
    // CPU time, not wall time: the bound is generous (the machine is shared) but far below the seconds a backtracking regex or a quadratic step takes on these.
    assert.ok(ms < 3000, `${what}: ${ms.toFixed(0)} ms of CPU`);
  }
});

test('selector depth: the limit is exact, balanced or-runs mean the same set as written', () => {
  const at = (n: number) => parse(edit(`${'('.repeat(n)}"h.2.mlp.c_fc:1"${')'.repeat(n)}`)).diagnostics.map((d) => d.code);
  assert.deepEqual(at(MAX_SELECTOR_DEPTH - 1), []);
  assert.deepEqual(at(MAX_SELECTOR_DEPTH + 1), ['S008']);
  const env = defaultEnv(FIXTURE);
  const chain = analyze(edit(keys(100, 'or')), env);
  const select = chain.parse.file.decls.find((d) => d.kind === 'edit')!;
  const selector = (select as { body: { kind: string; selector?: unknown }[] }).body[0].selector;
  const picked = chain.selections.get(selector as never)!;
  assert.deepEqual(picked, Array.from({ length: 40 }, (_, i) => `h.2.mlp.c_fc:${i}`).sort((x, y) => Number(x.split(':')[1]) - Number(y.split(':')[1])));
  // Mixed chains keep their left-to-right meaning: (a or b) minus b or c = {a, c}.
  const mixed = analyze(edit('"h.2.mlp.c_fc:1" or "h.2.mlp.c_fc:2" minus "h.2.mlp.c_fc:2" or "h.2.mlp.c_fc:3"'), env);
  const s = (mixed.parse.file.decls.find((d) => d.kind === 'edit') as { body: { selector?: unknown }[] }).body[0].selector;
  assert.deepEqual(mixed.selections.get(s as never), ['h.2.mlp.c_fc:1', 'h.2.mlp.c_fc:3']);
});

/** A throwaway folder with a FIFO, and a catalog folder per malformed catalog.json. */
function hostileFolder(): { dir: string; fifo: string; catalogs: Record<string, string> } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scalpel-hostile-'));
  const fifo = path.join(dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  const good = JSON.parse(fs.readFileSync(path.join(FIXTURE, 'components', 'catalog.json'), 'utf8'));
  const variants: Record<string, (c: any) => void> = {
    'module without components': (c) => delete c.modules[0].components,
    'components as a string': (c) => (c.modules[0].components = '12'),
    'a huge component count': (c) => (c.modules[0].components = 4e9),
    'a label that is a number': (c) => (c.components[0].label = { text: 7, source: 'auto' }),
    'datasets that are not a list': (c) => (c.datasets = 'udhr'),
    'a component of an unknown module': (c) => (c.components[0].module = 'h.9.nope'),
  };
  const catalogs: Record<string, string> = {};
  for (const [what, change] of Object.entries(variants)) {
    const c = structuredClone(good);
    change(c);
    const d = path.join(dir, what.replace(/\W+/g, '-'));
    fs.mkdirSync(d);
    fs.writeFileSync(path.join(d, 'catalog.json'), JSON.stringify(c));
    catalogs[what] = d;
  }
  const fifoCatalog = path.join(dir, 'fifo-catalog');
  fs.mkdirSync(fifoCatalog);
  execFileSync('mkfifo', [path.join(fifoCatalog, 'catalog.json')]);
  catalogs['catalog.json as a FIFO'] = fifoCatalog;
  return { dir, fifo, catalogs };
}

const PIN = `sha256 "${'0'.repeat(64)}"`;

test('files are read as what they claim to be: devices, FIFOs and folders are refused without reading', () => {
  const { dir, fifo, catalogs } = hostileFolder();
  try {
    const env = defaultEnv(dir);
    for (const target of ['/dev/zero', fifo]) {
      const a = analyze(`model m from ${JSON.stringify(target)} { ${PIN} components ${JSON.stringify(path.join(FIXTURE, 'components'))} }\n`, env);
      assert.ok(a.diagnostics.some((d) => d.code === 'S201' && /neither a regular file nor a folder/.test(d.message)), `${target}: ${a.diagnostics.map((d) => d.message)}`);
      const data = analyze(`data d = text ${JSON.stringify(target)}\n`, env);
      assert.ok(data.diagnostics.some((d) => d.code === 'S201' && /not a regular file/.test(d.message)));
    }
    for (const [what, file, kind] of [['/dev/zero', '/dev/zero', 'a device'], ['a FIFO', fifo, 'a FIFO'], ['a folder', dir, 'a directory']]) {
      assert.throws(() => readTextFile(file, 'read spec'), (e: unknown) => e instanceof ScalpelError && e.message === `cannot read spec: it is ${kind}, not a regular file`, what);
    }
    for (const [what, catalog] of Object.entries(catalogs)) {
      const a = analyze(`model m from ${JSON.stringify(FIXTURE)} { components ${JSON.stringify(catalog)} }\n`, env);
      const d = a.diagnostics.find((x) => x.code === 'S202');
      assert.ok(d, `${what}: S202 (got ${a.diagnostics.map((x) => x.message)})`);
      assert.ok(!d.message.includes('\n') && !/TypeError|undefined|Invalid typed array/.test(d.message), `${what}: one clear line: ${d.message}`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('scalpel lsp --stdio survives deep, ReDoS, /dev/zero, FIFO and malformed-catalog specs, and keeps answering', async () => {
  const { dir, fifo, catalogs } = hostileFolder();
  const child = startScalpel(['lsp', '--stdio', '--diagnostics-delay', '0']);
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  let alive = true;
  void exited.then(() => (alive = false));
  try {
    const rpc = new RpcClient(child.stdout, child.stdin);
    await rpc.request('initialize', { processId: process.pid, rootUri: pathToFileURL(dir).href, capabilities: {} });
    rpc.notify('initialized', {});
    const docs: [string, string][] = [
      ...HOSTILE.map(([what, text]) => [what, text] as [string, string]),
      ['/dev/zero as a pinned model', `model m from "/dev/zero" { ${PIN} components ${JSON.stringify(path.join(FIXTURE, 'components'))} }\n`],
      ['a FIFO as a pinned model', `model m from ${JSON.stringify(fifo)} { ${PIN} tokenizer ${JSON.stringify(fifo)} }\ndata d = text ${JSON.stringify(fifo)}\n`],
      ...Object.entries(catalogs).map(([what, c]) => [what, `model m from ${JSON.stringify(FIXTURE)} { components ${JSON.stringify(c)} }\n`] as [string, string]),
    ];
    for (const [i, [what, text]] of docs.entries()) {
      const uri = pathToFileURL(path.join(dir, `doc${i}.scalpel`)).href;
      const published = rpc.waitFor('textDocument/publishDiagnostics', (p) => p.uri === uri, 20000);
      rpc.notify('textDocument/didOpen', { textDocument: { uri, languageId: 'scalpel', version: 1, text } });
      const diags = (await published).diagnostics as { code?: string; message: string }[];
      assert.ok(!diags.some((d) => d.code === 'S000'), `${what}: no internal error (${diags.find((d) => d.code === 'S000')?.message})`);
      assert.ok(diags.length <= S.MAX_PUBLISHED_DIAGNOSTICS + 1, `${what}: at most ${S.MAX_PUBLISHED_DIAGNOSTICS} diagnostics and a note`);
      // Requests still work on the same document.
      await rpc.request('textDocument/hover', { textDocument: { uri }, position: { line: 0, character: 1 } });
      await rpc.request('textDocument/codeAction', { textDocument: { uri }, range: { start: { line: 0, character: 0 }, end: { line: 9, character: 0 } }, context: { diagnostics: [] } });
      rpc.notify('textDocument/didClose', { textDocument: { uri } });
      assert.ok(alive, `the server is alive after ${what}`);
    }
    await rpc.request('shutdown', null);
    rpc.notify('exit', null);
    assert.equal(await exited, 0);
  } finally {
    if (alive) child.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
