/** The shipped examples open clean: no error and no warning from the checker (information notes are fine). */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { analyze, defaultEnv } from '../../language/checker';
import { formatDiagnostic } from '../../language/diagnostics';

const EXAMPLES = path.join(__dirname, '..', '..', 'examples');

for (const name of fs.readdirSync(EXAMPLES).filter((f) => f.endsWith('.scalpel')).sort()) {
  test(`examples/${name} has no errors or warnings`, () => {
    const file = path.join(EXAMPLES, name);
    const a = analyze(fs.readFileSync(file, 'utf8'), defaultEnv(EXAMPLES));
    assert.deepEqual(a.diagnostics.filter((d) => d.severity !== 'info').map((d) => formatDiagnostic(name, a.lines, d)), []);
  });
}
