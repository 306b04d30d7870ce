/**
 * Test Explorer: each spec is a test item whose children are its guards and expectations. The Run
 * profile evaluates the spec in the model worker and reports every check with its measured value;
 * the Debug profile (when the debugger is built in) starts it on the worst failing example.
 */
import * as vscode from 'vscode';
import { CancelledJob, JobError, JobRunner } from './jobs';
import { outline } from './outline';
import type { CheckView, DatasetView, EvaluateResult, JobRuntime } from './protocol';
import { failedChecks, goalDescription, missedGoalsNote } from './goals';
import { DEFAULT_EXCLUDE, FilesExclude, testScope } from './test-scope';

type Debug = (spec: vscode.Uri, edit?: string, dataset?: string) => Promise<boolean>;

/** Spec files on disk (not, e.g., the applied version shown in a diff). */
const isSpec = (u: vscode.Uri) => u.scheme === 'file' && u.fsPath.endsWith('.scalpel');

/** The exclusions that apply to a workspace folder: scalpel.testing.exclude and files.exclude. */
function scopeOf(folder: vscode.WorkspaceFolder): { exclude: string[]; filesExclude: FilesExclude } {
  return {
    exclude: vscode.workspace.getConfiguration('scalpel', folder).get<string[]>('testing.exclude', DEFAULT_EXCLUDE),
    filesExclude: vscode.workspace.getConfiguration('files', folder).get<FilesExclude>('exclude', {}),
  };
}

/** Whether a spec is one the user owns: in a workspace folder, and not excluded there. */
function owned(u: vscode.Uri): boolean {
  const folder = vscode.workspace.getWorkspaceFolder(u);
  if (!folder) return false;
  const { exclude, filesExclude } = scopeOf(folder);
  return testScope(exclude, filesExclude)(vscode.workspace.asRelativePath(u, false));
}

export class SpecTests {
  readonly controller: vscode.TestController;
  /** Per child item: what it is in its spec. */
  private readonly meta = new WeakMap<vscode.TestItem, { kind: 'guard' | 'expect'; name: string; line: number }>();
  /** The checks each item measured in its last run, by item id (the Debug profile starts from them). */
  private readonly last = new Map<string, CheckView[]>();

  constructor(
    context: vscode.ExtensionContext,
    private readonly jobs: JobRunner,
    private readonly runtime: () => JobRuntime,
    private readonly trusted: () => boolean,
    private readonly record: (spec: string, edit: string, datasets: DatasetView[], scale: number, text: string) => void,
    debug: Debug | undefined,
  ) {
    const c = (this.controller = vscode.tests.createTestController('scalpel', 'Scalpel specs'));
    c.resolveHandler = async (item) => {
      if (!item) await this.discover();
    };
    c.refreshHandler = () => this.discover();
    c.createRunProfile('Run', vscode.TestRunProfileKind.Run, (req, token) => this.run(req, token), true);
    if (debug) {
      c.createRunProfile('Debug', vscode.TestRunProfileKind.Debug, async (req, token) => {
        const item = req.include?.[0];
        if (!item?.uri) return;
        const checksOf = () => (this.meta.get(item) ? [item] : [...this.iter(item.children)]).flatMap((t) => this.last.get(t.id) ?? []);
        if (!checksOf().length) await this.runSpecs([item.uri], new vscode.TestRunRequest([item]), token);
        // The worst failing check: the largest measured value over its bound; with none failing, the first check.
        const checks = checksOf();
        const worst = checks.filter((c) => !c.pass).sort((a, b) => b.value / (b.bound || 1) - a.value / (a.bound || 1))[0] ?? checks[0];
        if (worst) await debug(item.uri, worst.edit, worst.dataset);
      });
    }
    const watcher = vscode.workspace.createFileSystemWatcher('**/*.scalpel');
    const listed = (u: vscode.Uri) => isSpec(u) && owned(u);
    context.subscriptions.push(
      c,
      watcher,
      watcher.onDidCreate((u) => listed(u) && this.update(u)),
      watcher.onDidChange((u) => listed(u) && this.update(u)),
      watcher.onDidDelete((u) => c.items.delete(u.toString())),
      vscode.workspace.onDidOpenTextDocument((d) => listed(d.uri) && this.update(d.uri, d.getText())),
      vscode.workspace.onDidChangeTextDocument((e) => listed(e.document.uri) && this.update(e.document.uri, e.document.getText())),
      vscode.workspace.onDidChangeConfiguration((e) => (e.affectsConfiguration('scalpel.testing.exclude') || e.affectsConfiguration('files.exclude')) && this.discover()),
    );
    for (const d of vscode.workspace.textDocuments) if (listed(d.uri)) this.update(d.uri, d.getText());
  }

  /** Lists the specs in scope, and drops items that left it. */
  private async discover(): Promise<void> {
    const found: vscode.Uri[] = [];
    for (const folder of vscode.workspace.workspaceFolders ?? []) {
      // The search skips the excluded folders; `owned` then applies the same rule as to the watcher's files.
      const { exclude, filesExclude } = scopeOf(folder);
      const skip = [...exclude, ...Object.keys(filesExclude).filter((p) => filesExclude[p] === true)].filter((p) => !/[{}]/.test(p));
      const files = await vscode.workspace.findFiles(new vscode.RelativePattern(folder, '**/*.scalpel'), skip.length ? new vscode.RelativePattern(folder, `{${skip.join(',')}}`) : null);
      found.push(...files.filter(owned));
    }
    const keep = new Set(found.map((u) => u.toString()));
    for (const [id] of this.controller.items) if (!keep.has(id)) this.controller.items.delete(id);
    for (const u of found) await this.update(u);
  }

