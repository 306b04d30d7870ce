import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { byteTokenizer, loadTokenizer } from '../../engine/tokenizer';

test('tokenizers.js encodes exactly as the Python BPE the demo model was trained with', () => {
  // Ids written by lab/tokenizer_parity_fixture.py with lab/bpe.py.
  const cases: { text: string; ids: number[] }[] = JSON.parse(fs.readFileSync('test/fixtures/tokenizer-parity.json', 'utf8'));
  const tok = loadTokenizer('models/polyglot/tokenizer.json');
  assert.equal(tok.vocabSize, 4096);
  assert.equal(tok.bos, 0);
  for (const { text, ids } of cases) {
    assert.deepEqual(tok.encode(text), ids, text);
    assert.equal(tok.decode(ids), text.normalize('NFC'));
  }
  assert.equal(tok.tokenText(tok.encode(' Würde')[0]).startsWith(' '), true);
});

test('the byte-level tokenizer round-trips any UTF-8 text', () => {
  const tok = byteTokenizer();
  const text = 'Grüße, 漢字 🙂';
  const ids = tok.encode(text);
  assert.equal(ids.length, Buffer.byteLength(text));
  assert.ok(ids.every((i) => i >= 0 && i < 256));
  assert.equal(tok.decode(ids), text);
  assert.equal(tok.vocabSize, 256);
  assert.equal(tok.bos, undefined);
});
