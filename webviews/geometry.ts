/**
 * Geometry: the activations of one capture point projected on the base model's principal components,
 * a point per token coloured by tag; the edited model's points over them with an arrow from each base
 * point; a text's sentences as a path; a slider over the capture points (layers); the probe's
 * held-out accuracy per tag and the components its direction aligns with. Hover shows the token or
 * sentence; a click on a token opens it in the debugger.
 */
import { LitElement, css, html } from 'lit';
import type { GeometryData } from '../extension/protocol.js';
import { saveUi, savedUi, themeColor, vscode } from './vscode.js';

type Mode = 'overlay' | 'base' | 'edited';
const PALETTE: [string, string][] = [
  ['charts-blue', '#3794ff'], ['charts-orange', '#d18616'], ['charts-green', '#89d185'],
  ['charts-purple', '#b180d7'], ['charts-red', '#f14c4c'], ['charts-yellow', '#cca700'],
];
const WIDTH = 640;
const HEIGHT = 440;
const PAD = 16;

interface Drawn {
  x: number;
  y: number;
  /** A data row, or a sentence (negative: −1 − index). */
  row: number;
  side: 'base' | 'edited';
}

export class GeometryView extends LitElement {
  static override properties = { data: { attribute: false }, point: { state: true }, mode: { state: true }, tip: { state: true } };
  declare data?: GeometryData;
  declare point: number;
  declare mode: Mode;
  declare tip?: string;
  private drawn: Drawn[] = [];

  constructor() {
    super();
    this.point = savedUi('geometryPoint', -1);
    this.mode = savedUi<Mode>('geometryMode', 'overlay');
  }

  static override styles = css`
    :host { display: block; padding: 8px 16px; color: var(--vscode-foreground); font-family: var(--vscode-font-family); font-size: var(--vscode-font-size); }
    h2 { font-size: 1.1em; margin: 12px 0 6px; }
    .row { display: flex; gap: 16px; align-items: center; flex-wrap: wrap; }
    .plot { position: relative; width: ${WIDTH}px; }
    canvas { border: 1px solid var(--vscode-editorWidget-border, #8884); cursor: crosshair; }
    #tip { position: absolute; left: 0; top: 0; pointer-events: none; background: var(--vscode-editorHoverWidget-background, #252526); color: var(--vscode-editorHoverWidget-foreground, inherit);
      border: 1px solid var(--vscode-editorHoverWidget-border, #454545); padding: 2px 6px; max-width: 360px; white-space: pre-wrap; }
    .legend span { margin-right: 12px; }
    .swatch { display: inline-block; width: 10px; height: 10px; border-radius: 5px; margin-right: 4px; vertical-align: middle; }
    table { border-collapse: collapse; }
    td, th { padding: 2px 8px; text-align: right; border-bottom: 1px solid var(--vscode-editorWidget-border, #8884); }
    td:first-child, th:first-child, td.aligned { text-align: left; }
    .muted { opacity: 0.7; }
    input[type=range] { width: 240px; }
  `;

  private get current(): number {
    const n = this.data?.points.length ?? 0;
    if (this.point >= 0 && this.point < n) return this.point;
    const initial = this.data?.points.findIndex((p) => p.point === this.data?.initialPoint) ?? -1;
    return initial >= 0 ? initial : Math.max(0, Math.min(n - 1, Math.floor(n / 2)));
  }

