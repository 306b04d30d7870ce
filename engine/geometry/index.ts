/**
 * Activation geometry end to end, as plain data: capture the points (base, and edited when there is
 * an edit), project them on the base model's principal components, train a probe per point on the
 * base model's rows and score it on held-out documents of both models, and find the catalog
 * components its directions align with. The CLI, the extension's worker and the docs' figures all
 * call `measureGeometry`.
 */
import { CatalogTensors } from '../catalog/read';
import { ScalpelError } from '../errors';
import { Progress } from '../evaluate';
import { LanguageModel } from '../lm';
import { OnnxModel } from '../onnx/model';
import { RuntimeOptions } from '../runtime';
import { TensorAccess, analyzeModel, tensorAccess } from '../trace/graph';
import { Activations, ActivationCapture, TaggedSource, TokenMark } from './capture';
import { ComponentAlignment, alignComponents } from './align';
import { pca, project } from './pca';
import { Probe, ProbeKind, ProbeScore, probeDirection, scoreProbe, trainProbe } from './probe';

export interface GeometryRequest {
  /** Capture points (`h.2.resid`, …), in forward order; the first is the one shown by default. */
  points: string[];
  sources: TaggedSource[];
  /** A text whose sentences are followed as a path (the last token of each). */
  text?: string;
  /** An edit's patched initializers: the edited model is captured on the same data. */
  patches?: Map<string, Float32Array>;
  /** The edited model's graph when the edit is gated (its paths added, scales set through `patches`). */
  editedGraph?: OnnxModel;
  probe?: ProbeKind;
  /** A token to project beside the sample, at every point and on both sides (the debugger's token, for the panel). */
  mark?: TokenMark;
  /** Projected dimensions (2 or 3; default 2). */
  dimensions?: number;
  maxPerTag?: number;
  heldoutFraction?: number;
  catalog?: CatalogTensors;
  /** Aligned components reported per tag (default 5). */
  alignTop?: number;
  runtime?: RuntimeOptions;
  signal?: AbortSignal;
  onProgress?: (p: Progress & { stage: string }) => void;
  /** Each point's probe once trained on the base model, with its held-out accuracy per tag (a spec's probe figures are made from it). */
  onProbe?: (p: { point: string; access: TensorAccess; probe: Probe; perTag: TagProbe[] }) => void;
}

export interface SideCoords {
  /** Per row, `dimensions` coordinates on the base model's principal components. */
  coords: number[][];
}

export interface TagProbe {
  tag: string;
  /** Held-out balanced accuracy: base probe on base activations; on the edited model's; a probe retrained on the edited model's. */
  base: number;
  edited?: number;
  editedRetrained?: number;
  /**
   * The base probe's true-positive rate on the tag's own held-out rows, base and edited: whether the tag's own
   * tokens still read as the tag (balanced accuracy also falls when other tags' tokens move onto this tag's side).
   */
  recall: { base: number; edited?: number };
  aligned: ComponentAlignment[];
}

export interface PointGeometry {
  point: string;
  /** The capture id the point resolved to, its kind, and the activation width. */
  capture: string;
  kind: string;
  width: number;
  explained: number[];
  base: SideCoords;
  edited?: SideCoords;
  /** The sentence path: one row per sentence. */
  text?: { base: SideCoords; edited?: SideCoords };
  /** The marked token's coordinates (`GeometryResult.marked`). */
  marked?: { base: number[]; edited?: number[] };
  probe: {
    kind: ProbeKind;
    /** Held-out multi-class accuracy (the highest-scoring tag is the row's own). */
    accuracy: { base: number; edited?: number; editedRetrained?: number };
    heldoutRows: number;
    perTag: TagProbe[];
  };
}

export interface GeometryResult {
  model: string;
  tags: string[];
  dimensions: number;
  /** The rows, shared by every point (each point's sample covers the same tokens). */
  rows: { tag: number[]; document: number[]; position: number[]; token: string[]; heldout: number[] };
  /** Tokens captured per tag (the rows are a sample of them). */
  tokens: Record<string, number>;
  sentences?: string[];
  /** The token `GeometryRequest.mark` named, when its dataset was captured that far. */
  marked?: TokenMark & { token: string };
  points: PointGeometry[];
  hasEdit: boolean;
  seconds: { capture: number; analysis: number };
}

