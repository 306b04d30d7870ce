/**
 * The Scalpel VS Code extension: the language client (the bundled `scalpel lsp --stdio`), commands
 * that preview, evaluate, apply and review edits in a forked model worker, code lenses and inline
 * Δloss, Test Explorer items for every guard and expectation, the debugger's adapter, and the
 * webview panels. In an untrusted workspace editing and checking work, but no model runs.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { LanguageClient, TransportKind } from 'vscode-languageclient/node';
import { CancelledJob, JobError, JobRunner } from './jobs';
import { outline } from './outline';
import { Panel } from './panels';
import type { ApplyResult, CatalogView, DatasetView, FromWebview, GeometryData, JobRuntime, PreviewResult, ReviewResult } from './protocol';
import { VIEWS, VIEW_KINDS } from './protocol';
import { SpecTests } from './tests';

const LANGUAGE = 'scalpel';

export interface ScalpelApi {
  /** Milliseconds `activate` took (reported by the e2e suite). */
  activationMs: number;
}

let client: LanguageClient | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<ScalpelApi> {
  const started = performance.now();
  const log = vscode.window.createOutputChannel('Scalpel', { log: true });
  const dist = vscode.Uri.joinPath(context.extensionUri, 'dist');
  const webviewRoot = vscode.Uri.joinPath(dist, 'webviews');
  const cli = path.join(dist.fsPath, 'cli.js');
  const jobs = new JobRunner(path.join(dist.fsPath, 'worker.js'), log);
  const config = () => vscode.workspace.getConfiguration('scalpel');
  const runtime = (): JobRuntime => ({
    threads: config().get<number>('threads') || undefined,
    executionProvider: config().get<string>('executionProvider') || undefined,
    // Providers that take no device id (cpu) ignore it.
    deviceId: config().get<number>('deviceId') || undefined,
  });

  const status = vscode.window.createStatusBarItem('scalpel.status', vscode.StatusBarAlignment.Left, 10);
  status.name = 'Scalpel';
  status.command = 'scalpel.showOutput';
  const idle = () => {
    status.text = vscode.workspace.isTrusted ? '$(beaker) Scalpel' : '$(shield) Scalpel: restricted';
    status.tooltip = vscode.workspace.isTrusted ? 'Scalpel: show the output' : 'Restricted Mode: Scalpel checks specs but runs no model. Trust the workspace to preview, evaluate or apply edits.';
  };
  idle();
  status.show();
  context.subscriptions.push(log, status, vscode.workspace.onDidGrantWorkspaceTrust(idle));

  /** Runs model work only in a trusted workspace; otherwise says why and offers to manage trust. */
  const trusted = (): boolean => {
    if (vscode.workspace.isTrusted) return true;
    void vscode.window
      .showWarningMessage('Scalpel runs no model in Restricted Mode: trust this workspace to preview, evaluate or apply edits.', 'Manage Workspace Trust')
      .then((a) => a && vscode.commands.executeCommand('workbench.trust.manage'));
    return false;
  };

  const report = (err: unknown) => {
    if (err instanceof CancelledJob) return;
    const msg = err instanceof JobError ? err.format() : err instanceof Error ? err.message : String(err);
    log.appendLine(`error: ${msg}`);
    void vscode.window.showErrorMessage(`Scalpel: ${msg}`);
  };

  /** The spec a command is about: the argument, else the active .scalpel editor (saved first unless `save` is false: the worker reads the file). */
  const specOf = async (arg?: vscode.Uri, save = true): Promise<vscode.Uri | undefined> => {
    const uri = arg instanceof vscode.Uri ? arg : vscode.window.activeTextEditor?.document.uri;
    if (!uri || !uri.fsPath.endsWith('.scalpel')) {
      void vscode.window.showErrorMessage('Scalpel: open a .scalpel spec first');
      return undefined;
    }
    const doc = vscode.workspace.textDocuments.find((d) => d.uri.toString() === uri.toString());
    if (save && doc?.isDirty) await doc.save();
    return uri;
  };

  // ---- last measured Δloss: inline after each edit's line, and in hovers; the scale for the debugger ----
  const measured = new Map<string, Map<string, { datasets: DatasetView[]; scale: number; text: string; when: Date }>>();
  const inline = vscode.window.createTextEditorDecorationType({ after: { margin: '0 0 0 2em', color: new vscode.ThemeColor('editorCodeLens.foreground') } });
  const summary = (ds: DatasetView[]) => ds.map((d) => `${d.name} ${d.delta >= 0 ? '+' : ''}${d.delta.toFixed(3)}`).join(' · ');
  const decorate = (editor: vscode.TextEditor) => {
    const bySpec = measured.get(editor.document.uri.fsPath);
    if (!bySpec || editor.document.languageId !== LANGUAGE) return editor.setDecorations(inline, []);
    const text = editor.document.getText();
    const decos = outline(text)
      .filter((i) => i.kind === 'edit' && bySpec.has(i.label))
      .map((i) => {
        const line = editor.document.lineAt(i.line - 1);
        return { range: line.range, renderOptions: { after: { contentText: `Δloss ${summary(bySpec.get(i.label)!.datasets)} nats` } } };
      });
    editor.setDecorations(inline, decos);
  };
  /** What a job measured for `edit`, with the spec `text` it ran on (a scale holds for that text only). */
  const record = (spec: string, edit: string, datasets: DatasetView[], scale: number, text: string) => {
    if (!measured.has(spec)) measured.set(spec, new Map());
    measured.get(spec)!.set(edit, { datasets, scale, text, when: new Date() });
    vscode.window.visibleTextEditors.forEach(decorate);
  };
  context.subscriptions.push(
    inline,
    vscode.window.onDidChangeVisibleTextEditors((es) => es.forEach(decorate)),
    vscode.workspace.onDidChangeTextDocument((e) => vscode.window.visibleTextEditors.filter((x) => x.document === e.document).forEach(decorate)),
    vscode.languages.registerHoverProvider(LANGUAGE, {
      provideHover(doc, pos) {
        const bySpec = measured.get(doc.uri.fsPath);
        const item = bySpec && outline(doc.getText()).find((i) => i.kind === 'edit' && i.line - 1 === pos.line && bySpec.has(i.label));
        if (!item) return undefined;
        const m = bySpec!.get(item.label)!;
        const md = new vscode.MarkdownString(`**Last measured Δloss of \`${item.label}\`** (${m.when.toLocaleTimeString()})\n\n| dataset | role | before | after | Δ nats |\n|---|---|---:|---:|---:|\n`);
        for (const d of m.datasets) md.appendMarkdown(`| ${d.name} | ${d.role} | ${d.base.toFixed(4)} | ${d.edited.toFixed(4)} | ${d.delta >= 0 ? '+' : ''}${d.delta.toFixed(4)} |\n`);
        return new vscode.Hover(md);
      },
    }),
  );

  // ---- code lenses over each edit: Preview · Apply · Debug ----
  context.subscriptions.push(
    vscode.languages.registerCodeLensProvider(LANGUAGE, {
      provideCodeLenses(doc) {
        return outline(doc.getText())
          .filter((i) => i.kind === 'edit')
          .flatMap((i) => {
            const range = new vscode.Range(i.line - 1, 0, i.line - 1, 0);
            return [
              new vscode.CodeLens(range, { title: '$(eye) Preview', command: 'scalpel.previewEdit', arguments: [doc.uri, i.label] }),
              new vscode.CodeLens(range, { title: '$(check) Apply', command: 'scalpel.applyEdit', arguments: [doc.uri, i.label] }),
              new vscode.CodeLens(range, { title: '$(debug-alt) Debug', command: 'scalpel.debugEdit', arguments: [doc.uri, i.label] }),
              new vscode.CodeLens(range, { title: '$(graph-scatter) Geometry', command: 'scalpel.showGeometry', arguments: [doc.uri, i.label] }),
            ];
          });
      },
    }),
  );

  // ---- commands ----
  const previewState: { spec?: string; edit?: string } = {};
  const wire = (p: Panel) => {
    p.onMessage((m: FromWebview) => {
      if (m.type === 'refresh' && previewState.spec) void preview(vscode.Uri.file(previewState.spec), previewState.edit);
      else if (m.type === 'apply' && previewState.spec) void apply(vscode.Uri.file(previewState.spec), m.edit);
      else if (m.type === 'debug' && previewState.spec) void debugEdit(vscode.Uri.file(previewState.spec), previewState.edit, m.dataset);
      else if (m.type === 'insertSelector') void insertSelector(m.key);
      else if (m.type === 'diff' && previewState.spec) void openSpecDiff(vscode.Uri.file(previewState.spec));
      else if (m.type === 'debugToken' && geometryState.spec) void debugToken(m.dataset, m.document, m.position);
    });
  };

  let lastPreview: PreviewResult | undefined;
  const previewJob = (spec: string, edit?: string) =>
    ({ kind: 'preview', spec, edit, sweepPoints: config().get<number>('preview.sweepPoints') ?? 7, sweepTokens: config().get<number>('preview.sweepTokens') ?? 256, heatmapTokens: config().get<number>('preview.heatmapTokens') ?? 400, runtime: runtime() }) as const;

  /** The preview in flight: a newer one cancels it (its worker is killed). */
  let previewing: vscode.CancellationTokenSource | undefined;
  async function preview(arg?: vscode.Uri, edit?: string): Promise<PreviewResult | undefined> {
    // Not saved: the worker previews the editor's text, saved or not.
    const uri = await specOf(arg, false);
    if (!uri || !trusted()) return undefined;
    const text = (await vscode.workspace.openTextDocument(uri)).getText();
    previewState.spec = uri.fsPath;
    previewState.edit = typeof edit === 'string' ? edit : undefined;
    previewing?.cancel();
    const mine = (previewing = new vscode.CancellationTokenSource());
    const panel = Panel.show('preview', webviewRoot, wire);
    void panel.post({ type: 'busy', message: `previewing ${previewState.edit ?? 'the first edit'}…` });
    status.text = '$(sync~spin) Scalpel: previewing';
    try {
      const r = await jobs.withProgress<PreviewResult>(`Scalpel: previewing ${previewState.edit ?? path.basename(uri.fsPath)}`, { ...previewJob(uri.fsPath, previewState.edit), text }, mine.token);
      lastPreview = r;
      previewState.edit = r.edit;
      record(uri.fsPath, r.edit, r.datasets, r.scale, text);
      await panel.post({ type: 'preview', data: r });
      return r;
    } catch (err) {
      // A preview superseded by a newer one leaves the panel to that one; one cancelled by the user says so.
      if (previewing === mine) void panel.post({ type: 'error', message: err instanceof JobError ? err.format() : err instanceof CancelledJob ? 'preview cancelled' : String(err) });
      report(err);
      return undefined;
    } finally {
      if (previewing === mine) {
        previewing = undefined;
        idle();
      }
      mine.dispose();
    }
  }

  async function apply(arg?: vscode.Uri, edit?: string): Promise<void> {
    const spec = await specOf(arg);
    if (!spec || !trusted()) return;
    const out = path.join(path.dirname(spec.fsPath), `${path.basename(spec.fsPath, '.scalpel')}.onnx`);
    const text = (await vscode.workspace.openTextDocument(spec)).getText();
    let edits = typeof edit === 'string' ? [edit] : [];
    const names = outline(text).filter((i) => i.kind === 'edit').map((i) => i.label);
    if (!edits.length && names.length > 1) {
      // Edits of one spec may be alternatives: ask rather than apply them all together.
      const all = 'All edits together';
      const pick = await vscode.window.showQuickPick([...names, all], { title: 'Scalpel: apply which edit?' });
      if (!pick) return;
      edits = pick === all ? [] : [pick];
    }
    try {
      const r = await jobs.withProgress<ApplyResult>(`Scalpel: applying ${edits.join(', ') || 'all edits'}`, { kind: 'apply', spec: spec.fsPath, out, edits, runtime: runtime() });
      await context.workspaceState.update(`applied:${spec.fsPath}`, text);
      const failed = r.checks.filter((c) => !c.pass);
      const msg = `Scalpel: wrote ${path.basename(r.out)} and ${path.basename(r.lock)}; ${r.checks.length - failed.length} of ${r.checks.length} checks passed`;
      const pick = await (failed.length ? vscode.window.showWarningMessage(msg, 'Review') : vscode.window.showInformationMessage(msg, 'Review'));
      if (pick) await review(spec);
    } catch (err) {
      report(err);
    }
  }

  async function review(arg?: vscode.Uri): Promise<void> {
    const spec = await specOf(arg);
    // The lock names model files to open: an untrusted workspace's lock is not followed.
    if (!spec || !trusted()) return;
    previewState.spec = spec.fsPath;
    try {
      const r = await jobs.withProgress<ReviewResult>('Scalpel: reading the lock and the edited weights', { kind: 'review', spec: spec.fsPath });
      await Panel.show('review', webviewRoot, wire).post({ type: 'review', data: r });
    } catch (err) {
      report(err);
    }
  }

  /** What the Geometry panel shows: its spec, edit and the edit's scale (for the debugger). */
  const geometryState: { spec?: string; edit?: string; scale?: number } = {};
  async function showGeometry(arg?: vscode.Uri, edit?: string, textFile?: string): Promise<void> {
    const spec = await specOf(arg);
    if (!spec || !trusted()) return;
    const name = typeof edit === 'string' ? edit : undefined;
    const panel = Panel.show('geometry', webviewRoot, wire);
    void panel.post({ type: 'busy', message: `capturing activations${name ? ` (base and ${name})` : ''}…` });
    try {
      const text = typeof textFile === 'string' ? fs.readFileSync(textFile, 'utf8') : undefined;
      const r = await jobs.withProgress<GeometryData>(`Scalpel: activation geometry${name ? ` of ${name}` : ''}`, {
        kind: 'geometry', spec: spec.fsPath, edit: name, text, maxPerTag: config().get<number>('geometry.maxPerTag') ?? 1500, runtime: runtime(),
      });
      Object.assign(geometryState, { spec: r.spec, edit: r.edit, scale: r.scale });
      await panel.post({ type: 'geometry', data: r });
    } catch (err) {
      void panel.post({ type: 'error', message: err instanceof JobError ? err.format() : String(err) });
      report(err);
    }
  }

  /** A token of the Geometry panel in the debugger: document N of a spec dataset, stopped at its position. */
  async function debugToken(dataset: string, document: number, position: number): Promise<boolean> {
    if (!debuggerContributed || !trusted()) return false;
    const spec = vscode.Uri.file(geometryState.spec!);
    return vscode.debug.startDebugging(vscode.workspace.getWorkspaceFolder(spec), {
      type: 'scalpel',
      request: 'launch',
      name: `Scalpel: ${dataset}#${document}, token ${position}`,
      spec: spec.fsPath,
      ...(geometryState.edit ? { edit: geometryState.edit, scale: geometryState.scale } : {}),
      example: `${dataset}#${document}`,
      position,
      stopOnEntry: true,
    });
  }

  // The spec as it was at its last apply from this editor, for VS Code's own diff view.
  const APPLIED = 'scalpel-applied';
  context.subscriptions.push(
    vscode.workspace.registerTextDocumentContentProvider(APPLIED, { provideTextDocumentContent: (u) => context.workspaceState.get<string>(`applied:${u.path}`) ?? '' }),
  );
  async function openSpecDiff(spec: vscode.Uri): Promise<void> {
    if (context.workspaceState.get<string>(`applied:${spec.fsPath}`) === undefined) {
      void vscode.window.showInformationMessage('Scalpel: this spec was not applied from this workspace yet, so there is no applied version to compare with.');
      return;
    }
    await vscode.commands.executeCommand('vscode.diff', spec.with({ scheme: APPLIED }), spec, `${path.basename(spec.fsPath)}: applied ↔ now`);
  }

  async function showComponents(arg?: vscode.Uri): Promise<void> {
    const spec = await specOf(arg);
    if (!spec) return;
    try {
      // Reading a catalog runs no model: allowed in Restricted Mode too.
      const r = await jobs.withProgress<CatalogView>('Scalpel: reading the component catalog', { kind: 'catalog', spec: spec.fsPath });
      await Panel.show('components', webviewRoot, wire).post({ type: 'catalog', data: r });
    } catch (err) {
      report(err);
    }
  }

  let selectorTarget: vscode.Uri | undefined;
  context.subscriptions.push(vscode.window.onDidChangeActiveTextEditor((e) => e?.document.languageId === LANGUAGE && (selectorTarget = e.document.uri)));
  async function insertSelector(key: string): Promise<void> {
    const uri = selectorTarget ?? vscode.window.visibleTextEditors.find((e) => e.document.languageId === LANGUAGE)?.document.uri;
    if (!uri) return void vscode.window.showErrorMessage('Scalpel: open a spec to insert the selector into');
    const editor = await vscode.window.showTextDocument(uri, { preview: false, viewColumn: vscode.ViewColumn.One });
    // Plain text: a `$` or `}` in a catalog key is not snippet syntax.
    await editor.insertSnippet(new vscode.SnippetString().appendText(`select "${key}"`));
  }

  async function evaluate(arg?: vscode.Uri): Promise<void> {
    const spec = await specOf(arg);
    if (!spec || !trusted()) return;
    await tests.runSpecs([spec], undefined);
  }

  const debuggerContributed = ((context.extension.packageJSON.contributes?.debuggers ?? []) as { type: string }[]).some((d) => d.type === 'scalpel');
  async function debugEdit(arg?: vscode.Uri, edit?: string, dataset?: string): Promise<boolean> {
    if (!debuggerContributed) {
      void vscode.window.showErrorMessage('Scalpel: this build has no model debugger');
      return false;
    }
    const spec = await specOf(arg);
    if (!spec || !trusted()) return false;
    const text = (await vscode.workspace.openTextDocument(spec)).getText();
    const items = outline(text);
    const name = typeof edit === 'string' ? edit : items.find((i) => i.kind === 'edit')?.label;
    // The debugger takes the scale measured for this very text: a tuned scale has no value in the spec, and
    // without a lock (written by an apply) the launch could not find one. Not measured yet: evaluate first.
    const scaleOf = () => (name && measured.get(spec.fsPath)?.get(name)?.text === text ? measured.get(spec.fsPath)!.get(name)!.scale : undefined);
    if (name && scaleOf() === undefined) await tests.runSpecs([spec], undefined);
    const scale = scaleOf();
    // Which dataset: the one asked for, else what the last preview of this edit saw fail or aimed at, else the first.
    const p = lastPreview?.spec === spec.fsPath && lastPreview.edit === name ? lastPreview : undefined;
    const ds = dataset ?? p?.checks.find((c) => !c.pass)?.dataset ?? p?.datasets.find((d) => d.role === 'target')?.name ?? items.find((i) => i.kind === 'data')?.label;
    if (!ds) {
      void vscode.window.showErrorMessage('Scalpel: the spec declares no dataset to debug on');
      return false;
    }
    // `DATASET#worst`: the debugger starts at the document and token where the edit raises the loss most.
    return vscode.debug.startDebugging(vscode.workspace.getWorkspaceFolder(spec), {
      type: 'scalpel',
      request: 'launch',
      name: `Scalpel: ${name ?? 'edit'} on ${ds}`,
      spec: spec.fsPath,
      ...(name ? { edit: name } : {}),
      ...(scale !== undefined ? { scale } : {}),
      example: `${ds}#worst`,
      // Stop where the edit first changes the forward pass; with no divergence, at the first point.
      stopOnDivergence: true,
      stopOnEntry: true,
      executionProvider: runtime().executionProvider,
      deviceId: runtime().deviceId,
    });
  }

  const tests = new SpecTests(context, jobs, runtime, trusted, record, debuggerContributed ? debugEdit : undefined);

  context.subscriptions.push(
    vscode.commands.registerCommand('scalpel.previewEdit', preview),
    vscode.commands.registerCommand('scalpel.applyEdit', apply),
    vscode.commands.registerCommand('scalpel.evaluateSpec', evaluate),
    vscode.commands.registerCommand('scalpel.showComponents', showComponents),
    vscode.commands.registerCommand('scalpel.reviewEdit', review),
    vscode.commands.registerCommand('scalpel.debugEdit', debugEdit),
    vscode.commands.registerCommand('scalpel.showGeometry', showGeometry),
    vscode.commands.registerCommand('scalpel.showOutput', () => log.show()),
    vscode.debug.registerDebugAdapterDescriptorFactory('scalpel', {
      // The adapter is the bundled CLI's `dap` command in its own process: the model never runs in the extension host.
      createDebugAdapterDescriptor: () => new vscode.DebugAdapterExecutable(process.execPath, [cli, 'dap'], { env: { ELECTRON_RUN_AS_NODE: '1' } }),
    }),
    ...VIEW_KINDS.map((kind) =>
      vscode.window.registerWebviewPanelSerializer(VIEWS[kind].viewType, {
        async deserializeWebviewPanel(panel: vscode.WebviewPanel, state: { last?: { data?: { spec?: string; edit?: string; scale?: number } } } | undefined) {
          if (kind === 'preview' && state?.last?.data?.spec) Object.assign(previewState, { spec: state.last.data.spec, edit: state.last.data.edit });
          if (kind === 'geometry' && state?.last?.data?.spec) Object.assign(geometryState, { spec: state.last.data.spec, edit: state.last.data.edit, scale: state.last.data.scale });
          Panel.restore(kind, panel, webviewRoot, wire);
        },
      }),
    ),
  );

  // Live preview: as the spec that the Preview panel shows is typed in, it is measured again (debounced, unsaved
  // text included); a newer preview cancels the one in flight. Silent in Restricted Mode: no model runs there.
  let timer: NodeJS.Timeout | undefined;
  context.subscriptions.push(
    vscode.workspace.onDidChangeTextDocument((e) => {
      const doc = e.document;
      if (!e.contentChanges.length || doc.uri.fsPath !== previewState.spec || !Panel.get('preview') || !vscode.workspace.isTrusted || !config().get<boolean>('preview.liveUpdate', true)) return;
      clearTimeout(timer);
      timer = setTimeout(() => void preview(doc.uri, previewState.edit), config().get<number>('preview.debounceMs') ?? 400);
    }),
    new vscode.Disposable(() => clearTimeout(timer)),
  );

  // ---- the language server: the bundled CLI's `lsp --stdio`, in its own process ----
  client = new LanguageClient(
    'scalpel',
    'Scalpel Language Server',
    // An executable rather than a node module: the client would add `--clientProcessId`, which `scalpel lsp` does not take.
    { command: process.execPath, args: [cli, 'lsp'], transport: TransportKind.stdio, options: { env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' } } },
    { documentSelector: [{ language: LANGUAGE }], outputChannel: log },
  );
  // Not awaited: diagnostics arrive when the server is up; activation does not wait for it.
  client.start().catch((err: unknown) => log.appendLine(`the language server did not start: ${err instanceof Error ? err.message : String(err)}`));

  const activationMs = performance.now() - started;
  log.appendLine(`Scalpel activated in ${activationMs.toFixed(1)} ms (workspace ${vscode.workspace.isTrusted ? 'trusted' : 'restricted'})`);
  return { activationMs };
}

export async function deactivate(): Promise<void> {
  await client?.stop();
}
