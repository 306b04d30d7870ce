/**
 * Data-driven golden tests: every test/language/golden/*.scalpel (with `<|>` cursor markers) has a
 * .golden transcript of diagnostics, formatting, completion, hover and quick fixes. The transcript
 * must come out the same from the services called directly and from a language server over JSON-RPC.
 * UPDATE_GOLDEN=1 rewrites the transcripts; review the diff.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { direct, inProcessServer, overLsp, render, stripMarkers } from './harness';
import { RpcClient } from './rpc';
import { expectGolden } from '../helpers/golden';

const DIR = path.join(__dirname, 'golden');
const cases = fs.readdirSync(DIR).filter((f) => f.endsWith('.scalpel')).sort();
let server: { rpc: RpcClient; close: () => Promise<void> };

before(async () => {
  server = await inProcessServer();
});
after(async () => {
  await server.close();
});

for (const name of cases) {
  test(`golden ${name}`, async () => {
    const file = path.join(DIR, name);
    const { text, markers } = stripMarkers(fs.readFileSync(file, 'utf8'));
    const directOut = render(text, markers, direct(file, text, markers));
    const lspOut = render(text, markers, await overLsp(server.rpc, file, text, markers));
    assert.equal(lspOut, directOut, 'the LSP route and the direct route agree');
    expectGolden(file.replace(/\.scalpel$/, '.golden'), directOut, name);
  });
}
