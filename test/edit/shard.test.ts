import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ScalpelError } from '../../engine/errors';
import { parseShard } from '../../engine/edit/shard';
import { scalpel, startScalpel } from '../helpers/cli';
import { randomValues } from '../helpers/random';
import { writeFixture } from './fixture';

/** Runs a shard as a Job's pod would: JOB_COMPLETION_INDEX set, `--shard N`; `kill` ends it with SIGKILL once it runs. */
function pod(args: string[], index: number, kill = false): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = startScalpel(args, { env: { JOB_COMPLETION_INDEX: String(index) }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    if (kill) setTimeout(() => child.kill('SIGKILL'), 150);
    child.on('error', reject);
    child.on('exit', (code, signal) => resolve({ code, signal, stderr }));
  });
}

/** Text of the fixture's words, in documents: enough windows of its 16-token context for many batches. */
function corpus(seed: number, documents: number): string {
  const r = randomValues(documents * 40, seed);
  const docs: string[] = [];
  for (let d = 0; d < documents; d++) docs.push(Array.from(r.subarray(d * 40, d * 40 + 20 + Math.floor((r[d * 40] + 1) * 10)), (v) => `w${150 + Math.floor((v + 1) * 50)}`).join(' '));
  return docs.join('\n\n') + '\n';
}

function shardedFixture() {
  const fx = writeFixture();
  fs.writeFileSync(path.join(fx.dir, 'big.txt'), corpus(5, 120));
  fs.writeFileSync(path.join(fx.dir, 'other.txt'), corpus(9, 45));
  const spec = path.join(fx.dir, 'sharded.scalpel');
  fs.writeFileSync(
    spec,
    `model tiny from "." { components "components" }
data tune_on = inline "Alle Menschen sind frei und gleich" limit 4 tokens
data big = text "big.txt"
data other = text "other.txt"
data small = inline "The quick brown fox jumps over the lazy dog ."
guard tight = [other, small] within 0.0001 nats
guard loose = [other] within 100 nats

edit tuned on tiny {
  select "h.1.mlp.c_fc:1" or "h.0.mlp.c_proj:2"
  scale tune in [-4, 1] maximize loss(tune_on)
  keep loose
}
edit literal on tiny {
  select "h.0.mlp.c_proj:3"
  scale 0.25
  keep tight
}
expect tuned: loss(big) moves by >= 0 nats, goal 1 nats
`,
  );
  return { dir: fx.dir, spec };
}

const withoutTiming = {
  json: (s: string) => s.replace(/\n {2}"seconds": [0-9.e+-]+\n/, '\n'),
  junit: (s: string) => s.replace(/ time="[0-9.]+"/, ''),
  table: (s: string) => s.replace(/ in [0-9.]+ s\n$/, '\n'),
};

test('--shard I/N, or N with I from JOB_COMPLETION_INDEX', () => {
  assert.deepEqual(parseShard('1/4', {}), { index: 1, count: 4 });
  assert.deepEqual(parseShard('4', { JOB_COMPLETION_INDEX: '3' }), { index: 3, count: 4 });
  assert.deepEqual(parseShard('0/1', { JOB_COMPLETION_INDEX: '3' }), { index: 0, count: 1 });
  const fails = (text: string, env: NodeJS.ProcessEnv, why: RegExp) => assert.throws(() => parseShard(text, env), (e: unknown) => e instanceof ScalpelError && why.test(e.message), text);
  fails('4', {}, /takes the shard index from JOB_COMPLETION_INDEX, which is not set \(give --shard I\/4\)/);
  fails('4', { JOB_COMPLETION_INDEX: 'x' }, /JOB_COMPLETION_INDEX is "x"/);
  fails('4/4', {}, /shard index 4 is out of range for 4 shards \(0 to 3\)/);
  fails('0/0', {}, /--shard takes I\/N/);
  fails('1-4', {}, /--shard takes I\/N/);
});

