/**
 * The semantic model of a checked spec, as plain data: absolute paths and resolved names,
 * independent of syntax trees, ranges and LSP. Types only; the checker builds it
 * (checker.ts → semantic.ts `specFromAnalysis`) and plan.ts turns it into the engine's edit plan.
 */
import type { ProbeKind } from '../engine/geometry/probe';
import type { DataSource } from '../engine/data';
import type { Gate } from '../engine/edit/gate';
import type { Change, Comparison, Unit } from './ast';
import type { StatisticSpec } from './statistics';

export type { Change, Comparison, Unit } from './ast';

/** 1-based line and column of a declaration, for error messages that point into the spec. */
export interface SpecLocation {
  line: number;
  column: number;
}

export interface SpecModel {
  name: string;
  /** Absolute path of the .onnx file. */
  file: string;
  /** Absolute path of tokenizer.json (given, or the one beside the model). */
  tokenizer: string;
  /** Absolute path of the component catalog folder, when declared. */
  components?: string;
  /** The pinned SHA-256 (lower-case hex); the checker has verified that the file matches. */
  sha256?: string;
  /** `context N`: the context length to evaluate at, overriding config.json's or the position table's. */
  contextLength?: number;
  at: SpecLocation;
}

export interface SpecDataset {
  name: string;
  /** Files are absolute. */
  source: DataSource;
  /** `limit N tokens`: score at most this many tokens. */
  maxTokens?: number;
  /** The catalog tag whose statistics describe this dataset (e.g. `de`), when known. */
  tag?: string;
  at: SpecLocation;
}

export interface SpecGuard {
  name: string;
  /** Dataset names; the guard holds when the loss of each one moves by at most the threshold. */
  datasets: string[];
  threshold: number;
  /** `%` is relative to the dataset's loss before the edit. */
  unit: Unit;
  /** `, goal N UNIT`: what each dataset's |Δloss| should stay under, in `unit`; reported, not enforced. */
  goal?: number;
  at: SpecLocation;
}

/** Component selectors; several `select` statements of one edit are a union. */
export type SelectorSpec =
  | { kind: 'key'; key: string }
  /** fnmatch-style module glob (`moduleGlob` of engine/onnx/modules.ts). */
  | { kind: 'module'; pattern: string }
  /** Regular expression over label texts. */
  | { kind: 'label'; pattern: string; flags: string }
  /** The k components with the highest statistic, among `where` (default: all). */
  | { kind: 'top'; k: number; by: StatisticSpec; where?: SelectorSpec }
  | { kind: 'or' | 'minus'; left: SelectorSpec; right: SelectorSpec };

/** Catalog statistics: one kind per entry of the table in statistics.ts. */
export type { StatisticSpec } from './statistics';

/**
 * A metric of a dataset, or of each dataset of a guard (metrics.ts): its loss, or (`accuracy(PROBE.DATA)`,
 * expectations only) the declared probe's accuracy on its held-out tokens.
 */
export type MetricSpec =
  | { kind: 'loss'; target: { kind: 'dataset' | 'guard'; name: string } }
  | { kind: 'accuracy'; probe: string; target: { kind: 'dataset' | 'guard'; name: string } };

/** The loss a `toward` objective aims the tuned metric at: the uniform loss ln V, or a value in nats. */
export type TowardSpec = { kind: 'uniform' } | { kind: 'loss'; nats: number };

/** `gate`: the edit is gated by the components' causal importance (engine/edit/gate.ts); absent, W changes. */
export type ScaleSpec =
  | { kind: 'literal'; value: number; gate?: Gate }
  | {
      kind: 'tune';
      /** Inclusive search range of the scale factor. */
      range: [number, number];
      /** `toward`: minimize |metric − target|. */
      objective: 'maximize' | 'minimize' | 'toward';
      toward?: TowardSpec;
      metric: Extract<MetricSpec, { kind: 'loss' }>;
      /** The datasets the metric is computed on (the tuning data). */
      data: string[];
      gate?: Gate;
    };

export interface SpecEdit {
  name: string;
  /** Name of a SpecModel. */
  model: string;
  selectors: SelectorSpec[];
  /** The selectors' union resolved against the model's catalog by the checker, in catalog order (empty without one). */
  components: string[];
  scale: ScaleSpec;
  /** Guard names that must hold after the edit. */
  keep: string[];
  at: SpecLocation;
}

export interface SpecExpectation {
  edit: string;
  metric: MetricSpec;
  /** rises/falls/moves: change of the metric (moves: absolute change); is: the value after the edit. */
  change: Change;
  comparison: Comparison;
  bound: number;
  /** The loss's unit; absent for an accuracy, a fraction from 0 to 1. */
  unit?: Unit;
  /** `, goal N UNIT`: what the expectation aims at, compared like the bound, in `unit` (an accuracy's: a fraction); reported, not enforced. */
  goal?: number;
  at: SpecLocation;
}

/** A linear probe: one direction per dataset at a capture point (engine/geometry/probe.ts). */
export interface SpecProbe {
  name: string;
  kind: ProbeKind;
  /** A capture point name, resolved against the model's graph when the probe runs. */
  point: string;
  datasets: string[];
  at: SpecLocation;
}

export interface Spec {
  /** Absolute path of the spec. */
  file: string;
  models: SpecModel[];
  datasets: SpecDataset[];
  guards: SpecGuard[];
  probes: SpecProbe[];
  edits: SpecEdit[];
  expectations: SpecExpectation[];
}
