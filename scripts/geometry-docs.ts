/**
 * Regenerates the measured part of docs/geometry.md (between the `measured` markers) and its plot,
 * docs/geometry-demo.svg, by running the command the page shows: `npm run docs:geometry`.
 * The summary it rendered from is kept as docs/geometry-demo.json, so a test can hold the page to it.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { GEOMETRY_DEMO_ARGS, renderMeasured, replaceMeasured } from './geometry-render';

const r = spawnSync(process.execPath, ['bin/scalpel.js', ...GEOMETRY_DEMO_ARGS, '--json'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
if (r.status !== 0) {
  process.stderr.write(`scalpel geometry exited with ${r.status}\n`);
  process.exit(1);
}
const summary = JSON.parse(r.stdout);
// Relative to the repository, so the committed file does not name the checkout it was made in.
summary.model = path.relative(process.cwd(), summary.model);
fs.writeFileSync('docs/geometry-demo.json', JSON.stringify(summary, null, 2) + '\n');
const page = fs.readFileSync('docs/geometry.md', 'utf8');
fs.writeFileSync('docs/geometry.md', replaceMeasured(page, renderMeasured(summary)));
process.stdout.write('wrote docs/geometry.md, docs/geometry-demo.json, docs/geometry-demo.svg\n');
