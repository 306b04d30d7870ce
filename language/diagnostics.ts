/**
 * Diagnostics of the spec language. Codes are stable (tools and docs refer to them); each one is
 * documented in docs/language.md. A diagnostic's range is in UTF-16 offsets of the spec text.
 */

export type Severity = 'error' | 'warning' | 'info';

export interface Diagnostic {
  code: Code;
  severity: Severity;
  message: string;
  start: number;
  end: number;
  /** Data a quick fix needs (e.g. the replacement a "did you mean" offers). */
  data?: unknown;
}

/** Every code with its default severity and a one-line summary (docs/language.md has the long form). */
export const CODES = {
  S000: ['error', 'internal error of the language server'],
  S001: ['error', 'unexpected character'],
  S002: ['error', 'syntax error: expected something else here'],
  S003: ['error', 'unterminated string'],
  S004: ['error', 'invalid regular expression'],
  S005: ['error', 'invalid number'],
  S006: ['error', 'unknown escape in a string'],
  S007: ['error', 'spec or line too long'],
  S008: ['error', 'selector nested too deeply'],
  S009: ['info', 'more problems than are shown'],
  S101: ['error', 'unknown name'],
  S102: ['error', 'name declared twice'],
  S103: ['error', 'name of the wrong kind'],
  S104: ['warning', 'declared but never used'],
  S201: ['error', 'file or folder not found'],
  S202: ['error', 'component catalog cannot be read'],
  S203: ['error', 'sha256 pin does not match the model file'],
  S204: ['error', 'malformed sha256 pin'],
  S205: ['error', 'unknown built-in dataset'],
  S206: ['error', 'the model declares no component catalog'],
  S207: ['warning', 'the catalog was made for a different model file'],
  S208: ['error', 'model property given twice'],
  S209: ['error', 'dataset option not valid for its source'],
  S301: ['error', 'unknown component key'],
  S302: ['error', 'malformed component key'],
  S303: ['error', 'module pattern matches no module'],
  S304: ['warning', 'selector matches no component'],
  S305: ['error', 'unknown statistic or wrong arguments'],
  S306: ['error', 'dataset has no statistics in the catalog'],
  S307: ['error', 'top needs a positive whole number'],
  S308: ['warning', 'label selector matches mostly broader components'],
  S401: ['error', 'edit needs exactly one scale'],
  S402: ['error', 'edit selects nothing'],
  S403: ['error', 'tuning range is not a proper interval'],
  S404: ['warning', 'scale 1 leaves the model unchanged'],
  S405: ['info', 'two edits scale the same component: they are alternatives, applied one at a time'],
  S406: ['error', 'CI threshold outside [0, 1)'],
  S407: ['error', 'gated edit on a catalog without causal-importance functions'],
  S501: ['error', 'threshold must be positive'],
  S502: ['error', 'empty guard'],
  S503: ['warning', "a kept guard contains the edit's own target data"],
  S504: ['warning', 'edit keeps no guard'],
  S505: ['error', 'unit not valid here'],
  S506: ['warning', 'dataset listed twice'],
  S507: ['error', 'a token count must be a positive whole number'],
  S508: ['warning', 'a goal not stricter than its bound'],
  S509: ['error', 'goal in another unit than its bound'],
  S601: ['error', 'not a capture point'],
  S602: ['error', 'a probe needs at least two datasets'],
  S603: ['error', 'not one of the probe\'s datasets'],
  S604: ['error', 'probe not trained for this catalog'],
  S605: ['error', 'accuracy bound outside [0, 1]'],
} as const satisfies Record<string, readonly [Severity, string]>;

export type Code = keyof typeof CODES;

export function diag(code: Code, start: number, end: number, message: string, data?: unknown): Diagnostic {
  return { code, severity: CODES[code][0], message, start, end, ...(data === undefined ? {} : { data }) };
}

/** Line/column conversion for one text; lines and columns are 0-based (LSP), `format` prints 1-based. */
export class LineIndex {
  private readonly starts: number[] = [0];

  constructor(readonly text: string) {
    for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 10) this.starts.push(i + 1);
  }

  position(offset: number): { line: number; character: number } {
    const o = Math.max(0, Math.min(offset, this.text.length));
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid] <= o) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo, character: o - this.starts[lo] };
  }

  offset(pos: { line: number; character: number }): number {
    if (pos.line < 0) return 0;
    if (pos.line >= this.starts.length) return this.text.length;
    const lineEnd = pos.line + 1 < this.starts.length ? this.starts[pos.line + 1] - 1 : this.text.length;
    return Math.min(this.starts[pos.line] + Math.max(0, pos.character), lineEnd);
  }

  get lineCount(): number {
    return this.starts.length;
  }
}

/** `file:line:col: severity code: message`, the format of `scalpel check` (1-based like compilers). */
export function formatDiagnostic(file: string, lines: LineIndex, d: Diagnostic): string {
  const p = lines.position(d.start);
  return `${file}:${p.line + 1}:${p.character + 1}: ${d.severity} ${d.code}: ${d.message}`;
}
