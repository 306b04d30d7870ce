/**
 * Recursive-descent parser of `.scalpel` specs. Invariant: it never throws; it returns a tree plus
 * diagnostics. Recovery: a broken statement reports one S002 and the parser skips to the next
 * statement keyword (`model data guard edit expect` at the top, `select scale keep }` in a block),
 * so one mistake never hides the rest of the file.
 */
import { CHANGES as CHANGE_TABLE, COMPARISONS, GOAL_KEYWORD, UNITS as UNIT_TABLE, names } from '../engine/edit/checks';
import { PROBE_WORDS, ProbeWord } from '../engine/geometry/probe';
import * as A from './ast';
import { statisticSignatures } from './statistics';
import { metricDef, metricSignatures } from './metrics';
import { Diagnostic, diag } from './diagnostics';
import { MAX_SPEC_LENGTH, Token, lex } from './lexer';

export const TOP_KEYWORDS = ['model', 'data', 'guard', 'probe', 'edit', 'expect'] as const;
export const BLOCK_KEYWORDS = ['select', 'scale', 'keep'] as const;
export const MODEL_PROPS = ['tokenizer', 'components', 'sha256', 'context'] as const;
export const SOURCES = ['udhr', 'text', 'jsonl', 'inline'] as const;
export const SELECTOR_KEYWORDS = ['module', 'label', 'top'] as const;
export const SET_OPERATORS = ['or', 'minus'] as const;
export const UNITS = names(UNIT_TABLE);
export const CHANGES = names(CHANGE_TABLE);
export const OBJECTIVES = ['maximize', 'minimize'] as const;
/** `scale … gated` and `scale tune … loss(D) toward uniform`: words inside a scale statement. */
export const SCALE_KEYWORDS = ['gated', 'toward', 'uniform'] as const;
export const PROBE_KIND_WORDS = Object.keys(PROBE_WORDS) as ProbeWord[];

/** `a, b or c`, for "expected …" messages. */
export function orList(options: readonly string[]): string {
  return options.length < 2 ? options.join('') : `${options.slice(0, -1).join(', ')} or ${options[options.length - 1]}`;
}

/** Words that cannot name a declaration, so that recovery can trust them as statement starts. */
export const RESERVED = new Set<string>([
  ...TOP_KEYWORDS, ...BLOCK_KEYWORDS, ...SELECTOR_KEYWORDS, ...SET_OPERATORS, ...SCALE_KEYWORDS, GOAL_KEYWORD, 'from', 'on', 'tune', 'in', 'by', 'where', 'within', 'and', 'field', 'limit', 'tokens', 'over',
]);

export interface ParseResult {
  text: string;
  file: A.SpecFile;
  tokens: Token[];
  comments: Token[];
  diagnostics: Diagnostic[];
  /** Per diagnostic, the offset of the statement whose parse reported it (its own start for lexical ones): what `reparse` replaces. */
  owners: number[];
  /** Token index → block depth, for every token that starts a statement or closes a block (the formatter's line breaks). */
  lineStarts: Map<number, number>;
}

/**
 * How deep a selector may nest (parentheses, `top … where`, alternating `or`/`minus` chains): far
 * beyond any real spec, and far below what would exhaust the stack of the parser, the checker or the
 * selector resolution, which all recurse over the tree. `or` runs are built balanced, so a chain of
 * thousands of keys is only a dozen levels deep.
 */
export const MAX_SELECTOR_DEPTH = 100;

export function parse(text: string): ParseResult {
  if (text.length > MAX_SPEC_LENGTH) {
    const d = diag('S007', 0, 0, `this spec has ${text.length} characters (at most ${MAX_SPEC_LENGTH}): it is not checked`);
    return { text, file: { decls: [] }, tokens: [{ kind: 'eof', text: '', start: text.length, end: text.length }], comments: [], diagnostics: [d], owners: [0], lineStarts: new Map() };
  }
  const lexed = lex(text);
  const p = new Parser(lexed.tokens);
  const file = p.parseFile();
  return {
    text, file, tokens: lexed.tokens, comments: lexed.comments, diagnostics: [...lexed.diagnostics, ...p.diagnostics],
    owners: [...lexed.diagnostics.map((d) => d.start), ...p.owners], lineStarts: p.lineStarts,
  };
}

