/**
 * Linear probes on captured activations: one direction per tag ("is this token from tag t?"),
 * trained on the rows of documents not held out and scored on the held-out ones.
 *
 * - `logistic`: logistic regression per tag, classes weighted to equal mass, L2-regularised,
 *   full-batch Adam on standardised features (the gradient computed by onnxruntime).
 * - `mean-difference`: the difference of the tag's mean and the other tags' mean, whitened by the
 *   pooled within-tag covariance shrunk towards a multiple of the identity (Fisher's discriminant),
 *   with the threshold halfway between the two projected means.
 *
 * Accuracy is balanced (the mean of the true-positive and true-negative rates), so that a probe that
 * says "no" to every token of one tag among five scores 0.5, not 0.8.
 */
import * as ort from 'onnxruntime-node';
import { ScalpelError } from '../errors';
import { CancelledError } from '../evaluate';
import { Activations } from './capture';
import { NodeSpec, buildModel, floatTensor } from '../onnx/build';
import { DataType } from '../onnx/model';
import { RuntimeOptions, startSession } from '../runtime';
import { dot } from './pca';

export type ProbeKind = 'logistic' | 'mean-difference';
export const PROBE_KINDS: readonly ProbeKind[] = ['logistic', 'mean-difference'];

/** How a spec's `probe NAME = WORD on …` names each kind (`linear`: the mean-difference/covariance probe). */
export const PROBE_WORDS = { logistic: 'logistic', linear: 'mean-difference' } as const satisfies Record<string, ProbeKind>;
export type ProbeWord = keyof typeof PROBE_WORDS;

export interface Probe {
  kind: ProbeKind;
  point: string;
  tags: string[];
  /** Per tag, score = w · x + b > 0 means "this tag"; w in the activation space. */
  weights: Float64Array[];
  bias: number[];
}

export interface ProbeOptions {
  /** L2 coefficient (logistic, default 1e-3) or shrinkage towards the identity (mean-difference, default 0.1). */
  regularization?: number;
  /** Adam steps (logistic, default 300). */
  steps?: number;
  /** Where the logistic gradient graph runs. */
  runtime?: RuntimeOptions;
  signal?: AbortSignal;
}

export interface TagAccuracy {
  tag: string;
  /** (true-positive rate + true-negative rate) / 2 on the scored rows. */
  balanced: number;
  truePositiveRate: number;
  trueNegativeRate: number;
  /** The tag's own rows scored (what the true-positive rate is over). */
  positives: number;
}

export interface ProbeScore {
  /** Rows scored. */
  rows: number;
  /** Fraction of rows whose highest-scoring tag is their own. */
  accuracy: number;
  perTag: TagAccuracy[];
}

/** Rows of `a` with heldout = `heldout`, as indices. */
export function rowsWhere(a: Activations, heldout: boolean): number[] {
  const out: number[] = [];
  for (let i = 0; i < a.count; i++) if ((a.heldout[i] === 1) === heldout) out.push(i);
  return out;
}

export async function trainProbe(a: Activations, kind: ProbeKind, opts: ProbeOptions = {}): Promise<Probe> {
  if (a.tags.length < 2) throw new ScalpelError('a probe separates tags: give at least two tagged datasets');
  const train = rowsWhere(a, false);
  for (let t = 0; t < a.tags.length; t++) {
    if (!train.some((i) => a.tag[i] === t)) throw new ScalpelError(`no training rows for tag ${a.tags[t]} (too few documents outside the held-out part?)`);
  }
  return kind === 'logistic' ? logistic(a, train, opts) : meanDifference(a, train, opts);
}

/** Scores a probe on rows of `a` (default: the held-out rows); `a` may be another model's capture of the same data. */
export function scoreProbe(p: Probe, a: Activations, rows = rowsWhere(a, true)): ProbeScore {
  const T = p.tags.length;
  const d = a.width;
  if (p.weights[0].length !== d) throw new ScalpelError(`the probe reads ${p.weights[0].length} values; ${a.point.id} has ${d}`);
  const tp = new Array<number>(T).fill(0), pos = new Array<number>(T).fill(0), tn = new Array<number>(T).fill(0), neg = new Array<number>(T).fill(0);
  let correct = 0;
  for (const i of rows) {
    const x = a.rows.subarray(i * d, (i + 1) * d);
    let best = 0;
    let bestScore = -Infinity;
    for (let t = 0; t < T; t++) {
      const s = dot(p.weights[t], x) + p.bias[t];
      const own = a.tag[i] === t;
      if (own) {
        pos[t]++;
        if (s > 0) tp[t]++;
      } else {
        neg[t]++;
        if (s <= 0) tn[t]++;
      }
      if (s > bestScore) {
        bestScore = s;
        best = t;
      }
    }
    if (best === a.tag[i]) correct++;
  }
  const perTag = p.tags.map((tag, t) => {
    const tpr = pos[t] ? tp[t] / pos[t] : NaN;
    const tnr = neg[t] ? tn[t] / neg[t] : NaN;
    return { tag, balanced: (tpr + tnr) / 2, truePositiveRate: tpr, trueNegativeRate: tnr, positives: pos[t] };
  });
  return { rows: rows.length, accuracy: rows.length ? correct / rows.length : NaN, perTag };
}

