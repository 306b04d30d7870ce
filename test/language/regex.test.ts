import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { RE2JS } from 're2js';
import { compileLabelRegex } from '../../language/regex';

test('plain-word label patterns match exactly what RE2 matches, case folding included', () => {
  const texts = ['German function words', 'GERMAN', 'germ', 'the KELVIN sign: \u212Aelvin', 'long s: \u017Fpanish', 'Spanish', 'İtalian dotted', 'italian', 'digits 0-9', 'Digits', 'french and german', '', 'ß and ss'];
  const patterns = ['german', 'German', 'kelvin', 'spanish', 'italian', 'digits', 'and german', 'ss', 'S'];
  for (const source of patterns) {
    for (const flags of ['', 'i', 'iu', 'ims']) {
      const fast = compileLabelRegex(source, flags);
      assert.notEqual(typeof fast, 'string');
      const re2 = RE2JS.compile(source, flags.includes('i') ? RE2JS.CASE_INSENSITIVE : 0);
      for (const text of texts) assert.equal((fast as { test(t: string): boolean }).test(text), re2.test(text), `/${source}/${flags} on ${JSON.stringify(text)}`);
    }
  }
});
