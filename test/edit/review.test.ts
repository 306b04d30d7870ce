import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { launchChromium } from '../helpers/chromium';
import { scalpel as run } from '../helpers/cli';
import { writeFixture, writeSpec } from './fixture';

const scalpel = (...args: string[]) => run(args, { source: true });

test('scalpel review: a self-contained page whose Monaco diff editor renders the spec offline', async () => {
  if (!fs.existsSync('dist/review/page.js')) spawnSync(process.execPath, ['scripts/build.mjs'], { stdio: 'inherit' });
  const fx = writeFixture();
  const spec = path.join(fx.dir, 'r.scalpel');
  // Text that must not break out of the page: a comment opener and a script end inside the embedded spec.
  fs.writeFileSync(spec, `# <!-- </script><script>window.pwned = 1</script>
model tiny from "." { components "components" }
data sample = inline "Alle Menschen sind frei und gleich" limit 4 tokens
data other = inline "The quick brown fox jumps over the lazy dog ."
guard g = [other] within 100 nats, goal 0.0001 nats
edit e on tiny {
  select "h.1.mlp.c_fc:1"
  scale -2
  keep g
}
`);
  assert.equal(scalpel('review', spec, '-o', path.join(fx.dir, 'x.html')).code, 2, 'no lock yet: a user error');
  assert.equal(scalpel('apply', spec, '-o', path.join(fx.dir, 'out.onnx')).code, 0);
  const page = path.join(fx.dir, 'review.html');
  const r = scalpel('review', spec, '-o', page);
  assert.equal(r.code, 0, r.stderr);
  const html = fs.readFileSync(page, 'utf8');
  assert.doesNotMatch(html, /<script[^>]+src=|<link[^>]+href=/, 'nothing loaded from elsewhere');

  const browser = await launchChromium();
  try {
    const p = await browser.newPage();
    const requests: string[] = [];
    p.on('request', (req) => requests.push(req.url()));
    const errors: string[] = [];
    p.on('pageerror', (e) => errors.push(String(e)));
    await p.goto(`file://${page}`);
    await p.waitForSelector('body[data-diff-ready]', { timeout: 20000 });
    assert.ok(Number(await p.getAttribute('body', 'data-diff-ready')) >= 1, 'the new spec shows as a change');
    assert.ok(await p.$('.monaco-diff-editor'));
    assert.match(await p.innerText('.monaco-diff-editor .modified-in-monaco-diff-editor'), /select\s"h\.1\.mlp\.c_fc:1"/);
    assert.equal(await p.$$eval('#delta-chart rect', (rs) => rs.length), 2);
    assert.match(await p.innerText('#components'), /h\.1\.mlp\.c_fc:1\s+component 1 of h\.1\.mlp\.c_fc/);
    // The lock's goal: the passing guard that misses it is marked beside its verdict.
    assert.match(await p.innerText('#checks'), /pass goal missed\s+guard g on other: .*; goal 0\.0001 nats missed by \d/);
    assert.match(await p.innerText('.monaco-diff-editor .modified-in-monaco-diff-editor'), /<!--\s<\/script><script>window\.pwned\s=\s1<\/script>/);
    assert.equal(await p.evaluate(() => (window as unknown as { pwned?: number }).pwned), undefined, 'no injected script ran');
    assert.match(html, /script-src 'nonce-[A-Za-z0-9+/=]+';/);
    assert.doesNotMatch(html, /script-src[^;]*unsafe-inline/);
    assert.deepEqual(errors, []);
    assert.deepEqual(requests.filter((u) => !u.startsWith('file:') && !u.startsWith('blob:') && !u.startsWith('data:')), []);
  } finally {
    await browser.close();
  }
});

test('scalpel review: a tampered lock (markup where a number belongs) is one clear error, not a page that runs it', () => {
  const fx = writeFixture();
  const spec = writeSpec(fx, 't.scalpel');
  assert.equal(scalpel('apply', spec, '-o', path.join(fx.dir, 'out.onnx')).code, 0);
  const lock = JSON.parse(fs.readFileSync(`${spec}.lock`, 'utf8'));
  lock.metrics.other.tokens = '<img src=x onerror="window.pwned=1">';
  fs.writeFileSync(`${spec}.lock`, JSON.stringify(lock));
  const r = scalpel('review', spec, '-o', path.join(fx.dir, 'review.html'));
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^scalpel: .*t\.scalpel\.lock: invalid lock file: metrics\.other\.tokens must be a whole number from 0 to \d+, not "<img src=x onerror=/);
  assert.ok(!fs.existsSync(path.join(fx.dir, 'review.html')));
});
