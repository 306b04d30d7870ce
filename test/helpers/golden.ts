/**
 * Golden files: `expectGolden(file, actual)` compares with the committed file and fails when it differs
 * or is missing; only with UPDATE_GOLDEN=1 does it (re)write the file, for review in the diff.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';

export const UPDATING = !!process.env.UPDATE_GOLDEN;

export function expectGolden(file: string, actual: string, what = path.basename(file)): void {
  if (UPDATING) {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, actual);
    return;
  }
  assert.ok(fs.existsSync(file), `${what}: the golden ${file} is missing (record it with UPDATE_GOLDEN=1 and review it)`);
  assert.equal(actual, fs.readFileSync(file, 'utf8'), `${what} differs from ${file} (UPDATE_GOLDEN=1 rewrites it; review the diff)`);
}