  /** (Re)builds a spec's item and its guard and expectation children from the spec's text. */
  private async update(uri: vscode.Uri, text?: string): Promise<vscode.TestItem> {
    const c = this.controller;
    const src = text ?? new TextDecoder().decode(await vscode.workspace.fs.readFile(uri));
    let file = c.items.get(uri.toString());
    if (!file) {
      file = c.createTestItem(uri.toString(), vscode.workspace.asRelativePath(uri), uri);
      c.items.add(file);
    }
    const lines = src.split('\n');
    const children: vscode.TestItem[] = [];
    for (const i of outline(src)) {
      if (i.kind !== 'guard' && i.kind !== 'expect') continue;
      const id = `${uri.toString()}#${i.kind}:${i.kind === 'guard' ? i.label : i.line}`;
      const t = c.createTestItem(id, i.kind === 'guard' ? `guard ${i.label}` : `expect ${i.label}`, uri);
      t.range = new vscode.Range(i.line - 1, 0, i.line - 1, lines[i.line - 1]?.length ?? 0);
      this.meta.set(t, { kind: i.kind, name: i.label, line: i.line });
      children.push(t);
    }
    file.children.replace(children);
    return file;
  }

  /** Runs the specs behind `req` (every spec when it names none). */
  private async run(req: vscode.TestRunRequest, token: vscode.CancellationToken): Promise<void> {
    const picked = req.include ?? [...this.iter(this.controller.items)];
    const specs = new Map<string, vscode.Uri>();
    for (const t of picked) if (t.uri) specs.set(t.uri.toString(), t.uri);
    await this.runSpecs([...specs.values()], req, token);
  }

  private *iter(items: vscode.TestItemCollection): Iterable<vscode.TestItem> {
    for (const [, t] of items) yield t;
  }

  /** Evaluates each spec and reports its checks on the Test Explorer items. */
  async runSpecs(specs: vscode.Uri[], req: vscode.TestRunRequest | undefined, token?: vscode.CancellationToken): Promise<void> {
    if (!this.trusted()) return;
    const run = this.controller.createTestRun(req ?? new vscode.TestRunRequest(), undefined, true);
    try {
      for (const uri of specs) {
        if (token?.isCancellationRequested) break;
        const file = await this.update(uri);
        const wanted = req?.include?.some((t) => t === file) || !req?.include ? [...this.iter(file.children)] : req.include.filter((t) => t.parent === file);
        wanted.forEach((t) => run.started(t));
        const started = Date.now();
        // The worker evaluates the file on disk: what it measures holds for this text.
        const text = new TextDecoder().decode(await vscode.workspace.fs.readFile(uri));
        let r: EvaluateResult;
        try {
          r = await (token ? this.jobs.run<EvaluateResult>({ kind: 'evaluate', spec: uri.fsPath, runtime: this.runtime() }, token, (m) => run.appendOutput(`${m}\r\n`)) : this.jobs.withProgress<EvaluateResult>('Scalpel: evaluating the spec', { kind: 'evaluate', spec: uri.fsPath, runtime: this.runtime() }));
        } catch (err) {
          if (err instanceof CancelledJob) {
            wanted.forEach((t) => run.skipped(t));
            break;
          }
          const msg = new vscode.TestMessage(err instanceof JobError ? err.format() : String(err));
          if (err instanceof JobError && err.line) msg.location = new vscode.Location(uri, new vscode.Position(err.line - 1, (err.column ?? 1) - 1));
          wanted.forEach((t) => run.errored(t, msg));
          continue;
        }
        for (const e of r.edits) this.record(uri.fsPath, e.edit, e.datasets, e.scale, text);
        const ms = Date.now() - started;
        for (const t of wanted) this.report(run, t, r.checks, ms);
        run.appendOutput(`${uri.fsPath}: ${r.checks.filter((c) => c.pass).length} of ${r.checks.length} checks passed${missedGoalsNote(r.checks)} in ${r.seconds.toFixed(2)} s\r\n`);
      }
    } finally {
      run.end();
    }
  }

  private report(run: vscode.TestRun, t: vscode.TestItem, checks: CheckView[], ms: number): void {
    const m = this.meta.get(t)!;
    const mine = checks.filter((c) => (m.kind === 'guard' ? c.kind === 'guard' && c.guard === m.name : c.kind === 'expect' && c.line === m.line));
    this.last.set(t.id, mine);
    if (!mine.length) {
      // A guard no edit keeps is never measured: say so instead of passing silently.
      run.skipped(t);
      run.appendOutput(`${t.label}: no edit ${m.kind === 'guard' ? 'keeps this guard' : 'is measured by this expectation'}\r\n`);
      return;
    }
    for (const c of mine) run.appendOutput(`${c.pass ? (c.goal && !c.goal.met ? 'pass, goal missed' : 'pass') : 'FAIL'} ${c.message}\r\n`, t.uri && t.range ? new vscode.Location(t.uri, t.range) : undefined, t);
    // The testing API has no "passed, but" state and a message only on failure: the goal goes next to the name.
    t.description = goalDescription(mine);
    const failed = failedChecks(mine, vscode.workspace.getConfiguration('scalpel', t.uri).get<boolean>('testing.failOnMissedGoal', false));
    if (failed.length) run.failed(t, failed.map((c) => Object.assign(new vscode.TestMessage(c.message), { location: t.uri && t.range ? new vscode.Location(t.uri, t.range) : undefined })), ms);
    else run.passed(t, ms);
  }
}
