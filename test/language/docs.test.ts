/**
 * docs/language.md agrees with the language's tables: its statistics and metrics tables list exactly the
 * statistics and metrics the checker accepts, with the same signature and meaning, and its keywords are the parser's.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { RESERVED } from '../../language/parser';
import { STATISTICS } from '../../language/statistics';
import { METRICS } from '../../language/metrics';

const LANGUAGE_MD = path.join(__dirname, '..', '..', 'docs', 'language.md');

/** The rows of the markdown table right after the line `heading`. */
function tableAfter(text: string, heading: string): string[] {
  const lines = text.split('\n');
  const at = lines.findIndex((l) => l.trim() === heading);
  assert.ok(at >= 0, `docs/language.md has the line "${heading}"`);
  const rows: string[] = [];
  for (let i = at + 1; i < lines.length; i++) {
    if (!lines[i].startsWith('|')) {
      if (rows.length) break;
      continue;
    }
    rows.push(lines[i]);
  }
  return rows.slice(2);
}

test("the statistics table of docs/language.md is the checker's table", () => {
  const rows = tableAfter(fs.readFileSync(LANGUAGE_MD, 'utf8'), 'Statistics (from the catalog\'s per-component metadata; `alignment` from a trained probe\'s figures):');
  const expected = Object.values(STATISTICS).map((d) => `| \`${d.signature}\` | ${d.doc.replace(/\|/g, '\\|')} |`);
  assert.deepEqual(rows, expected);
});

test("the metrics table of docs/language.md is the checker's table", () => {
  const rows = tableAfter(fs.readFileSync(LANGUAGE_MD, 'utf8'), 'Metrics:');
  const expected = Object.values(METRICS).map((d) => `| \`${d.signature}\` | ${d.doc.replace(/\|/g, '\\|')} |`);
  assert.deepEqual(rows, expected);
});

test("the keywords docs/language.md lists are the parser's reserved words", () => {
  const text = fs.readFileSync(LANGUAGE_MD, 'utf8').replace(/\n\s*/g, ' ');
  const listed = /Keywords \(`([^`]+)`\) cannot be names/.exec(text);
  assert.ok(listed, 'docs/language.md lists the keywords');
  assert.deepEqual(listed[1].split(' ').sort(), [...RESERVED].sort());
});
