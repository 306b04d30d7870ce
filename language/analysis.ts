/**
 * What checking a spec produces: its symbols, references, models, datasets and the resolved data of
 * each selector, scale and metric, plus its diagnostics. Built by `checker.ts`, read by the rules
 * (`rules/`), the editor features and `plan.ts`.
 */
import type { DataSource } from '../engine/data';
import type * as A from './ast';
import type { CatalogCache, CatalogIndex } from './catalog';
import type { Diagnostic, LineIndex } from './diagnostics';
import type { ParseResult } from './parser';
import type { MetricSpec, ScaleSpec, SelectorSpec } from './spec';

export type SymbolKind = 'model' | 'data' | 'guard' | 'probe' | 'edit';

export interface SymbolInfo {
  name: string;
  kind: SymbolKind;
  decl: A.Decl;
  /** The name where it is declared. */
  def: A.Span;
}

export interface Reference {
  span: A.Span;
  name: string;
  /** Undefined when the name is unknown. */
  symbol?: SymbolInfo;
}

/** Whether a `limit N tokens` or `context N` count is valid (S507 otherwise). */
export const isTokenCount = (n: number): boolean => Number.isInteger(n) && n > 0;

export interface ModelInfo {
  /** Absolute .onnx path when it exists. */
  file?: string;
  tokenizer?: string;
  components?: string;
  catalog?: CatalogIndex;
  /** `context N`, when N is a positive whole number. */
  contextLength?: number;
}

/** File-system access of the checker, injected so that servers can cache and tests can count. */
export interface FileProbe {
  /** `other`: exists but is neither a regular file nor a folder (a FIFO, a device, a socket). */
  kind(file: string): 'file' | 'dir' | 'other' | undefined;
  /** A model's SHA-256 hex (`modelSha256`: its file and external data), or undefined when unreadable (or, in the background, not hashed yet). */
  sha256(file: string): string | undefined;
  /** Stops hashing in the background. */
  dispose?(): void;
}

export interface CheckEnv {
  /** Folder that relative paths in the spec resolve against (the spec's folder). */
  baseDir: string;
  files: FileProbe;
  catalogs: CatalogCache;
}

export interface Analysis {
  parse: ParseResult;
  lines: LineIndex;
  /** Sorted by position. */
  diagnostics: Diagnostic[];
  symbols: Map<string, SymbolInfo>;
  references: Reference[];
  models: Map<string, ModelInfo>;
  datasetSources: Map<string, DataSource>;
  datasetTags: Map<string, string>;
  selectorSpecs: Map<A.Selector, SelectorSpec>;
  /** Resolved component keys of each selector node that could be resolved. */
  selections: Map<A.Selector, string[]>;
  scaleSpecs: Map<A.ScaleStmt, ScaleSpec>;
  metricSpecs: Map<A.MetricNode, MetricSpec>;
  /** The catalog each edit's selectors resolve against. */
  editCatalogs: Map<A.EditDecl, CatalogIndex>;
  /** The datasets each edit aims at: those its selectors rank by and its tuned metric measures. */
  editTargets: Map<A.EditDecl, Set<string>>;
  env: CheckEnv;
}

export const KIND_WORD: Record<SymbolKind, string> = { model: 'a model', data: 'a dataset', guard: 'a guard', probe: 'a probe', edit: 'an edit' };
