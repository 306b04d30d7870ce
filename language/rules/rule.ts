/** What a validation rule is (the list of them: `index.ts`). */
import type * as A from '../ast';
import type { Analysis } from '../analysis';
import type { Code, Diagnostic } from '../diagnostics';

export interface RuleContext {
  /** The analysis as resolved so far (every declaration; for an edit's rules, that edit too). */
  readonly analysis: Analysis;
  report(d: Diagnostic): void;
  /** 1-based line of an offset, for messages that point elsewhere. */
  line(offset: number): number;
  /** Whether an error has been reported inside the span (by the parser, resolution or an earlier rule). */
  hasErrorIn(span: A.Span): boolean;
}

/** A declaration kind, or `spec` for rules over the whole file. */
export type RuleTarget = A.Decl['kind'] | 'spec';
export type NodeOf<T extends RuleTarget> = T extends 'spec' ? A.Decl[] : Extract<A.Decl, { kind: T }>;

export interface Rule<T extends RuleTarget = RuleTarget> {
  on: T;
  /** The codes it reports. */
  codes: Code[];
  check(node: NodeOf<T>, ctx: RuleContext): void;
}

/** A rule, typed by what it checks. */
export function rule<T extends RuleTarget>(on: T, codes: Code[], check: (node: NodeOf<T>, ctx: RuleContext) => void): Rule<T> {
  return { on, codes, check };
}