/**
 * The parse of `text`, an edited version of `old.text`, reusing the declarations the edit cannot
 * reach: lexing and parsing restart one declaration before the change and stop at the first
 * unchanged declaration that begins a line (tokens never cross lines, and a top-level keyword ends
 * any statement, so the parse from there on is the same, shifted). Equal to `parse(text)`
 * (test/language/incremental.test.ts). Takes ownership of `old`: reused nodes are shifted in place.
 */
export function reparse(old: ParseResult, text: string): ParseResult {
  const was = old.text;
  if (was.length > MAX_SPEC_LENGTH || text.length > MAX_SPEC_LENGTH) return parse(text);
  const max = Math.min(was.length, text.length);
  let p = 0;
  while (p < max && was.charCodeAt(p) === text.charCodeAt(p)) p++;
  let s = 0;
  while (s < max - p && was.charCodeAt(was.length - 1 - s) === text.charCodeAt(text.length - 1 - s)) s++;
  const delta = text.length - was.length;
  const decls = old.file.decls;
  let first = 0;
  while (first < decls.length && decls[first].end < p) first++;
  // One declaration back: its end depends on the token after it, which the edit may have changed.
  const keep = Math.max(0, first - 1);
  const from = first === 0 ? 0 : decls[keep].start;
  let resync = first;
  while (resync < decls.length && !(decls[resync].start >= was.length - s && atLineStart(text, decls[resync].start + delta))) resync++;
  const wasTo = resync < decls.length ? decls[resync].start : was.length;
  const to = wasTo + delta;
  const a = firstTokenAt(old.tokens, from);
  const b = firstTokenAt(old.tokens, wasTo);
  const tail = old.tokens.slice(b);
  for (const t of tail) shift(t, delta);
  const lexed = lex(text, from, to);
  const region = lexed.tokens.slice(0, -1);
  // The parser sees the real next token (a top-level keyword) where the region stops, so its messages match a full parse.
  const parser = new Parser([...region, ...(resync < decls.length ? [tail[0]] : []), { ...lexed.tokens[lexed.tokens.length - 1], start: text.length, end: text.length }], to);
  const regionDecls = parser.parseFile().decls;
  const tailDecls = decls.slice(resync);
  for (const d of tailDecls) shift(d, delta);
  const lineStarts = new Map<number, number>();
  for (const [i, depth] of old.lineStarts) {
    if (i < a) lineStarts.set(i, depth);
    else if (i >= b) lineStarts.set(i - b + a + region.length, depth);
  }
  for (const [i, depth] of parser.lineStarts) lineStarts.set(i + a, depth);
  const diagnostics: Diagnostic[] = [];
  const owners: number[] = [];
  old.diagnostics.forEach((d, i) => {
    const owner = old.owners[i];
    if (owner < from) {
      diagnostics.push(d);
      owners.push(owner);
    } else if (owner >= wasTo) {
      diagnostics.push(shift(d, delta));
      owners.push(owner + delta);
    }
  });
  // Loops, not push(...xs): a spread of 100,000+ arguments overflows the stack.
  for (const d of lexed.diagnostics) {
    diagnostics.push(d);
    owners.push(d.start);
  }
  for (let i = 0; i < parser.diagnostics.length; i++) {
    diagnostics.push(parser.diagnostics[i]);
    owners.push(parser.owners[i]);
  }
  const comments = [...old.comments.filter((c) => c.start < from), ...lexed.comments, ...old.comments.filter((c) => c.start >= wasTo).map((c) => shift(c, delta))];
  return {
    text, file: { decls: [...decls.slice(0, keep), ...regionDecls, ...tailDecls] }, tokens: [...old.tokens.slice(0, a), ...region, ...tail],
    comments, diagnostics, owners, lineStarts,
  };
}

