/**
 * Watch, evaluate and breakpoint-condition expressions: `loss(german)`, `logit("der") > 3`,
 * `component("h.2.mlp.c_fc:41") > 2 and not base(component("h.2.mlp.c_fc:41")) > 2`.
 *
 * Tokens come from the spec language's own lexer (language/lexer.ts), so strings, numbers and
 * names read exactly as in a .scalpel file. The spec language has no expression grammar of its
 * own yet, so this file holds a small one:
 *
 *     expr  := and ('or' and)*
 *     and   := unary ('and' unary)*
 *     unary := 'not' unary | cmp
 *     cmp   := atom (('>' | '>=' | '<' | '<=' | '==') atom)?
 *     atom  := NUMBER | STRING | NAME | NAME '(' [expr (',' expr)*] ')' | '(' expr ')'
 */
import { ScalpelError } from '../engine/errors';
import { Token, lex } from '../language/lexer';

export type Expr =
  | { kind: 'number'; value: number; start: number }
  | { kind: 'string'; value: string; start: number }
  | { kind: 'name'; name: string; start: number }
  | { kind: 'call'; name: string; args: Expr[]; start: number }
  | { kind: 'compare'; op: '>' | '>=' | '<' | '<=' | '=='; left: Expr; right: Expr; start: number }
  | { kind: 'logic'; op: 'and' | 'or'; left: Expr; right: Expr; start: number }
  | { kind: 'not'; operand: Expr; start: number };

/** Throws a ScalpelError whose column (1-based) points into the expression. */
export function parseExpression(text: string): Expr {
  const { tokens, diagnostics } = lex(text);
  if (diagnostics.length) throw exprError(diagnostics[0].message, diagnostics[0].start);
  let i = 0;
  const peek = (): Token => tokens[i];
  const isPunct = (p: string) => peek().kind === 'punct' && peek().text === p;
  const isWord = (w: string) => peek().kind === 'ident' && peek().text === w;
  const expect = (p: string) => {
    if (!isPunct(p)) throw exprError(`expected "${p}"${describe(peek())}`, peek().start);
    i++;
  };

  const parseOr = (): Expr => {
    let left = parseAnd();
    while (isWord('or')) {
      const start = tokens[i++].start;
      left = { kind: 'logic', op: 'or', left, right: parseAnd(), start };
    }
    return left;
  };
  const parseAnd = (): Expr => {
    let left = parseUnary();
    while (isWord('and')) {
      const start = tokens[i++].start;
      left = { kind: 'logic', op: 'and', left, right: parseUnary(), start };
    }
    return left;
  };
  const parseUnary = (): Expr => {
    if (isWord('not')) {
      const start = tokens[i++].start;
      return { kind: 'not', operand: parseUnary(), start };
    }
    const left = parseAtom();
    const t = peek();
    if (t.kind === 'punct' && ['>', '>=', '<', '<=', '=='].includes(t.text)) {
      i++;
      return { kind: 'compare', op: t.text as '>', left, right: parseAtom(), start: t.start };
    }
    return left;
  };
  const parseAtom = (): Expr => {
    const t = peek();
    if (t.kind === 'number') {
      i++;
      return { kind: 'number', value: t.value as number, start: t.start };
    }
    if (t.kind === 'string') {
      i++;
      return { kind: 'string', value: t.value as string, start: t.start };
    }
    if (t.kind === 'punct' && t.text === '(') {
      i++;
      const inner = parseOr();
      expect(')');
      return inner;
    }
    if (t.kind === 'ident' && !['and', 'or', 'not'].includes(t.text)) {
      i++;
      if (!isPunct('(')) return { kind: 'name', name: t.text, start: t.start };
      i++;
      const args: Expr[] = [];
      if (!isPunct(')')) {
        args.push(parseOr());
        while (isPunct(',')) {
          i++;
          args.push(parseOr());
        }
      }
      expect(')');
      return { kind: 'call', name: t.text, args, start: t.start };
    }
    throw exprError(`expected a number, a string, a name or a call${describe(t)}`, t.start);
  };

  const expr = parseOr();
  if (peek().kind !== 'eof') throw exprError(`unexpected ${JSON.stringify(peek().text)} after the expression`, peek().start);
  return expr;
}

function describe(t: Token): string {
  return t.kind === 'eof' ? ' at the end' : `, found ${JSON.stringify(t.text)}`;
}

export function exprError(message: string, offset: number): ScalpelError {
  return new ScalpelError(message, 'expression', { line: 1, column: offset + 1 });
}

export type Value = number | boolean | string;

/** What the names and calls of an expression mean; the runtime supplies it, per model side. */
export interface ExpressionHost {
  call(name: string, args: Value[], start: number): Promise<Value>;
  name(name: string, start: number): Value;
  /** For `base(…)` / `edited(…)`: the host that evaluates the argument on that side, or undefined. */
  side(name: string): ExpressionHost | undefined;
}

export async function evaluateExpression(e: Expr, host: ExpressionHost): Promise<Value> {
  switch (e.kind) {
    case 'number': return e.value;
    case 'string': return e.value;
    case 'name': return host.name(e.name, e.start);
    case 'call': {
      const sideHost = e.args.length === 1 ? host.side(e.name) : undefined;
      if (sideHost) return evaluateExpression(e.args[0], sideHost);
      const args: Value[] = [];
      for (const a of e.args) args.push(await evaluateExpression(a, host));
      return host.call(e.name, args, e.start);
    }
    case 'not': return !truthy(await evaluateExpression(e.operand, host));
    case 'logic': {
      const left = truthy(await evaluateExpression(e.left, host));
      if (e.op === 'and' ? !left : left) return left;
      return truthy(await evaluateExpression(e.right, host));
    }
    case 'compare': {
      const l = await evaluateExpression(e.left, host);
      const r = await evaluateExpression(e.right, host);
      if (e.op === '==') return l === r;
      if (typeof l !== 'number' || typeof r !== 'number') throw exprError(`"${e.op}" compares numbers`, e.start);
      return e.op === '>' ? l > r : e.op === '>=' ? l >= r : e.op === '<' ? l < r : l <= r;
    }
  }
}

export function truthy(v: Value): boolean {
  return typeof v === 'number' ? v !== 0 && !Number.isNaN(v) : typeof v === 'string' ? v.length > 0 : v;
}
