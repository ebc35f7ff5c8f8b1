/**
 * Node side of the in-browser conformance run: bundle the suite (entry.ts) with esbuild, serve it
 * on 127.0.0.1, open it in Chromium, and run its tests one at a time.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Plugin } from 'esbuild';
import type { Browser } from 'playwright-core';
import { syncCoreFromSource } from '../../../examples/browser/build.js';
import { launchChromium } from '../chromium.js';
import type { TestResult } from './harness.js';

const here = (path: string): string => fileURLToPath(new URL(path, import.meta.url));
const sqlJsDist = dirname(createRequire(import.meta.url).resolve('sql.js/dist/sql-wasm-browser.wasm'));

/**
 * The suite's helpers import Node-only modules (better-sqlite3, fs) for the Node adapters' factories;
 * the browser bundle never calls those, so they become empty CommonJS modules. `vitest` becomes the
 * harness.
 */
const browserStubs: Plugin = {
  name: 'conformance-browser-stubs',
  setup(build) {
    build.onResolve({ filter: /^vitest$/ }, () => ({ path: here('./harness.ts') }));
    build.onResolve({ filter: /^(better-sqlite3|node:.*)$/ }, (args) => ({
      path: args.path,
      namespace: 'stub',
    }));
    build.onLoad({ filter: /.*/, namespace: 'stub' }, () => ({
      contents: 'module.exports = {};',
      loader: 'js',
    }));
  },
};

/** A page in Chromium holding the bundled suite. */
export interface ConformancePage {
  /** Full names of the suite's tests, in declaration order. */
  readonly names: readonly string[];
  run(name: string): Promise<TestResult>;
  close(): Promise<void>;
}

export async function openConformancePage(): Promise<ConformancePage> {
  const outDir = mkdtempSync(join(tmpdir(), 'sync-core-conformance-'));
  let browser: Browser | undefined;
  const http = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    try {
      if (path === '/') {
        res.writeHead(200, { 'content-type': 'text/html' });
        res.end(
          '<!doctype html><link rel="icon" href="data:,"><script type="module" src="/suite.js"></script>',
        );
      } else if (path === '/suite.js') {
        res.writeHead(200, { 'content-type': 'text/javascript' }).end(readFileSync(join(outDir, 'suite.js')));
      } else if (/^\/sql-wasm[a-z-]*\.wasm$/.test(path)) {
        res.writeHead(200, { 'content-type': 'application/wasm' });
        res.end(readFileSync(join(sqlJsDist, basename(path))));
      } else {
        res.writeHead(404).end();
      }
    } catch {
      res.writeHead(500).end();
    }
  });
  const close = async (): Promise<void> => {
    await browser?.close();
    await new Promise<void>((resolve) => {
      http.close(() => resolve());
      http.closeAllConnections();
    });
    rmSync(outDir, { recursive: true, force: true });
  };
  try {
    await build({
      entryPoints: [here('./entry.ts')],
      outfile: join(outDir, 'suite.js'),
      bundle: true,
      format: 'esm',
      platform: 'browser',
      target: 'es2022',
      plugins: [browserStubs, syncCoreFromSource],
      logLevel: 'error',
    });
    await new Promise<void>((resolve, reject) => {
      http.once('error', reject);
      http.listen(0, '127.0.0.1', () => resolve());
    });
    browser = await launchChromium();
    const page = await (await browser.newContext()).newPage();
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(error.message));
    await page.goto(`http://127.0.0.1:${(http.address() as AddressInfo).port}/`);
    await page
      .waitForFunction(() => 'conformance' in globalThis, undefined, { timeout: 15_000 })
      .catch((error: unknown) => {
        throw new Error(`the conformance bundle did not load: ${errors.join('; ') || String(error)}`);
      });
    const names = await page.evaluate(() =>
      (globalThis as unknown as { conformance: { listTests(): string[] } }).conformance.listTests(),
    );
    return {
      names,
      run: (name) =>
        page.evaluate(
          (n) =>
            (
              globalThis as unknown as { conformance: { runTest(n: string): Promise<TestResult> } }
            ).conformance.runTest(n),
          name,
        ),
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}
