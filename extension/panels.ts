/**
 * The webview panels (Edit Preview, Components, Review, Geometry): one page from the webview bundle each, a
 * fresh nonce per render, resources only from dist/webviews, and a serializer so that a panel
 * survives a window reload by redrawing from its saved state.
 */
import * as vscode from 'vscode';
import { webviewHtml } from './html';
import { VIEWS, ViewKind } from './protocol';
import type { FromWebview, ToWebview } from './protocol';

export class Panel {
  private static readonly open = new Map<ViewKind, Panel>();
  private readonly listeners = new Set<(m: FromWebview) => void>();
  /** Set by the page's `ready`; messages wait for it so none is lost while the page loads. */
  private ready: Promise<void>;
  private markReady!: () => void;

  private constructor(readonly kind: ViewKind, readonly panel: vscode.WebviewPanel, root: vscode.Uri) {
    this.ready = new Promise((r) => (this.markReady = r));
    const w = panel.webview;
    w.options = { enableScripts: true, localResourceRoots: [root] };
    const uri = (f: string) => w.asWebviewUri(vscode.Uri.joinPath(root, f)).toString();
    w.html = webviewHtml(kind, VIEWS[kind].title, { cspSource: w.cspSource, script: uri('main.js'), style: uri('main.css'), codicons: uri('codicon.css') });
    w.onDidReceiveMessage((m: FromWebview) => {
      if (m.type === 'ready') this.markReady();
      for (const l of this.listeners) l(m);
    });
    panel.onDidDispose(() => Panel.open.delete(kind));
    Panel.open.set(kind, this);
  }

  /** The panel of this kind, revealed, or a new one beside the editor. */
  static show(kind: ViewKind, root: vscode.Uri, wire: (p: Panel) => void): Panel {
    const existing = Panel.open.get(kind);
    if (existing) {
      existing.panel.reveal(undefined, true);
      return existing;
    }
    const p = vscode.window.createWebviewPanel(VIEWS[kind].viewType, VIEWS[kind].title, { viewColumn: vscode.ViewColumn.Beside, preserveFocus: true }, { enableScripts: true, localResourceRoots: [root] });
    const created = new Panel(kind, p, root);
    wire(created);
    return created;
  }

  static get(kind: ViewKind): Panel | undefined {
    return Panel.open.get(kind);
  }

  /** Re-attaches a panel VS Code restored after a reload; the page redraws from its own saved state. */
  static restore(kind: ViewKind, panel: vscode.WebviewPanel, root: vscode.Uri, wire: (p: Panel) => void): void {
    wire(new Panel(kind, panel, root));
  }

  async post(m: ToWebview): Promise<void> {
    await this.ready;
    await this.panel.webview.postMessage(m);
  }

  onMessage(l: (m: FromWebview) => void): vscode.Disposable {
    this.listeners.add(l);
    return new vscode.Disposable(() => this.listeners.delete(l));
  }
}
