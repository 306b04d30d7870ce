/**
 * Editor assets agree with the language: every keyword the parser knows is highlighted by the
 * TextMate grammar, the grammar's patterns compile, and the manifest points at files that exist.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { BLOCK_KEYWORDS, CHANGES, MODEL_PROPS, OBJECTIVES, RESERVED, SOURCES, TOP_KEYWORDS } from '../../language/parser';

const ROOT = path.join(__dirname, '..', '..');
const read = (f: string) => JSON.parse(fs.readFileSync(path.join(ROOT, f), 'utf8'));

test('the TextMate grammar covers every keyword and its patterns compile', () => {
  const grammar = read('syntaxes/scalpel.tmLanguage.json');
  const patterns: string[] = [];
  const walk = (x: unknown) => {
    if (Array.isArray(x)) x.forEach(walk);
    else if (x && typeof x === 'object') {
      for (const [k, v] of Object.entries(x)) {
        if ((k === 'match' || k === 'begin' || k === 'end') && typeof v === 'string') patterns.push(v);
        else walk(v);
      }
    }
  };
  walk(grammar);
  for (const p of patterns) assert.doesNotThrow(() => new RegExp(p), p);
  const keywordRe = patterns.filter((p) => p.startsWith('\\b(')).map((p) => new RegExp(`^(?:${p})$`));
  for (const word of [...RESERVED, ...TOP_KEYWORDS, ...BLOCK_KEYWORDS, ...MODEL_PROPS, ...SOURCES, ...CHANGES, ...OBJECTIVES, 'nats', 'bits']) {
    assert.ok(keywordRe.some((re) => re.test(word)), `the grammar highlights "${word}"`);
  }
});

test('the manifest contributes the language, its configuration, grammar and icon', () => {
  const pkg = read('package.json');
  const lang = pkg.contributes.languages.find((l: { id: string }) => l.id === 'scalpel');
  assert.deepEqual(lang.extensions, ['.scalpel']);
  for (const f of [lang.configuration, lang.icon.light, lang.icon.dark, pkg.contributes.grammars.find((g: { language: string }) => g.language === 'scalpel').path]) {
    assert.ok(fs.existsSync(path.join(ROOT, f)), `${f} exists`);
  }
  const conf = read(lang.configuration);
  assert.equal(conf.comments.lineComment, '#');
});
