/** Fixture data for the webview tests: what the model worker would post, built deterministically. */
import type { CatalogView, GeometryData, PreviewResult, ReviewResult } from '../../extension/protocol';

const DATASETS = ['german', 'french', 'spanish', 'italian', 'english'];

export function previewFixture(): PreviewResult {
  const delta: Record<string, number> = { german: 1.2345, french: 0.0123, spanish: -0.0042, italian: 0.0311, english: 0.0087 };
  const words = 'Alle Menschen sind frei und gleich an Würde und Rechten geboren .'.split(' ');
  return {
    spec: '/ws/remove-german.scalpel',
    edit: 'no_german',
    scale: -0.75,
    components: [
      { key: 'h.1.mlp.c_fc:41', label: 'German function words', module: 'h.1.mlp.c_fc' },
      { key: 'h.2.mlp.c_proj:7', module: 'h.2.mlp.c_proj' },
    ],
    datasets: DATASETS.map((name) => ({
      name,
      tokens: 500,
      base: 1.5,
      edited: 1.5 + delta[name],
      delta: delta[name],
      role: name === 'german' ? 'target' : 'off-target',
      thresholds: name === 'german' ? [] : [{ guard: 'others', nats: 0.05, goalNats: 0.01 }],
    })),
    checks: [
      { kind: 'expect', edit: 'no_german', dataset: 'german', pass: true, value: 1.2345, bound: 1, unit: 'nats', message: 'expect no_german: loss(german) rises by >= 1.0000 nats: measured 1.2345 nats', line: 12 },
      { kind: 'guard', edit: 'no_german', dataset: 'french', guard: 'others', pass: true, value: 0.0123, bound: 0.05, unit: 'nats', goal: { goal: 0.01, met: false, distance: 0.0023 }, message: 'guard others on french: |Δloss| <= 0.0500 nats: measured 0.0123 nats; goal 0.0100 nats missed by 0.0023 nats', line: 7 },
      { kind: 'guard', edit: 'no_german', dataset: 'spanish', guard: 'others', pass: true, value: 0.0042, bound: 0.05, unit: 'nats', goal: { goal: 0.01, met: true, distance: 0 }, message: 'guard others on spanish: |Δloss| <= 0.0500 nats: measured 0.0042 nats; goal 0.0100 nats met', line: 7 },
    ],
    sweep: [-1, -0.5, 0, 0.5, 1].map((scale) => ({ scale, deltas: Object.fromEntries(DATASETS.map((n) => [n, delta[n] * (1 - scale) / 1.75])) })),
    heatmap: Object.fromEntries(DATASETS.map((n, j) => [n, words.map((w, i) => ({ text: (i ? ' ' : '') + w, delta: (n === 'german' ? 1 : 0.02) * Math.sin(i + j) }))])),
    sweepTokens: 256,
    seconds: 0.42,
  };
}

/** `n` components over four modules; every seventh is German-specific with a labelled context. */
export function catalogFixture(n = 2000): CatalogView {
  const tags = ['de', 'fr', 'es', 'it', 'en'];
  const modules = ['h.0.mlp.c_fc', 'h.1.mlp.c_fc', 'h.2.attn.c_proj', 'h.3.mlp.c_proj'];
  return {
    catalog: '/ws/models/polyglot/components',
    tags,
    components: Array.from({ length: n }, (_, i) => {
      const module = modules[i % modules.length];
      const german = i % 7 === 0;
      const activation = Object.fromEntries(tags.map((t, j) => [t, Number((((i * 31 + j * 17) % 97) / 100 + (german && t === 'de' ? 1 : 0)).toFixed(3))]));
      return {
        key: `${module}:${i}`,
        module,
        label: german ? `German suffixes ${i}` : i % 3 === 0 ? `punctuation ${i}` : undefined,
        norm: (i % 13) / 3,
        activation,
        selectivity: german ? { tag: 'de', value: 3 + (i % 5) } : { tag: 'en', value: 1 + (i % 3) / 10 },
        contexts: german ? [{ tag: 'de', text: 'sind frei ⟦und⟧ gleich', activation: 2.5 }] : [],
      };
    }),
  };
}