  override render() {
    const d = this.data;
    if (!d) return html`<p class="muted">Run “Scalpel: Show Geometry” on a spec.</p>`;
    const p = d.points[this.current];
    const acc = p.probe.accuracy;
    const pct = (x: number | undefined) => (x === undefined ? '—' : `${(x * 100).toFixed(1)}%`);
    return html`
      <h2>Geometry ${d.probe ? html`of probe <code>${d.probe}</code> ` : ''}${d.edit ? html`of <code>${d.edit}</code>` : ''} <span class="muted">${d.spec}</span></h2>
      <div class="row">
        <label>point <input id="layer" type="range" min="0" max=${d.points.length - 1} .value=${String(this.current)} @input=${(e: Event) => this.pick(Number((e.target as HTMLInputElement).value))}></label>
        <code id="point-name">${p.point}</code>
        <span class="muted">width ${p.width} · PC1 ${pct(p.explained[0])} · PC2 ${pct(p.explained[1])}</span>
        ${d.hasEdit ? html`<vscode-single-select id="mode" .value=${this.mode} @change=${(e: Event) => this.setMode((e.target as HTMLSelectElement).value as Mode)}>
          <vscode-option value="overlay">base → edited</vscode-option><vscode-option value="base">base</vscode-option><vscode-option value="edited">edited</vscode-option>
        </vscode-single-select>` : ''}
      </div>
      <p class="legend">${d.tags.map((t) => html`<span><span class="swatch" data-tag=${t}></span>${t}</span>`)}${d.sentences ? html`<span>— sentence path (${d.sentences.length})</span>` : ''}</p>
      <div class="plot">
        <canvas id="scatter" width=${WIDTH} height=${HEIGHT} @mousemove=${this.hover} @mouseleave=${() => (this.tip = undefined)} @click=${this.clickPoint}></canvas>
        ${this.tip ? html`<div id="tip">${this.tip}</div>` : ''}
      </div>
      <h2>${p.probe.kind} probe: held-out accuracy <span id="accuracy">${pct(acc.base)}</span>${acc.edited !== undefined ? html` → <span id="accuracy-edited">${pct(acc.edited)}</span> edited` : ''}</h2>
      <table id="probe"><tr><th>tag</th><th>base</th>${d.hasEdit ? html`<th>edited</th><th>retrained</th>` : ''}<th>aligned components</th></tr>
        ${p.probe.perTag.map((t) => html`<tr data-tag=${t.tag}><td>${t.tag}</td><td class="base">${pct(t.base)}</td>${d.hasEdit ? html`<td class="edited">${pct(t.edited)}</td><td>${pct(t.editedRetrained)}</td>` : ''}
          <td class="aligned">${t.aligned.slice(0, 3).map((a) => html`<code>${a.key}</code> ${a.side} ${a.cosine.toFixed(2)}${a.label ? html` <span class="muted">${a.label}</span>` : ''}<br>`)}</td></tr>`)}
      </table>
      <p class="muted">${d.rows.tag.length} rows of ${Object.values(d.tokens).reduce((a, b) => a + b, 0)} tokens; balanced accuracy on ${p.probe.heldoutRows} rows of held-out documents.</p>`;
  }

  override updated(): void {
    const d = this.data;
    if (!d) return;
    const colours = d.tags.map((_, i) => themeColor(PALETTE[i % PALETTE.length][0], PALETTE[i % PALETTE.length][1]));
    this.renderRoot.querySelectorAll<HTMLElement>('.swatch').forEach((el, i) => el.style.setProperty('background', colours[i]));
    const tip = this.renderRoot.querySelector<HTMLElement>('#tip');
    if (tip) tip.style.setProperty('transform', `translate(${this.tipAt[0]}px, ${this.tipAt[1]}px)`);
    this.draw(colours);
  }

  private tipAt: [number, number] = [0, 0];

  private draw(colours: string[]): void {
    const d = this.data!;
    const canvas = this.renderRoot.querySelector<HTMLCanvasElement>('#scatter');
    const ctx = canvas?.getContext('2d');
    if (!canvas || !ctx) return;
    const p = d.points[this.current];
    const showBase = !p.edited || this.mode !== 'edited';
    const showEdited = !!p.edited && this.mode !== 'base';
    const all = [...(showBase ? p.base.coords : []), ...(showEdited ? p.edited!.coords : []), ...(p.text?.base.coords ?? []), ...(showEdited ? p.text?.edited?.coords ?? [] : [])];
    let [x0, x1, y0, y1] = [Infinity, -Infinity, Infinity, -Infinity];
    for (const c of all) {
      x0 = Math.min(x0, c[0]); x1 = Math.max(x1, c[0]);
      y0 = Math.min(y0, c[1]); y1 = Math.max(y1, c[1]);
    }
    if (!(x1 > x0)) [x0, x1] = [x0 - 1, x0 + 1];
    if (!(y1 > y0)) [y0, y1] = [y0 - 1, y0 + 1];
    const sx = (x: number) => PAD + ((x - x0) / (x1 - x0)) * (WIDTH - 2 * PAD);
    const sy = (y: number) => HEIGHT - PAD - ((y - y0) / (y1 - y0)) * (HEIGHT - 2 * PAD);
    ctx.clearRect(0, 0, WIDTH, HEIGHT);
    this.drawn = [];
    const dot = (c: number[], colour: string, filled: boolean, alpha: number) => {
      ctx.globalAlpha = alpha;
      ctx.beginPath();
      ctx.arc(sx(c[0]), sy(c[1]), 2, 0, 2 * Math.PI);
      if (filled) {
        ctx.fillStyle = colour;
        ctx.fill();
      } else {
        ctx.strokeStyle = colour;
        ctx.stroke();
      }
    };
    const overlay = showBase && showEdited;
    const step = Math.max(1, Math.ceil(p.base.coords.length / 400));
    p.base.coords.forEach((c, i) => {
      const colour = colours[d.rows.tag[i] % colours.length];
      if (showBase) {
        dot(c, colour, !overlay, overlay ? 0.35 : 0.55);
        this.drawn.push({ x: sx(c[0]), y: sy(c[1]), row: i, side: 'base' });
      }
      if (showEdited) {
        const e = p.edited!.coords[i];
        if (overlay && i % step === 0) arrow(ctx, sx(c[0]), sy(c[1]), sx(e[0]), sy(e[1]), colour);
        dot(e, colour, true, 0.7);
        this.drawn.push({ x: sx(e[0]), y: sy(e[1]), row: i, side: 'edited' });
      }
    });
    const fg = themeColor('foreground', '#cccccc');
    for (const [side, path] of [['base', showBase ? p.text?.base : undefined], ['edited', showEdited ? p.text?.edited : undefined]] as const) {
      if (!path) continue;
      ctx.globalAlpha = 1;
      ctx.strokeStyle = fg;
      ctx.lineWidth = 1.5;
      ctx.setLineDash(side === 'edited' ? [4, 3] : []);
      ctx.beginPath();
      path.coords.forEach((c, i) => (i ? ctx.lineTo(sx(c[0]), sy(c[1])) : ctx.moveTo(sx(c[0]), sy(c[1]))));
      ctx.stroke();
      ctx.setLineDash([]);
      path.coords.forEach((c, i) => {
        ctx.beginPath();
        ctx.arc(sx(c[0]), sy(c[1]), 3.5, 0, 2 * Math.PI);
        ctx.fillStyle = fg;
        ctx.fill();
        this.drawn.push({ x: sx(c[0]), y: sy(c[1]), row: -1 - i, side });
      });
      ctx.lineWidth = 1;
    }
    ctx.globalAlpha = 1;
  }

