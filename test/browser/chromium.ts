/**
 * Launching the system's Chromium for the browser suites, and skipping them where there is none.
 *
 * The suites never download a browser: they use Debian's Chromium (`.ci/run` installs it with apt)
 * or the one named by `SYNC_CORE_CHROMIUM`. Without one they skip with the reason in their name,
 * unless `SYNC_CORE_REQUIRE_BROWSER=1` (set by `.ci/run`), where a missing browser is a failure.
 */
import { existsSync } from 'node:fs';
import { type Browser, chromium } from 'playwright-core';

/**
 * The Chromium executable the browser suites drive: `SYNC_CORE_CHROMIUM` when set and not empty,
 * else Debian's. `.ci/run` makes the same choice (and installs Debian's when it is missing).
 */
export const CHROMIUM_PATH = process.env.SYNC_CORE_CHROMIUM || '/usr/bin/chromium';

/** Whether that executable exists. */
export const hasChromium = existsSync(CHROMIUM_PATH);

/** Whether a missing Chromium fails the run instead of skipping the browser suites. */
export const isBrowserRequired = process.env.SYNC_CORE_REQUIRE_BROWSER === '1';

/** Appended to a browser suite's name: says why it is skipped, when it is. */
export const skipReason = hasChromium
  ? ''
  : ` (skipped: no Chromium at ${CHROMIUM_PATH}; apt-get install chromium, or set SYNC_CORE_CHROMIUM)`;

/**
 * Flags for a headless Chromium in a container or CI: no sandbox (no user namespaces there), no GPU,
 * and nothing that talks to Google's servers (the tests talk only to their own 127.0.0.1 servers).
 */
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-dev-shm-usage',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-quic',
  '--no-first-run',
  '--no-default-browser-check',
];

/** Launch the system's Chromium, headless. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: 30_000,
  });
}
