import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ScalpelError } from '../../engine/errors';
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

test('token text: fragments of a multi-byte character show their bytes; empty input decodes to ""', () => {
  const tok = loadTokenizer('models/polyglot/tokenizer.json');
  assert.equal(tok.decode([]), '');
  // Byte tokens 1..256 stand for bytes 0..255: 0xC3 alone is half of "ü".
  assert.equal(tok.tokenText(1 + 0xc3), '\\xC3');
  assert.equal(tok.tokenText(1 + 0x41), 'A');
  // A character the vocabulary splits into byte pieces: each piece readable, together its UTF-8 bytes.
  const ids = tok.encode('漢');
  const texts = ids.map((i) => tok.tokenText(i));
  assert.ok(ids.length > 1 && texts.every((t) => !t.includes('\ufffd')), texts.join(' '));
  const bytes = texts.join('').replace(/\\x([0-9A-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
  assert.equal(Buffer.from(bytes, 'latin1').toString('utf8'), '漢');
});

test('text a vocabulary cannot cover is an error, not a silent token 0', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scalpel-wl-'));
  const file = path.join(dir, 'tokenizer.json');
  fs.writeFileSync(file, JSON.stringify({
    version: '1.0',
    model: { type: 'WordLevel', vocab: { hello: 0, world: 1 } },
    pre_tokenizer: { type: 'Whitespace' },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    normalizer: null,
    post_processor: null,
    added_tokens: [],
  }));
  const tok = loadTokenizer(file);
  assert.deepEqual(tok.encode('hello world'), [0, 1]);
  assert.throws(() => tok.encode('hello there'), (e: unknown) => e instanceof ScalpelError && e.file === file && /no token for "there"/.test(e.message));
});
