/**
 * The lexer of `.scalpel` specs. Never throws: malformed input becomes `error` tokens plus diagnostics.
 * Offsets are UTF-16 code units (JavaScript string indices), the unit LSP positions use by default.
 * Newlines are plain whitespace: every statement starts with a keyword, so the parser needs no separators.
 */
import { Diagnostic, diag } from './diagnostics';
import { compileLabelRegex } from './regex';

export type TokenKind = 'ident' | 'number' | 'string' | 'regex' | 'punct' | 'comment' | 'error' | 'eof';

export interface Token {
  kind: TokenKind;
  /** Source text of the token. */
  text: string;
  start: number;
  end: number;
  /** Decoded value: the string's contents, the number, the regex body. */
  value?: string | number;
  /** Regex flags. */
  flags?: string;
}

export interface LexResult {
  /** Significant tokens, ending with one `eof`. */
  tokens: Token[];
  comments: Token[];
  diagnostics: Diagnostic[];
}

const ESCAPES: Record<string, string> = { '"': '"', '\\': '\\', n: '\n', t: '\t', '/': '/' };

const NUMBER = /-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?/y;

/** Two-character operators first so that `>=` is not lexed as `>` `=`. */
const PUNCT = ['==', '>=', '<=', '{', '}', '[', ']', '(', ')', ',', ':', '=', '>', '<', '%', '.'];

/**
 * Size limits on spec text, so that no input makes a step slow (a spec is a few hundred lines; the
 * limits leave room for generated ones). A longer line is reported and skipped like a comment.
 */
export const MAX_LINE_LENGTH = 100_000;
export const MAX_SPEC_LENGTH = 16 * 1024 * 1024;

