/**
 * Incremental parsing: after any edit, `reparse(parse(old), new)` must equal `parse(new)` — tree,
 * tokens, comments, diagnostics and formatter line starts — also over chains of edits.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import type { Analysis } from '../../language/analysis';
import { analyze, defaultEnv } from '../../language/checker';
import { ParseResult, parse, reparse } from '../../language/parser';
import { specFromAnalysis } from '../../language/semantic';
import { stripMarkers } from './harness';

const GOLDEN = path.join(__dirname, 'golden');
const specs = fs.readdirSync(GOLDEN).filter((f) => f.endsWith('.scalpel')).map((f) => stripMarkers(fs.readFileSync(path.join(GOLDEN, f), 'utf8')).text);

const snapshot = (r: ParseResult) => ({
  text: r.text,
  decls: JSON.stringify(r.file.decls),
  tokens: r.tokens.map((t) => `${t.kind}:${t.start}-${t.end}:${t.text}:${t.value}:${t.flags}`),
  comments: r.comments.map((t) => `${t.start}-${t.end}:${t.text}`),
  diagnostics: r.diagnostics.map((d, i) => `${d.start}-${d.end} ${d.code} ${d.message} @${r.owners[i]}`).sort(),
  lineStarts: [...r.lineStarts].sort((x, y) => x[0] - y[0]),
});

const INSERTS = ['', ' ', '\n', '\n\n', '"', '/', '{', '}', '#', 'x', ':', '(', ',', 'data ', 'edit e on m {', 'select ', 'label /a', '1', '"h.2.mlp.c_fc:4"', 'guard g = [a] within 1 nats\n'];
const edit = fc.tuple(fc.nat(), fc.nat({ max: 20 }), fc.constantFrom(...INSERTS));
const apply = (t: string, [at, len, ins]: [number, number, string]) => {
  const i = at % (t.length + 1);
  return t.slice(0, i) + ins + t.slice(i + len);
};

test('reparse equals a full parse after a chain of random edits', () => {
  fc.assert(fc.property(fc.constantFrom(...specs), fc.array(edit, { minLength: 1, maxLength: 6 }), (start, edits) => {
    let text = start;
    let incremental = parse(text);
    for (const e of edits) {
      text = apply(text, e);
      incremental = reparse(incremental, text);
      assert.deepEqual(snapshot(incremental), snapshot(parse(text)));
    }
  }), { numRuns: 300, seed: 4 });
});

test('reparse after a one-character edit in a long spec re-lexes only nearby declarations', () => {
  const base = specs.find((s) => s.includes('edit no_german'))!;
  const long = Array.from({ length: 40 }, (_, i) => base.replace(/\bno_german\b/g, `no_german${i}`).replace(/^model demo/m, `model demo${i}`)).join('\n');
  const old = parse(long);
  const at = long.indexOf('h.2.mlp.c_fc:41', long.length >> 1) + 14;
  const next = long.slice(0, at) + '9' + long.slice(at + 1);
  const oldTokens = new Set(old.tokens);
  const result = reparse(old, next);
  assert.deepEqual(snapshot(result), snapshot(parse(next)));
  const reused = result.tokens.filter((t) => oldTokens.has(t)).length;
  assert.ok(reused > result.tokens.length * 0.9, `most tokens are reused (${reused} of ${result.tokens.length})`);
});

test('checking a reparsed spec (with per-edit results reused) equals checking it from scratch', () => {
  const env = defaultEnv(GOLDEN);
  const view = (a: Analysis) => ({
    diagnostics: a.diagnostics.map((d) => `${d.start}-${d.end} ${d.severity} ${d.code} ${d.message} ${JSON.stringify(d.data)}`),
    references: a.references.map((r) => `${r.span.start}-${r.span.end} ${r.name} ${r.symbol?.kind}`).sort(),
    spec: JSON.stringify(specFromAnalysis(a, 'x')),
  });
  const EDITS = ['', ' ', '\n', '"', 'x', '1', '9', 'keep others\n', 'select "h.2.mlp.c_fc:4"\n', 'guard g2 = [french] within 1 nats\n', 'data d2 = udhr "ita"\n'];
  fc.assert(fc.property(fc.constantFrom(...specs), fc.array(fc.tuple(fc.nat(), fc.nat({ max: 6 }), fc.constantFrom(...EDITS)), { minLength: 1, maxLength: 5 }), (start, edits) => {
    let text = start;
    let parsed = parse(text);
    analyze(text, env, parsed);
    for (const e of edits) {
      text = apply(text, e);
      parsed = reparse(parsed, text);
      assert.deepEqual(view(analyze(text, env, parsed)), view(analyze(text, env)));
    }
  }), { numRuns: 150, seed: 5 });
});
