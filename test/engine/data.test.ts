import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { datasetHash, loadDataset, parseDataArg, splitDocuments, udhrDocuments } from '../../engine/data';
import { ScalpelError } from '../../engine/errors';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'scalpel-data-'));

test('data arguments parse into sources', () => {
  assert.deepEqual(parseDataArg('udhr:deu'), { kind: 'udhr', code: 'deu' });
  assert.deepEqual(parseDataArg('inline:Die Würde: des'), { kind: 'inline', text: 'Die Würde: des' });
  assert.deepEqual(parseDataArg('notes.txt'), { kind: 'text', file: 'notes.txt' });
  assert.deepEqual(parseDataArg('rows.jsonl'), { kind: 'jsonl', file: 'rows.jsonl', field: 'text', where: {} });
  assert.deepEqual(parseDataArg('jsonl:rows.jsonl?text=body&lang=de'), { kind: 'jsonl', file: 'rows.jsonl', field: 'body', where: { lang: 'de' } });
});

test('UDHR: parallel documents per language, tagged, with the same article count', () => {
  const counts = ['deu', 'fra', 'spa', 'ita', 'eng'].map((c) => udhrDocuments(c));
  for (const docs of counts) assert.equal(docs.length, counts[0].length);
  assert.equal(counts[0].length, 31); // preamble + 30 articles
  assert.equal(counts[0][0].tags.lang, 'de');
  assert.match(counts[0][1].text, /Alle Menschen sind frei und gleich an Würde und Rechten geboren/);
  assert.equal(counts[4][0].tags.lang, 'en');
  assert.doesNotMatch(counts[1].map((d) => d.text).join(' '), /<|&[a-z]+;/);
  assert.throws(() => udhrDocuments('klingon'), (e: unknown) => e instanceof ScalpelError && /unknown UDHR code "klingon"/.test(e.message));
  assert.throws(() => udhrDocuments('../../package'), /unknown UDHR code/);
});

test('JSONL: text field, tags, filters, and errors with the line number', () => {
  const dir = tmp();
  const file = path.join(dir, 'rows.jsonl');
  fs.writeFileSync(file, ['{"text":"Hallo Welt","lang":"de"}', '', '{"text":"Hello world","lang":"en","n":3}', '{"body":"x","lang":"de"}'].join('\n'));
  const en = loadDataset('en', parseDataArg(`jsonl:rows.jsonl?lang=en`), dir);
  assert.deepEqual(en.documents, [{ text: 'Hello world', tags: { lang: 'en', n: '3' } }]);
  assert.throws(
    () => loadDataset('all', parseDataArg('jsonl:rows.jsonl'), dir),
    (e: unknown) => e instanceof ScalpelError && e.format() === 'rows.jsonl:4:1: field "text" is missing or not a string',
  );
  fs.writeFileSync(file, '{"text":"ok"}\n{oops}\n');
  assert.throws(() => loadDataset('bad', parseDataArg('jsonl:rows.jsonl'), dir), (e: unknown) => e instanceof ScalpelError && e.position?.line === 2);
  assert.throws(() => loadDataset('missing', parseDataArg('nope.txt'), dir), (e: unknown) => e instanceof ScalpelError && e.format() === 'nope.txt: cannot read dataset: no such file');
});

test('plain text splits on blank lines; splits and hashes are deterministic', () => {
  const dir = tmp();
  fs.writeFileSync(path.join(dir, 'a.txt'), 'one\nline two\n\n\nthree\n\n');
  const ds = loadDataset('a', parseDataArg('a.txt'), dir);
  assert.deepEqual(ds.documents.map((d) => d.text), ['one\nline two', 'three']);
  const docs = udhrDocuments('eng');
  const s1 = splitDocuments(docs, 0.3, 1);
  const s2 = splitDocuments([...docs].reverse(), 0.3, 1);
  assert.deepEqual(new Set(s1.heldout.map((d) => d.text)), new Set(s2.heldout.map((d) => d.text)));
  assert.equal(s1.train.length + s1.heldout.length, docs.length);
  assert.ok(s1.heldout.length > 0 && s1.train.length > 0);
  assert.equal(datasetHash(ds), datasetHash(loadDataset('b', parseDataArg('a.txt'), dir)));
  assert.notEqual(datasetHash(ds), datasetHash({ ...ds, documents: ds.documents.slice(1) }));
});
