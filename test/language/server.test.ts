/**
 * Language-server behaviour beyond the golden transcripts, over an in-process server: rename
 * (and its refusals), semantic tokens, and catalog invalidation when catalog.json changes on disk.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { SEMANTIC_LEGEND } from '../../language/services';
import { inProcessServer } from './harness';
import { RpcClient } from './rpc';

const FIXTURE = path.join(__dirname, '..', 'fixtures', 'lang');
let server: { rpc: RpcClient; close: () => Promise<void> };
let dir: string;

before(async () => {
  server = await inProcessServer();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scalpel-server-'));
  fs.cpSync(FIXTURE, dir, { recursive: true });
});
after(async () => {
  await server.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function open(name: string, text: string): Promise<{ uri: string; diagnostics: any[] }> {
  const uri = pathToFileURL(path.join(dir, name)).href;
  const got = server.rpc.waitFor('textDocument/publishDiagnostics', (p: any) => p.uri === uri);
  server.rpc.notify('textDocument/didOpen', { textDocument: { uri, languageId: 'scalpel', version: 1, text } });
  return { uri, diagnostics: (await got).diagnostics };
}

test('rename changes the declaration and every reference; keywords and taken names are refused', async () => {
  const text = fs.readFileSync(path.join(FIXTURE, 'demo.scalpel'), 'utf8');
  const { uri } = await open('rename.scalpel', text);
  const at = { line: 13, character: 8 }; // guard others
  const prep = await server.rpc.request('textDocument/prepareRename', { textDocument: { uri }, position: at });
  assert.equal(prep.placeholder, 'others');
  const edit = await server.rpc.request('textDocument/rename', { textDocument: { uri }, position: at, newName: 'rest' });
  const edits = edit.changes[uri] as { range: any; newText: string }[];
  assert.equal(edits.length, 4, 'the declaration, the statistic argument, keep and expect');
  assert.ok(edits.every((e) => e.newText === 'rest' && e.range.end.character - e.range.start.character === 'others'.length));
  await assert.rejects(server.rpc.request('textDocument/rename', { textDocument: { uri }, position: at, newName: 'select' }), /"select" is a keyword/);
  await assert.rejects(server.rpc.request('textDocument/rename', { textDocument: { uri }, position: at, newName: 'german' }), /"german" is already declared/);
  server.rpc.notify('textDocument/didClose', { textDocument: { uri } });
});

test('semantic tokens classify declarations, references, keywords and literals', async () => {
  const { uri } = await open('tokens.scalpel', 'data german = udhr "deu"  # c\nguard g = [german] within 1 nats\n');
  const { data } = await server.rpc.request('textDocument/semanticTokens/full', { textDocument: { uri } });
  const decoded: string[] = [];
  let line = 0;
  let char = 0;
  for (let i = 0; i < data.length; i += 5) {
    line += data[i];
    char = data[i] === 0 ? char + data[i + 1] : data[i + 1];
    decoded.push(`${line}:${char}+${data[i + 2]} ${SEMANTIC_LEGEND.tokenTypes[data[i + 3]]}${data[i + 4] ? '.decl' : ''}`);
  }
  assert.deepEqual(decoded, [
    '0:0+4 keyword', '0:5+6 variable.decl', '0:14+4 keyword', '0:19+5 string', '0:26+3 comment',
    '1:0+5 keyword', '1:6+1 class.decl', '1:11+6 variable', '1:19+6 keyword', '1:26+1 number', '1:28+4 keyword',
  ]);
  server.rpc.notify('textDocument/didClose', { textDocument: { uri } });
});

test('a changed catalog.json is re-read and open specs are checked again', async () => {
  const spec = 'model demo from "." {\n  components "components"\n}\ndata french = udhr "fra"\nguard g = [french] within 1 nats\nedit e on demo {\n  select "h.3.mlp.c_proj:7"\n  scale 0\n  keep g\n}\n';
  const { uri, diagnostics } = await open('watch.scalpel', spec);
  assert.deepEqual(diagnostics, []);
  const file = path.join(dir, 'components', 'catalog.json');
  const catalog = JSON.parse(fs.readFileSync(file, 'utf8'));
  catalog.modules = catalog.modules.filter((m: { path: string }) => m.path !== 'h.3.mlp.c_proj');
  catalog.components = catalog.components.filter((c: { module: string }) => c.module !== 'h.3.mlp.c_proj');
  const again = server.rpc.waitFor('textDocument/publishDiagnostics', (p: any) => p.uri === uri && p.diagnostics.length > 0);
  fs.writeFileSync(file, JSON.stringify(catalog));
  const d = (await again).diagnostics;
  assert.equal(d[0].code, 'S301');
  assert.match(d[0].message, /the catalog has no module h\.3\.mlp\.c_proj/);
  server.rpc.notify('textDocument/didClose', { textDocument: { uri } });
});
