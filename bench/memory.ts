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
