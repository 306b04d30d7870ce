/**
 * The Preview panel's controller: which spec and edit it shows, the preview job in flight (a newer one
 * cancels it), the last result, and live updates as that spec is typed in
 * (debounced, unsaved text included; silent in Restricted Mode, where no model runs).
 */
import * as path from 'node:path';
import * as vscode from 'vscode';
import { CancelledJob, JobError, JobRunner } from './jobs';
import type { MeasurementStore } from './measurements';
import { Panel } from './panels';
import type { JobRuntime, PreviewResult } from './protocol';

/** What the controller needs from the extension around it. */
export interface PreviewHost {
  jobs: JobRunner;
  measurements: MeasurementStore;
  webviewRoot: vscode.Uri;
  /** Connects a panel's messages to the extension's commands. */
  wire(p: Panel): void;
  config(): vscode.WorkspaceConfiguration;
  runtime(): JobRuntime;
  /** The spec a command is about (see main.ts). */
  specOf(arg?: vscode.Uri, save?: boolean): Promise<vscode.Uri | undefined>;
  trusted(): boolean;
  report(err: unknown): void;
  /** The status bar while previewing, and back to idle. */
  busy(text: string): void;
  idle(): void;
}

export class PreviewController implements vscode.Disposable {
  /** The spec and edit the panel shows. */
  spec?: string;
  edit?: string;
  /** The last finished preview. */
  last?: PreviewResult;
  private inFlight?: vscode.CancellationTokenSource;
  private timer?: NodeJS.Timeout;
  private readonly listener: vscode.Disposable;

  constructor(private readonly host: PreviewHost) {
    this.listener = vscode.workspace.onDidChangeTextDocument((e) => {
      const doc = e.document;
      const config = host.config();
      if (!e.contentChanges.length || doc.uri.fsPath !== this.spec || !Panel.get('preview') || !vscode.workspace.isTrusted || !config.get<boolean>('preview.liveUpdate', true)) return;
      clearTimeout(this.timer);
      this.timer = setTimeout(() => void this.preview(doc.uri, this.edit), config.get<number>('preview.debounceMs') ?? 400);
    });
  }

  /** Previews an edit (or the spec's first) of the spec, as its editor's text reads now. */
  async preview(arg?: vscode.Uri, edit?: string): Promise<PreviewResult | undefined> {
    const h = this.host;
    // Not saved: the worker previews the editor's text, saved or not.
    const uri = await h.specOf(arg, false);
    if (!uri || !h.trusted()) return undefined;
    const text = (await vscode.workspace.openTextDocument(uri)).getText();
    this.spec = uri.fsPath;
    this.edit = typeof edit === 'string' ? edit : undefined;
    this.inFlight?.cancel();
    const mine = (this.inFlight = new vscode.CancellationTokenSource());
    const panel = Panel.show('preview', h.webviewRoot, (p) => h.wire(p));
    void panel.post({ type: 'busy', message: `previewing ${this.edit ?? 'the first edit'}…` });
    h.busy('$(sync~spin) Scalpel: previewing');
    try {
      const config = h.config();
      const job = {
        kind: 'preview', spec: uri.fsPath, edit: this.edit, text, runtime: h.runtime(),
        sweepPoints: config.get<number>('preview.sweepPoints') ?? 7, sweepTokens: config.get<number>('preview.sweepTokens') ?? 256, heatmapTokens: config.get<number>('preview.heatmapTokens') ?? 400,
      } as const;
      const r = await h.jobs.withProgress<PreviewResult>(`Scalpel: previewing ${this.edit ?? path.basename(uri.fsPath)}`, job, mine.token);
      this.last = r;
      this.edit = r.edit;
      h.measurements.record(uri.fsPath, r.edit, r.datasets, r.scale, text);
      await panel.post({ type: 'preview', data: r });
      return r;
    } catch (err) {
      // A preview superseded by a newer one leaves the panel to that one; one cancelled by the user says so.
      if (this.inFlight === mine) void panel.post({ type: 'error', message: err instanceof JobError ? err.format() : err instanceof CancelledJob ? 'preview cancelled' : String(err) });
      h.report(err);
      return undefined;
    } finally {
      if (this.inFlight === mine) {
        this.inFlight = undefined;
        h.idle();
      }
      mine.dispose();
    }
  }

  /** The last preview, if it was of this spec's edit. */
  lastOf(spec: string, edit: string | undefined): PreviewResult | undefined {
    return this.last?.spec === spec && this.last.edit === edit ? this.last : undefined;
  }

  dispose(): void {
    clearTimeout(this.timer);
    this.listener.dispose();
  }
}