/** Lexes `text[from, to)`; `to` must be the end of the text or a line start (no token crosses a line). */
export function lex(text: string, from = 0, to = text.length): LexResult {
  const tokens: Token[] = [];
  const comments: Token[] = [];
  const diagnostics: Diagnostic[] = [];
  let i = from;
  const n = to;
  const long = longLines(text, from, to);
  let nextLong = 0;
  // One object shape for every token keeps the hot loop monomorphic.
  const push = (kind: TokenKind, start: number, end: number, value?: string | number, flags?: string) => {
    const t: Token = { kind, text: text.slice(start, end), start, end, value, flags };
    (kind === 'comment' ? comments : tokens).push(t);
    return t;
  };
  // A `/` starts a regex only right after the keyword `label` (the one place a regex may stand).
  const regexAllowed = () => tokens.length > 0 && tokens[tokens.length - 1].kind === 'ident' && tokens[tokens.length - 1].text === 'label';

  while (i < n) {
    if (nextLong < long.length && i >= long[nextLong][0]) {
      const [start, end] = long[nextLong++];
      diagnostics.push(diag('S007', start, end, `this line has ${end - start} characters (at most ${MAX_LINE_LENGTH}): it is skipped`));
      i = end;
      continue;
    }
    const c = text[i];
    if (c === ' ' || c === '\t' || c === '\r' || c === '\n' || c === '\f' || c === '\v' || c === '\u00a0' || c === '\ufeff') {
      i++;
      continue;
    }
    const start = i;
    if (c === '#') {
      while (i < n && text[i] !== '\n') i++;
      // A comment ends before the line's `\r`s (`\r\r\n` too), so that reprinting it is idempotent.
      let end = i;
      while (end > start && text[end - 1] === '\r') end--;
      push('comment', start, end);
      continue;
    }
    if (isIdentStart(c)) {
      while (i < n && isIdentPart(text[i])) i++;
      push('ident', start, i);
      continue;
    }
    if (isDigit(c) || (c === '-' && isDigit(text[i + 1] ?? '')) || (c === '.' && isDigit(text[i + 1] ?? ''))) {
      NUMBER.lastIndex = i;
      const m = NUMBER.exec(text)!;
      i += m[0].length;
      // A number glued to letters (`2nats`, `1e`) is one bad token, not two good ones.
      if (i < n && isIdentPart(text[i])) {
        while (i < n && isIdentPart(text[i])) i++;
        diagnostics.push(diag('S005', start, i, `invalid number "${text.slice(start, i)}" (a space separates a number from the word after it)`));
        push('error', start, i);
        continue;
      }
      push('number', start, i, Number(m[0]));
      continue;
    }
    if (c === '"') {
      i++;
      // The value is built from slices between escapes: no per-character concatenation.
      let value = '';
      let segment = i;
      let closed = false;
      while (i < n && text[i] !== '\n') {
        const ch = text[i];
        if (ch === '"') {
          closed = true;
          break;
        }
        if (ch !== '\\') {
          i++;
          continue;
        }
        value += text.slice(segment, i);
        const e = text[i + 1];
        const u = /^\\u\{([0-9a-fA-F]{1,6})\}/.exec(text.slice(i, i + 10));
        if (e !== undefined && e in ESCAPES) {
          value += ESCAPES[e];
          i += 2;
        } else if (u && parseInt(u[1], 16) <= 0x10ffff) {
          value += String.fromCodePoint(parseInt(u[1], 16));
          i += u[0].length;
        } else {
          diagnostics.push(diag('S006', i, Math.min(i + 2, n), `unknown escape "${text.slice(i, i + 2)}" (use \\" \\\\ \\n \\t or \\u{hex})`));
          i += e === undefined || e === '\n' ? 1 : 2;
        }
        segment = i;
      }
      const contentEnd = !closed && text[i - 1] === '\r' ? i - 1 : i;
      value += text.slice(segment, Math.max(segment, contentEnd));
      if (closed) i++;
      else diagnostics.push(diag('S003', start, i, 'unterminated string (strings end on the same line with ")'));
      push('string', start, closed ? i : contentEnd, value);
      continue;
    }
    if (c === '/' && regexAllowed()) {
      i++;
      let inClass = false;
      let closed = false;
      while (i < n && text[i] !== '\n') {
        const ch = text[i];
        if (ch === '\\') {
          // An escape never swallows the line's end: no token crosses a line.
          i += text[i + 1] === '\n' ? 1 : 2;
          continue;
        }
        if (ch === '[') inClass = true;
        else if (ch === ']') inClass = false;
        else if (ch === '/' && !inClass) {
          closed = true;
          break;
        }
        i++;
      }
      i = Math.min(i, n);
      const body = text.slice(start + 1, i);
      if (!closed) {
        diagnostics.push(diag('S004', start, i, 'unterminated regular expression (it ends with / on the same line)'));
        push('regex', start, i, body, '');
        continue;
      }
      i++;
      const flagStart = i;
      while (i < n && isIdentPart(text[i])) i++;
      const flags = text.slice(flagStart, i);
      const t = push('regex', start, i, body, flags);
      const bad = flags.replace(/[imsu]/g, '');
      if (bad || new Set(flags).size !== flags.length) {
        diagnostics.push(diag('S004', flagStart, i, `invalid regular expression flags "${flags}" (allowed: i, m, s, u, each once)`));
      } else {
        const re = compileLabelRegex(body, flags);
        if (typeof re === 'string') diagnostics.push(diag('S004', t.start, t.end, `invalid regular expression: ${re}`));
      }
      continue;
    }
    const p = PUNCT.find((op) => text.startsWith(op, i));
    if (p) {
      i += p.length;
      push('punct', start, i);
      continue;
    }
    // One error token per run of unknown characters keeps the diagnostics few and readable.
    const cp = text.codePointAt(i)!;
    i += cp > 0xffff ? 2 : 1;
    diagnostics.push(diag('S001', start, i, `unexpected character ${JSON.stringify(String.fromCodePoint(cp))}`));
    push('error', start, i);
  }
  tokens.push({ kind: 'eof', text: '', start: n, end: n, value: undefined, flags: undefined });
  return { tokens, comments, diagnostics };
}

/** `[start, end)` of each line in `text[from, to)` longer than MAX_LINE_LENGTH (end before its newline). */
function longLines(text: string, from: number, to: number): [number, number][] {
  const found: [number, number][] = [];
  if (to - from <= MAX_LINE_LENGTH) return found;
  for (let start = from; start < to;) {
    const nl = text.indexOf('\n', start);
    const end = nl < 0 || nl > to ? to : nl;
    if (end - start > MAX_LINE_LENGTH) found.push([start, end]);
    start = end + 1;
  }
  return found;
}

function isIdentStart(c: string): boolean {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c === '_';
}

function isIdentPart(c: string): boolean {
  return isIdentStart(c) || isDigit(c);
}

function isDigit(c: string): boolean {
  return c >= '0' && c <= '9';
}
