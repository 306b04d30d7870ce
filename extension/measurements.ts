/**
 * The last Δloss measured for each edit of each spec (by a preview or a test run), with the spec text it
 * ran on and the scale it used: shown after the edit's line and in its hover, and the scale the debugger
 * launches with (a tuned scale holds for that very text only).
 */
import * as vscode from 'vscode';
import { outline } from './outline';
import type { DatasetView } from './protocol';

export interface Measurement {
  datasets: DatasetView[];
  scale: number;
  /** The spec text it was measured on. */
  text: string;
  when: Date;
}

export class MeasurementStore implements vscode.Disposable {
  private readonly bySpec = new Map<string, Map<string, Measurement>>();
  private readonly inline = vscode.window.createTextEditorDecorationType({ after: { margin: '0 0 0 2em', color: new vscode.ThemeColor('editorCodeLens.foreground') } });
  private readonly disposables: vscode.Disposable[];

  constructor(private readonly language: string) {
    this.disposables = [
      this.inline,
      vscode.window.onDidChangeVisibleTextEditors((es) => es.forEach((e) => this.decorate(e))),
      vscode.workspace.onDidChangeTextDocument((e) => vscode.window.visibleTextEditors.filter((x) => x.document === e.document).forEach((x) => this.decorate(x))),
      vscode.languages.registerHoverProvider(language, { provideHover: (doc, pos) => this.hover(doc, pos) }),
    ];
  }

  /** What a job measured for `edit`, with the spec `text` it ran on. */
  record(spec: string, edit: string, datasets: DatasetView[], scale: number, text: string): void {
    if (!this.bySpec.has(spec)) this.bySpec.set(spec, new Map());
    this.bySpec.get(spec)!.set(edit, { datasets, scale, text, when: new Date() });
    vscode.window.visibleTextEditors.forEach((e) => this.decorate(e));
  }

  /** The scale last measured for `edit` on exactly this spec text, if any. */
  scaleFor(spec: string, edit: string, text: string): number | undefined {
    const m = this.bySpec.get(spec)?.get(edit);
    return m?.text === text ? m.scale : undefined;
  }

  dispose(): void {
    for (const d of this.disposables) d.dispose();
  }

  private decorate(editor: vscode.TextEditor): void {
    const bySpec = this.bySpec.get(editor.document.uri.fsPath);
    if (!bySpec || editor.document.languageId !== this.language) return editor.setDecorations(this.inline, []);
    const decos = outline(editor.document.getText())
      .filter((i) => i.kind === 'edit' && bySpec.has(i.label))
      .map((i) => {
        const line = editor.document.lineAt(i.line - 1);
        return { range: line.range, renderOptions: { after: { contentText: `Δloss ${summary(bySpec.get(i.label)!.datasets)} nats` } } };
      });
    editor.setDecorations(this.inline, decos);
  }

  private hover(doc: vscode.TextDocument, pos: vscode.Position): vscode.Hover | undefined {
    const bySpec = this.bySpec.get(doc.uri.fsPath);
    const item = bySpec && outline(doc.getText()).find((i) => i.kind === 'edit' && i.line - 1 === pos.line && bySpec.has(i.label));
    if (!item) return undefined;
    const m = bySpec!.get(item.label)!;
    const md = new vscode.MarkdownString(`**Last measured Δloss of \`${item.label}\`** (${m.when.toLocaleTimeString()})\n\n| dataset | role | before | after | Δ nats |\n|---|---|---:|---:|---:|\n`);
    for (const d of m.datasets) md.appendMarkdown(`| ${d.name} | ${d.role} | ${d.base.toFixed(4)} | ${d.edited.toFixed(4)} | ${d.delta >= 0 ? '+' : ''}${d.delta.toFixed(4)} |\n`);
    return new vscode.Hover(md);
  }
}

function summary(ds: DatasetView[]): string {
  return ds.map((d) => `${d.name} ${d.delta >= 0 ? '+' : ''}${d.delta.toFixed(3)}`).join(' · ');
}
