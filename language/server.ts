/**
 * The language server: the only module that speaks LSP. It keeps one analysis per open document
 * version, publishes diagnostics on change (debounced; a newer change cancels a pending or stale
 * run), and answers requests from language/services.ts. Catalog metadata is loaded once per folder
 * and re-read when catalog.json changes (file watcher or the client's didChangeWatchedFiles).
 * No ONNX session is ever created here.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  CodeActionKind, Connection, DiagnosticSeverity, DidChangeWatchedFilesNotification, InitializeResult, ResponseError,
  TextDocumentSyncKind, TextDocuments,
} from 'vscode-languageserver';
import { createConnection, StreamMessageReader, StreamMessageWriter } from 'vscode-languageserver/node';
import { TextDocument } from 'vscode-languageserver-textdocument';
import { CatalogCache } from './catalog';
import type { Analysis, CheckEnv } from './analysis';
import { analyze, cachingProbe } from './checker';
import { reparse } from './parser';
import * as S from './services';

export interface ServerOptions {
  /** Delay between the last change and the diagnostics run (ms); `initializationOptions.diagnosticsDelayMs` overrides it. */
  diagnosticsDelayMs?: number;
}

export function startServer(connection: Connection, options: ServerOptions = {}): void {
  const documents = new TextDocuments(TextDocument);
  const catalogs = new CatalogCache();
  // A model's hash finished in the background: the pin and catalog checks can now be made.
  const files = cachingProbe(() => catalogChanged());
  const analyses = new Map<string, { version: number; analysis: Analysis }>();
  const timers = new Map<string, NodeJS.Timeout>();
  const watchers = new Map<string, fs.FSWatcher>();
  let delay = options.diagnosticsDelayMs ?? 50;
  let workspaceRoot = process.cwd();

  const envFor = (uri: string): CheckEnv => {
    let baseDir = workspaceRoot;
    if (uri.startsWith('file:')) {
      try {
        baseDir = path.dirname(fileURLToPath(uri));
      } catch {
        // A malformed file URI: fall back to the workspace root.
      }
    }
    return { baseDir, files, catalogs };
  };

  const analysisOf = (doc: TextDocument): Analysis => {
    const hit = analyses.get(doc.uri);
    if (hit && hit.version === doc.version) return hit.analysis;
    // The previous version's parse is handed over to reparse (which shifts it in place) and then dropped.
    analyses.delete(doc.uri);
    const text = doc.getText();
    const analysis = analyze(text, envFor(doc.uri), hit ? reparse(hit.analysis.parse, text) : undefined);
    analyses.set(doc.uri, { version: doc.version, analysis });
    watchCatalogs(analysis);
    return analysis;
  };

  const logFailure = (what: string, err: unknown) => {
    connection.console.error(`scalpel: internal error in ${what}: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
  };

  /**
   * Every handler runs through this: an internal error is logged and answered with `fallback`, so no
   * spec, catalog or request can take the server down. Protocol errors (a refused rename) pass through.
   */
  const guarded = <P extends unknown[], T>(what: string, fallback: T, f: (...args: P) => T) => (...args: P): T => {
    try {
      return f(...args);
    } catch (err) {
      if (err instanceof ResponseError) throw err;
      logFailure(what, err);
      return fallback;
    }
  };

  /** Watches each catalog.json in use; a change drops cached analyses and re-checks open documents. */
  const watchCatalogs = (a: Analysis) => {
    for (const m of a.models.values()) {
      if (!m.components) continue;
      const file = path.join(m.components, 'catalog.json');
      if (watchers.has(file) || !fs.existsSync(file)) continue;
      try {
        const w = fs.watch(file, { persistent: false }, () => catalogChanged());
        w.on('error', () => watchers.delete(file));
        watchers.set(file, w);
      } catch {
        // Watching is best effort; the cache still re-reads on size/mtime change.
      }
    }
  };

  const catalogChanged = () => {
    analyses.clear();
    for (const doc of documents.all()) schedule(doc, 0);
  };

  const publish = (doc: TextDocument) => {
    const current = documents.get(doc.uri);
    if (!current || current.version !== doc.version) return;
    let diagnostics: ReturnType<typeof S.lspDiagnostics>;
    try {
      diagnostics = S.lspDiagnostics(analysisOf(current));
    } catch (err) {
      logFailure('checking', err);
      const message = `internal error while checking this spec (details in the Scalpel log): ${err instanceof Error ? err.message : String(err)}`;
      diagnostics = [{ range: { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } }, severity: DiagnosticSeverity.Error, code: 'S000', source: 'scalpel', message }];
    }
    void connection.sendDiagnostics({ uri: current.uri, version: current.version, diagnostics });
  };

  const schedule = (doc: TextDocument, ms = delay) => {
    clearTimeout(timers.get(doc.uri));
    timers.set(doc.uri, setTimeout(() => {
      timers.delete(doc.uri);
      publish(doc);
    }, ms));
  };

  const withDoc = <T>(uri: string, fallback: T, f: (a: Analysis, doc: TextDocument) => T): T => {
    const doc = documents.get(uri);
    return doc ? f(analysisOf(doc), doc) : fallback;
  };

  connection.onInitialize((params): InitializeResult => {
    const init = params.initializationOptions as { diagnosticsDelayMs?: number } | undefined;
    if (typeof init?.diagnosticsDelayMs === 'number' && init.diagnosticsDelayMs >= 0) delay = init.diagnosticsDelayMs;
    const root = params.workspaceFolders?.[0]?.uri ?? params.rootUri;
    if (root?.startsWith('file:')) workspaceRoot = fileURLToPath(root);
    return {
      capabilities: {
        textDocumentSync: TextDocumentSyncKind.Incremental,
        completionProvider: { triggerCharacters: ['"', ':', '.', '(', ' '], resolveProvider: true },
        hoverProvider: true,
        definitionProvider: true,
        referencesProvider: true,
        renameProvider: { prepareProvider: true },
        documentSymbolProvider: true,
        semanticTokensProvider: { legend: S.SEMANTIC_LEGEND, full: true },
        documentFormattingProvider: true,
        foldingRangeProvider: true,
        codeActionProvider: { codeActionKinds: [CodeActionKind.QuickFix] },
      },
      serverInfo: { name: 'scalpel-lsp', version: '0.1.0' },
    };
  });

  connection.onInitialized(() => {
    // Clients that support it tell us about catalog changes too (e.g. a rebuilt catalog on another machine's mount).
    void connection.client.register(DidChangeWatchedFilesNotification.type, { watchers: [{ globPattern: '**/catalog.json' }] }).catch(() => undefined);
  });

  connection.onDidChangeWatchedFiles(() => {
    catalogs.invalidate();
    catalogChanged();
  });

  documents.onDidChangeContent(guarded('a change', undefined, (e) => schedule(e.document)));
  documents.onDidClose((e) => {
    clearTimeout(timers.get(e.document.uri));
    timers.delete(e.document.uri);
    analyses.delete(e.document.uri);
    void connection.sendDiagnostics({ uri: e.document.uri, diagnostics: [] });
  });

  const offset = (doc: TextDocument, pos: { line: number; character: number }) => doc.offsetAt(pos);

  connection.onCompletion(guarded('completion', null, (p) => withDoc(p.textDocument.uri, null, (a, doc) => S.completions(a, offset(doc, p.position)))));
  connection.onCompletionResolve(guarded('completion', null as never, (item) => S.resolveCompletion(item, (dir) => catalogs.get(dir).index)));
  connection.onHover(guarded('hover', null, (p) => withDoc(p.textDocument.uri, null, (a, doc) => S.hover(a, offset(doc, p.position)))));
  connection.onDefinition(guarded('definition', null, (p) => withDoc(p.textDocument.uri, null, (a, doc) => {
    const r = S.definition(a, offset(doc, p.position));
    return r ? { uri: doc.uri, range: r } : null;
  })));
  connection.onReferences(guarded('references', [], (p) => withDoc(p.textDocument.uri, [], (a, doc) =>
    S.references(a, offset(doc, p.position), p.context.includeDeclaration).map((range) => ({ uri: doc.uri, range })))));
  connection.onPrepareRename(guarded('rename', null, (p) => withDoc(p.textDocument.uri, null, (a, doc) => S.prepareRename(a, offset(doc, p.position)))));
  connection.onRenameRequest(guarded('rename', null, (p) => withDoc(p.textDocument.uri, null, (a, doc) => {
    const r = S.rename(a, offset(doc, p.position), p.newName);
    if (typeof r === 'string') throw new ResponseError(-32803, r);
    return { changes: { [doc.uri]: r } };
  })));
  connection.onDocumentSymbol(guarded('symbols', [], (p) => withDoc(p.textDocument.uri, [], (a) => S.documentSymbols(a))));
  connection.languages.semanticTokens.on(guarded('semantic tokens', { data: [] }, (p) => withDoc(p.textDocument.uri, { data: [] }, (a) => ({ data: S.semanticTokens(a) }))));
  connection.onDocumentFormatting(guarded('formatting', [], (p) => withDoc(p.textDocument.uri, [], (a) => S.formatting(a))));
  connection.onFoldingRanges(guarded('folding', [], (p) => withDoc(p.textDocument.uri, [], (a) => S.foldingRanges(a))));
  connection.onCodeAction(guarded('code actions', [], (p) => withDoc(p.textDocument.uri, [], (a, doc) =>
    S.codeActions(a, { start: doc.offsetAt(p.range.start), end: doc.offsetAt(p.range.end) }, doc.uri))));

  connection.onShutdown(() => {
    for (const t of timers.values()) clearTimeout(t);
    for (const w of watchers.values()) w.close();
    files.dispose?.();
  });

  documents.listen(connection);
  connection.listen();
}

/** A server over a pair of streams (stdin/stdout for `scalpel lsp --stdio`, pipes for in-process tests). */
export function startStreamServer(input: NodeJS.ReadableStream, output: NodeJS.WritableStream, options: ServerOptions = {}): Connection {
  const connection = createConnection(new StreamMessageReader(input), new StreamMessageWriter(output));
  startServer(connection, options);
  return connection;
}

/** `scalpel lsp --stdio`. */
export function startStdioServer(options: ServerOptions = {}): void {
  const connection = startStreamServer(process.stdin, process.stdout, options);
  // stdout carries the protocol: stray console output goes to the client's log instead.
  console.log = console.info = (...args: unknown[]) => connection.console.log(args.map(String).join(' '));
  // The last line of defence (every handler is guarded already): a stray error is logged, the server lives on.
  process.on('uncaughtException', (err) => connection.console.error(`scalpel: internal error: ${err.stack ?? err.message}`));
}
