/**
 * `probe NAME = logistic|linear on "POINT" over [DATA, …]`: parsed, checked, formatted, completed and
 * carried into the semantic model; `scalpel geometry --spec … --probe NAME` runs it (test/geometry/cli.test.ts).
 */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { test } from 'node:test';
import { analyze, defaultEnv } from '../../language/checker';
import { format } from '../../language/format';
import { completions, documentSymbols, hover } from '../../language/services';
import { specFromAnalysis } from '../../language/semantic';

const FIXTURE = path.join(__dirname, '..', 'fixtures', 'lang');
const HEAD = `model demo from "." {
  tokenizer "tokenizer.json"
  components "components"
}
data german = udhr "deu"
data french = udhr "fra"
data english = udhr "eng"
`;
const check = (text: string) => analyze(HEAD + text, defaultEnv(FIXTURE));
const codes = (text: string) => check(text).diagnostics.filter((d) => d.code !== 'S104').map((d) => `${d.code} ${d.message}`);

test('a probe declaration becomes a SpecProbe with the engine kind, point and datasets', () => {
  const a = check('probe lang = linear on "h.2.resid" over [german, french, english]\nprobe lr = logistic on "h.1.mlp.c_fc" over [german, english]\n');
  assert.deepEqual(codes(''), []);
  assert.deepEqual(a.diagnostics.filter((d) => d.severity === 'error'), []);
  const spec = specFromAnalysis(a, path.join(FIXTURE, 'x.scalpel'));
  assert.deepEqual(spec.probes, [
    { name: 'lang', kind: 'mean-difference', point: 'h.2.resid', datasets: ['german', 'french', 'english'], at: { line: 8, column: 1 } },
    { name: 'lr', kind: 'logistic', point: 'h.1.mlp.c_fc', datasets: ['german', 'english'], at: { line: 9, column: 1 } },
  ]);
  assert.deepEqual(documentSymbols(a).filter((s) => s.detail === 'probe').map((s) => s.name), ['lang', 'lr']);
});

test('probe diagnostics: unknown kind, bad point, one dataset, unknown or repeated dataset, a name taken', () => {
  assert.deepEqual(codes('probe p = svm on "h.2.resid" over [german, french]\n'), ['S002 expected the probe\'s kind: logistic or linear, found "svm"']);
  assert.deepEqual(codes('probe p = linear on "h..2" over [german, french]\n'), ['S601 "h..2" is not a capture point (h.N.resid, embed, a module path or a capture id such as h.2.mlp.c_fc.in)']);
  assert.deepEqual(codes('probe p = linear on "h.2.resid" over [german]\n'), ['S602 probe "p" tells datasets apart: list at least two']);
  assert.deepEqual(codes('probe p = linear on "h.2.resid" over [german, germn]\n').map((c) => c.slice(0, 4)), ['S101']);
  assert.deepEqual(codes('probe p = linear on "h.2.resid" over [german, french, german]\n'), ['S506 "german" is already in this probe']);
  assert.deepEqual(codes('probe german = linear on "h.2.resid" over [french, english]\n').map((c) => c.slice(0, 4)), ['S102']);
  assert.deepEqual(codes('probe p = linear "h.2.resid" over [german, french]\n'), ['S002 expected "on", found string "h.2.resid"']);
});

test('completion offers the kinds after "=" and datasets inside the list; hover explains the keyword; fmt keeps it', () => {
  const text = 'probe p = linear on "h.2.resid" over [german, ';
  const a = check(text);
  const labels = (offset: number) => completions(a, offset).items.map((i) => i.label);
  assert.deepEqual(labels(HEAD.length + 'probe p = '.length), ['logistic', 'linear']);
  assert.ok(['german', 'french', 'english'].every((d) => labels(HEAD.length + text.length).includes(d)));
  const done = check('probe p = linear on "h.2.resid" over [german, french]\n');
  const h = hover(done, HEAD.length + 1);
  assert.match(JSON.stringify(h?.contents), /a linear probe per dataset at a capture point/);
  const messy = HEAD + 'probe   p=linear on "h.2.resid"   over [ german,french ]\n';
  assert.equal(format(messy), HEAD + 'probe p = linear on "h.2.resid" over [german, french]\n');
});