/** The probe's direction for one tag, as a unit vector. */
export function probeDirection(p: Probe, tag: string): Float64Array {
  const t = p.tags.indexOf(tag);
  if (t < 0) throw new ScalpelError(`the probe has no tag "${tag}" (it has ${p.tags.join(', ')})`);
  const w = p.weights[t];
  const n = Math.sqrt(dot(w, w)) || 1;
  return Float64Array.from(w, (v) => v / n);
}

/**
 * The gradient of the class-weighted logistic loss of every tag at once, as an ONNX graph over the
 * standardised training rows (baked in as initializers): onnxruntime's matrix kernels do the n × d × T
 * products, JavaScript only the Adam update of T × (d + 1) parameters.
 */
async function logistic(a: Activations, train: number[], opts: ProbeOptions): Promise<Probe> {
  const d = a.width;
  const T = a.tags.length;
  const n = train.length;
  // Standardise: features with very different scales (a residual stream's outlier dimensions) slow gradient descent down.
  const mean = new Float64Array(d);
  const sd = new Float64Array(d);
  for (const i of train) for (let j = 0; j < d; j++) mean[j] += a.rows[i * d + j] / n;
  for (const i of train) for (let j = 0; j < d; j++) sd[j] += (a.rows[i * d + j] - mean[j]) ** 2 / n;
  for (let j = 0; j < d; j++) sd[j] = Math.sqrt(sd[j]) || 1;
  const x = new Float32Array(n * d);
  const y = new Float32Array(n * T);
  const rowWeight = new Float32Array(n * T);
  const counts = new Array<number>(T).fill(0);
  for (const i of train) counts[a.tag[i]]++;
  train.forEach((i, r) => {
    for (let j = 0; j < d; j++) x[r * d + j] = (a.rows[i * d + j] - mean[j]) / sd[j];
    for (let t = 0; t < T; t++) {
      const own = a.tag[i] === t;
      y[r * T + t] = own ? 1 : 0;
      rowWeight[r * T + t] = own ? 0.5 / counts[t] : 0.5 / (n - counts[t]);
    }
  });
  const op = (opType: string, inputs: string[], output: string, attributes?: NodeSpec['attributes']): NodeSpec => ({ name: output, opType, inputs, outputs: [output], attributes });
  const graph = buildModel({
    initializers: [
      floatTensor('x', [n, d], x), floatTensor('y', [n, T], y), floatTensor('rw', [n, T], rowWeight),
      { name: 'axis0', dims: [1], dataType: DataType.INT64, data: { raw: new Uint8Array(new BigInt64Array([0n]).buffer) } },
    ],
    inputs: [{ name: 'w', elemType: DataType.FLOAT, shape: [T, d] }, { name: 'b', elemType: DataType.FLOAT, shape: [T] }],
    nodes: [
      op('Transpose', ['w'], 'wt', [{ name: 'perm', ints: [1, 0] }]),
      op('MatMul', ['x', 'wt'], 'xw'),
      op('Add', ['xw', 'b'], 'z'),
      op('Sigmoid', ['z'], 'p'),
      op('Sub', ['p', 'y'], 'err'),
      op('Mul', ['err', 'rw'], 'g'),
      op('Transpose', ['g'], 'gt', [{ name: 'perm', ints: [1, 0] }]),
      op('MatMul', ['gt', 'x'], 'gw'),
      op('ReduceSum', ['g', 'axis0'], 'gb', [{ name: 'keepdims', i: 0 }]),
    ],
    outputs: [{ name: 'gw', elemType: DataType.FLOAT, shape: [T, d] }, { name: 'gb', elemType: DataType.FLOAT, shape: [T] }],
  });
  const session = await startSession(graph, opts.runtime ?? {}, 'the probe gradient graph');
  const l2 = opts.regularization ?? 1e-3;
  const steps = opts.steps ?? 300;
  const lr = 0.05;
  const w = new Float32Array(T * d);
  const b = new Float32Array(T);
  const m1 = new Float64Array(T * (d + 1));
  const m2 = new Float64Array(T * (d + 1));
  try {
    for (let step = 1; step <= steps; step++) {
      if (opts.signal?.aborted) throw new CancelledError();
      const out = await session.run({ w: new ort.Tensor('float32', w, [T, d]), b: new ort.Tensor('float32', b, [T]) });
      const gw = out.gw.data as Float32Array;
      const gb = out.gb.data as Float32Array;
      const c1 = 1 - 0.9 ** step;
      const c2 = 1 - 0.999 ** step;
      const adam = (k: number, g: number) => {
        m1[k] = 0.9 * m1[k] + 0.1 * g;
        m2[k] = 0.999 * m2[k] + 0.001 * g * g;
        return (lr * (m1[k] / c1)) / (Math.sqrt(m2[k] / c2) + 1e-8);
      };
      for (let k = 0; k < T * d; k++) w[k] -= adam(k, gw[k] + l2 * w[k]);
      for (let t = 0; t < T; t++) b[t] -= adam(T * d + t, gb[t]);
    }
  } finally {
    await session.release();
  }
  // Back to the activation space: w·(x − μ)/σ + b = (w/σ)·x + (b − Σ w μ/σ).
  const weights: Float64Array[] = [];
  const bias: number[] = [];
  for (let t = 0; t < T; t++) {
    const wt = new Float64Array(d);
    let bt = b[t];
    for (let j = 0; j < d; j++) {
      wt[j] = w[t * d + j] / sd[j];
      bt -= wt[j] * mean[j];
    }
    weights.push(wt);
    bias.push(bt);
  }
  return { kind: 'logistic', point: a.point.id, tags: a.tags, weights, bias };
}

