/**
 * The Chromium every browser test drives: Debian's by default (scripts/ensure-chromium.sh installs it for npm test),
 * or the one SCALPEL_CHROMIUM names. Never a browser download.
 */
import * as fs from 'node:fs';
import { Browser, chromium } from 'playwright-core';

export const CHROMIUM = process.env.SCALPEL_CHROMIUM ?? '/usr/bin/chromium';

/** Headless and offline: no sandbox (containers), no GPU, and none of the background traffic to hosts that are refused here. */
const LAUNCH_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

export async function launchChromium(): Promise<Browser> {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`the browser tests need Chromium at ${CHROMIUM}: install it with "apt-get install -y chromium" (scripts/ensure-chromium.sh does), or point SCALPEL_CHROMIUM at one`);
  }
  return chromium.launch({ executablePath: CHROMIUM, args: LAUNCH_ARGS });
}
