/**
 * Peak resident set of this process, in KiB, from /proc/self/status (VmHWM). Not `process.resourceUsage().maxRSS`:
 * on Linux a child started with spawn/spawnSync reports the parent's peak at the fork there until it exceeds it,
 * so a bench child measured that way shows its parent's memory (e.g. the generated model the parent wrote).
 */
import * as fs from 'node:fs';

export function peakRssKiB(): number {
  const m = /VmHWM:\s+(\d+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) : process.resourceUsage().maxRSS;
}

/**
 * A bench measures each job in its own process: started with `--job NAME DIR`, it runs that job alone, prints its
 * figures with the process's peak resident set as one JSON line, and returns true.
 */
export async function runJobIfAsked(job: (name: string, dir: string) => Promise<Record<string, number>>): Promise<boolean> {
  const at = process.argv.indexOf('--job');
  if (at < 0) return false;
  const out = await job(process.argv[at + 1], process.argv[at + 2]);
  console.log(JSON.stringify({ ...out, rssMB: peakRssKiB() / 1024 }));
  return true;
}
