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
import { MeasurementStore } from './measurements';
import { PreviewController } from './preview';
import type { ApplyResult, CatalogView, FromWebview, GeometryData, Job, JobRuntime, ReviewResult } from './protocol';
import { STOP_CONTEXT } from '../debugger/requests';
import type { StopContext, StopContextArguments } from '../debugger/requests';
import { VIEWS, VIEW_KINDS } from './protocol';
import { missedGoalsNote } from './goals';
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

  const measurements = new MeasurementStore(LANGUAGE);
  context.subscriptions.push(measurements);

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
          })
          .concat(
            // A probe: its datasets and kind at every layer, starting at its point.
            outline(doc.getText())
              .filter((i) => i.kind === 'probe')
              .map((i) => new vscode.CodeLens(new vscode.Range(i.line - 1, 0, i.line - 1, 0), { title: '$(graph-scatter) Geometry', command: 'scalpel.showGeometry', arguments: [doc.uri, undefined, undefined, i.label] })),
          );
      },
    }),
  );

  // ---- commands ----
  // The spec the Preview and Review panels' buttons act on (the Review panel sets it too).
  const previewed = () => (previews.spec ? vscode.Uri.file(previews.spec) : undefined);
  const wire = (p: Panel) => {
    p.onMessage((m: FromWebview) => {
      const spec = previewed();
      if (m.type === 'refresh' && spec) void previews.preview(spec, previews.edit);
      else if (m.type === 'apply' && spec) void apply(spec, m.edit);
      else if (m.type === 'debug' && spec) void debugEdit(spec, previews.edit, m.dataset);
      else if (m.type === 'insertSelector') void insertSelector(m.key);
      else if (m.type === 'diff' && spec) void openSpecDiff(spec);
      else if (m.type === 'debugToken' && geometryState.spec) void debugToken(m.dataset, m.document, m.position);
    });
  };
  const previews = new PreviewController({
    jobs, measurements, webviewRoot, wire, config, runtime, specOf, trusted, report, idle,
    busy: (text) => (status.text = text),
  });
  context.subscriptions.push(previews);

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
      const msg = `Scalpel: wrote ${path.basename(r.out)} and ${path.basename(r.lock)}; ${r.checks.length - failed.length} of ${r.checks.length} checks passed${missedGoalsNote(r.checks)}`;
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
    previews.spec = spec.fsPath;
    try {
      const r = await jobs.withProgress<ReviewResult>('Scalpel: reading the lock and the edited weights', { kind: 'review', spec: spec.fsPath });
      await Panel.show('review', webviewRoot, wire).post({ type: 'review', data: r });
    } catch (err) {
      report(err);
    }
  }

  /** What the Geometry panel shows: its spec, edit and the edit's scale (for the debugger). */
  const geometryState: { spec?: string; edit?: string; scale?: number } = {};
  /** Show Geometry (the command and the code lenses over edits and probes). */
  async function showGeometry(arg?: vscode.Uri, edit?: string, textFile?: string, probe?: string): Promise<void> {
    const spec = await specOf(arg);
    if (!spec || !trusted()) return;
    const text = typeof textFile === 'string' ? fs.readFileSync(textFile, 'utf8') : undefined;
    await openGeometry(spec, { edit: typeof edit === 'string' ? edit : undefined, probe: typeof probe === 'string' ? probe : undefined, text });
  }

  type GeometryJob = Extract<Job, { kind: 'geometry' }>;
  async function openGeometry(spec: vscode.Uri, job: Pick<GeometryJob, 'edit' | 'probe' | 'text' | 'point' | 'scale' | 'mark'>): Promise<void> {
    const name = job.edit;
    const panel = Panel.show('geometry', webviewRoot, wire);
    void panel.post({ type: 'busy', message: `capturing activations${name ? ` (base and ${name})` : ''}…` });
    try {
      const r = await jobs.withProgress<GeometryData>(`Scalpel: activation geometry${name ? ` of ${name}` : ''}`, {
        kind: 'geometry', spec: spec.fsPath, ...job, maxPerTag: config().get<number>('geometry.maxPerTag') ?? 1500, runtime: runtime(),
      });
      Object.assign(geometryState, { spec: r.spec, edit: r.edit, scale: r.scale });
      if (job.mark && !r.marked) log.appendLine(`geometry: the debugged token (${job.mark.tag}#${job.mark.document}, token ${job.mark.position}) is not among the panel's datasets`);
      await panel.post({ type: 'geometry', data: r });
    } catch (err) {
      void panel.post({ type: 'error', message: err instanceof JobError ? err.format() : String(err) });
      report(err);
    }
  }

  /**
   * Show Geometry at This Stop (the debug toolbar, a frame's context menu in Call Stack, the command palette): the
   * panel for the stopped session's spec and edit at the scale it debugs, at the capture point of the focused (or
   * right-clicked) frame, with the token debugged marked.
   */
  async function showGeometryAtStop(item?: { sessionId?: string; frameName?: string }): Promise<void> {
    const session = vscode.debug.activeDebugSession;
    if (session?.type !== 'scalpel') return void vscode.window.showErrorMessage('Scalpel: no Scalpel debug session is active');
    if (!trusted()) return;
    try {
      const at = (await session.customRequest(STOP_CONTEXT, { frameId: await focusedFrame(session, item) } satisfies StopContextArguments)) as StopContext;
      if (!at.spec) {
        return void vscode.window.showErrorMessage('Scalpel: this session debugs a model without a spec; the Geometry panel compares a spec\'s datasets (launch with "spec")');
      }
      await openGeometry(vscode.Uri.file(at.spec), {
        edit: at.edit, scale: at.scale, point: at.geometryPoint,
        ...(at.example ? { mark: { tag: at.example.dataset, document: at.example.document, position: at.position } } : {}),
      });
    } catch (err) {
      report(err);
    }
  }

  /** The frame a debugger command is about: the one right-clicked in Call Stack (by its name), else the focused one; undefined: the stop itself. */
  async function focusedFrame(session: vscode.DebugSession, item?: { frameName?: string }): Promise<number | undefined> {
    if (typeof item?.frameName === 'string') {
      const frames = ((await session.customRequest('stackTrace', { threadId: 1 })) as { stackFrames: { id: number; name: string }[] }).stackFrames;
      return frames.find((f) => f.name === item.frameName)?.id;
    }
    const focused = vscode.debug.activeStackItem;
    return focused instanceof vscode.DebugStackFrame && focused.session.id === session.id ? focused.frameId : undefined;
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
    const scaleOf = () => (name ? measurements.scaleFor(spec.fsPath, name, text) : undefined);
    if (name && scaleOf() === undefined) await tests.runSpecs([spec], undefined);
    const scale = scaleOf();
    // Which dataset: the one asked for, else what the last preview of this edit saw fail or aimed at, else the first.
    const p = previews.lastOf(spec.fsPath, name);
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

  const tests = new SpecTests(context, jobs, runtime, trusted, (...m) => measurements.record(...m), debuggerContributed ? debugEdit : undefined);

  context.subscriptions.push(
    vscode.commands.registerCommand('scalpel.previewEdit', (arg?: vscode.Uri, edit?: string) => previews.preview(arg, edit)),
    vscode.commands.registerCommand('scalpel.applyEdit', apply),
    vscode.commands.registerCommand('scalpel.evaluateSpec', evaluate),
    vscode.commands.registerCommand('scalpel.showComponents', showComponents),
    vscode.commands.registerCommand('scalpel.reviewEdit', review),
    vscode.commands.registerCommand('scalpel.debugEdit', debugEdit),
    vscode.commands.registerCommand('scalpel.showGeometry', showGeometry),
    vscode.commands.registerCommand('scalpel.showGeometryAtStop', showGeometryAtStop),
    vscode.commands.registerCommand('scalpel.showOutput', () => log.show()),
    vscode.debug.registerDebugAdapterDescriptorFactory('scalpel', {
      // The adapter is the bundled CLI's `dap` command in its own process: the model never runs in the extension host.
      createDebugAdapterDescriptor: () => new vscode.DebugAdapterExecutable(process.execPath, [cli, 'dap'], { env: { ELECTRON_RUN_AS_NODE: '1' } }),
    }),
    ...VIEW_KINDS.map((kind) =>
      vscode.window.registerWebviewPanelSerializer(VIEWS[kind].viewType, {
        async deserializeWebviewPanel(panel: vscode.WebviewPanel, state: { last?: { data?: { spec?: string; edit?: string; scale?: number } } } | undefined) {
          if (kind === 'preview' && state?.last?.data?.spec) Object.assign(previews, { spec: state.last.data.spec, edit: state.last.data.edit });
          if (kind === 'geometry' && state?.last?.data?.spec) Object.assign(geometryState, { spec: state.last.data.spec, edit: state.last.data.edit, scale: state.last.data.scale });
          Panel.restore(kind, panel, webviewRoot, wire);
        },
      }),
    ),
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
