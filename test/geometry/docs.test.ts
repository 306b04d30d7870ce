import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { GEOMETRY_DEMO_ARGS, measuredPart, renderMeasured } from '../../scripts/geometry-render';
import { scalpel } from '../helpers/cli';

const page = fs.readFileSync('docs/geometry.md', 'utf8');

test('docs/geometry.md shows the figures of its own generator run (npm run docs:geometry), and that run\'s command', () => {
  const summary = JSON.parse(fs.readFileSync('docs/geometry-demo.json', 'utf8'));
  assert.equal(measuredPart(page), renderMeasured(summary), 'the measured part is what docs/geometry-demo.json renders to: rerun npm run docs:geometry');
  assert.ok(page.includes(`scalpel ${GEOMETRY_DEMO_ARGS.join(' ')} --json`), 'the page shows the command the generator runs');
  const svg = fs.readFileSync('docs/geometry-demo.svg', 'utf8');
  assert.equal((svg.match(/<g>/g) ?? []).length, summary.points.length, 'one panel per point of the summary');
});

test('the page\'s first example runs as shown (the plot path moved to a temporary folder)', { timeout: 120000 }, () => {
  const line = page.split('\n').find((l) => l.startsWith('scalpel geometry --model'))!;
  const args = line.replace(/^scalpel /, '').split(/\s+/);
  const svg = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'scalpel-geometry-docs-')), 'plot.svg');
  args[args.indexOf('--svg') + 1] = svg;
  const r = scalpel([...args, '--max-per-tag', '300']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^point\s+width\s+PC1\+PC2\s+accuracy\s+de\s+fr\s+en/);
  assert.ok(fs.statSync(svg).size > 1000);
});
