import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ScalpelError } from '../../engine/errors';
import { catalogJsonChunks, readCatalogJson } from '../../engine/catalog/stream';
import { CATALOG_FORMAT, Catalog } from '../../engine/catalog/types';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scalpel-stream-'));
const LIMIT = 1000;

/** Streamed, in pieces of `readBytes` (or parsed whole, with `readBytes` undefined: the path of small files). */
function read(text: string, readBytes?: number): unknown {
  const file = path.join(dir, 'catalog.json');
  fs.writeFileSync(file, text);
  return readCatalogJson(file, file, LIMIT, readBytes ? { readBytes, wholeBelow: 0 } : {});
}

/** Strings that a scanner could misread: quotes, backslashes, brackets and commas inside strings, multi-byte UTF-8. */
const catalog: Catalog = {
  format: CATALOG_FORMAT,
  model: { file: 'model.onnx', sha256: 'ab' },
  method: { name: 'spd', params: { components: [1, 2], 'a"],[{': '\\' } },
  tensors: 'components.safetensors',
  modules: [{ path: 'h.0.mlp.c_fc', initializer: 'w', layout: 'in_out', dIn: 2, dOut: 3, components: 3 }],
  components: [0, 1, 2].map((index) => ({
    key: `h.0.mlp.c_fc:${index}`, module: 'h.0.mlp.c_fc', index,
    label: { text: ['German "quoted" \\ ], {', 'Würde ⟦des⟧ 🧠', 'plain'][index], source: 'auto' },
    contexts: [{ tag: 'de', text: `x${'é'.repeat(index)}]}`, activation: index / 3 }],
  })),
};

test('the streamed writer gives one component per line, and reads back as JSON.parse reads it', () => {
  const text = [...catalogJsonChunks(catalog)].join('');
  assert.deepEqual(JSON.parse(text), catalog);
  const lines = text.split('\n');
  assert.equal(lines.filter((l) => l.startsWith('  {"key"')).length, 3);
  assert.deepEqual(read(text), catalog);
  assert.equal([...catalogJsonChunks({ ...catalog, components: [] })].join(''), JSON.stringify({ ...catalog, components: [] }, null, 1) + '\n');
});

test('any JSON layout reads as JSON.parse reads it, whatever the size of the pieces it is read in', () => {
  const layouts = [
    [...catalogJsonChunks(catalog)].join(''),
    JSON.stringify(catalog),
    JSON.stringify(catalog, null, 2),
    JSON.stringify({ ...catalog, components: [] }),
    // The key escaped, repeated (the last wins), and "components" keys inside other values.
    JSON.stringify(catalog).replace('"components":[{', '"comp\\u006fnents" : [ {').replace('{"format"', '{"components":[7],"format"'),
    '{"format":"x","components":[ 1 , "a,]" , [2,[3]] , {"components":[4]} ]}',
    '{"components":[1],"components":5}',
    '[1, {"components": [2]}]',
    '"components"',
  ];
  for (const text of layouts) {
    for (const n of [1, 2, 3, 7, 64, 1 << 22, undefined]) assert.deepEqual(read(text, n), JSON.parse(text), `${text.slice(0, 60)} in pieces of ${n}`);
  }
});

test('invalid JSON is refused wherever JSON.parse refuses it, and a component too many is refused', () => {
  const bad = ['', '{"format": ', '{"components": [1,]}', '{"components": [,1]}', '{"components": [1 2]}', '{"components": [1]', '{"components": [1]]}',
    '{"components": [{"a":1}}]}', '{"a": }', '{"components": [1], }', '{"components": ["a]}'];
  for (const text of bad) {
    assert.throws(() => JSON.parse(text));
    for (const n of [1, 5, 1 << 22, undefined]) assert.throws(() => read(text, n), (e: unknown) => e instanceof ScalpelError && /^invalid JSON/.test(e.message), `${text} in pieces of ${n}`);
  }
  // Random one-character edits of a valid catalog: refused exactly when JSON.parse refuses them, else read the same.
  const text = JSON.stringify(catalog);
  let seed = 7;
  const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) % n);
  const alphabet = '{}[],:" \\a1';
  for (let k = 0; k < 400; k++) {
    const at = rand(text.length);
    // (Through UTF-8 and back: an edit between the halves of a surrogate pair becomes U+FFFD on disk.)
    const edited = Buffer.from(k % 2 ? text.slice(0, at) + text.slice(at + 1) : text.slice(0, at) + alphabet[rand(alphabet.length)] + text.slice(at)).toString('utf8');
    let expected: unknown;
    try {
      expected = JSON.parse(edited);
    } catch {
      assert.throws(() => read(edited, 1 + rand(40)), ScalpelError, edited);
      continue;
    }
    assert.deepEqual(read(edited, 1 + rand(40)), expected, edited);
  }
  const many = JSON.stringify({ components: Array.from({ length: LIMIT + 1 }, (_, i) => i) });
  assert.throws(() => read(many, 100), /more than 1000 components/);
  assert.throws(() => read(many), /more than 1000 components/);
});
