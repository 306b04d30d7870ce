/**
 * Messages between the extension host and its model worker (extension/worker.ts), and the data the
 * webviews render. Plain JSON: no vscode, no engine classes, so webviews/ can import the types too.
 */
import type { Check, GoalResult } from '../engine/edit/checks';
import type { LockCheck } from '../engine/edit/lock';
import type { GeometryResult } from '../engine/geometry/index';
import type { TokenMark } from '../engine/geometry/capture';

/**
 * The webview panels, each one kind of page of the webview bundle (webviews/main.ts maps a kind to its
 * element). package.json's `onWebviewPanel:` activation events are these view types (a test checks).
 */
export const VIEWS = {
  preview: { viewType: 'scalpel.preview', title: 'Scalpel: Edit Preview' },
  components: { viewType: 'scalpel.components', title: 'Scalpel: Components' },
  review: { viewType: 'scalpel.review', title: 'Scalpel: Review' },
  geometry: { viewType: 'scalpel.geometry', title: 'Scalpel: Geometry' },
} as const;
export type ViewKind = keyof typeof VIEWS;
export const VIEW_KINDS = Object.keys(VIEWS) as ViewKind[];

/** Where a job's model runs: the scalpel.threads, scalpel.executionProvider and scalpel.deviceId settings. */
export interface JobRuntime {
  threads?: number;
  /** `cpu`, `cuda`, `cuda,cpu`, … (checked by the worker). */
  executionProvider?: string;
  deviceId?: number;
}

export type Job =
  /** `text`: the editor's text of the spec, saved or not (else the worker reads the file). */
  | { kind: 'preview'; spec: string; text?: string; edit?: string; sweepPoints: number; sweepTokens: number; heatmapTokens: number; runtime?: JobRuntime }
  | { kind: 'evaluate'; spec: string; runtime?: JobRuntime }
  | { kind: 'apply'; spec: string; out: string; edits: string[]; runtime?: JobRuntime }
  | { kind: 'review'; spec: string }
  | { kind: 'catalog'; spec: string }
  /**
   * Every block's output, base and (with `edit`) edited, for the spec's checked datasets, or a declared probe's
   * datasets, kind and point (`probe`); `text`: a text whose sentences make a path. From a debugger stop: `point`,
   * the capture point shown first (added to the layers), `scale`, the edit's scale the session debugs, and `mark`,
   * the token debugged.
   */
  | { kind: 'geometry'; spec: string; edit?: string; probe?: string; text?: string; maxPerTag: number; point?: string; scale?: number; mark?: TokenMark; runtime?: JobRuntime };

/** Sent to a worker whose job the user cancelled: the job stops at its next check, then the worker exits. */
export interface CancelRequest {
  kind: 'cancel';
}

/** The Geometry panel's data: `scalpel geometry`'s result, with the spec and edit it came from. */
export type GeometryData = GeometryResult & { spec: string; edit?: string; scale?: number; probe?: string; initialPoint?: string };

export interface CheckView {
  kind: 'guard' | 'expect';
  edit: string;
  dataset: string;
  guard?: string;
  pass: boolean;
  value: number;
  bound: number;
  /** A loss's unit, or `fraction` for an accuracy check. */
  unit: Check['unit'];
  /** An accuracy check's probe (`accuracy(PROBE.DATA)`); absent for a loss check. */
  probe?: string;
  /** The check's goal, when it names one: met, or missed by `distance` (in `unit`). */
  goal?: GoalResult;
  message: string;
  /** 1-based line of the declaration in the spec. */
  line?: number;
}

export interface DatasetView {
  name: string;
  tokens: number;
  base: number;
  edited: number;
  delta: number;
  /** Targets are what the edit means to move (tuning data, expectations); the rest is off-target. */
  role: 'target' | 'off-target';
  /** The guard thresholds over this dataset, in nats (converted from bits or %), and their goals, when named. */
  thresholds: { guard: string; nats: number; goalNats?: number }[];
}

export interface PreviewResult {
  spec: string;
  edit: string;
  scale: number;
  /** `gate`: how a gated edit gates the component (`gated`, `gated where ci > T`). */
  components: { key: string; label?: string; module: string; gate?: string }[];
  datasets: DatasetView[];
  checks: CheckView[];
  /** Δloss per dataset at each scale, over the first `sweepTokens` tokens of each dataset. */
  sweep: { scale: number; deltas: Record<string, number> }[];
  sweepTokens: number;
  /** Per-token Δloss over the start of each dataset (text of the token, edited − base nats). */
  heatmap: Record<string, { text: string; delta: number }[]>;
  seconds: number;
}

export interface EvaluateResult {
  spec: string;
  edits: { edit: string; scale: number; datasets: DatasetView[] }[];
  checks: CheckView[];
  seconds: number;
}

export interface ApplyResult {
  spec: string;
  out: string;
  lock: string;
  checks: CheckView[];
  datasets: DatasetView[];
  seconds: number;
}

export interface ReviewResult {
  spec: string;
  lock: string;
  output: string;
  edits: string[];
  scales: Record<string, number>;
  /** `gate`: as in the lock, for a gated edit's components. */
  components: { key: string; label: string | null; edit: string; scale: number; gate?: string }[];
  metrics: { name: string; tokens: number; before: number; after: number; delta: number }[];
  checks: LockCheck[];
  /** Per edited initializer: how much the written weights differ from the base model's. */
  weights: { initializer: string; shape: number[]; changed: number; relFrobenius: number; maxAbs: number }[];
}

export type JobResult = PreviewResult | EvaluateResult | ApplyResult | ReviewResult | CatalogView | GeometryData;

export type WorkerMessage =
  | { type: 'status'; message: string }
  | { type: 'result'; result: JobResult }
  | { type: 'error'; message: string; file?: string; line?: number; column?: number };

/** The Components panel's rows (catalog.json, flattened for the table). */
export interface CatalogView {
  catalog: string;
  tags: string[];
  components: {
    key: string;
    module: string;
    label?: string;
    norm?: number;
    activation: Record<string, number>;
    /** The best tag's selectivity. */
    selectivity?: { tag: string; value: number };
    contexts: { tag: string; text: string; activation: number }[];
  }[];
}

/** Extension → webview. */
export type ToWebview =
  | { type: 'preview'; data: PreviewResult }
  | { type: 'catalog'; data: CatalogView }
  | { type: 'review'; data: ReviewResult }
  | { type: 'geometry'; data: GeometryData }
  | { type: 'busy'; message: string }
  | { type: 'error'; message: string };

/** Webview → extension. */
export type FromWebview =
  | { type: 'ready' }
  | { type: 'insertSelector'; key: string }
  | { type: 'refresh' }
  | { type: 'apply'; edit: string }
  | { type: 'debug'; dataset: string }
  | { type: 'diff' }
  /** Geometry: open this token (document N of a spec dataset, position in it) in the debugger. */
  | { type: 'debugToken'; dataset: string; document: number; position: number };
