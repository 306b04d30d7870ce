/**
 * `probe NAME = logistic|linear on "POINT" over [DATA, …]`: parsed, checked, formatted, completed and
 * carried into the semantic model; `scalpel geometry --spec … --probe NAME` runs it (test/geometry/cli.test.ts).
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { analyze, defaultEnv } from '../../language/checker';
import { format } from '../../language/format';
import { completions, documentSymbols, hover } from '../../language/services';
import { specFromAnalysis } from '../../language/semantic';
import { planFromAnalysis } from '../../language/plan';
import { probeDefinition } from '../../language/probes';
import { probeFilePath, writeProbeFile } from '../../engine/geometry/probe-file';

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

/** A copy of the fixture's folder (the spec's folder holds the probe figures in .scalpel/probes/). */
function fixtureCopy(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scalpel-probe-'));
  for (const f of ['model.onnx', 'tokenizer.json']) fs.copyFileSync(path.join(FIXTURE, f), path.join(dir, f));
  fs.mkdirSync(path.join(dir, 'components'));
  fs.copyFileSync(path.join(FIXTURE, 'components', 'catalog.json'), path.join(dir, 'components', 'catalog.json'));
  return dir;
}

const ALIGNED = `probe lang = linear on "h.2.resid" over [german, french, english]
guard others = [french, english] within 1 nats
edit e on demo {
  select top 2 by alignment(lang.german)
  scale 0
  keep others
}
`;

test('top K by alignment(PROBE.DATA): untrained is S604; trained, the K components with the largest |cosine| of either side, re-read when retrained', () => {
  const dir = fixtureCopy();
  const run = () => analyze(HEAD + ALIGNED, defaultEnv(dir));
  const first = run();
  assert.deepEqual(first.diagnostics.filter((d) => d.severity === 'error').map((d) => d.code), ['S604']);
  assert.match(first.diagnostics.find((d) => d.code === 'S604')!.message, /probe "lang" is not trained for this catalog yet: scalpel eval, apply and geometry train it first/);
  const spec = specFromAnalysis(first, path.join(dir, 'x.scalpel'));
  const definition = probeDefinitionOf(first);
  const file = probeFilePath(dir, definition);
  // German's direction: write side of h.2.attn.c_proj (4 components) and read side of h.3.mlp.c_fc (48).
  const write = new Float64Array([0.1, -0.9, 0.2, 0.3]);
  const read = new Float64Array(48).fill(0.05);
  read[7] = 0.5;
  const table = new Map([['h.2.attn.c_proj', { write }], ['h.3.mlp.c_fc', { read }]]);
  const other = new Map([['h.2.attn.c_proj', { write: new Float64Array([1, 0, 0, 0]) }]]);
  writeProbeFile(file, 'lang', definition, { german: 0.99, french: 0.98, english: 0.97 }, new Map([['german', table], ['french', other], ['english', other]]));
  const trained = run();
  assert.deepEqual(trained.diagnostics.filter((d) => d.severity === 'error'), []);
  const keys = () => specFromAnalysis(run(), path.join(dir, 'x.scalpel')).edits[0].components;
  assert.deepEqual(keys(), ['h.2.attn.c_proj:1', 'h.3.mlp.c_fc:7'], 'the sign is ignored; read and write vectors compete');
  assert.equal(spec.edits.length, 1);
  write[3] = 0.95;
  fs.rmSync(file);
  writeProbeFile(file, 'lang', definition, { german: 0.99, french: 0.98, english: 0.97 }, new Map([['german', table], ['french', other], ['english', other]]));
  assert.deepEqual(keys(), ['h.2.attn.c_proj:1', 'h.2.attn.c_proj:3'], 'a retrained probe is read again');
  fs.writeFileSync(path.join(dir, 'components', 'catalog.json'), fs.readFileSync(path.join(dir, 'components', 'catalog.json'), 'utf8') + ' ');
  assert.deepEqual(run().diagnostics.filter((d) => d.severity === 'error').map((d) => d.code), ['S604'], 'a changed catalog needs a retrained probe');
});