function atLineStart(text: string, offset: number): boolean {
  for (let i = offset - 1; i >= 0; i--) {
    const c = text.charCodeAt(i);
    if (c === 10) return true;
    if (c !== 32 && c !== 9 && c !== 13) return false;
  }
  return true;
}

function firstTokenAt(tokens: Token[], offset: number): number {
  let lo = 0;
  let hi = tokens.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (tokens[mid].start < offset) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Moves every `start`/`end` in a node (and its children) by `delta`, in place. */
function shift<T>(node: T, delta: number): T {
  if (delta === 0) return node;
  const walk = (x: unknown) => {
    if (Array.isArray(x)) {
      for (const y of x) walk(y);
    } else if (x && typeof x === 'object') {
      const o = x as Record<string, unknown>;
      for (const k in o) {
        const v = o[k];
        if ((k === 'start' || k === 'end') && typeof v === 'number') o[k] = v + delta;
        else if (v && typeof v === 'object') walk(v);
      }
    }
  };
  walk(node);
  return node;
}

const isTop = (t: Token) => t.kind === 'ident' && (TOP_KEYWORDS as readonly string[]).includes(t.text);
const isBlock = (t: Token) => t.kind === 'ident' && (BLOCK_KEYWORDS as readonly string[]).includes(t.text);

class Parser {
  readonly diagnostics: Diagnostic[] = [];
  readonly owners: number[] = [];
  readonly lineStarts = new Map<number, number>();
  private pos = 0;
  private lastReported = -1;
  /** Start of the top-level statement being parsed (the owner of its diagnostics). */
  private owner = 0;

  /** `stopAt`: the offset where a partial parse ends (a reparse region); the end of the text otherwise. */
  constructor(private readonly tokens: Token[], private readonly stopAt = Infinity) {}

  private atEnd(): boolean {
    const t = this.peek();
    return t.kind === 'eof' || t.start >= this.stopAt;
  }

  private peek(k = 0): Token {
    return this.tokens[Math.min(this.pos + k, this.tokens.length - 1)];
  }

  private next(): Token {
    const t = this.peek();
    if (t.kind !== 'eof') this.pos++;
    return t;
  }

  /** End offset of the last consumed token. */
  private get prevEnd(): number {
    return this.pos > 0 ? this.tokens[this.pos - 1].end : 0;
  }

  private is(text: string, k = 0): boolean {
    const t = this.peek(k);
    return (t.kind === 'ident' || t.kind === 'punct') && t.text === text;
  }

  private eat(text: string): Token | undefined {
    return this.is(text) ? this.next() : undefined;
  }

  /** Reports `expected WHAT` at the current token (once per position) and returns false. */
  private fail(what: string): false {
    const t = this.peek();
    // The lexer has already reported an error token.
    if (t.start !== this.lastReported && t.kind !== 'error') {
      this.lastReported = t.start;
      const found = t.kind === 'eof' ? 'the end of the file' : t.kind === 'string' ? `string ${t.text}` : `"${t.text}"`;
      this.diagnostics.push(diag('S002', t.start, t.kind === 'eof' ? t.start : t.end, `expected ${what}, found ${found}`));
      this.owners.push(this.owner);
    }
    return false;
  }

  private want(text: string, what = `"${text}"`): boolean {
    return this.eat(text) ? true : this.fail(what);
  }

  private mark(depth: number): void {
    this.lineStarts.set(this.pos, depth);
  }

  parseFile(): A.SpecFile {
    const decls: A.Decl[] = [];
    while (!this.atEnd()) {
      const t = this.peek();
      this.owner = t.start;
      if (!isTop(t)) {
        this.fail('a declaration (model, data, guard, edit or expect)');
        this.skipTo(isTop);
        continue;
      }
      this.mark(0);
      const decl = this.parseDecl(t.text);
      decls.push(decl);
      if (!this.atEnd() && !isTop(this.peek())) {
        this.fail(`the end of the ${decl.kind} declaration`);
        this.skipTo(isTop);
      }
    }
    return { decls };
  }

  private skipTo(stop: (t: Token) => boolean): void {
    while (this.peek().kind !== 'eof' && !stop(this.peek())) this.next();
  }

  private parseDecl(kw: string): A.Decl {
    switch (kw) {
      case 'model': return this.parseModel();
      case 'data': return this.parseData();
      case 'guard': return this.parseGuard();
      case 'probe': return this.parseProbe();
      case 'edit': return this.parseEdit();
      default: return this.parseExpect();
    }
  }

  private name(what: string): A.Name | undefined {
    const t = this.peek();
    if (t.kind !== 'ident' || RESERVED.has(t.text)) {
      this.fail(t.kind === 'ident' ? `${what} ("${t.text}" is a keyword)` : what);
      return undefined;
    }
    this.next();
    return { text: t.text, start: t.start, end: t.end };
  }

  private str(what: string): A.Str | undefined {
    const t = this.peek();
    if (t.kind !== 'string') return void this.fail(what);
    this.next();
    return { value: t.value as string, start: t.start, end: t.end };
  }

  private num(what: string): A.Num | undefined {
    const t = this.peek();
    if (t.kind !== 'number') return void this.fail(what);
    this.next();
    return { value: t.value as number, start: t.start, end: t.end };
  }

  private keyword<K extends string>(options: readonly K[]): (A.Keyword & { text: K }) | undefined {
    const t = this.peek();
    if ((t.kind !== 'ident' && t.kind !== 'punct') || !options.includes(t.text as K)) return undefined;
    this.next();
    return { text: t.text as K, start: t.start, end: t.end };
  }

  private parseModel(): A.ModelDecl {
    const start = this.next().start;
    const node: A.ModelDecl = { kind: 'model', start, end: start, props: [] };
    const done = () => ((node.end = this.prevEnd), node);
    if (!(node.name = this.name('a model name'))) return done();
    if (!this.want('from')) return done();
    if (!(node.path = this.str('the model file or folder as a string'))) return done();
    if (!this.is('{')) return done();
    const open = this.next().start;
    while (!this.is('}') && this.peek().kind !== 'eof' && !isTop(this.peek())) {
      this.mark(1);
      const key = this.keyword(MODEL_PROPS);
      if (!key) {
        this.fail(`${MODEL_PROPS.join(', ')} or }`);
        this.skipTo((t) => isTop(t) || (t.kind === 'punct' && t.text === '}') || (t.kind === 'ident' && (MODEL_PROPS as readonly string[]).includes(t.text)));
        continue;
      }
      const prop: A.ModelProp = { key, start: key.start, end: key.end };
      if (key.text === 'context') prop.count = this.num('the context length, a number of tokens');
      else prop.value = this.str(key.text === 'sha256' ? 'the hex digest as a string' : 'a path as a string');
      prop.end = this.prevEnd;
      node.props.push(prop);
    }
    this.closeBlock(node, open, 'model');
    return node;
  }

  /** Consumes the `}` of a block opened at `open`, or reports it missing. */
  private closeBlock(node: { block?: A.Span; end: number }, open: number, what: string): void {
    if (this.is('}')) {
      this.mark(0);
      node.block = { start: open, end: this.next().end };
    } else {
      this.fail(`"}" to close this ${what}`);
      node.block = { start: open, end: this.prevEnd };
    }
    node.end = this.prevEnd;
  }

  private parseData(): A.DataDecl {
    const start = this.next().start;
    const node: A.DataDecl = { kind: 'data', start, end: start, where: [] };
    const done = () => ((node.end = this.prevEnd), node);
    if (!(node.name = this.name('a dataset name'))) return done();
    if (!this.want('=')) return done();
    node.source = this.keyword(SOURCES);
    if (!node.source) return this.fail('a source: udhr, text, jsonl or inline'), done();
    const what = { udhr: 'a UDHR language code as a string', text: 'a file path as a string', jsonl: 'a file path as a string', inline: 'the text as a string' }[node.source.text];
    if (!(node.arg = this.str(what))) return done();
    for (;;) {
      if (this.is('field') && !node.field) {
        this.next();
        if (!(node.field = this.str('the JSON field name as a string'))) return done();
      } else if (this.is('where') && node.where.length === 0) {
        this.next();
        do {
          const tag = this.name('a tag name');
          if (!tag) return done();
          const clause: A.WhereClause = { tag, start: tag.start, end: tag.end };
          node.where.push(clause);
          if (!this.want('==')) return done();
          if (!(clause.value = this.str('the tag value as a string'))) return done();
          clause.end = this.prevEnd;
        } while (this.eat('and'));
      } else if (this.is('limit') && !node.limit) {
        this.next();
        if (!(node.limit = this.num('a token count'))) return done();
        if (!this.want('tokens')) return done();
      } else {
        return done();
      }
    }
  }

  private unit(why = ''): A.UnitNode | undefined {
    const u = this.keyword(UNITS);
    if (!u) return void this.fail(`a unit: ${orList(UNITS)}${why}`);
    return { unit: u.text, start: u.start, end: u.end };
  }

  /** `[NAME, …]` into `members`; false (with the diagnostic made) where the list stops early. */
  private datasetList(members: A.Name[], opening: string): boolean {
    if (!this.want('[', opening)) return false;
    if (!this.is(']')) {
      do {
        const m = this.name('a dataset name');
        if (!m) return false;
        members.push(m);
      } while (this.eat(','));
    }
    return this.want(']', '"," or "]"');
  }

  private parseGuard(): A.GuardDecl {
    const start = this.next().start;
    const node: A.GuardDecl = { kind: 'guard', start, end: start, members: [] };
    const done = () => ((node.end = this.prevEnd), node);
    if (!(node.name = this.name('a guard name'))) return done();
    if (!this.want('=')) return done();
    if (!this.datasetList(node.members, '"[" and the guarded datasets')) return done();
    if (!this.want('within')) return done();
    if (!(node.threshold = this.num('a threshold number'))) return done();
    if ((node.unit = this.unit())) node.goal = this.goal();
    return done();
  }

  /**
   * `, goal NUMBER UNIT` after a check's bound, when written (a `goal` without its comma is reported and read on);
   * `withUnit` false: the bound is a bare number, and so is its goal.
   */
  private goal(withUnit = true): A.GoalNode | undefined {
    if (!this.is(',') && !this.is(GOAL_KEYWORD)) return undefined;
    const start = this.peek().start;
    const node: A.GoalNode = { start, end: start };
    const done = () => ((node.end = this.prevEnd), node);
    this.want(',', `"," before ${GOAL_KEYWORD}`);
    if (!(node.keyword = this.keyword([GOAL_KEYWORD]))) return this.fail(`${GOAL_KEYWORD} and the value the check aims at (e.g. ${GOAL_KEYWORD} 0.05 nats)`), done();
    if (!(node.value = this.num(`the ${GOAL_KEYWORD}, a number`))) return done();
    if (withUnit || (UNITS as readonly string[]).includes(this.peek().text)) node.unit = this.unit();
    return done();
  }

  private parseProbe(): A.ProbeDecl {
    const start = this.next().start;
    const node: A.ProbeDecl = { kind: 'probe', start, end: start, members: [] };
    const done = () => ((node.end = this.prevEnd), node);
    if (!(node.name = this.name('a probe name'))) return done();
    if (!this.want('=')) return done();
    if (!(node.probe = this.keyword(PROBE_KIND_WORDS))) return this.fail(`the probe's kind: ${orList(PROBE_KIND_WORDS)}`), done();
    if (!this.want('on')) return done();
    if (!(node.point = this.str('the capture point as a string, e.g. "h.2.resid"'))) return done();
    if (!this.want('over')) return done();
    this.datasetList(node.members, '"[" and the datasets the probe tells apart');
    return done();
  }

  private parseEdit(): A.EditDecl {
    const start = this.next().start;
    const node: A.EditDecl = { kind: 'edit', start, end: start, body: [] };
    const done = () => ((node.end = this.prevEnd), node);
    // A broken header still lets the block be parsed, so its statements keep their diagnostics.
    const header = () => (node.name = this.name('an edit name')) && this.want('on') && (node.model = this.name('the name of a model'));
    if (!header() && !this.is('{')) this.skipTo((t) => isTop(t) || (t.kind === 'punct' && t.text === '{'));
    if (!this.is('{')) return this.fail('"{"'), done();
    const open = this.next().start;
    while (!this.is('}') && this.peek().kind !== 'eof' && !isTop(this.peek())) {
      const t = this.peek();
      if (!isBlock(t)) {
        this.fail('select, scale, keep or }');
        this.skipTo((x) => isTop(x) || isBlock(x) || (x.kind === 'punct' && x.text === '}'));
        continue;
      }
      this.mark(1);
      node.body.push(this.parseEditStmt(t.text));
      const after = this.peek();
      if (!isBlock(after) && !isTop(after) && after.kind !== 'eof' && !this.is('}')) {
        this.fail(`the end of the ${t.text} statement`);
        this.skipTo((x) => isTop(x) || isBlock(x) || (x.kind === 'punct' && x.text === '}'));
      }
    }
    this.closeBlock(node, open, 'edit');
    return node;
  }

  private parseEditStmt(kw: string): A.EditStmt {
    const start = this.next().start;
    if (kw === 'select') {
      const node: A.SelectStmt = { kind: 'select', start, end: start };
      node.selector = this.selector();
      node.end = this.prevEnd;
      return node;
    }
    if (kw === 'scale') {
      const node: A.ScaleStmt = { kind: 'scale', start, end: start };
      if (this.peek().kind === 'number') node.value = this.num('a number');
      else if (this.is('tune')) node.value = this.tune();
      else this.fail('a number or tune');
      if (this.is('gated')) node.gate = this.gating();
      node.end = this.prevEnd;
      return node;
    }
    const node: A.KeepStmt = { kind: 'keep', start, end: start, guards: [] };
    do {
      const g = this.name('a guard name');
      if (!g) break;
      node.guards.push(g);
    } while (this.eat(','));
    node.end = this.prevEnd;
    return node;
  }

  private tune(): A.Tune {
    const start = this.next().start;
    const node: A.Tune = { kind: 'tune', start, end: start };
    const done = () => ((node.end = this.prevEnd), node);
    if (!this.want('in')) return done();
    if (!this.want('[', '"[" and the range to search')) return done();
    if (!(node.low = this.num('the lower end of the range'))) return done();
    if (!this.want(',')) return done();
    if (!(node.high = this.num('the upper end of the range'))) return done();
    if (!this.want(']')) return done();
    node.objective = this.keyword(OBJECTIVES);
    const t = this.peek();
    if (!node.objective && (t.kind !== 'ident' || RESERVED.has(t.text))) return this.fail('maximize, minimize, or a metric and "toward"'), done();
    node.metric = this.metric();
    if (!node.objective && node.metric) node.toward = this.toward();
    return done();
  }

  /** `toward uniform` or `toward NUMBER nats|bits`: the loss the tuned metric should reach. */
  private toward(): A.Toward | undefined {
    const kw = this.keyword(['toward'] as const);
    if (!kw) return void this.fail('"toward" and the loss to reach (uniform, or e.g. 7 nats)');
    const node: A.Toward = { keyword: kw, start: kw.start, end: kw.end };
    if ((node.uniform = this.keyword(['uniform'] as const))) return (node.end = this.prevEnd), node;
    if (!(node.value = this.num('uniform or a loss such as 7 nats'))) return (node.end = this.prevEnd), node;
    node.unit = this.unit();
    node.end = this.prevEnd;
    return node;
  }

  /** `gated` or `gated where ci > NUMBER`. */
  private gating(): A.Gating {
    const kw = this.next();
    const node: A.Gating = { keyword: { text: kw.text, start: kw.start, end: kw.end }, start: kw.start, end: kw.end };
    if (this.is('where')) {
      this.next();
      if (this.want('ci', '"ci" (the component\'s causal importance)') && this.want('>', '">"')) node.threshold = this.num('a threshold between 0 and 1');
    }
    node.end = this.prevEnd;
    return node;
  }

  private metric(): A.MetricNode | undefined {
    const t = this.peek();
    if (t.kind !== 'ident' || RESERVED.has(t.text)) return void this.fail(`a metric: ${orList(metricSignatures())}`);
    this.next();
    const node: A.MetricNode = { fn: { text: t.text, start: t.start, end: t.end }, start: t.start, end: t.end };
    if (!this.want('(')) return node;
    node.arg = this.name(metricDef(t.text)?.args === 'probe' ? 'a probe name' : 'a dataset or guard name');
    const dotted = node.arg && this.eat('.');
    if (dotted) node.member = this.name("one of the probe's datasets, or a guard of them");
    if (node.arg && (!dotted || node.member)) this.want(')');
    node.end = this.prevEnd;
    return node;
  }

  /** Height of each selector node built in this parse (a leaf is 1), for the depth limit. */
  private readonly heights = new WeakMap<A.Selector, number>();
  /** Selector recursion depth of the parser itself (parentheses and `where`). */
  private nesting = 0;

  private height(s: A.Selector | undefined): number {
    return s ? this.heights.get(s) ?? 1 : 0;
  }

  private node(s: A.SetSel): A.Selector {
    this.heights.set(s, 1 + Math.max(this.height(s.left), this.height(s.right)));
    return s;
  }

  /** A union of `terms` (ending at `ends`) as a balanced tree: union is associative, so the tree stays shallow. */
  private union(terms: A.Selector[], ends: number[], lo = 0, hi = terms.length): A.Selector {
    if (hi - lo === 1) return terms[lo];
    const mid = (lo + hi) >> 1;
    const left = this.union(terms, ends, lo, mid);
    const right = this.union(terms, ends, mid, hi);
    return this.node({ kind: 'or', left, right, start: left.start, end: ends[hi - 1] });
  }

  private selector(): A.Selector | undefined {
    let left = this.selectorTerm();
    if (!left) return undefined;
    for (;;) {
      const op = this.keyword(SET_OPERATORS);
      if (!op) return left;
      let right = this.selectorTerm();
      if (op.text === 'or' && right) {
        const terms = [left, right];
        const ends = [left.end, this.prevEnd];
        while (right && this.eat('or')) {
          right = this.selectorTerm();
          if (right) {
            terms.push(right);
            ends.push(this.prevEnd);
          }
        }
        left = this.union(terms, ends);
        if (!right) left = this.node({ kind: 'or', left, right, start: left.start, end: this.prevEnd });
      } else {
        left = this.node({ kind: op.text, left, right, start: left.start, end: this.prevEnd });
      }
      if (this.height(left) > MAX_SELECTOR_DEPTH) return this.tooDeep(left.start, left.end);
      if (!right) return left;
    }
  }

  /** Reports a selector over the depth limit and skips the rest of its statement. */
  private tooDeep(start: number, end: number): undefined {
    this.diagnostics.push(diag('S008', start, end, `this selector nests more than ${MAX_SELECTOR_DEPTH} levels deep: split it into several select statements`));
    this.owners.push(this.owner);
    this.lastReported = this.peek().start;
    this.skipTo((t) => isTop(t) || isBlock(t) || (t.kind === 'punct' && t.text === '}'));
    return undefined;
  }

  private selectorTerm(): A.Selector | undefined {
    if (this.nesting >= MAX_SELECTOR_DEPTH) return this.tooDeep(this.peek().start, this.peek().end);
    this.nesting++;
    try {
      return this.term();
    } finally {
      this.nesting--;
    }
  }

  private term(): A.Selector | undefined {
    const t = this.peek();
    if (t.kind === 'string') {
      const key = this.str('a component key')!;
      return { kind: 'key', key, start: key.start, end: key.end };
    }
    if (this.is('(')) {
      this.next();
      const inner = this.selector();
      if (inner) this.want(')', '"or", "minus" or ")"');
      return inner;
    }
    if (this.is('module')) {
      const start = this.next().start;
      const pattern = this.str('a module path or glob pattern as a string');
      return { kind: 'module', pattern, start, end: this.prevEnd };
    }
    if (this.is('label')) {
      const start = this.next().start;
      const r = this.peek();
      let regex: A.Regex | undefined;
      if (r.kind === 'regex') {
        this.next();
        regex = { source: r.value as string, flags: r.flags ?? '', start: r.start, end: r.end };
      } else {
        this.fail('a regular expression, e.g. /german/i');
      }
      return { kind: 'label', regex, start, end: this.prevEnd };
    }
    if (this.is('top')) {
      const start = this.next().start;
      const node: A.TopSel = { kind: 'top', start, end: start };
      const done = () => ((node.end = this.prevEnd), node);
      if (!(node.k = this.num('how many components (a number)'))) return done();
      if (!this.want('by')) return done();
      node.stat = this.stat();
      if (!node.stat) return done();
      if (this.eat('where')) {
        node.where = this.selectorTerm();
        this.heights.set(node, 1 + this.height(node.where));
      }
      return done();
    }
    this.fail('a selector: a key string, module "…", label /…/, top N by … or ( … )');
    return undefined;
  }

  private stat(): A.StatNode | undefined {
    const t = this.peek();
    if (t.kind !== 'ident' || RESERVED.has(t.text)) return void this.fail(`a statistic: ${orList(statisticSignatures())}`);
    this.next();
    const node: A.StatNode = { fn: { text: t.text, start: t.start, end: t.end }, args: [], call: false, start: t.start, end: t.end };
    if (this.eat('(')) {
      node.call = true;
      if (!this.is(')')) {
        do {
          const a = this.name('a dataset or guard name');
          if (!a) break;
          node.args.push(a);
          if (node.args.length === 1 && this.eat('.')) {
            node.member = this.name('one of the probe\'s datasets');
            if (!node.member) break;
          }
        } while (this.eat(','));
      }
      this.want(')', '"," or ")"');
      node.end = this.prevEnd;
    }
    return node;
  }

  private parseExpect(): A.ExpectDecl {
    const start = this.next().start;
    const node: A.ExpectDecl = { kind: 'expect', start, end: start };
    const done = () => ((node.end = this.prevEnd), node);
    if (!(node.edit = this.name('the name of an edit'))) return done();
    if (!this.want(':')) return done();
    if (!(node.metric = this.metric())) return done();
    node.change = this.keyword(CHANGES);
    if (!node.change) return this.fail(orList(CHANGES)), done();
    if (node.change.text !== 'is' && !this.want('by')) return done();
    node.comparison = this.keyword(COMPARISONS);
    if (!node.comparison) return this.fail(`a comparison: ${orList(COMPARISONS)}`), done();
    if (!(node.bound = this.num('a number'))) return done();
    // A loss bound needs its unit; an accuracy is a fraction, and a unit written after one is the checker's S505.
    const unitless = metricDef(node.metric.fn.text)?.bound === 'fraction';
    const written = (UNITS as readonly string[]).includes(this.peek().text);
    // A goal is written as its bound is: with the bound's unit, or bare.
    if (unitless && !written) node.goal = this.goal(false);
    else if ((node.unit = this.unit(' (a loss bound needs one; only accuracy is a bare fraction)'))) node.goal = this.goal();
    return done();
  }
}
