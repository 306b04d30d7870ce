/**
 * A bounded run of the spec fuzzer (test/language/fuzz.ts; `npm run fuzz` runs 100,000): a few
 * thousand hostile mutations of the golden and example specs, none of which may make a step of the
 * language server throw, take over a second of CPU, or make reparse disagree with a fresh parse.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fuzzSpecs } from './fuzz';

test('fuzzed specs: no step throws or takes over a second, reparse agrees with parse', () => {
  const c = fuzzSpecs(2000, 14);
  assert.equal(c.inputs, 2000);
  assert.ok(c.largestInput > 50_000, `the mutations reach large inputs (largest ${c.largestInput} characters)`);
  assert.deepEqual(c.failures, []);
  assert.equal(c.throws, 0);
  assert.equal(c.slow, 0);
  assert.equal(c.incrementalMismatches, 0);
});
