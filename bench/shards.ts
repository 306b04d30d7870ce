/**
 * Sharded evaluation of the demo spec: N = 1, 2, 4 local shards run as concurrent processes (as a Job's
 * pods would, JOB_COMPLETION_INDEX set), then merged. Prints, against the unsharded run measured in the same
 * process: wall time (shards in parallel, then the merge), whether the merged part equals the unsharded one
 * byte for byte, and the overhead of sharding: the sum of the shards' times over the unsharded time (every
 * shard loads the model, tokenizes the data and tunes on its own), in wall seconds and in CPU seconds (user +
 * system, from bash's `times`; the fair figure when shards outnumber free cores and wait for them). Every run
 * uses --threads 1, so N shards could use N cores.
 *
 *   npm run bench:shards [-- SPEC]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn } from 'node:child_process';

const spec = process.argv[2] ?? 'examples/remove-german.scalpel';
const cli = path.resolve('bin/scalpel.js');

interface Timed {
  wall: number;
  cpu: number;
}

/** One scalpel process: wall seconds, and its CPU seconds as bash's `times` reports a finished child's. */
function run(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Timed> {
  const started = performance.now();
  const quoted = [process.execPath, cli, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', `${quoted} >/dev/null; code=$?; times >&2; exit $code`], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('exit', (code) => {
      const wall = (performance.now() - started) / 1000;
      const m = /(\d+)m([\d.]+)s (\d+)m([\d.]+)s\n$/.exec(stderr);
      if (!(code === 0 || (args[0] === 'merge' && code === 1)) || !m) return reject(new Error(`scalpel ${args.join(' ')} exited ${code}: ${stderr}`));
      resolve({ wall, cpu: Number(m[1]) * 60 + Number(m[2]) + Number(m[3]) * 60 + Number(m[4]) });
    });
  });
}

async function main(): Promise<void> {
  if (!fs.existsSync('dist/cli.js')) throw new Error('build first: npm run build');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scalpel-bench-shards-'));
  const whole = path.join(dir, 'whole.json');
  // A first run warms the page cache (model, catalog), so the baseline is not charged for reading them from disk.
  await run(['eval', spec, '--threads', '1', '--out', whole]);
  const unsharded = await run(['eval', spec, '--threads', '1', '--out', whole]);
  console.log(`${spec}: unsharded ${unsharded.wall.toFixed(2)} s wall, ${unsharded.cpu.toFixed(2)} s CPU (--threads 1); ${os.cpus().length} cores, load average ${os.loadavg()[0].toFixed(2)} at start`);
  console.log('shards  wall s  speedup  shard wall s (in parallel)   merge s  Σ shard wall / unsharded  Σ shard CPU / unsharded  merged = unsharded');
  for (const n of [1, 2, 4]) {
    const parts = path.join(dir, `parts-${n}`) + '/';
    const started = performance.now();
    const times = await Promise.all(Array.from({ length: n }, (_, i) => run(['eval', spec, '--threads', '1', '--shard', String(n), '--out', parts], { JOB_COMPLETION_INDEX: String(i) })));
    const merged = path.join(dir, `merged-${n}.json`);
    const merge = await run(['merge', parts, '--out', merged]);
    const wall = (performance.now() - started) / 1000;
    const sumWall = times.reduce((a, t) => a + t.wall, 0);
    const sumCpu = times.reduce((a, t) => a + t.cpu, 0);
    const equal = fs.readFileSync(merged).equals(fs.readFileSync(whole));
    console.log(
      `${String(n).padStart(6)}  ${wall.toFixed(2).padStart(6)}  ${(unsharded.wall / wall).toFixed(2).padStart(7)}  ${times.map((t) => t.wall.toFixed(2)).join(', ').padEnd(27)}  ${merge.wall.toFixed(2).padStart(7)}` +
        `  ${(sumWall / unsharded.wall).toFixed(2).padStart(24)}  ${(sumCpu / unsharded.cpu).toFixed(2).padStart(23)}  ${equal ? 'yes, byte for byte' : 'NO'}`,
    );
    if (!equal) process.exitCode = 1;
  }
  fs.rmSync(dir, { recursive: true, force: true });
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
