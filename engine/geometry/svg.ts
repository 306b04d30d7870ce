/**
 * A static plot of a geometry result: one panel per capture point (small multiples, so a layer sweep
 * reads left to right), points coloured by tag, the edited model's points with a line from each base
 * point, and the text's sentence path as a numbered polyline whose points carry the sentence as a
 * tooltip. Plain SVG 1.1, no script or external reference.
 */
import { GeometryResult, PointGeometry } from './index';

/** Colour-blind-safe categorical palette (Okabe–Ito). */
export const TAG_COLOURS = ['#0072B2', '#E69F00', '#009E73', '#CC79A7', '#D55E00', '#56B4E9', '#F0E442', '#000000'];

const PANEL = 320;
const PAD = 28;

export function geometrySvg(r: GeometryResult, opts: { maxArrows?: number } = {}): string {
  const cols = Math.min(r.points.length, 3);
  const rows = Math.ceil(r.points.length / cols);
  const legendHeight = 24;
  const width = cols * PANEL;
  const height = rows * (PANEL + 34) + legendHeight;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
  ];
  r.tags.forEach((tag, t) => {
    const x = 8 + t * 90;
    out.push(`<circle cx="${x + 5}" cy="12" r="4" fill="${colour(t)}"/><text x="${x + 13}" y="16">${esc(tag)}</text>`);
  });
  if (r.hasEdit) out.push(`<text x="${8 + r.tags.length * 90}" y="16">○ base → ● edited</text>`);
  r.points.forEach((p, i) => {
    const ox = (i % cols) * PANEL;
    const oy = legendHeight + Math.floor(i / cols) * (PANEL + 34);
    out.push(panel(r, p, ox, oy, opts.maxArrows ?? 400));
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}

function panel(r: GeometryResult, p: PointGeometry, ox: number, oy: number, maxArrows: number): string {
  const all = [...p.base.coords, ...(p.edited?.coords ?? []), ...(p.text?.base.coords ?? []), ...(p.text?.edited?.coords ?? [])];
  const xs = all.map((c) => c[0]);
  const ys = all.map((c) => c[1]);
  const [x0, x1] = bounds(xs);
  const [y0, y1] = bounds(ys);
  const sx = (x: number) => ox + PAD + ((x - x0) / (x1 - x0)) * (PANEL - 2 * PAD);
  const sy = (y: number) => oy + PANEL - PAD - ((y - y0) / (y1 - y0)) * (PANEL - 2 * PAD);
  const f = (v: number) => v.toFixed(1);
  const parts: string[] = [`<g><rect x="${ox + PAD}" y="${oy + PAD}" width="${PANEL - 2 * PAD}" height="${PANEL - 2 * PAD}" fill="none" stroke="#cccccc"/>`];
  const acc = p.probe.accuracy;
  const title = `${p.point}  ${p.probe.kind} probe ${pct(acc.base)}${acc.edited !== undefined ? ` → ${pct(acc.edited)} edited` : ''}`;
  parts.push(`<text x="${ox + PAD}" y="${oy + PAD - 8}" font-weight="bold">${esc(title)}</text>`);
  parts.push(`<text x="${ox + PANEL / 2}" y="${oy + PANEL - 8}" text-anchor="middle">PC1 (${pct(p.explained[0])})</text>`);
  parts.push(`<text x="${ox + 12}" y="${oy + PANEL / 2}" text-anchor="middle" transform="rotate(-90 ${ox + 12} ${oy + PANEL / 2})">PC2 (${pct(p.explained[1] ?? 0)})</text>`);
  const step = p.edited ? Math.max(1, Math.ceil(p.base.coords.length / maxArrows)) : 1;
  p.base.coords.forEach((c, i) => {
    const t = r.rows.tag[i];
    if (p.edited) {
      if (i % step) return;
      const e = p.edited.coords[i];
      parts.push(`<line x1="${f(sx(c[0]))}" y1="${f(sy(c[1]))}" x2="${f(sx(e[0]))}" y2="${f(sy(e[1]))}" stroke="${colour(t)}" stroke-opacity="0.35"/>`);
      parts.push(`<circle cx="${f(sx(c[0]))}" cy="${f(sy(c[1]))}" r="2" fill="none" stroke="${colour(t)}" stroke-opacity="0.6"/>`);
      parts.push(`<circle cx="${f(sx(e[0]))}" cy="${f(sy(e[1]))}" r="2" fill="${colour(t)}" fill-opacity="0.7"/>`);
    } else {
      parts.push(`<circle cx="${f(sx(c[0]))}" cy="${f(sy(c[1]))}" r="1.8" fill="${colour(t)}" fill-opacity="0.55"/>`);
    }
  });
  for (const [side, path] of [['base', p.text?.base], ['edited', p.text?.edited]] as const) {
    if (!path) continue;
    const pts = path.coords.map((c) => `${f(sx(c[0]))},${f(sy(c[1]))}`).join(' ');
    parts.push(`<polyline points="${pts}" fill="none" stroke="#222222" stroke-width="1.2"${side === 'edited' ? ' stroke-dasharray="4 3"' : ''}/>`);
    path.coords.forEach((c, i) => {
      parts.push(`<circle cx="${f(sx(c[0]))}" cy="${f(sy(c[1]))}" r="3.2" fill="#ffffff" stroke="#222222"><title>${esc(`${i + 1}${side === 'edited' ? ' (edited)' : ''}: ${r.sentences?.[i] ?? ''}`)}</title></circle>`);
    });
  }
  parts.push('</g>');
  return parts.join('\n');
}

function bounds(v: number[]): [number, number] {
  let lo = Infinity, hi = -Infinity;
  for (const x of v) {
    if (x < lo) lo = x;
    if (x > hi) hi = x;
  }
  if (!Number.isFinite(lo)) return [-1, 1];
  if (hi - lo < 1e-9) return [lo - 1, hi + 1];
  const m = (hi - lo) * 0.04;
  return [lo - m, hi + m];
}

function colour(t: number): string {
  return TAG_COLOURS[t % TAG_COLOURS.length];
}

function pct(x: number): string {
  return `${(x * 100).toFixed(1)}%`;
}

function esc(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
}
