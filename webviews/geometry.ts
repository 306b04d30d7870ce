/**
 * Geometry: the activations of one capture point projected on the base model's principal components,
 * a point per token coloured by tag; the edited model's points over them with an arrow from each base
 * point; a text's sentences as a path; a slider over the capture points (layers); the probe's
 * held-out accuracy per tag and the components its direction aligns with. Hover shows the token or
 * sentence; a click on a token opens it in the debugger.
 *
 * Views: two of the first three components as a plane (PC1–PC2, PC1–PC3, PC2–PC3: exact readings), or
 * all three in 3-D, an orthographic projection turned by dragging (or the arrow keys), scaled the same on
 * every axis so that turning it is a rigid rotation; PC1 points right, PC2 up and PC3 out of the screen
 * before any turn. Arrows, paths, hover and click work on the drawn positions in every view.
 */
import { LitElement, css, html } from 'lit';
import type { GeometryData } from '../extension/protocol.js';
import { saveUi, savedUi, themeColor, vscode } from './vscode.js';

type Mode = 'overlay' | 'base' | 'edited';
/** A plane of two principal components (their indices), or the 3-D view. */
type View = 'pc1-pc2' | 'pc1-pc3' | 'pc2-pc3' | '3d';
const PLANES: Record<Exclude<View, '3d'>, [number, number]> = { 'pc1-pc2': [0, 1], 'pc1-pc3': [0, 2], 'pc2-pc3': [1, 2] };
/** The 3-D view's turn before any drag: yaw about the vertical axis, then pitch about the horizontal one (radians). */
const DEFAULT_ROTATION: [number, number] = [-0.5, 0.3];
/** Radians per pixel dragged, and per arrow key. */
const DRAG_RATE = 0.01;
const KEY_STEP = Math.PI / 18;
const PALETTE: [string, string][] = [
  ['charts-blue', '#3794ff'], ['charts-orange', '#d18616'], ['charts-green', '#89d185'],
  ['charts-purple', '#b180d7'], ['charts-red', '#f14c4c'], ['charts-yellow', '#cca700'],
];
/** The plot's largest size in CSS pixels; a narrower panel gets a smaller plot of the same shape. */
const WIDTH = 640;
const HEIGHT = 440;
const MIN_WIDTH = 160;
const PAD = 16;

/** Screen position and depth (3-D: towards the viewer is positive; planes: 0) of a coordinate. */
type Projection = (c: number[]) => [number, number, number];

interface Drawn {
  x: number;
  y: number;
  /** A data row, or a sentence (negative: −1 − index). */
  row: number;
  side: 'base' | 'edited';
}

export class GeometryView extends LitElement {
  static override properties = {
    data: { attribute: false }, point: { state: true }, mode: { state: true }, view: { state: true }, rotation: { state: true }, tip: { state: true }, size: { state: true },
  };
  declare data?: GeometryData;
  declare point: number;
  declare mode: Mode;
  declare view: View;
  declare rotation: [number, number];
  declare tip?: string;
  /** The plot's size in CSS pixels: the panel's width (at most WIDTH), HEIGHT / WIDTH of it high. */
  declare size: [number, number];
  private drawn: Drawn[] = [];
  private readonly resized = new ResizeObserver(([entry]) => this.fit(entry.contentRect.width));
  /** A drag turning the 3-D view: where it started, and whether it moved (then it is not a click). */
  private drag?: { x: number; y: number; rotation: [number, number]; moved: boolean; pointer: number };
  private dragged = false;
  private frame = 0;

  constructor() {
    super();
    this.point = savedUi('geometryPoint', -1);
    this.mode = savedUi<Mode>('geometryMode', 'overlay');
    this.view = savedUi<View>('geometryView', 'pc1-pc2');
    this.rotation = savedUi<[number, number]>('geometryRotation', DEFAULT_ROTATION);
    this.size = [WIDTH, HEIGHT];
  }

  override connectedCallback(): void {
    super.connectedCallback();
    this.resized.observe(this);
  }

  override disconnectedCallback(): void {
    this.resized.disconnect();
    super.disconnectedCallback();
  }

