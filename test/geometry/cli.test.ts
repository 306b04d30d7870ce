import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { scalpel } from '../helpers/cli';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'scalpel-geometry-cli-'));

test('scalpel geometry --json --dims 3: probe accuracy per tag, points JSON with three coordinates per row, an SVG plot', { timeout: 120000 }, () => {
  const out = path.join(tmp, 'points.json');
  const svg = path.join(tmp, 'plot.svg');
  const text = path.join(tmp, 'text.txt');
  fs.writeFileSync(text, 'Alle Menschen sind frei. All human beings are born free. Sie sind mit Vernunft begabt.');
  const r = scalpel(['geometry', '--model', 'models/polyglot', '--data', 'udhr:deu', '--data', 'udhr:eng', '--at', 'h.2.resid', '--at', 'embed',
    '--max-per-tag', '300', '--text', text, '--probe', 'mean-difference', '--dims', '3', '--json', '-o', out, '--svg', svg]);
  assert.equal(r.code, 0, r.stderr);
  const s = JSON.parse(r.stdout);
  assert.deepEqual(s.tags, ['de', 'en']);
  assert.deepEqual(s.points.map((p: { point: string }) => p.point), ['h.2.resid', 'embed']);
  assert.equal(s.bestPoint, 'h.2.resid');
  for (const t of s.points[0].perTag) assert.ok(t.base > 0.9, `${t.tag} at h.2.resid: ${t.base}`);
  assert.ok(s.points[0].perTag[0].aligned.length > 0, 'aligned with catalog components');
  for (const p of s.points) {
    assert.equal(p.explained.length, 3, `${p.point}: a share of variance per component`);
    assert.ok(p.explained[0] >= p.explained[1] && p.explained[1] >= p.explained[2] && p.explained[2] > 0, `${p.point}: ${p.explained}`);
  }
  const points = JSON.parse(fs.readFileSync(out, 'utf8'));
  assert.equal(points.dimensions, 3);
  assert.ok(points.points.every((p: { base: { coords: number[][] } }) => p.base.coords.every((c) => c.length === 3)));
  assert.equal(points.rows.tag.length, 600);
  assert.equal(points.points[0].base.coords.length, 600);
  assert.equal(points.sentences.length, 3);
  assert.equal(points.points[0].text.base.coords.length, 3);
  const plot = fs.readFileSync(svg, 'utf8');
  assert.match(plot, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  assert.equal((plot.match(/<polyline/g) ?? []).length, 2, 'the sentence path in each panel');
  assert.ok((plot.match(/<circle/g) ?? []).length >= 1200);
  assert.doesNotMatch(plot, /<script|href=/);
});

test('scalpel geometry --spec --edit: the base probe scored on the edited model\'s activations too', { timeout: 120000 }, () => {
  const r = scalpel(['geometry', '--spec', 'examples/one-component.scalpel', '--edit', 'off', '--data', 'german', '--data', 'english', '--at', 'h.3.resid', '--max-per-tag', '200', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const s = JSON.parse(r.stdout);
  assert.deepEqual(s.tags, ['german', 'english']);
  assert.deepEqual(s.edit, { name: 'off', scales: { off: 0 } });
  const p = s.points[0];
  assert.ok(p.accuracy.edited !== undefined && p.accuracy.editedRetrained !== undefined);
  for (const t of p.perTag) assert.ok(t.edited >= 0 && t.edited <= 1);
});

test('exit codes for CI: 1 when --min-accuracy is not met, 2 with one clear line for bad input', { timeout: 120000 }, () => {
  const low = scalpel(['geometry', '--model', 'models/polyglot', '--data', 'udhr:deu', '--data', 'udhr:eng', '--at', 'embed', '--max-per-tag', '200', '--probe', 'mean-difference', '--min-accuracy', '0.99']);
  assert.equal(low.code, 1, low.stderr);
  assert.match(low.stderr, /held-out probe accuracy below 0.99: de at embed/);
  const bad = scalpel(['geometry', '--model', 'models/polyglot', '--data', 'udhr:deu', '--data', 'udhr:eng', '--at', 'h.9.resid']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /^scalpel: no capture point "h\.9\.resid": use embed, h\.0\.resid, h\.1\.resid, h\.2\.resid, h\.3\.resid/);
  assert.equal(bad.stderr.trim().split('\n').length, 1);
  const one = scalpel(['geometry', '--model', 'models/polyglot', '--data', 'udhr:deu']);
  assert.equal(one.code, 2);
  assert.match(one.stderr, /at least two tagged datasets/);
  const kind = scalpel(['geometry', '--model', 'models/polyglot', '--data', 'udhr:deu', '--data', 'udhr:eng', '--probe', 'svm']);
  assert.equal(kind.code, 2);
  assert.match(kind.stderr, /--probe takes logistic or mean-difference, not "svm"/);
});

test('scalpel geometry --spec --probe NAME: the declared probe\'s kind, point and datasets', { timeout: 120000 }, () => {
  const r = scalpel(['geometry', '--spec', 'examples/remove-german.scalpel', '--probe', 'lang', '--max-per-tag', '150', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const s = JSON.parse(r.stdout);
  assert.deepEqual(s.tags, ['german', 'french', 'spanish', 'italian', 'english']);
  assert.deepEqual(s.points.map((p: { point: string; probe: string }) => [p.point, p.probe]), [['h.2.resid', 'mean-difference']]);
  // The edit (in block 2) cannot move block 0's output; it moves block 2's by more than a point of accuracy.
  const kept = scalpel(['geometry', '--spec', 'examples/one-component.scalpel', '--edit', 'off', '--data', 'german', '--data', 'english', '--at', 'h.0.resid', '--at', 'h.3.resid', '--max-per-tag', '150', '--probe', 'mean-difference', '--max-drop', '0.5']);
  assert.equal(kept.code, 0, kept.stderr);
  const moved = scalpel(['geometry', '--spec', 'examples/remove-german.scalpel', '--probe', 'lang', '--edit', 'no_german', '--max-per-tag', '150', '--max-drop', '0.01']);
  assert.equal(moved.code, 1, moved.stderr);
  assert.match(moved.stderr, /the edit moves what the probe reads by more than 0.01: .* at h\.2\.resid/);
  const unknown = scalpel(['geometry', '--spec', 'examples/remove-german.scalpel', '--probe', 'langs']);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /the spec declares no probe "langs" \(it has lang\)/);
  const both = scalpel(['geometry', '--spec', 'examples/remove-german.scalpel', '--probe', 'lang', '--data', 'german']);
  assert.equal(both.code, 2);
  assert.match(both.stderr, /probe lang names its point and datasets: drop --at and --data/);
});

test('a spec selecting by alignment(PROBE.DATA): scalpel eval trains the probe first (within each dataset\'s limit) and writes its figures; check then passes and the edit holds the most aligned component', { timeout: 300000 }, () => {
  const dir = fs.mkdtempSync(path.join(tmp, 'aligned-'));
  const demo = path.resolve('models/polyglot');
  const spec = path.join(dir, 'aligned.scalpel');
  fs.writeFileSync(spec, `model demo from "${demo}" {
  components "${demo}/components"
}
data german = udhr "deu" limit 400 tokens
data english = udhr "eng" limit 400 tokens
guard others = [english] within 5 nats
probe lang = linear on "h.2.resid" over [german, english]
edit aligned on demo {
  select top 1 by alignment(lang.german)
  scale 0
  keep others
}
`);
  const untrained = scalpel(['check', spec]);
  assert.equal(untrained.code, 1);
  assert.match(untrained.stdout + untrained.stderr, /S604: probe "lang" is not trained for this catalog yet/);
  const r = scalpel(['eval', spec, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const files = fs.readdirSync(path.join(dir, '.scalpel', 'probes'));
  assert.equal(files.length, 1);
  const figures = JSON.parse(fs.readFileSync(path.join(dir, '.scalpel', 'probes', files[0]), 'utf8'));
  assert.deepEqual(Object.keys(figures.accuracy), ['german', 'english']);
  assert.ok(figures.accuracy.german > 0.9, `German held-out accuracy ${figures.accuracy.german}`);
  const german = figures.alignment.german as Record<string, { read?: number[]; write?: number[] }>;
  const sided = (side: 'read' | 'write') => Object.keys(german).filter((m) => german[m][side]).sort();
  assert.deepEqual(sided('read'), ['h.3.attn.c_attn', 'h.3.mlp.c_fc'], 'h.2.resid is read by the next block\'s input projections, not by its attention output projection');
  assert.deepEqual(sided('write'), ['h.0.attn.c_proj', 'h.0.mlp.c_proj', 'h.1.attn.c_proj', 'h.1.mlp.c_proj', 'h.2.attn.c_proj', 'h.2.mlp.c_proj']);
  let best = { key: '', v: -1 };
  for (const [module, sides] of Object.entries(figures.alignment.german as Record<string, { read?: number[]; write?: number[] }>)) {
    for (const side of [sides.read, sides.write]) side?.forEach((c, i) => { if (Math.abs(c) > best.v) best = { key: `${module}:${i}`, v: Math.abs(c) }; });
  }
  assert.deepEqual(JSON.parse(r.stdout).edits[0].components, [best.key]);
  assert.equal(scalpel(['check', spec]).code, 0);
  // Each dataset's `limit 400 tokens` bounds what the probe was trained on: its figures say so, and `scalpel geometry
  // --probe` (which captures 400 tokens of each, below) trains the very same figures.
  assert.deepEqual(figures.definition.datasets.map((d: { name: string; limit?: number }) => [d.name, d.limit]), [['german', 400], ['english', 400]]);
  const g = scalpel(['geometry', '--spec', spec, '--probe', 'lang', '--json']);
  assert.equal(g.code, 0, g.stderr);
  assert.deepEqual(JSON.parse(g.stdout).tokens, { german: 400, english: 400 });
  assert.deepEqual(JSON.parse(fs.readFileSync(path.join(dir, '.scalpel', 'probes', files[0]), 'utf8')).accuracy, figures.accuracy);
  // Rows kept per dataset: the smaller of its limit and --max-per-tag.
  const rows = (maxPerTag: string) => JSON.parse(scalpel(['geometry', '--spec', spec, '--data', 'german', '--data', 'english', '--at', 'embed', '--max-per-tag', maxPerTag, '--json']).stdout).rows;
  assert.deepEqual([rows('1000'), rows('150')], [800, 300]);
});