  private nearest(e: MouseEvent): Drawn | undefined {
    const r = (e.target as HTMLCanvasElement).getBoundingClientRect();
    const x = e.clientX - r.left;
    const y = e.clientY - r.top;
    let best: Drawn | undefined;
    let bestD = 36; // within 6 px
    // Sentences first: they are drawn on top.
    for (const p of this.drawn) {
      const dd = (p.x - x) ** 2 + (p.y - y) ** 2 - (p.row < 0 ? 20 : 0);
      if (dd < bestD) {
        bestD = dd;
        best = p;
      }
    }
    return best;
  }

  private readonly hover = (e: MouseEvent) => {
    const hit = this.nearest(e);
    const d = this.data!;
    if (!hit) {
      this.tip = undefined;
      return;
    }
    this.tipAt = [Math.min(hit.x + 10, WIDTH - 200), hit.y + 10];
    if (hit.row < 0) {
      const i = -1 - hit.row;
      this.tip = `sentence ${i + 1}${hit.side === 'edited' ? ' (edited)' : ''}: ${d.sentences?.[i] ?? ''}`;
    } else {
      const r = d.rows;
      this.tip = `${d.tags[r.tag[hit.row]]} · ${JSON.stringify(r.token[hit.row])} · document ${r.document[hit.row]}, token ${r.position[hit.row]}${hit.side === 'edited' ? ' (edited)' : ''}${r.heldout[hit.row] ? ' · held out' : ''}`;
    }
  };

  private readonly clickPoint = (e: MouseEvent) => {
    const hit = this.nearest(e);
    if (!hit || hit.row < 0) return;
    const r = this.data!.rows;
    vscode.postMessage({ type: 'debugToken', dataset: this.data!.tags[r.tag[hit.row]], document: r.document[hit.row], position: r.position[hit.row] });
  };

  private pick(i: number): void {
    this.point = i;
    this.tip = undefined;
    saveUi({ geometryPoint: i });
  }

  private setMode(m: Mode): void {
    this.mode = m;
    saveUi({ geometryMode: m });
  }
}

function arrow(ctx: CanvasRenderingContext2D, x0: number, y0: number, x1: number, y1: number, colour: string): void {
  const len = Math.hypot(x1 - x0, y1 - y0);
  if (len < 3) return;
  ctx.globalAlpha = 0.45;
  ctx.strokeStyle = colour;
  ctx.beginPath();
  ctx.moveTo(x0, y0);
  ctx.lineTo(x1, y1);
  const a = Math.atan2(y1 - y0, x1 - x0);
  ctx.moveTo(x1, y1);
  ctx.lineTo(x1 - 5 * Math.cos(a - 0.4), y1 - 5 * Math.sin(a - 0.4));
  ctx.moveTo(x1, y1);
  ctx.lineTo(x1 - 5 * Math.cos(a + 0.4), y1 - 5 * Math.sin(a + 0.4));
  ctx.stroke();
}
customElements.define('scalpel-geometry', GeometryView);
