/**
 * Every spec example in README.md and docs/*.md, run. A fenced block whose info string is
 *   - `scalpel`: a complete spec: `scalpel check --strict` reports no error or warning and `scalpel eval` passes its every check;
 *   - `scalpel fragment`: statements shown on their own: `scalpel check` finds no syntax error and no error of its own
 *     (only names and files declared elsewhere: S101, S201);
 *   - `scalpel syntax`: a grammar template with placeholders in capitals, not a spec: not run.
 * Each runs from a copy beside a link to models/, so the doc's relative paths resolve as they do from the doc.
 * Also: the model listing docs/debugger.md shows is the one the demo DAP transcript records.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { ROOT, scalpel } from '../helpers/cli';

const KINDS = ['run', 'fragment', 'syntax'] as const;
type Kind = (typeof KINDS)[number];

interface Example {
  doc: string;
  line: number;
  kind: Kind;
  text: string;
}

/** The `scalpel` blocks of a markdown file, with the line each starts on. */
function specExamples(doc: string): Example[] {
  const lines = fs.readFileSync(path.join(ROOT, doc), 'utf8').split('\n');
  const out: Example[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```scalpel(?:\s+(\S+))?\s*$/.exec(lines[i]);
    if (!open) continue;
    const kind = (open[1] ?? 'run') as Kind;
    assert.ok(KINDS.includes(kind), `${doc}:${i + 1}: unknown example kind "${open[1]}" (scalpel, scalpel fragment or scalpel syntax)`);
    const end = lines.indexOf('```', i + 1);
    assert.ok(end > i, `${doc}:${i + 1}: unclosed block`);
    out.push({ doc, line: i + 1, kind, text: lines.slice(i + 1, end).join('\n') + '\n' });
    i = end;
  }
  return out;
}

const DOCS = ['README.md', ...fs.readdirSync(path.join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
const examples = DOCS.flatMap(specExamples);

const sandbox = fs.mkdtempSync(path.join(os.tmpdir(), 'scalpel-doc-examples-'));
fs.symlinkSync(path.join(ROOT, 'models'), path.join(sandbox, 'models'));

/** The example as a file where the doc is, relative to models/. */
function place(e: Example): string {
  const file = path.join(sandbox, path.dirname(e.doc), `${path.basename(e.doc, '.md')}-${e.line}.scalpel`);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, e.text);
  return file;
}

/** `file:line:col: severity CODE: message` lines of `scalpel check`. */
const findings = (stdout: string) => stdout.split('\n').filter(Boolean).map((l) => {
  const m = / (error|warning|info) (S\d{3}): /.exec(l);
  assert.ok(m, `not a finding: ${l}`);
  return { severity: m[1], code: m[2], line: l };
});

test('the docs show spec examples, each marked as a spec, a fragment or a syntax template', () => {
  assert.ok(examples.filter((e) => e.kind === 'run').length >= 2, 'docs/language.md has complete examples');
  assert.ok(examples.filter((e) => e.kind === 'fragment').length >= 1);
});

for (const e of examples.filter((x) => x.kind === 'fragment')) {
  test(`${e.doc}:${e.line}: the fragment checks (no syntax error, no error but names and files from elsewhere)`, () => {
    const r = scalpel(['check', place(e)]);
    const wrong = findings(r.stdout).filter((f) => f.code.startsWith('S0') || (f.severity === 'error' && f.code !== 'S101' && f.code !== 'S201'));
    assert.deepEqual(wrong.map((f) => f.line), []);
  });
}

for (const e of examples.filter((x) => x.kind === 'run')) {
  test(`${e.doc}:${e.line}: the spec checks clean and scalpel eval passes its every check`, { timeout: 300_000 }, () => {
    const file = place(e);
    const check = scalpel(['check', '--strict', file]);
    assert.deepEqual(findings(check.stdout).filter((f) => f.severity !== 'info').map((f) => f.line), [], 'no error or warning');
    assert.equal(check.code, 0, check.stderr);
    const r = scalpel(['eval', file, '--json', '--threads', '1']);
    assert.ok(r.stdout, `no report (exit ${r.code}): ${r.stderr}`);
    const report = JSON.parse(r.stdout) as { pass: boolean; edits: { checks: { pass: boolean; message: string }[] }[] };
    const checks = report.edits.flatMap((x) => x.checks);
    assert.ok(checks.length > 0, 'the example checks something');
    assert.deepEqual(checks.filter((c) => !c.pass).map((c) => c.message), []);
    assert.equal(r.code, 0, r.stderr);
  });
}

test("docs/debugger.md's listing is the demo model's, as the demo DAP transcript records it", () => {
  const doc = fs.readFileSync(path.join(ROOT, 'docs', 'debugger.md'), 'utf8');
  const block = /```\n(model polyglot[^\n]*\n[\s\S]*?)```/.exec(doc);
  assert.ok(block, 'docs/debugger.md shows the listing');
  const recorded = fs.readFileSync(path.join(ROOT, 'test', 'debugger', 'golden', 'demo.txt'), 'utf8').split('\n').filter((l) => l.startsWith('  | ')).map((l) => l.slice(4));
  const shown = block[1].split('\n').filter((l) => l && !l.includes('…')).map((l) => l.replace(/\s+\(with a catalog: [^)]*\)$/, ''));
  for (const l of shown) assert.ok(recorded.includes(l), `"${l}" is not a line of the recorded listing`);
});
