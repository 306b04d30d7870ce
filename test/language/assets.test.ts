/**
 * Editor assets agree with the language: every keyword the parser knows is highlighted by the
 * TextMate grammar, the grammar's patterns compile, and the manifest points at files that exist.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { BLOCK_KEYWORDS, CHANGES, MODEL_PROPS, OBJECTIVES, RESERVED, SOURCES, TOP_KEYWORDS, UNITS } from '../../language/parser';
import { STATISTIC_NAMES } from '../../language/statistics';
import { METRIC_NAMES } from '../../language/metrics';
import { VIEWS } from '../../extension/protocol';

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
  for (const word of [...RESERVED, ...TOP_KEYWORDS, ...BLOCK_KEYWORDS, ...MODEL_PROPS, ...SOURCES, ...CHANGES, ...OBJECTIVES, ...UNITS.filter((u) => /^\w+$/.test(u))]) {
    assert.ok(keywordRe.some((re) => re.test(word)), `the grammar highlights "${word}"`);
  }
  // Statistics are functions wherever they stand (after `by`, or called), so a new one needs no grammar change.
  const fn = (grammar.repository.function.patterns as { match: string }[]).map((p) => new RegExp(p.match, 'g'));
  const functionsIn = (line: string) => fn.flatMap((re) => [...line.matchAll(re)].map((m) => m[1]));
  for (const name of [...STATISTIC_NAMES, ...METRIC_NAMES]) {
    assert.ok(!keywordRe.some((re) => re.test(name)), `no keyword pattern claims "${name}"`);
    assert.ok(functionsIn(`  select top 1 by ${name}`).includes(name), `"by ${name}" is a function`);
    assert.ok(functionsIn(`  select top 1 by ${name}(german, others)`).includes(name), `"${name}(…)" is a function`);
  }
  assert.deepEqual(functionsIn('expect e: loss(german) rises by >= 2 nats'), ['loss']);
  assert.deepEqual(functionsIn('expect e: accuracy(lang.german) falls by >= 0.3'), ['accuracy']);
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

test("the manifest's webview activation events are the extension's view types", () => {
  const events: string[] = read('package.json').activationEvents.filter((e: string) => e.startsWith('onWebviewPanel:'));
  assert.deepEqual(events.map((e) => e.slice('onWebviewPanel:'.length)).sort(), Object.values(VIEWS).map((v) => v.viewType).sort());
});
