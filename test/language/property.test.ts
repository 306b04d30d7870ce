/**
 * Property tests: on random token soups and on randomly mutated golden specs, the parser, checker,
 * formatter and editor services never throw; formatting is idempotent and keeps every token and
 * comment. A few seconds in all (fixed seed, so a failure reproduces).
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { analyze, defaultEnv } from '../../language/checker';
import { format } from '../../language/format';
import { parse } from '../../language/parser';
import * as S from '../../language/services';
import { stripMarkers } from './harness';

const GOLDEN = path.join(__dirname, 'golden');
const env = defaultEnv(GOLDEN);
const specs = fs.readdirSync(GOLDEN).filter((f) => f.endsWith('.scalpel')).map((f) => stripMarkers(fs.readFileSync(path.join(GOLDEN, f), 'utf8')).text);

const WORDS = [
  'model', 'data', 'guard', 'edit', 'expect', 'select', 'scale', 'keep', 'from', 'on', 'tune', 'in', 'by', 'where', 'within', 'and',
  'field', 'limit', 'tokens', 'module', 'label', 'top', 'or', 'minus', 'tokenizer', 'components', 'sha256', 'udhr', 'text', 'jsonl',
  'inline', 'maximize', 'minimize', 'loss', 'selectivity', 'norm', 'rises', 'falls', 'moves', 'is', 'nats', 'bits', '%', 'demo',
  'german', 'others', '"h.2.mlp.c_fc:41"', '"deu"', '"../../fixtures/lang"', '"../../fixtures/lang/components"', '"h.*"', '/german/i',
  '/x', '"open', '0', '-4', '1.5', '2x', '{', '}', '[', ']', '(', ')', ',', ':', '=', '==', '>=', '<', '# note', '@', '\\', '"\\q"',
];
const SEPARATORS = [' ', ' ', ' ', '\n', '\n\n', '\t', ''];

const soup = fc.array(fc.tuple(fc.constantFrom(...WORDS), fc.constantFrom(...SEPARATORS)), { maxLength: 60 }).map((xs) => xs.map(([w, s]) => w + s).join(''));

const mutated = fc.tuple(fc.constantFrom(...specs), fc.array(fc.tuple(fc.nat(), fc.nat({ max: 12 }), fc.constantFrom('', ' ', '\n', '"', '/', '{', '}', '#', 'x', ':', '(', ',')), { minLength: 1, maxLength: 4 }))
  .map(([text, edits]) => edits.reduce((t, [at, len, ins]) => {
    const i = at % (t.length + 1);
    return t.slice(0, i) + ins + t.slice(i + len);
  }, text));

/** A formattable spec with its tokens re-joined by random whitespace (a comment still ends its line). */
const formattable = specs.filter((t) => format(t) !== undefined);
const relaid = fc.tuple(fc.constantFrom(...formattable), fc.array(fc.constantFrom(' ', '  ', '\n', '\n\n', '\n    '), { minLength: 200, maxLength: 200 }))
  .map(([text, seps]) => {
    const p = parse(text);
    const items = [...p.tokens.slice(0, -1), ...p.comments].sort((a, b) => a.start - b.start);
    return items.map((t, i) => t.text + (t.kind === 'comment' ? '\n' : seps[i % seps.length])).join('');
  });

const tokens = (text: string) => {
  const p = parse(text);
  return { tokens: p.tokens.map((t) => `${t.kind}:${t.text}`), comments: p.comments.map((c) => c.text) };
};

function holds(text: string, probe: number): void {
  const a = analyze(text, env);
  for (const d of a.diagnostics) assert.ok(d.start >= 0 && d.start <= d.end && d.end <= text.length, `diagnostic range ${d.start}-${d.end} inside the text`);
  const at = probe % (text.length + 1);
  S.completions(a, at);
  S.hover(a, at);
  S.codeActions(a, { start: at, end: at }, 'file:///x.scalpel');
  S.semanticTokens(a);
  S.foldingRanges(a);
  S.documentSymbols(a);
  const f = format(text);
  if (f === undefined) return;
  assert.equal(format(f), f, 'formatting is idempotent');
  assert.deepEqual(tokens(f), tokens(text), 'formatting keeps tokens and comments');
}

test('random token soups: nothing throws, formatting is idempotent and lossless', () => {
  fc.assert(fc.property(soup, fc.nat(), holds), { numRuns: 400, seed: 1 });
});

test('re-laid-out specs: formatting is idempotent and lossless', () => {
  assert.ok(formattable.length >= 2, 'some golden specs are formattable');
  fc.assert(fc.property(relaid, fc.nat(), (text, probe) => {
    assert.notEqual(format(text), undefined, 'a re-laid-out valid spec stays formattable');
    holds(text, probe);
  }), { numRuns: 200, seed: 3 });
});

test('mutated golden specs: nothing throws, formatting is idempotent and lossless', () => {
  fc.assert(fc.property(mutated, fc.nat(), holds), { numRuns: 300, seed: 2 });
});
