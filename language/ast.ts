/**
 * The syntax tree of a spec. Every node carries its exact range (UTF-16 offsets, end exclusive).
 * Parts a broken statement lacks are `undefined`: the parser always returns a tree.
 */
import type { Change, Comparison, Unit } from '../engine/edit/checks';

export type { Change, Comparison, Unit } from '../engine/edit/checks';

export interface Span {
  start: number;
  end: number;
}

/** An identifier where it is written: a declaration's name or a reference to one. */
export interface Name extends Span {
  text: string;
}

export interface Str extends Span {
  value: string;
}

export interface Num extends Span {
  value: number;
}

export interface Regex extends Span {
  source: string;
  flags: string;
}

/** A keyword where it is written (for hover, semantic tokens and formatting). */
export interface Keyword extends Span {
  text: string;
}

export type Decl = ModelDecl | DataDecl | GuardDecl | ProbeDecl | EditDecl | ExpectDecl;

export interface ModelDecl extends Span {
  kind: 'model';
  name?: Name;
  path?: Str;
  props: ModelProp[];
  /** Range of `{ … }` when the block is present (for folding). */
  block?: Span;
}

export interface ModelProp extends Span {
  key: Keyword & { text: 'tokenizer' | 'components' | 'sha256' | 'context' };
  /** The path or digest of `tokenizer`, `components`, `sha256`. */
  value?: Str;
  /** The token count of `context`. */
  count?: Num;
}

export type SourceKind = 'udhr' | 'text' | 'jsonl' | 'inline';

export interface DataDecl extends Span {
  kind: 'data';
  name?: Name;
  source?: Keyword & { text: SourceKind };
  arg?: Str;
  /** `field "body"`: the JSONL field that holds the text. */
  field?: Str;
  where: WhereClause[];
  /** `limit N tokens`. */
  limit?: Num;
}

export interface WhereClause extends Span {
  tag: Name;
  value?: Str;
}


export interface UnitNode extends Span {
  unit: Unit;
}

/**
 * `, goal NUMBER UNIT` after a guard's threshold or an expectation's bound: what the check aims at,
 * stricter than its bound, in the same unit. Measured and reported; the bound decides pass or fail.
 */
export interface GoalNode extends Span {
  keyword?: Keyword;
  value?: Num;
  unit?: UnitNode;
}

export interface GuardDecl extends Span {
  kind: 'guard';
  name?: Name;
  members: Name[];
  threshold?: Num;
  unit?: UnitNode;
  goal?: GoalNode;
}

/** `probe NAME = KIND on "POINT" over [DATA, …]`: a linear probe per dataset at a capture point. */
export interface ProbeDecl extends Span {
  kind: 'probe';
  name?: Name;
  probe?: Keyword;
  point?: Str;
  members: Name[];
}

export interface EditDecl extends Span {
  kind: 'edit';
  name?: Name;
  model?: Name;
  body: EditStmt[];
  block?: Span;
}

export type EditStmt = SelectStmt | ScaleStmt | KeepStmt;

export interface SelectStmt extends Span {
  kind: 'select';
  selector?: Selector;
}

export interface ScaleStmt extends Span {
  kind: 'scale';
  value?: Num | Tune;
  gate?: Gating;
}

/** `gated` (the edit follows the component's causal importance) or `gated where ci > T` (all or nothing at T). */
export interface Gating extends Span {
  keyword: Keyword;
  threshold?: Num;
}

export interface Tune extends Span {
  kind: 'tune';
  low?: Num;
  high?: Num;
  /** Absent in the `METRIC toward TARGET` form. */
  objective?: Keyword & { text: 'maximize' | 'minimize' };
  metric?: MetricNode;
  toward?: Toward;
}

/** `toward uniform` (ln V) or `toward NUMBER UNIT`. */
export interface Toward extends Span {
  keyword: Keyword;
  uniform?: Keyword;
  value?: Num;
  unit?: UnitNode;
}

export interface KeepStmt extends Span {
  kind: 'keep';
  guards: Name[];
}

/** `loss(german)`, `accuracy(lang.german)`: a metric of a dataset or of each dataset of a guard. */
export interface MetricNode extends Span {
  fn: Name;
  arg?: Name;
  /** `accuracy(lang.others)`: the name after the argument's dot (the argument is then a probe). */
  member?: Name;
}

export type Selector = KeySel | ModuleSel | LabelSel | TopSel | SetSel;

export interface KeySel extends Span {
  kind: 'key';
  key: Str;
}

export interface ModuleSel extends Span {
  kind: 'module';
  pattern?: Str;
}

export interface LabelSel extends Span {
  kind: 'label';
  regex?: Regex;
}

export interface TopSel extends Span {
  kind: 'top';
  k?: Num;
  stat?: StatNode;
  where?: Selector;
}

/** `selectivity(german, others)`, `activation(german)`, `norm`. */
export interface StatNode extends Span {
  fn: Name;
  args: Name[];
  /** `alignment(lang.german)`: the name after the first argument's dot (the first argument is then a probe). */
  member?: Name;
  /** Whether `( … )` was written. */
  call: boolean;
}

export interface SetSel extends Span {
  kind: 'or' | 'minus';
  left: Selector;
  right?: Selector;
}


export interface ExpectDecl extends Span {
  kind: 'expect';
  edit?: Name;
  metric?: MetricNode;
  change?: Keyword & { text: Change };
  comparison?: Keyword & { text: Comparison };
  bound?: Num;
  unit?: UnitNode;
  goal?: GoalNode;
}

export interface SpecFile {
  decls: Decl[];
}
