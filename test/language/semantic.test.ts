/**
 * The semantic model the edits engine consumes: loadSpec on a valid spec, its resolved paths and
 * names, selector resolution against the fixture catalog, and one located error for a broken spec.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { readCatalogMetadata } from '../../engine/catalog/read';
import { ScalpelError } from '../../engine/errors';
import { indexCatalog, selectComponents } from '../../language/catalog';
import { loadPlan } from '../../language/plan';
import { loadSpec, targetDatasets, toleranceNats } from '../../language/semantic';
import type { SelectorSpec } from '../../language/spec';

const FIXTURE = path.join(__dirname, '..', 'fixtures', 'lang');

test('loadSpec gives models, datasets, guards, edits and expectations with resolved names and paths', () => {
  const spec = loadSpec(path.join(FIXTURE, 'demo.scalpel'));
  assert.deepEqual(spec.models.map((m) => [m.name, m.file, m.tokenizer, m.components, m.sha256?.slice(0, 8)]), [
    ['demo', path.join(FIXTURE, 'model.onnx'), path.join(FIXTURE, 'tokenizer.json'), path.join(FIXTURE, 'components'), '24882825'],
  ]);
  const german = spec.datasets.find((d) => d.name === 'german')!;
  assert.deepEqual(german.source, { kind: 'udhr', code: 'deu' });
  assert.equal(german.tag, 'de');
  assert.deepEqual(spec.datasets.find((d) => d.name === 'tune_de'), { name: 'tune_de', source: { kind: 'inline', text: 'Die Würde des Menschen' }, maxTokens: 64, at: { line: 9, column: 1 } });
  assert.deepEqual(spec.guards, [{ name: 'others', datasets: ['french', 'spanish', 'italian', 'english'], threshold: 0.05, unit: 'nats', at: { line: 14, column: 1 } }]);
  const [edit] = spec.edits;
  assert.equal(edit.model, 'demo');
  assert.deepEqual(edit.scale, { kind: 'tune', range: [-4, 1], objective: 'maximize', metric: { kind: 'loss', target: { kind: 'dataset', name: 'tune_de' } }, data: ['tune_de'] });
  assert.deepEqual(edit.keep, ['others']);
  assert.deepEqual(edit.selectors[1], {
    kind: 'top', k: 2, by: { kind: 'selectivity', data: 'german', versus: ['french', 'spanish', 'italian', 'english'] }, where: { kind: 'label', pattern: 'german', flags: 'i' },
  });
  assert.deepEqual(spec.expectations.map((e) => [e.edit, e.metric.target, e.change, e.comparison, e.bound, e.unit]), [
    ['no_german', { kind: 'dataset', name: 'german' }, 'rises', '>=', 2, 'nats'],
    ['no_german', { kind: 'guard', name: 'others' }, 'moves', '<=', 0.05, 'nats'],
  ]);
  assert.deepEqual(targetDatasets(spec, { kind: 'guard', name: 'others' }), ['french', 'spanish', 'italian', 'english']);
});

test('selectors resolve against the catalog: key, top-k by selectivity among a label match, module minus key', () => {
  const spec = loadSpec(path.join(FIXTURE, 'demo.scalpel'));
  const catalog = readCatalogMetadata(path.join(FIXTURE, 'components'));
  const tags = new Map(spec.datasets.map((d) => [d.name, d.tag]));
  const resolve = (sel: SelectorSpec) => selectComponents(indexCatalog(catalog), sel, (d) => tags.get(d));
  // Among the four /german/i components, the two most selective for German against the others.
  assert.deepEqual(resolve(spec.edits[0].selectors[1]), ['h.0.mlp.c_fc:30', 'h.2.mlp.c_fc:41']);
  // The checker's resolution of the edit's selectors, carried by the spec.
  assert.deepEqual(spec.edits[0].components, ['h.0.mlp.c_fc:30', 'h.2.mlp.c_fc:41']);
  const minus = resolve({ kind: 'minus', left: { kind: 'module', pattern: 'h.*.attn.c_proj' }, right: { kind: 'key', key: 'h.1.attn.c_proj:2' } });
  assert.equal(minus.length, 4 * 4 - 1);
  assert.ok(!minus.includes('h.1.attn.c_proj:2') && minus.includes('h.3.attn.c_proj:3'));
  const top = resolve({ kind: 'top', k: 3, by: { kind: 'norm' } });
  const norms = catalog.components.map((c) => c.norm!).sort((a, b) => b - a);
  // Results come in catalog order, not rank order.
  assert.deepEqual(top.map((k) => catalog.components.find((c) => c.key === k)!.norm!).sort((a, b) => b - a), norms.slice(0, 3));
});

test('loadSpec throws one ScalpelError at the first error, with line and column', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scalpel-spec-'));
  try {
    const file = path.join(dir, 'bad.scalpel');
    fs.writeFileSync(file, `data german = udhr "deu"\nguard g = [german, frnch] within 1 nats\n`);
    assert.throws(() => loadSpec(file), (err: unknown) => {
      assert.ok(err instanceof ScalpelError);
      assert.equal(err.format(), `${file}:2:20: S101: unknown name "frnch": expected a dataset`);
      return true;
    });
    assert.throws(() => loadSpec(path.join(dir, 'missing.scalpel')), /cannot read spec: no such file/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('tolerances convert to nats', () => {
  assert.equal(toleranceNats(0.05, 'nats', 3), 0.05);
  assert.ok(Math.abs(toleranceNats(1, 'bits', 3) - Math.LN2) < 1e-12);
  assert.ok(Math.abs(toleranceNats(5, '%', 2) - 0.1) < 1e-12);
});

test('loadPlan plans the given text without reading the spec file, with the checker\'s keys and catalog', () => {
  const text = fs.readFileSync(path.join(FIXTURE, 'demo.scalpel'), 'utf8');
  // A path that does not exist: only its folder matters (relative paths resolve against it).
  const unsaved = path.join(FIXTURE, 'unsaved-never-written.scalpel');
  const plan = loadPlan(unsaved, text);
  assert.equal(plan.specFile, unsaved);
  assert.equal(plan.specText, text);
  assert.deepEqual(plan.edits.map((e) => [e.name, e.components]), [['no_german', ['h.0.mlp.c_fc:30', 'h.2.mlp.c_fc:41']]]);
  assert.equal(plan.model.catalog?.dir, path.join(FIXTURE, 'components'));
  // The same plan as from the file on disk, but for where it says the spec is.
  const placeless = (p: object) => JSON.stringify(p, (k, v) => (k === 'file' || k === 'specFile' ? undefined : v));
  assert.equal(placeless(plan), placeless(loadPlan(path.join(FIXTURE, 'demo.scalpel'))));
  assert.throws(() => loadPlan(unsaved, `${text}\nguard g = [german, frnch] within 1 nats\n`), (e: unknown) => e instanceof ScalpelError && e.file === unsaved && e.position?.line !== undefined);
});

test('a goal reaches the plan: on its guard and on its own expectation only', () => {
  const text = fs.readFileSync(path.join(FIXTURE, 'demo.scalpel'), 'utf8')
    .replace('within 0.05 nats', 'within 0.05 nats, goal 0.01 nats')
    .replace(/^(expect no_german: loss\(german\) rises by >= \S+ nats)$/m, '$1, goal 6 nats');
  const plan = loadPlan(path.join(FIXTURE, 'unsaved-never-written.scalpel'), text);
  assert.equal(plan.guards[0].goal, 0.01);
  assert.deepEqual(plan.expectations.map((x) => [x.dataset, x.change, x.goal]), [['german', 'rises', 6], ...['french', 'spanish', 'italian', 'english'].map((d) => [d, 'moves', undefined])]);
  assert.equal(loadPlan(path.join(FIXTURE, 'demo.scalpel')).guards[0].goal, undefined, 'no goal written, none planned');
});