export function reviewFixture(): ReviewResult {
  return {
    spec: '/ws/remove-german.scalpel',
    lock: '/ws/remove-german.scalpel.lock',
    output: '/ws/remove-german.onnx',
    edits: ['no_german'],
    scales: { no_german: -0.75 },
    components: [{ key: 'h.1.mlp.c_fc:41', label: 'German function words', edit: 'no_german', scale: -0.75 }],
    metrics: DATASETS.map((name, i) => ({ name, tokens: 500, before: 1.5, after: 1.5 + (i ? 0.01 : 1.2345), delta: i ? 0.01 : 1.2345 })),
    checks: [
      { message: 'guard others on french: |Δloss| <= 0.0500 nats: measured 0.0123 nats; goal 0.0100 nats missed by 0.0023 nats', pass: true, goal: { goal: 0.01, met: false, distance: 0.0023 } },
      { message: 'guard others on spanish: |Δloss| <= 0.0500 nats: measured 0.0042 nats; goal 0.0100 nats met', pass: true, goal: { goal: 0.01, met: true, distance: 0 } },
    ],
    weights: [{ initializer: 'h.1.mlp.c_fc.weight', shape: [128, 512], changed: 65536, relFrobenius: 0.0123, maxAbs: 0.031 }],
  };
}

/**
 * Two capture points, three tags of 40 rows each on a circle per tag, the edited rows pulled to the centre,
 * and a three-sentence path. Sentence 1 is the lowest-left coordinate and row 0 the highest-right one of the
 * first point, so the tests know where they are drawn (the plot's corners).
 */
export function geometryFixture(): GeometryData {
  const tags = ['german', 'french', 'english'];
  const n = tags.length * 40;
  // Row 0 is the corner (PC1 10, PC2 10, PC3 −10) on both sides; the tags' rings lie at PC3 −2, 0, +2.
  const coords = (point: number, pull: number) => Array.from({ length: n }, (_, i) => {
    if (i === 0) return [10, 10, -10];
    const t = Math.floor(i / 40);
    const a = (i % 40) * 0.157 + point;
    return [(3 * Math.cos(t * 2.1) + Math.cos(a)) * pull, (3 * Math.sin(t * 2.1) + Math.sin(a)) * pull, (2 * (t - 1) + 0.5 * Math.sin(2 * a)) * pull];
  });
  const point = (name: string, k: number) => ({
    point: name, capture: name, kind: 'residual', width: 128, explained: [0.2 + k / 10, 0.1, 0.05],
    base: { coords: coords(k, 1) }, edited: { coords: coords(k, 0.5) },
    text: { base: { coords: [[-10, -10, 10], [0, 1, 0], [2, 2, 1]] }, edited: { coords: [[-9, -9, 9], [0, 0.5, 0], [1, 1, 0.5]] } },
    probe: {
      kind: 'mean-difference' as const, accuracy: { base: 0.9 + k / 20, edited: 0.7, editedRetrained: 0.9 }, heldoutRows: 36,
      perTag: tags.map((tag, t) => ({ tag, base: 0.95 - t / 100 + k / 100, edited: 0.6 + t / 10, editedRetrained: 0.9, recall: { base: 0.97, edited: 0.9 }, aligned: [{ key: `h.3.mlp.c_fc:${t}`, side: 'read' as const, cosine: 0.4 - t / 10, label: `${tag} words` }] })),
    },
  });
  return {
    spec: '/ws/remove-german.scalpel', edit: 'no_german', scale: -36.5,
    model: '/ws/models/polyglot/model.onnx', tags, dimensions: 3,
    rows: {
      tag: Array.from({ length: n }, (_, i) => Math.floor(i / 40)), document: Array.from({ length: n }, (_, i) => i % 7),
      position: Array.from({ length: n }, (_, i) => i % 40), token: Array.from({ length: n }, (_, i) => (i === 0 ? ' Würde' : `t${i}`)), heldout: Array.from({ length: n }, (_, i) => (i % 3 ? 0 : 1)),
    },
    tokens: { german: 400, french: 380, english: 350 },
    sentences: ['Alle Menschen sind frei.', 'Tous les êtres humains naissent libres.', 'All human beings are born free.'],
    points: [point('h.1.resid', 0), point('h.2.resid', 1)],
    hasEdit: true,
    seconds: { capture: 1, analysis: 1 },
  };
}