  /** Sizes the plot to `available` CSS pixels of width (the host's content box, less the canvas's border). */
  private fit(available: number): void {
    const width = Math.max(MIN_WIDTH, Math.min(WIDTH, Math.floor(available) - 2));
    if (width === this.size[0]) return;
    this.size = [width, Math.round((width * HEIGHT) / WIDTH)];
    this.tip = undefined;
  }

  static override styles = css`
    :host { display: block; padding: 8px 16px; color: var(--vscode-foreground); font-family: var(--vscode-font-family); font-size: var(--vscode-font-size); }
    h2 { font-size: 1.1em; margin: 12px 0 6px; }
    .row { display: flex; gap: 16px; align-items: center; flex-wrap: wrap; }
    .plot { position: relative; width: fit-content; }
    canvas { display: block; border: 1px solid var(--vscode-editorWidget-border, #8884); cursor: crosshair; touch-action: none; }
    canvas.turn { cursor: grab; }
    canvas:focus-visible { outline: 1px solid var(--vscode-focusBorder, #007fd4); }
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

  override willUpdate(changed: Map<string, unknown>): void {
    // New data opened at a point of its own (a probe's, a debugger stop's) shows that point, not the slider's last one.
    if (changed.has('data') && changed.get('data') !== undefined && this.data?.initialPoint) this.pick(-1);
  }

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
        <span class="muted" id="explained">width ${p.width} · ${p.explained.map((x, i) => `PC${i + 1} ${pct(x)}`).join(' · ')}</span>
        ${this.dimensions >= 3 ? html`<vscode-single-select id="view" .value=${this.shown} @change=${(e: Event) => this.setView((e.target as HTMLSelectElement).value as View)}>
          <vscode-option value="pc1-pc2">PC1 – PC2</vscode-option><vscode-option value="pc1-pc3">PC1 – PC3</vscode-option><vscode-option value="pc2-pc3">PC2 – PC3</vscode-option><vscode-option value="3d">3-D (drag to turn)</vscode-option>
        </vscode-single-select>` : ''}
        ${this.shown === '3d' ? html`<vscode-button id="reset-view" secondary title="Turn the 3-D view back to its first angle" @click=${() => this.turn(DEFAULT_ROTATION, true)}>Reset view</vscode-button>` : ''}
        ${d.hasEdit ? html`<vscode-single-select id="mode" .value=${this.mode} @change=${(e: Event) => this.setMode((e.target as HTMLSelectElement).value as Mode)}>
          <vscode-option value="overlay">base → edited</vscode-option><vscode-option value="base">base</vscode-option><vscode-option value="edited">edited</vscode-option>
        </vscode-single-select>` : ''}
      </div>
      <p class="legend">${d.tags.map((t) => html`<span><span class="swatch" data-tag=${t}></span>${t}</span>`)}${d.sentences ? html`<span>— sentence path (${d.sentences.length})</span>` : ''}${d.marked ? html`<span id="marked">◎ debugged: ${d.marked.tag} · ${JSON.stringify(d.marked.token)} · document ${d.marked.document}, token ${d.marked.position}</span>` : ''}</p>
      <div class="plot">
        <canvas id="scatter" tabindex="0" class=${this.shown === '3d' ? 'turn' : ''}
          aria-label=${this.shown === '3d' ? 'scatter of PC1, PC2 and PC3; drag or use the arrow keys to turn it' : `scatter of ${this.shown.toUpperCase().replace('-', ' and ')}`}
          @mousemove=${this.hover} @mouseleave=${() => (this.tip = undefined)} @click=${this.clickPoint}
          @pointerdown=${this.startDrag} @pointermove=${this.moveDrag} @pointerup=${this.endDrag} @pointercancel=${this.endDrag} @keydown=${this.key}></canvas>
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
    // Drawn in CSS pixels on a backing store of device pixels, so it stays sharp on a high-density screen.
    const [width, height] = this.size;
    const ratio = window.devicePixelRatio || 1;
    canvas.style.setProperty('width', `${width}px`);
    canvas.style.setProperty('height', `${height}px`);
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    ctx.setTransform(canvas.width / width, 0, 0, canvas.height / height, 0, 0);
    const p = d.points[this.current];
    const showBase = !p.edited || this.mode !== 'edited';
    const showEdited = !!p.edited && this.mode !== 'base';
    const all = [...(showBase ? p.base.coords : []), ...(showEdited ? p.edited!.coords : []), ...(p.text?.base.coords ?? []), ...(showEdited ? p.text?.edited?.coords ?? [] : []),
      ...(showBase && p.marked ? [p.marked.base] : []), ...(showEdited && p.marked?.edited ? [p.marked.edited] : [])];
    const view = this.shown;
    const at = view === '3d' ? turned(all, this.rotation, this.size) : plane(all, PLANES[view], this.size);
    const depthScale = view === '3d' ? 0.35 : 0;
    ctx.clearRect(0, 0, width, height);
    this.drawn = [];
    /** Draws a token's point (nearer points larger in 3-D) and returns where. */
    const dot = (c: number[], colour: string, filled: boolean, alpha: number): [number, number] => {
      const [x, y, z] = at(c);
      ctx.globalAlpha = alpha;
      ctx.beginPath();
      ctx.arc(x, y, Math.min(3, Math.max(1.2, 2 * (1 + depthScale * z))), 0, 2 * Math.PI);
      if (filled) {
        ctx.fillStyle = colour;
        ctx.fill();
      } else {
        ctx.strokeStyle = colour;
        ctx.stroke();
      }
      return [x, y];
    };
    const overlay = showBase && showEdited;
    const step = Math.max(1, Math.ceil(p.base.coords.length / 400));
    p.base.coords.forEach((c, i) => {
      const colour = colours[d.rows.tag[i] % colours.length];
      if (showBase) {
        const [x, y] = dot(c, colour, !overlay, overlay ? 0.35 : 0.55);
        this.drawn.push({ x, y, row: i, side: 'base' });
      }
      if (showEdited) {
        const e = p.edited!.coords[i];
        if (overlay && i % step === 0) {
          const [a, b] = [at(c), at(e)];
          arrow(ctx, a[0], a[1], b[0], b[1], colour);
        }
        const [x, y] = dot(e, colour, true, 0.7);
        this.drawn.push({ x, y, row: i, side: 'edited' });
      }
    });
    const fg = themeColor('foreground', '#cccccc');
    for (const [side, path] of [['base', showBase ? p.text?.base : undefined], ['edited', showEdited ? p.text?.edited : undefined]] as const) {
      if (!path) continue;
      ctx.globalAlpha = 1;
      ctx.strokeStyle = fg;
      ctx.lineWidth = 1.5;
      ctx.setLineDash(side === 'edited' ? [4, 3] : []);
      const points = path.coords.map(at);
      ctx.beginPath();
      points.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
      ctx.stroke();
      ctx.setLineDash([]);
      points.forEach(([x, y], i) => {
        ctx.beginPath();
        ctx.arc(x, y, 3.5, 0, 2 * Math.PI);
        ctx.fillStyle = fg;
        ctx.fill();
        this.drawn.push({ x, y, row: -1 - i, side });
      });
      ctx.lineWidth = 1;
    }
    // The debugger's token: a ring on each side shown, over everything else.
    for (const [side, c] of [['base', showBase ? p.marked?.base : undefined], ['edited', showEdited ? p.marked?.edited : undefined]] as const) {
      if (!c) continue;
      ctx.globalAlpha = 1;
      ctx.strokeStyle = fg;
      ctx.lineWidth = 2;
      ctx.setLineDash(side === 'edited' ? [3, 2] : []);
      ctx.beginPath();
      const [x, y] = at(c);
      ctx.arc(x, y, 7, 0, 2 * Math.PI);
      ctx.stroke();
      ctx.setLineDash([]);
      ctx.lineWidth = 1;
    }
    ctx.globalAlpha = 1;
    axes(ctx, view, this.rotation, fg, this.size);
  }

  /** The components the data has per row (2 or 3). */
  private get dimensions(): number {
    return this.data?.points[0]?.base.coords[0]?.length ?? this.data?.dimensions ?? 2;
  }

  /** The view drawn: the saved one, or PC1–PC2 when the data has no third component. */
  private get shown(): View {
    return this.dimensions >= 3 || this.view === 'pc1-pc2' ? this.view : 'pc1-pc2';
  }

  private setView(v: View): void {
    this.view = v;
    this.tip = undefined;
    saveUi({ geometryView: v });
  }

  /** Sets the 3-D view's angles (pitch kept within ±90°); `save` writes them to the panel's state. */
  private turn([yaw, pitch]: [number, number], save: boolean): void {
    this.rotation = [yaw, Math.max(-Math.PI / 2, Math.min(Math.PI / 2, pitch))];
    if (save) saveUi({ geometryRotation: this.rotation });
  }

  private readonly startDrag = (e: PointerEvent) => {
    this.dragged = false;
    if (this.shown !== '3d' || e.button !== 0) return;
    this.drag = { x: e.clientX, y: e.clientY, rotation: this.rotation, moved: false, pointer: e.pointerId };
    (e.target as HTMLCanvasElement).setPointerCapture(e.pointerId);
  };

  private readonly moveDrag = (e: PointerEvent) => {
    const g = this.drag;
    if (!g || e.pointerId !== g.pointer) return;
    const [dx, dy] = [e.clientX - g.x, e.clientY - g.y];
    if (!g.moved && Math.hypot(dx, dy) < 3) return;
    g.moved = true;
    this.tip = undefined;
    // One redraw per animation frame however fast the pointer reports.
    cancelAnimationFrame(this.frame);
    this.frame = requestAnimationFrame(() => this.turn([g.rotation[0] + dx * DRAG_RATE, g.rotation[1] + dy * DRAG_RATE], false));
  };

  private readonly endDrag = (e: PointerEvent) => {
    const g = this.drag;
    if (!g || e.pointerId !== g.pointer) return;
    this.drag = undefined;
    this.dragged = g.moved;
    if (g.moved) {
      cancelAnimationFrame(this.frame);
      this.turn([g.rotation[0] + (e.clientX - g.x) * DRAG_RATE, g.rotation[1] + (e.clientY - g.y) * DRAG_RATE], true);
    }
  };

  private readonly key = (e: KeyboardEvent) => {
    if (this.shown !== '3d') return;
    const step: Record<string, [number, number]> = { ArrowLeft: [-KEY_STEP, 0], ArrowRight: [KEY_STEP, 0], ArrowUp: [0, -KEY_STEP], ArrowDown: [0, KEY_STEP] };
    const d = step[e.key];
    if (!d) return;
    e.preventDefault();
    this.tip = undefined;
    this.turn([this.rotation[0] + d[0], this.rotation[1] + d[1]], true);
  };

  private nearest(e: MouseEvent): Drawn | undefined {
    // Drawn positions are CSS pixels from the canvas's content box, inside its border.
    const canvas = e.target as HTMLCanvasElement;
    const r = canvas.getBoundingClientRect();
    const x = e.clientX - r.left - canvas.clientLeft;
    const y = e.clientY - r.top - canvas.clientTop;
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
    if (this.drag?.moved) return;
    const hit = this.nearest(e);
    const d = this.data!;
    if (!hit) {
      this.tip = undefined;
      return;
    }
    this.tipAt = [Math.max(0, Math.min(hit.x + 10, this.size[0] - 200)), hit.y + 10];
    if (hit.row < 0) {
      const i = -1 - hit.row;
      this.tip = `sentence ${i + 1}${hit.side === 'edited' ? ' (edited)' : ''}: ${d.sentences?.[i] ?? ''}`;
    } else {
      const r = d.rows;
      this.tip = `${d.tags[r.tag[hit.row]]} · ${JSON.stringify(r.token[hit.row])} · document ${r.document[hit.row]}, token ${r.position[hit.row]}${hit.side === 'edited' ? ' (edited)' : ''}${r.heldout[hit.row] ? ' · held out' : ''}`;
    }
  };

  private readonly clickPoint = (e: MouseEvent) => {
    if (this.dragged) {
      this.dragged = false;
      return;
    }
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

/** Two components as the plot's axes, each stretched to the plot's width or height. */
function plane(all: number[][], [i, j]: [number, number], [width, height]: [number, number]): Projection {
  let [x0, x1, y0, y1] = [Infinity, -Infinity, Infinity, -Infinity];
  for (const c of all) {
    x0 = Math.min(x0, c[i]); x1 = Math.max(x1, c[i]);
    y0 = Math.min(y0, c[j]); y1 = Math.max(y1, c[j]);
  }
  if (!(x1 > x0)) [x0, x1] = [x0 - 1, x0 + 1];
  if (!(y1 > y0)) [y0, y1] = [y0 - 1, y0 + 1];
  return (c) => [PAD + ((c[i] - x0) / (x1 - x0)) * (width - 2 * PAD), height - PAD - ((c[j] - y0) / (y1 - y0)) * (height - 2 * PAD), 0];
}

/** The first three components turned by `yaw` and `pitch` about the centre of their bounding box, one scale on every axis (the bounding sphere fits the plot); depth in units of its radius. */
function turned(all: number[][], [yaw, pitch]: [number, number], [width, height]: [number, number]): Projection {
  const lo = [Infinity, Infinity, Infinity];
  const hi = [-Infinity, -Infinity, -Infinity];
  for (const c of all) for (let k = 0; k < 3; k++) [lo[k], hi[k]] = [Math.min(lo[k], c[k]), Math.max(hi[k], c[k])];
  const mid = lo.map((l, k) => (Number.isFinite(l) ? (l + hi[k]) / 2 : 0));
  let radius = 0;
  for (const c of all) radius = Math.max(radius, Math.hypot(c[0] - mid[0], c[1] - mid[1], c[2] - mid[2]));
  if (!(radius > 0)) radius = 1;
  const scale = (Math.min(width, height) / 2 - PAD) / radius;
  const rotate = rotation(yaw, pitch);
  return (c) => {
    const [x, y, z] = rotate([c[0] - mid[0], c[1] - mid[1], c[2] - mid[2]]);
    return [width / 2 + scale * x, height / 2 - scale * y, z / radius];
  };
}

/** Yaw about the vertical (PC2) axis, then pitch about the screen's horizontal axis: [right, up, towards the viewer]. */
function rotation(yaw: number, pitch: number): (v: number[]) => [number, number, number] {
  const [cy, sy, cp, sp] = [Math.cos(yaw), Math.sin(yaw), Math.cos(pitch), Math.sin(pitch)];
  return ([x, y, z]) => {
    const [x1, z1] = [x * cy + z * sy, -x * sy + z * cy];
    return [x1, y * cp - z1 * sp, y * sp + z1 * cp];
  };
}

/** Which component runs where: the two axes' names along a plane's edges, or a turned axis cross in the 3-D view's corner. */
function axes(ctx: CanvasRenderingContext2D, view: View, [yaw, pitch]: [number, number], colour: string, [width, height]: [number, number]): void {
  ctx.save();
  ctx.fillStyle = colour;
  ctx.strokeStyle = colour;
  ctx.globalAlpha = 0.7;
  ctx.font = '10px sans-serif';
  if (view !== '3d') {
    const [i, j] = PLANES[view];
    ctx.textAlign = 'center';
    ctx.fillText(`PC${i + 1} →`, width / 2, height - 4);
    ctx.textAlign = 'left';
    ctx.fillText(`↑ PC${j + 1}`, 4, height / 2);
  } else {
    const rotate = rotation(yaw, pitch);
    const [ox, oy, len] = [34, height - 34, 22];
    for (let k = 0; k < 3; k++) {
      const [x, y] = rotate([k === 0 ? 1 : 0, k === 1 ? 1 : 0, k === 2 ? 1 : 0]);
      ctx.beginPath();
      ctx.moveTo(ox, oy);
      ctx.lineTo(ox + len * x, oy - len * y);
      ctx.stroke();
      ctx.fillText(`PC${k + 1}`, ox + (len + 6) * x - 8, oy - (len + 6) * y + 3);
    }
  }
  ctx.restore();
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
