/**
 * Label regular expressions (`label /german/i`). They come from spec text, which may be hostile, so
 * they run on RE2JS, a linear-time engine (no catastrophic backtracking: `/^(.|.)*(.|.)*!$/` takes
 * microseconds, not minutes), and their source is capped in length. RE2 syntax: no backreferences
 * and no lookaround. The lexer validates with the same compiler that the selector resolution uses.
 */
import { RE2JS } from 're2js';

/** Longest accepted pattern (characters); real label patterns are a few words. */
export const MAX_REGEX_LENGTH = 1000;

export const REGEX_FLAGS = 'imsu';

export interface LabelRegex {
  test(text: string): boolean;
}

/** Patterns without any RE2 syntax: letters, digits and spaces only. */
const LITERAL = /^[A-Za-z0-9 ]+$/;

const compiled = new Map<string, LabelRegex | string>();

/** The compiled pattern, or a one-line reason it is refused. Never throws. */
export function compileLabelRegex(source: string, flags: string): LabelRegex | string {
  const key = `${flags}/${source}`;
  let hit = compiled.get(key);
  if (hit === undefined) {
    hit = compile(source, flags);
    if (compiled.size > 10000) compiled.clear();
    compiled.set(key, hit);
  }
  return hit;
}

function compile(source: string, flags: string): LabelRegex | string {
  if (source.length > MAX_REGEX_LENGTH) return `the pattern has ${source.length} characters (at most ${MAX_REGEX_LENGTH})`;
  // `u` is accepted for JavaScript habits: RE2 always matches by code point.
  // A plain word or phrase needs no engine: RE2 folds case by Unicode simple case folding, as JavaScript's `iu` does.
  if (LITERAL.test(source)) {
    if (!flags.includes('i')) return { test: (text) => text.includes(source) };
    const re = new RegExp(source, 'iu');
    return { test: (text) => re.test(text) };
  }
  const options = (flags.includes('i') ? RE2JS.CASE_INSENSITIVE : 0) | (flags.includes('m') ? RE2JS.MULTILINE : 0) | (flags.includes('s') ? RE2JS.DOTALL : 0);
  try {
    const re = RE2JS.compile(source, options);
    return { test: (text) => re.test(text) };
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    return message.replace(/^error parsing regexp: /, '');
  }
}