test('N pods with JOB_COMPLETION_INDEX, one killed and retried: the merge equals the unsharded run byte for byte', async () => {
  const { dir, spec } = shardedFixture();
  const parts = path.join(dir, 'parts') + '/';
  fs.mkdirSync(parts);

  const whole = { json: scalpel(['eval', spec, '--json']), table: scalpel(['eval', spec, '--junit', path.join(dir, 'whole.xml')]), part: scalpel(['eval', spec, '--out', path.join(dir, 'whole.json')]) };
  // A failing guard (the literal edit's tight one) makes both exit 1: verdicts must survive the merge.
  assert.equal(whole.json.code, 1, whole.json.stderr);
  assert.equal(whole.table.code, 1);
  assert.equal(whole.part.code, 0, whole.part.stderr);
  const wholeJson = JSON.parse(whole.json.stdout);
  assert.deepEqual(wholeJson.edits.map((e: { checks: { pass: boolean }[] }) => e.checks.map((c) => c.pass)), [[true, true], [false, false]]);
  assert.ok(wholeJson.edits[0].tuning.evaluations > 3, 'the tuned edit was tuned, not locked');

  const N = 3;
  const args = ['eval', spec, '--shard', String(N), '--out', parts];
  // Shard 1's first pod dies before it writes anything; the Job retries that index.
  const first = await Promise.all(Array.from({ length: N }, (_, i) => pod(args, i, i === 1)));
  assert.equal(first[1].signal, 'SIGKILL');
  for (const i of [0, 2]) assert.equal(first[i].code, 0, first[i].stderr);
  assert.deepEqual(fs.readdirSync(parts).sort(), ['part-0-of-3.json', 'part-2-of-3.json'], 'a killed shard leaves no part, not even a temporary file');
  const early = scalpel(['merge', parts]);
  assert.equal(early.code, 2);
  assert.match(early.stderr, /shard 1 of 3 missing: merge needs every part/);
  const retried = await pod(args, 1);
  assert.equal(retried.code, 0, retried.stderr);
  // A retry is a pure function of (spec, lock, I, N): shard 0 run again writes the same bytes.
  const again = path.join(dir, 'again.json');
  assert.equal(scalpel(['eval', spec, '--shard', '0/3', '--out', again]).code, 0);
  assert.ok(fs.readFileSync(again).equals(fs.readFileSync(path.join(parts, 'part-0-of-3.json'))));
  // Every shard measured something: batches are dealt across datasets, not restarted per dataset.
  for (let i = 0; i < N; i++) {
    const p = JSON.parse(fs.readFileSync(path.join(parts, `part-${i}-of-3.json`), 'utf8'));
    const windows = p.edits[0].datasets.reduce((a: number, d: { base: (number | null)[] }) => a + d.base.filter((v) => v !== null).length, 0);
    assert.ok(windows > 10, `shard ${i}: ${windows} windows`);
  }

  const merged = {
    json: scalpel(['merge', parts, '--json', '--out', path.join(dir, 'merged.json')]),
    table: scalpel(['merge', ...fs.readdirSync(parts).map((f) => path.join(parts, f)), '--junit', path.join(dir, 'merged.xml')]),
  };
  assert.equal(merged.json.code, whole.json.code);
  assert.equal(merged.table.code, whole.table.code);
  assert.ok(fs.readFileSync(path.join(dir, 'merged.json')).equals(fs.readFileSync(path.join(dir, 'whole.json'))), 'merged part = unsharded part, byte for byte');
  assert.equal(withoutTiming.json(merged.json.stdout), withoutTiming.json(whole.json.stdout));
  assert.equal(withoutTiming.table(merged.table.stdout), withoutTiming.table(whole.table.stdout));
  assert.equal(merged.table.stderr, whole.table.stderr, 'the same failed checks, with their lines');
  assert.equal(withoutTiming.junit(fs.readFileSync(path.join(dir, 'merged.xml'), 'utf8')), withoutTiming.junit(fs.readFileSync(path.join(dir, 'whole.xml'), 'utf8')));
  assert.match(fs.readFileSync(path.join(dir, 'merged.xml'), 'utf8'), /<failure message="guard tight on other/);
  // Goals survive the merge: the same missed goal, and with --goals the same extra failure line.
  assert.match(merged.table.stdout, /pass, goal missed\s+expect tuned big: .*; goal 1\.0000 nats missed by /);
  const strict = { whole: scalpel(['eval', spec, '--goals']), merged: scalpel(['merge', parts, '--goals']) };
  assert.equal(strict.merged.code, 1);
  assert.equal(strict.merged.stderr, strict.whole.stderr);
  assert.match(strict.merged.stderr, /expect tuned big: .*missed by/);
  assert.doesNotMatch(merged.table.stderr, /expect tuned/, 'without --goals a missed goal is no failure');
});

test('more shards than batches: empty shards still write parts, and the merge is exact', async () => {
  const { dir } = shardedFixture();
  const spec = path.join(dir, 'small.scalpel');
  fs.writeFileSync(spec, `model tiny from "." { components "components" }
data a = inline "Alle Menschen sind frei und gleich an Wuerde und Rechten geboren . Sie sind mit Vernunft und Gewissen begabt ."
data b = inline "The quick brown fox jumps over the lazy dog ."
edit e on tiny {
  select "h.0.mlp.c_proj:3"
  scale 0.25
}
expect e: loss(a) rises by >= 0 nats
`);
  const parts = path.join(dir, 'parts') + '/';
  fs.mkdirSync(parts);
  assert.equal(scalpel(['eval', spec, '--out', path.join(dir, 'whole.json')]).code, 0);
  const N = 5;
  const runs = await Promise.all(Array.from({ length: N }, (_, i) => pod(['eval', spec, '--shard', String(N), '--out', parts], i)));
  for (const r of runs) assert.equal(r.code, 0, r.stderr);
  const measured = fs.readdirSync(parts).map((f) => JSON.parse(fs.readFileSync(path.join(parts, f), 'utf8')).edits[0].datasets.flatMap((d: { base: unknown[] }) => d.base).filter((v: unknown) => v !== null).length);
  const whole = JSON.parse(fs.readFileSync(path.join(dir, 'whole.json'), 'utf8')).edits[0].datasets.map((d: { base: unknown[] }) => d.base.length);
  assert.ok(whole[0] > 1 && whole[1] === 1, `windows ${whole}`);
  // Two batches (one per dataset, each within the batch size) dealt over five shards: three measure nothing.
  assert.deepEqual(measured.sort(), [0, 0, 0, whole[1], whole[0]].sort());
  const merged = scalpel(['merge', parts, '--out', path.join(dir, 'merged.json')]);
  assert.equal(merged.code, scalpel(['eval', spec]).code);
  assert.ok(fs.readFileSync(path.join(dir, 'merged.json')).equals(fs.readFileSync(path.join(dir, 'whole.json'))));
});

test('merge refuses parts that do not belong together, and shard flags are checked', () => {
  const { dir, spec } = shardedFixture();
  const a = path.join(dir, 'a.json');
  const b = path.join(dir, 'b.json');
  assert.equal(scalpel(['eval', spec, '--edit', 'literal', '--shard', '0/2', '--out', a]).code, 0);
  fs.appendFileSync(spec, '# a changed spec\n');
  assert.equal(scalpel(['eval', spec, '--edit', 'literal', '--shard', '1/2', '--out', b]).code, 0);
  const r = scalpel(['merge', a, b]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^scalpel: .*b\.json: this part does not belong with .*a\.json: another spec text\n$/);
  const twice = scalpel(['merge', a, a]);
  assert.match(twice.stderr, /shard 0\/2 given twice/);
  const notPart = scalpel(['merge', spec]);
  assert.match(notPart.stderr, /not a JSON evaluation part/);
  assert.match(scalpel(['eval', spec, '--shard', '0/2']).stderr, /--shard needs --out FILE/);
  assert.match(scalpel(['eval', spec, '--shard', '2', '--out', a]).stderr, /JOB_COMPLETION_INDEX, which is not set/);
  assert.match(scalpel(['eval', spec, '--out', a, '--json']).stderr, /--out writes a part: print or report it with scalpel merge/);
});
