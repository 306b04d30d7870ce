/**
 * The measured part of docs/geometry.md, rendered from `scalpel geometry --json` (see geometry-docs.ts).
 */
import type { GeometrySummary } from '../cli/commands/geometry';

/** The demo command, exactly as docs/geometry.md shows it (plus --json when the generator runs it). */
export const GEOMETRY_DEMO_ARGS = [
  'geometry', '--spec', 'examples/forget-german-gated.scalpel', '--edit', 'no_german_gated',
  '--data', 'german', '--data', 'french', '--data', 'spanish', '--data', 'italian', '--data', 'english',
  '--layers', '--text', 'examples/udhr-article-1.txt', '--threads', '1', '-o', '.cache/geometry-demo.json', '--svg', 'docs/geometry-demo.svg',
];

const BEGIN = '<!-- measured:begin (npm run docs:geometry) -->';
const END = '<!-- measured:end -->';

export function replaceMeasured(page: string, measured: string): string {
  const a = page.indexOf(BEGIN);
  const b = page.indexOf(END);
  if (a < 0 || b < a) throw new Error(`docs/geometry.md lacks the markers ${BEGIN} … ${END}`);
  return page.slice(0, a + BEGIN.length) + '\n' + measured + page.slice(b);
}

/** The text between the markers as it stands in the page. */
export function measuredPart(page: string): string {
  const a = page.indexOf(BEGIN);
  const b = page.indexOf(END);
  return a < 0 || b < a ? '' : page.slice(a + BEGIN.length + 1, b);
}

export function renderMeasured(s: GeometrySummary): string {
  const pct = (x: number | undefined) => (x === undefined ? '—' : `${(x * 100).toFixed(1)}%`);
  const pp = (x: number) => `${x >= 0 ? '+' : '−'}${Math.abs(x * 100).toFixed(1)}`;
  const [target, ...others] = s.tags;
  const lines: string[] = [];
  const total = Object.values(s.tokens).reduce((a, b) => a + b, 0);
  lines.push(`${s.points[0].probe} probes; ${total} tokens captured (${s.tags.map((t) => `${t} ${s.tokens[t]}`).join(', ')}), ${s.rows} rows kept, `
    + `balanced accuracy on the ${s.heldoutRows} rows of held-out documents. Capture ${s.seconds.capture.toFixed(1)} s, probes and PCA ${s.seconds.analysis.toFixed(1)} s (shared 2-core machine).`);
  lines.push('');
  lines.push('**Which layer separates the languages** (base model):');
  lines.push('');
  lines.push(`| point | PC1 + PC2 of variance | all five (argmax) | ${s.tags.join(' | ')} |`);
  lines.push(`| --- | --- | --- | ${s.tags.map(() => '---').join(' | ')} |`);
  for (const p of s.points) {
    const best = p.point === s.bestPoint ? '**' : '';
    lines.push(`| ${best}${p.point}${best} | ${pct(p.explained[0] + (p.explained[1] ?? 0))} | ${best}${pct(p.accuracy.base)}${best} | ${p.perTag.map((t) => pct(t.base)).join(' | ')} |`);
  }
  lines.push('');
  lines.push(`Best separated: **${s.bestPoint}**.`);
  if (s.edit) {
    lines.push('');
    lines.push(`**After \`${s.edit.name}\`** (scale ${Object.values(s.edit.scales).map((v) => v.toFixed(3)).join(', ')}): the base model's probe scored on the edited model's activations of the same held-out tokens, `
      + `in points of balanced accuracy; "retrained" is a new probe trained on the edited model's activations; `
      + `"own tokens" is each other language's recall (true-positive rate on its own held-out tokens), before → after, as the largest |Δ| in points.`);
    lines.push('');
    lines.push(`| point | ${target} before → after | ${target} retrained | ${others.map((o) => `${o} Δ`).join(' | ')} | others' largest \\|Δ\\| | others' own tokens, largest \\|Δ\\| |`);
    lines.push(`| --- | --- | --- | ${others.map(() => '---').join(' | ')} | --- | --- |`);
    for (const p of s.points) {
      const t0 = p.perTag[0];
      const deltas = p.perTag.slice(1).map((t) => (t.edited ?? t.base) - t.base);
      const worst = Math.max(...deltas.map(Math.abs));
      const own = Math.max(...p.perTag.slice(1).map((t) => Math.abs((t.recall.edited ?? t.recall.base) - t.recall.base)));
      lines.push(`| ${p.point} | ${pct(t0.base)} → ${pct(t0.edited)} | ${pct(t0.editedRetrained)} | ${deltas.map(pp).join(' | ')} | ${(worst * 100).toFixed(1)} | ${(own * 100).toFixed(1)} |`);
    }
  }
  const best = s.points.find((p) => p.point === s.bestPoint)!;
  lines.push('');
  lines.push(`**Components aligned with each language's probe direction at ${s.bestPoint}** (|cosine| with effective read vectors (V[:, c] through the reader's norm) of modules downstream, write vectors U[c, :] upstream):`);
  lines.push('');
  lines.push('| language | components (side, cosine, label) |');
  lines.push('| --- | --- |');
  for (const t of best.perTag) {
    lines.push(`| ${t.tag} | ${t.aligned.slice(0, 3).map((a) => `\`${a.key}\` (${a.side}, ${a.cosine.toFixed(2)}, ${a.label ?? 'no label'})`).join('; ')} |`);
  }
  return lines.join('\n') + '\n';
}