export async function measureGeometry(lm: LanguageModel, req: GeometryRequest): Promise<GeometryResult> {
  if (req.sources.length < 2) throw new ScalpelError('geometry compares tags: give at least two tagged datasets');
  const dims = req.dimensions ?? 2;
  if (dims !== 2 && dims !== 3) throw new ScalpelError(`dimensions must be 2 or 3, not ${dims}`);
  const kind = req.probe ?? 'logistic';
  const started = performance.now();
  const sides = req.patches?.size ? [undefined, req.patches] : [undefined];
  const captured: { rows: Map<string, Activations>; text?: Map<string, Activations> }[] = [];
  for (const [s, patches] of sides.entries()) {
    const stage = s ? 'edited' : 'base';
    const capture = await ActivationCapture.create(lm, req.points, { patches, ...(patches ? { graph: req.editedGraph } : {}), ...req.runtime });
    try {
      const rows = await capture.datasets(req.sources, {
        maxPerTag: req.maxPerTag, heldoutFraction: req.heldoutFraction, mark: req.mark, signal: req.signal,
        onProgress: (p) => req.onProgress?.({ ...p, stage: `${stage} ${p.tag}` }),
      });
      const text = req.text !== undefined ? await capture.sentences(req.text, { signal: req.signal }) : undefined;
      captured.push({ rows, text });
    } finally {
      await capture.release();
    }
  }
  const captureSeconds = (performance.now() - started) / 1000;
  const analysisStarted = performance.now();
  const structure = analyzeModel(lm.onnx, lm.logitsName);
  const [base, edited] = captured;
  const first = [...base.rows.values()][0];
  const points: PointGeometry[] = [];
  for (const [i, name] of req.points.entries()) {
    req.onProgress?.({ done: i, total: req.points.length, stage: `probe ${name}` });
    const id = [...base.rows.keys()][i];
    const a = base.rows.get(id)!;
    const e = edited?.rows.get(id);
    const p = pca(a.moments, dims, { signal: req.signal });
    const coords = (x: Activations): SideCoords => ({ coords: chunk(project(p, x.rows, x.count), dims) });
    const one = (m: NonNullable<Activations['marked']>) => chunk(project(p, m.row, 1), dims)[0];
    const probe = await trainProbe(a, kind, { signal: req.signal, runtime: req.runtime });
    const sBase = scoreProbe(probe, a);
    const sEdited = e ? scoreProbe(probe, e) : undefined;
    const sRetrained = e ? scoreProbe(await trainProbe(e, kind, { signal: req.signal, runtime: req.runtime }), e) : undefined;
    const access = tensorAccess(lm.onnx, structure, a.point.tensor, a.width);
    const perTag: TagProbe[] = a.tags.map((tag, t) => ({
      tag,
      base: round(sBase.perTag[t].balanced),
      ...(sEdited ? { edited: round(sEdited.perTag[t].balanced) } : {}),
      ...(sRetrained ? { editedRetrained: round(sRetrained.perTag[t].balanced) } : {}),
      recall: { base: round(sBase.perTag[t].truePositiveRate), ...(sEdited ? { edited: round(sEdited.perTag[t].truePositiveRate) } : {}) },
      aligned: req.catalog ? alignComponents(probeDirection(probe, tag), access, req.catalog, req.alignTop ?? 5).map((c) => ({ ...c, cosine: round(c.cosine) })) : [],
    }));
    req.onProbe?.({ point: name, access, probe, perTag });
    const text = base.text?.get(id);
    const textEdited = edited?.text?.get(id);
    points.push({
      point: name,
      capture: a.point.id === name ? name : `${a.point.id}`,
      kind: a.point.kind,
      width: a.width,
      explained: p.explained.map(round),
      base: coords(a),
      ...(e ? { edited: coords(e) } : {}),
      ...(text ? { text: { base: coords(text), ...(textEdited ? { edited: coords(textEdited) } : {}) } } : {}),
      ...(a.marked ? { marked: { base: one(a.marked), ...(e?.marked ? { edited: one(e.marked) } : {}) } } : {}),
      probe: { kind, accuracy: accuracies(sBase, sEdited, sRetrained), heldoutRows: sBase.rows, perTag },
    });
  }
  const tok = lm.tokenizer;
  return {
    model: lm.file,
    tags: first.tags,
    dimensions: dims,
    rows: {
      tag: [...first.tag], document: [...first.document], position: [...first.position],
      token: [...first.token].map((id) => tok.tokenText(id)), heldout: [...first.heldout],
    },
    tokens: Object.fromEntries(first.tags.map((t, i) => [t, first.tokens[i]])),
    ...(base.text ? { sentences: [...base.text.values()][0].sentences } : {}),
    ...(req.mark && first.marked ? { marked: { ...req.mark, token: tok.tokenText(first.marked.token) } } : {}),
    points,
    hasEdit: !!edited,
    seconds: { capture: round(captureSeconds), analysis: round((performance.now() - analysisStarted) / 1000) },
  };
}

function accuracies(b: ProbeScore, e?: ProbeScore, r?: ProbeScore) {
  return { base: round(b.accuracy), ...(e ? { edited: round(e.accuracy) } : {}), ...(r ? { editedRetrained: round(r.accuracy) } : {}) };
}

function chunk(xs: Float64Array, k: number): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < xs.length; i += k) out.push(Array.from(xs.subarray(i, i + k), (v) => Math.round(v * 1e4) / 1e4));
  return out;
}

function round(x: number): number {
  return Number.isFinite(x) ? Math.round(x * 1e4) / 1e4 : x;
}
