/**
 * The spec's validation rules: checks over a resolved spec that report diagnostics and build nothing.
 * Each rule names the declaration kind it checks (or `spec`, once per file) and the codes it reports,
 * and is registered in RULES, the one list the checker runs (as Langium's validation registry maps node
 * types to checks). Resolution (`checker.ts`) reports only what stops it from building the spec's data.
 */
import { declarationRules } from './declarations';
import { checkRules } from './checks';
import { editRules } from './edits';
import { selectorRules } from './selectors';
import { overlapRules } from './overlaps';
import type { NodeOf, Rule, RuleContext, RuleTarget } from './rule';

/** Every rule, in the order they report. */
export const RULES: readonly Rule[] = [...declarationRules, ...checkRules, ...editRules, ...selectorRules, ...overlapRules] as Rule[];

const byTarget = new Map<RuleTarget, Rule[]>();
for (const r of RULES) byTarget.set(r.on, [...(byTarget.get(r.on) ?? []), r]);

/** Runs the rules registered for a declaration's kind, or with `spec`, the file-wide ones. */
export function runRules<T extends RuleTarget>(on: T, node: NodeOf<T>, ctx: RuleContext): void {
  for (const r of byTarget.get(on) ?? []) r.check(node as never, ctx);
}
