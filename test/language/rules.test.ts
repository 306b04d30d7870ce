/** The seam between resolution (checker.ts) and the validation rules (rules/). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { CODES, Code } from '../../language/diagnostics';
import { RULES } from '../../language/rules';

test('every warning and info of the checker comes from a registered rule; resolution reports errors only', () => {
  const ruled = new Set(RULES.flatMap((r) => r.codes));
  // S000 (internal error) and S009 (too many problems) are the server's and the diagnostics cap's.
  const lint = (Object.keys(CODES) as Code[]).filter((c) => CODES[c][0] !== 'error' && c !== 'S000' && c !== 'S009');
  assert.deepEqual(lint.filter((c) => !ruled.has(c)), []);
  const resolution = fs.readFileSync('language/checker.ts', 'utf8');
  assert.deepEqual(lint.filter((c) => resolution.includes(`'${c}'`)), []);
  for (const c of ruled) assert.ok(c in CODES, c);
});
