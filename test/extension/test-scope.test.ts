/** Test Explorer's scope: which spec paths (relative to the workspace folder) it lists. */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { DEFAULT_EXCLUDE, globRegExp, testScope } from '../../extension/test-scope';

test('VS Code globs: ** spans folders, * and ? stay within a name, braces and classes', () => {
  // glob, path, whether it matches
  const cases = `
    test/**             test/language/golden/a.scalpel   yes
    test/**             examples/test/a.scalpel          no
    **/node_modules/**  node_modules/x/a.scalpel         yes
    **/node_modules/**  a/node_modules/x/a.scalpel       yes
    **/*.scalpel        a.scalpel                        yes
    *.scalpel           examples/a.scalpel               no
    examples/?.scalpel  examples/a.scalpel               yes
    examples/?.scalpel  examples/ab.scalpel              no
    {a,b}/*.scalpel     b/x.scalpel                      yes
    {a,b}/*.scalpel     c/x.scalpel                      no
    [ab]/x.scalpel      a/x.scalpel                      yes
    [!ab]/x.scalpel     a/x.scalpel                      no
    a.b/x               aXb/x                            no`.trim().split('\n').map((l) => l.trim().split(/\s+/));
  for (const [glob, p, expected] of cases) assert.equal(globRegExp(glob).test(p), expected === 'yes', `${glob} on ${p}`);
});

test('the default leaves out the test fixtures and node_modules, not the examples', () => {
  const inScope = testScope(DEFAULT_EXCLUDE);
  assert.equal(inScope('examples/remove-german.scalpel'), true);
  assert.equal(inScope('specs/mine.scalpel'), true);
  assert.equal(inScope('test/language/golden/completion.scalpel'), false);
  assert.equal(inScope('node_modules/pkg/a.scalpel'), false);
  // On this repository: every spec under test/ is out, every example in.
  const root = path.join(__dirname, '..', '..');
  const specs = fs.readdirSync(root, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.scalpel') && !f.startsWith('node_modules'));
  const listed = specs.filter(inScope).sort();
  assert.ok(specs.some((f) => f.startsWith('test/')), 'the repository has fixture specs under test/');
  assert.deepEqual(listed, specs.filter((f) => f.startsWith('examples/')).sort());
});

test('files.exclude is honoured: a true pattern excludes, also through a folder; false and conditions do not', () => {
  const inScope = testScope([], { '**/drafts': true, 'old/*.scalpel': true, 'kept/**': false, '**/*.scalpel.bak': { when: '$(basename)' } });
  assert.equal(inScope('drafts/a.scalpel'), false, 'a folder pattern excludes what is in it');
  assert.equal(inScope('x/drafts/y/a.scalpel'), false);
  assert.equal(inScope('old/a.scalpel'), false);
  assert.equal(inScope('kept/a.scalpel'), true);
  assert.equal(inScope('a.scalpel'), true);
  // The user's own setting replaces the default.
  assert.equal(testScope(['specs/wip/**'])('test/a.scalpel'), true);
  assert.equal(testScope(['specs/wip/**'])('specs/wip/a.scalpel'), false);
});

test('package.json declares the setting with the same default', () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8'));
  assert.deepEqual(pkg.contributes.configuration.properties['scalpel.testing.exclude'].default, DEFAULT_EXCLUDE);
});