test('alignment diagnostics: a dataset the probe does not tell apart, a missing PROBE.DATA, a dataset given to another statistic as PROBE.DATA', () => {
  const dir = fixtureCopy();
  const errs = (sel: string) => analyze(HEAD + ALIGNED.replace('alignment(lang.german)', sel), defaultEnv(dir)).diagnostics.filter((d) => d.severity === 'error').map((d) => `${d.code} ${d.message}`);
  assert.deepEqual(errs('alignment(lang.spanish)').map((e) => e.slice(0, 4)), ['S101']);
  assert.deepEqual(errs('alignment(german)'), ['S103 "german" is a dataset, expected a probe']);
  assert.deepEqual(errs('alignment(lang)'), ['S305 alignment takes one of the probe\'s datasets: lang.german']);
  assert.deepEqual(errs('selectivity(lang.german)'), ['S305 selectivity takes a dataset, then optionally the datasets or guards to compare with, not PROBE.DATA']);
  const withSpanish = HEAD.replace('data english', 'data spanish = udhr "spa"\ndata english');
  const a = analyze(withSpanish + ALIGNED.replace('alignment(lang.german)', 'alignment(lang.spanish)'), defaultEnv(dir));
  assert.deepEqual(a.diagnostics.filter((d) => d.severity === 'error').map((d) => `${d.code} ${d.message}`), ['S603 probe "lang" does not tell "spanish" apart (its datasets: german, french, english)']);
});

test('completion: probes after "alignment(", the probe\'s datasets after "lang."; fmt keeps PROBE.DATA tight', () => {
  const dir = fixtureCopy();
  const text = HEAD + ALIGNED;
  const a = analyze(text, defaultEnv(dir));
  const labels = (offset: number) => completions(a, offset).items.map((i) => i.label);
  assert.deepEqual(labels(text.indexOf('alignment(') + 'alignment('.length), ['lang']);
  assert.deepEqual(labels(text.indexOf('lang.german') + 'lang.'.length), ['german', 'french', 'english']);
  assert.equal(format(HEAD + ALIGNED.replace('alignment(lang.german)', 'alignment( lang . german )')), HEAD + ALIGNED);
  assert.ok(completions(analyze(HEAD + 'edit x on demo {\n  select top 1 by ', defaultEnv(dir)), (HEAD + 'edit x on demo {\n  select top 1 by ').length).items.some((i) => i.label === 'alignment'));
});

/** The definition the checker computes for the probe `lang` (what `scalpel geometry` writes its figures under). */
function probeDefinitionOf(a: ReturnType<typeof analyze>) {
  const catalog = a.models.get('demo')!.catalog!;
  const names = ['german', 'french', 'english'];
  return probeDefinition(catalog, 'mean-difference', 'h.2.resid', names.map((name) => ({ name, source: a.datasetSources.get(name)! })));
}

test('docs/language.md: its alignment example parses and checks against a spec with the probe (S604 until trained)', () => {
  const doc = fs.readFileSync(path.join(__dirname, '..', '..', 'docs', 'language.md'), 'utf8');
  const blocks = [...doc.matchAll(/```scalpel(?: fragment)?\n([\s\S]*?)```/g)].map((m) => m[1]).filter((b) => b.includes('alignment('));
  assert.ok(blocks.length >= 1);
  for (const b of blocks) {
    const a = analyze(HEAD + 'probe lang = linear on "h.2.resid" over [german, french, english]\nguard others = [french, english] within 1 nats\n' + b, defaultEnv(fixtureCopy()));
    assert.deepEqual(a.diagnostics.filter((d) => d.severity === 'error').map((d) => d.code), ['S604'], b);
  }
});