function meanDifference(a: Activations, train: number[], opts: ProbeOptions): Probe {
  const d = a.width;
  const T = a.tags.length;
  const means = Array.from({ length: T }, () => new Float64Array(d));
  const counts = new Array<number>(T).fill(0);
  for (const i of train) {
    counts[a.tag[i]]++;
    const m = means[a.tag[i]];
    for (let j = 0; j < d; j++) m[j] += a.rows[i * d + j];
  }
  means.forEach((m, t) => m.forEach((_, j) => (m[j] /= counts[t])));
  // Pooled within-tag covariance, shrunk: (1 − λ)Σ + λ·(tr Σ / d)·I.
  const cov = new Float64Array(d * d);
  const c = new Float64Array(d);
  for (const i of train) {
    const m = means[a.tag[i]];
    for (let j = 0; j < d; j++) c[j] = a.rows[i * d + j] - m[j];
    for (let j = 0; j < d; j++) {
      const cj = c[j];
      for (let k = j; k < d; k++) cov[j * d + k] += cj * c[k];
    }
  }
  const lambda = opts.regularization ?? 0.1;
  let trace = 0;
  for (let j = 0; j < d; j++) trace += cov[j * d + j];
  const ridge = (lambda * trace) / d / train.length;
  for (let j = 0; j < d; j++) {
    for (let k = j; k < d; k++) {
      const v = ((1 - lambda) * cov[j * d + k]) / train.length + (j === k ? ridge : 0);
      cov[j * d + k] = v;
      cov[k * d + j] = v;
    }
  }
  const chol = cholesky(cov, d);
  const weights: Float64Array[] = [];
  const bias: number[] = [];
  for (let t = 0; t < T; t++) {
    if (opts.signal?.aborted) throw new CancelledError();
    // The other tags' mean, each tag weighing the same.
    const rest = new Float64Array(d);
    for (let u = 0; u < T; u++) if (u !== t) for (let j = 0; j < d; j++) rest[j] += means[u][j] / (T - 1);
    const diff = Float64Array.from(means[t], (v, j) => v - rest[j]);
    const w = solveCholesky(chol, diff, d);
    let b = 0;
    for (let j = 0; j < d; j++) b -= (w[j] * (means[t][j] + rest[j])) / 2;
    weights.push(w);
    bias.push(b);
  }
  return { kind: 'mean-difference', point: a.point.id, tags: a.tags, weights, bias };
}

/** Lower-triangular L with L·Lᵀ = A (A symmetric positive definite, row-major d × d). */
function cholesky(a: Float64Array, d: number): Float64Array {
  const l = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    for (let j = 0; j <= i; j++) {
      let s = a[i * d + j];
      for (let k = 0; k < j; k++) s -= l[i * d + k] * l[j * d + k];
      if (i === j) l[i * d + i] = Math.sqrt(Math.max(s, 1e-300));
      else l[i * d + j] = s / l[j * d + j];
    }
  }
  return l;
}

function solveCholesky(l: Float64Array, b: Float64Array, d: number): Float64Array {
  const y = new Float64Array(d);
  for (let i = 0; i < d; i++) {
    let s = b[i];
    for (let k = 0; k < i; k++) s -= l[i * d + k] * y[k];
    y[i] = s / l[i * d + i];
  }
  const x = new Float64Array(d);
  for (let i = d - 1; i >= 0; i--) {
    let s = y[i];
    for (let k = i + 1; k < d; k++) s -= l[k * d + i] * x[k];
    x[i] = s / l[i * d + i];
  }
  return x;
}
