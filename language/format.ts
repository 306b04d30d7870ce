/**
 * The formatter: one canonical layout, comments kept. It reprints the token stream: every statement
 * starts a line (indented two spaces per block), spacing inside a statement is fixed, at most one
 * blank line survives between statements, and a comment stays trailing or on its own line as written.
 * Invariants: idempotent, and the token sequence is unchanged. A file with syntax errors is not
 * formatted (`undefined`): guessing a layout for broken code would move the user's text around.
 */
import { Token } from './lexer';
import { ParseResult, RESERVED, parse } from './parser';

const INDENT = '  ';

export function format(text: string, parsed: ParseResult = parse(text)): string | undefined {
  if (parsed.diagnostics.length > 0) return undefined;
  const tokens = parsed.tokens.slice(0, -1);
  type Item = { t: Token; index?: number };
  const items: Item[] = [...tokens.map((t, index) => ({ t, index })), ...parsed.comments.map((t) => ({ t }))].sort((a, b) => a.t.start - b.t.start);
  let out = '';
  let depth = 0;
  let prev: Item | undefined;
  let breakNext = false;
  const newlinesBetween = (a: Item, b: Item) => {
    let n = 0;
    for (let i = a.t.end; i < b.t.start; i++) if (text.charCodeAt(i) === 10) n++;
    return n;
  };
  // The next token at or after each item (comments come in runs: a scan per comment would be quadratic).
  const nextTokens: (Item | undefined)[] = new Array(items.length);
  for (let i = items.length - 1, next: Item | undefined; i >= 0; i--) nextTokens[i] = next = items[i].index !== undefined ? items[i] : next;

  items.forEach((item, i) => {
    const { t } = item;
    const gap = prev ? newlinesBetween(prev, item) : 0;
    // A blank line in the source survives, except just inside a block's braces.
    const blank = gap >= 2 && prev?.t.text !== '{' && t.text !== '}' ? '\n' : '';
    if (item.index === undefined) {
      if (!prev) out += t.text;
      else if (gap === 0) out += `  ${t.text}`;
      else {
        const next = nextTokens[i];
        const nextDepth = next && parsed.lineStarts.has(next.index!) ? parsed.lineStarts.get(next.index!)! + (next.t.text === '}' ? 1 : 0) : depth + 1;
        out += `\n${blank}${INDENT.repeat(nextDepth)}${t.text}`;
      }
      breakNext = true;
    } else if (parsed.lineStarts.has(item.index)) {
      depth = parsed.lineStarts.get(item.index)!;
      out += `${prev ? `\n${blank}` : ''}${INDENT.repeat(depth)}${t.text}`;
      breakNext = false;
    } else if (breakNext) {
      out += `\n${INDENT.repeat(depth + 1)}${t.text}`;
      breakNext = false;
    } else {
      out += `${spaced(prevToken(items, i), t) ? ' ' : ''}${t.text}`;
    }
    prev = item;
  });
  return out.length ? `${out}\n` : '';
}

function prevToken(items: { t: Token; index?: number }[], i: number): Token | undefined {
  for (let j = i - 1; j >= 0; j--) if (items[j].index !== undefined) return items[j].t;
  return undefined;
}

/** Whether one space separates two tokens on the same line. */
function spaced(a: Token | undefined, b: Token): boolean {
  if (!a) return false;
  if (a.text === '(' || a.text === '[' || (a.text === '.' && a.kind === 'punct')) return false;
  if ([')', ']', ',', ':', '%', '.'].includes(b.text) && b.kind === 'punct') return false;
  // A call (`loss(german)`) hugs its parenthesis; a grouped selector after `or`/`minus`/`where` does not.
  if (b.text === '(' && a.kind === 'ident' && !RESERVED.has(a.text)) return false;
  return true;
}
