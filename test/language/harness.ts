/**
 * Golden-test plumbing: a spec with cursor markers in, a readable transcript of diagnostics,
 * formatting, completion, hover and quick fixes out, produced either by calling the services
 * directly or by asking an in-process language server over JSON-RPC. Both must give the same text.
 */
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { analyze, defaultEnv } from '../../language/checker';
import { LineIndex } from '../../language/diagnostics';
import { startStreamServer } from '../../language/server';
import * as S from '../../language/services';
import { RpcClient } from './rpc';

/** Marks a cursor position in a golden spec; removed before analysis. */
export const MARKER = '<|>';

export function stripMarkers(src: string): { text: string; markers: number[] } {
  const markers: number[] = [];
  let text = '';
  let rest = src;
  for (let i = rest.indexOf(MARKER); i >= 0; i = rest.indexOf(MARKER)) {
    text += rest.slice(0, i);
    markers.push(text.length);
    rest = rest.slice(i + MARKER.length);
  }
  return { text: text + rest, markers };
}

interface Pos { line: number; character: number }
interface LspRange { start: Pos; end: Pos }

/** What one route (direct or LSP) produced for a spec. */
export interface Results {
  diagnostics: { range: LspRange; severity?: number; code?: string | number; message: string }[];
  formatted?: string;
  symbols: any[];
  folding: any[];
  markers: { completion: any; hover: any; actions: any[]; definition: any; references: any[] }[];
}

const SEVERITY = ['', 'error', 'warning', 'info', 'hint'];
const MAX_ITEMS = 12;

export function render(text: string, markers: number[], r: Results): string {
  const lines = new LineIndex(text);
  const pos = (p: Pos) => `${p.line + 1}:${p.character + 1}`;
  const out: string[] = ['== diagnostics'];
  for (const d of r.diagnostics) out.push(`${pos(d.range.start)}-${pos(d.range.end)} ${SEVERITY[d.severity ?? 1]} ${d.code}: ${d.message}`);
  out.push('== format');
  out.push(r.formatted === undefined ? '(already formatted or not formattable)' : r.formatted.trimEnd());
  out.push('== symbols', ...r.symbols.map((s) => `${pos(s.selectionRange.start)} ${s.detail} ${s.name}`));
  out.push('== folding', r.folding.map((f) => `${f.startLine + 1}-${f.endLine + 1}${f.kind ? ` ${f.kind}` : ''}`).join(', '));
  markers.forEach((m, i) => {
    const m0 = r.markers[i];
    out.push(`== marker ${i + 1} at ${pos(lines.position(m))}`);
    const items: any[] = m0.completion?.items ?? [];
    out.push(`completion (${items.length} item${items.length === 1 ? '' : 's'}${m0.completion?.isIncomplete ? ', incomplete' : ''})`);
    for (const it of items.slice(0, MAX_ITEMS)) out.push(`  ${it.label}${it.detail ? `  — ${it.detail}` : ''}`);
    if (items.length > MAX_ITEMS) out.push(`  … ${items.length - MAX_ITEMS} more`);
    if (m0.hover) out.push('hover', ...String(m0.hover.contents.value).split('\n').map((l) => `  ${l}`));
    const loc = (x: any) => pos((x.range ?? x).start);
    if (m0.definition) out.push(`definition ${loc(m0.definition)}`);
    if (m0.references?.length) out.push(`references ${m0.references.map(loc).join(' ')}`);
    for (const a of m0.actions) {
      const edits = Object.values(a.edit?.changes ?? {}).flat() as { range: LspRange; newText: string }[];
      out.push(`quick fix: ${a.title}`, ...edits.map((e) => `  ${pos(e.range.start)}-${pos(e.range.end)} ${JSON.stringify(e.newText)}`));
    }
  });
  return out.join('\n') + '\n';
}

function applyEdits(text: string, edits: { range: LspRange; newText: string }[]): string {
  const lines = new LineIndex(text);
  const sorted = [...edits].sort((a, b) => lines.offset(b.range.start) - lines.offset(a.range.start));
  let out = text;
  for (const e of sorted) out = out.slice(0, lines.offset(e.range.start)) + e.newText + out.slice(lines.offset(e.range.end));
  return out;
}

export function direct(file: string, text: string, markers: number[]): Results {
  const a = analyze(text, defaultEnv(path.dirname(file)));
  const uri = pathToFileURL(file).href;
  const fmt = S.formatting(a);
  return {
    diagnostics: S.lspDiagnostics(a),
    ...(fmt.length ? { formatted: applyEdits(text, fmt) } : {}),
    symbols: S.documentSymbols(a),
    folding: S.foldingRanges(a),
    markers: markers.map((m) => ({
      completion: S.completions(a, m), hover: S.hover(a, m), actions: S.codeActions(a, { start: m, end: m }, uri),
      definition: S.definition(a, m), references: S.references(a, m, true),
    })),
  };
}

/** An in-process server on a pair of pipes, with a client that speaks the wire format. */
export async function inProcessServer(): Promise<{ rpc: RpcClient; close: () => Promise<void> }> {
  const toServer = new PassThrough();
  const toClient = new PassThrough();
  startStreamServer(toServer, toClient, { diagnosticsDelayMs: 0 });
  const rpc = new RpcClient(toClient, toServer);
  await rpc.request('initialize', { processId: null, rootUri: null, capabilities: {} });
  rpc.notify('initialized', {});
  return {
    rpc,
    close: async () => {
      await rpc.request('shutdown', null);
      // No `exit`: the library would end this process.
      toServer.end();
    },
  };
}

export async function overLsp(rpc: RpcClient, file: string, text: string, markers: number[]): Promise<Results> {
  const uri = pathToFileURL(file).href;
  const lines = new LineIndex(text);
  const diags = rpc.waitFor('textDocument/publishDiagnostics', (p: any) => p.uri === uri);
  rpc.notify('textDocument/didOpen', { textDocument: { uri, languageId: 'scalpel', version: 1, text } });
  const diagnostics = (await diags).diagnostics;
  const fmt = await rpc.request('textDocument/formatting', { textDocument: { uri }, options: { tabSize: 2, insertSpaces: true } });
  const symbols = await rpc.request('textDocument/documentSymbol', { textDocument: { uri } });
  const folding = await rpc.request('textDocument/foldingRange', { textDocument: { uri } });
  const res: Results = { diagnostics, ...(fmt?.length ? { formatted: applyEdits(text, fmt) } : {}), symbols, folding, markers: [] };
  for (const m of markers) {
    const position = lines.position(m);
    const completion = await rpc.request('textDocument/completion', { textDocument: { uri }, position });
    const hover = await rpc.request('textDocument/hover', { textDocument: { uri }, position });
    const actions = await rpc.request('textDocument/codeAction', { textDocument: { uri }, range: { start: position, end: position }, context: { diagnostics: [] } });
    const definition = await rpc.request('textDocument/definition', { textDocument: { uri }, position });
    const references = await rpc.request('textDocument/references', { textDocument: { uri }, position, context: { includeDeclaration: true } });
    res.markers.push({ completion, hover, actions, definition, references });
  }
  rpc.notify('textDocument/didClose', { textDocument: { uri } });
  return res;
}