test('expect E: accuracy(PROBE.DATA or PROBE.GUARD): a bare fraction, in the semantic model and as one plan check per dataset naming the probe', () => {
  const text = 'probe lang = linear on "h.2.resid" over [german, french, english]\nprobe other = logistic on "h.1.resid" over [german, english]\n'
    + 'guard others = [french, english] within 1 nats\nedit e on demo {\n  select "h.2.mlp.c_fc:1"\n  scale 0\n  keep others\n}\n'
    + 'expect e: accuracy(lang.others) moves by <= 0.02\nexpect e: accuracy(lang.german) is <= 0.6\nexpect e: loss(german) rises by >= 1 nats\n';
  const a = check(text);
  assert.deepEqual(a.diagnostics.filter((d) => d.severity === 'error').map((d) => `${d.code} ${d.message}`), []);
  const file = path.join(FIXTURE, 'x.scalpel');
  const spec = specFromAnalysis(a, file);
  assert.deepEqual(spec.expectations.map((x) => [x.metric, x.change, x.comparison, x.bound, x.unit]), [
    [{ kind: 'accuracy', probe: 'lang', target: { kind: 'guard', name: 'others' } }, 'moves', '<=', 0.02, undefined],
    [{ kind: 'accuracy', probe: 'lang', target: { kind: 'dataset', name: 'german' } }, 'is', '<=', 0.6, undefined],
    [{ kind: 'loss', target: { kind: 'dataset', name: 'german' } }, 'rises', '>=', 1, 'nats'],
  ]);
  const plan = planFromAnalysis(a, file);
  assert.deepEqual(plan.expectations.map(({ origin, ...c }) => [c, origin?.line]), [
    [{ kind: 'expect', edit: 'e', dataset: 'french', change: 'moves', op: '<=', bound: 0.02, probe: 'lang', unit: 'fraction' }, 16],
    [{ kind: 'expect', edit: 'e', dataset: 'english', change: 'moves', op: '<=', bound: 0.02, probe: 'lang', unit: 'fraction' }, 16],
    [{ kind: 'expect', edit: 'e', dataset: 'german', change: 'is', op: '<=', bound: 0.6, probe: 'lang', unit: 'fraction' }, 17],
    [{ kind: 'expect', edit: 'e', dataset: 'german', change: 'rises', op: '>=', bound: 1, unit: 'nats' }, 18],
  ]);
  // Only the probes the checks read: `other` is for scalpel geometry.
  assert.deepEqual(plan.probes!.map(({ origin, ...p }) => [p, origin?.line]), [[{ name: 'lang', kind: 'mean-difference', point: 'h.2.resid', datasets: ['german', 'french', 'english'] }, 8]]);
  assert.equal(format(HEAD + text.replace('accuracy(lang.others)', 'accuracy( lang . others )')), HEAD + text);
});

test('accuracy completion: both metrics after "expect E:", probes after "accuracy(", the probe\'s datasets and guards of them after "lang.", no unit after the bound', () => {
  const text = 'probe lang = linear on "h.2.resid" over [german, french]\nguard others = [french, english] within 1 nats\nguard fr = [french] within 1 nats\n'
    + 'edit e on demo {\n  select "h.2.mlp.c_fc:1"\n  scale 0\n  keep others\n}\nexpect e: accuracy(lang.german) falls by >= 0.3 ';
  const a = check(text);
  const labels = (at: string, after = at.length) => completions(a, HEAD.length + text.indexOf(at) + after).items.map((i) => i.label);
  assert.deepEqual(labels('expect e: ', 'expect e: '.length), ['loss', 'accuracy']);
  assert.deepEqual(labels('accuracy(', 'accuracy('.length), ['lang']);
  assert.deepEqual(labels('lang.german', 'lang.'.length), ['german', 'french', 'fr'], 'not english, nor others (english is not one of its datasets)');
  assert.deepEqual(completions(a, (HEAD + text).length).items.map((i) => i.label).filter((l) => ['nats', 'bits', '%'].includes(l)), []);
  assert.match(JSON.stringify(hover(a, HEAD.length + text.indexOf('accuracy(') + 2)?.contents), /the probe trained on the base model/);
});
