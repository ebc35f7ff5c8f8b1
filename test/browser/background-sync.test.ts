/**
 * The browser example (examples/browser) in real Chromium: activities registered in a page while
 * offline are delivered by the service worker when the browser fires the Background Sync `sync`
 * event — by itself, after going back online, with the page closed — each exactly once; the next
 * visit shows the notices. Plus the fallback for browsers without the API (sync on load and on
 * `online`) and a page and a worker sharing one IndexedDB-persisted database.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildBrowserExample } from '../../examples/browser/build.js';
import { type BrowserExample, startBrowserExample } from '../../examples/browser/serve.js';
import { CHROMIUM_PATH, hasChromium, isBrowserRequired, launchChromium, skipReason } from './chromium.js';

/** How long the browser may take to fire `sync` after going online (it took ~0.1 s when written). */
const SYNC_EVENT_BOUND_MS = 20_000;

if (!hasChromium && isBrowserRequired) {
  it(`the browser example needs Chromium at ${CHROMIUM_PATH} (SYNC_CORE_REQUIRE_BROWSER=1)`, () => {
    expect.fail(`SYNC_CORE_REQUIRE_BROWSER=1 but ${CHROMIUM_PATH} does not exist (apt-get install chromium)`);
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(what: string, condition: () => boolean, timeoutMs: number): Promise<number> {
  const started = Date.now();
  while (!condition()) {
    if (Date.now() - started > timeoutMs)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
  return Date.now() - started;
}

describe.skipIf(!hasChromium)(
  `browser example in Chromium: Background Sync from a service worker${skipReason}`,
  () => {
    let outDir: string;
    let example: BrowserExample;
    let browser: Browser;
    const contexts: BrowserContext[] = [];

    beforeAll(async () => {
      outDir = mkdtempSync(join(tmpdir(), 'sync-core-browser-'));
      await buildBrowserExample(outDir);
      example = await startBrowserExample({ outDir });
      browser = await launchChromium();
    }, 60_000);

    afterAll(async () => {
      for (const context of contexts) await context.close().catch(() => undefined);
      await browser?.close();
      await example?.close();
      if (outDir !== undefined) rmSync(outDir, { recursive: true, force: true });
    }, 30_000);

    /** A fresh profile: no service worker, no IndexedDB. Page errors fail the test. */
    async function newContext(): Promise<{
      context: BrowserContext;
      errors: string[];
      syncEvents: number[];
    }> {
      const context = await browser.newContext();
      contexts.push(context);
      const errors: string[] = [];
      const syncEvents: number[] = [];
      context.on('weberror', (error) => errors.push(String(error.error())));
      context.on('console', (message) => {
        if (message.text().startsWith('[sw] sync event')) syncEvents.push(Date.now());
        if (message.type() === 'error' && !message.text().includes('favicon')) errors.push(message.text());
      });
      return { context, errors, syncEvents };
    }

    async function openPage(context: BrowserContext): Promise<Page> {
      const page = await context.newPage();
      await page.goto(example.url);
      await page.waitForSelector('body[data-ready="true"]', { timeout: 15_000 });
      return page;
    }

    async function signIn(page: Page, userId: string): Promise<void> {
      await page.fill('#user', userId);
      await page.click('#signin button[type="submit"]');
      await page.waitForSelector('#activity-fields:not([disabled])', { timeout: 10_000 });
    }

    /** Register an activity (titles are unique per test) and return its id, once the page lists it. */
    async function register(page: Page, title: string): Promise<string> {
      await page.fill('#title', title);
      await page.click('#register');
      const item = page.locator('#queue li', { hasText: title });
      await item.waitFor({ timeout: 10_000 });
      const id = await item.getAttribute('data-id');
      expect(id).toBeTruthy();
      return id as string;
    }

    /** The Background Sync tags still registered (waiting to fire, or for a retry). */
    const syncTags = (page: Page) =>
      page.evaluate(async () => {
        const registration = (await navigator.serviceWorker.ready) as ServiceWorkerRegistration & {
          sync: { getTags(): Promise<string[]> };
        };
        return registration.sync.getTags();
      });

    const appliedFor = (userId: string) => example.api.log().filter((row) => row.scope.userId === userId);
    const pushesSince = (index: number) =>
      example
        .requests()
        .slice(index)
        .filter((r) => r.path === '/sync/push');

    it('activities registered offline are delivered by the service worker when Chromium fires the sync event by itself after going online, with the page closed, each applied exactly once; the next visit shows the notices', {
      timeout: 60_000,
    }, async () => {
      const { context, errors, syncEvents } = await newContext();
      const firstRequest = example.requests().length;
      const duplicatesBefore = example.api.stats().duplicates;
      const page = await openPage(context);
      expect(await page.evaluate(() => document.body.dataset.backgroundSync)).toBe('true');
      await signIn(page, 'sw-user');

      await context.setOffline(true);
      const ids = [];
      for (const title of ['Home visit', 'Phone call', 'Hospital visit'])
        ids.push(await register(page, title));
      expect(await page.locator('#queue li[data-state="pending"]').count()).toBe(3);
      // The tag is registered, but Chromium holds the event while the (emulated) network is offline.
      await sleep(1_500);
      expect(syncEvents).toEqual([]);
      expect(pushesSince(firstRequest)).toEqual([]);

      await page.close();
      const closedAt = Date.now();
      expect(context.pages()).toHaveLength(0);
      await context.setOffline(false);
      const onlineAt = Date.now();
      // No CDP help: the browser itself dispatches `sync` to the worker.
      const tookMs = await waitFor(
        'the server to apply 3 mutations',
        () => appliedFor('sw-user').length >= 3,
        SYNC_EVENT_BOUND_MS,
      );
      await waitFor('the sync event to finish', () => syncEvents.length > 0, 10_000);
      console.info(`[browser] Background Sync delivered 3 mutations ${tookMs} ms after going online`);

      expect(syncEvents.every((at) => at >= onlineAt)).toBe(true);
      const pushes = pushesSince(firstRequest);
      expect(pushes.length).toBeGreaterThan(0);
      for (const push of pushes) {
        expect(push.context).toBe('service-worker');
        expect(push.at).toBeGreaterThanOrEqual(closedAt);
        expect(push.status).toBe(200);
      }
      const applied = appliedFor('sw-user');
      expect(applied.map((row) => row.entityId).sort()).toEqual([...ids].sort());
      expect(new Set(applied.map((row) => row.key)).size).toBe(3);
      expect(example.api.stats().duplicates).toBe(duplicatesBefore);

      const again = await openPage(context);
      await again.waitForSelector('#notices li', { timeout: 10_000 });
      expect(await again.locator('#notices li').allTextContents()).toEqual([
        '3 activities synced while you were away',
      ]);
      expect(await again.locator('#queue-count').textContent()).toBe('0');
      await again.close();
      // Shown once: acknowledged, so a third visit shows nothing.
      const third = await openPage(context);
      expect(await third.locator('#notices li').count()).toBe(0);
      expect(errors).toEqual([]);
      await context.close();
    });

    it('a page kept open while the worker delivers sees the delivery, and its next write does not bring a delivered change back (nothing is sent twice)', {
      timeout: 60_000,
    }, async () => {
      const { context, errors, syncEvents } = await newContext();
      const duplicatesBefore = example.api.stats().duplicates;
      const page = await openPage(context);
      await signIn(page, 'open-page-user');

      const first = await register(page, 'Morning round');
      await waitFor(
        'the worker to deliver the first activity',
        () => appliedFor('open-page-user').length === 1,
        SYNC_EVENT_BOUND_MS,
      );
      await waitFor('the sync event to finish', () => syncEvents.length >= 1, 10_000);
      const second = await register(page, 'Evening round');
      await waitFor(
        'the worker to deliver the second activity',
        () => appliedFor('open-page-user').length === 2,
        SYNC_EVENT_BOUND_MS,
      );
      await waitFor('the second sync event to finish', () => syncEvents.length >= 2, 10_000);
      // A later event would resend the first one if the page's write had restored its stale copy.
      await sleep(1_000);

      expect(appliedFor('open-page-user').map((row) => row.entityId)).toEqual([first, second]);
      // Both events succeeded: nothing is left for the browser to retry.
      expect(await syncTags(page)).toEqual([]);
      expect(example.api.stats().duplicates).toBe(duplicatesBefore);
      await page.evaluate(() => document.dispatchEvent(new Event('visibilitychange')));
      await page.waitForFunction(
        () => document.querySelector('#queue-count')?.textContent === '0',
        undefined,
        {
          timeout: 10_000,
        },
      );
      expect(errors).toEqual([]);
      await context.close();
    });

    it('a sync event whose run leaves work behind (a 503) rejects waitUntil, so Chromium keeps the tag registered for a retry', {
      timeout: 60_000,
    }, async () => {
      const { context, syncEvents } = await newContext();
      const messages: string[] = [];
      context.on('console', (message) => {
        if (message.text().startsWith('[sw] sync event')) messages.push(message.text());
      });
      const page = await openPage(context);
      await signIn(page, 'retry-user');

      example.api.faults.failNext(1, { status: 503 });
      await register(page, 'Refused once');
      await waitFor('the sync event to finish', () => syncEvents.length >= 1, SYNC_EVENT_BOUND_MS);
      expect(messages).toHaveLength(1);
      expect(messages[0]).toMatch(/^\[sw\] sync event: (throttled|server-error), 1 left$/);
      expect(appliedFor('retry-user')).toEqual([]);
      // Rejected: the registration stays, waiting for the browser's retry (minutes later in Chromium).
      expect(await syncTags(page)).toEqual(['sync-core']);
      await context.close();
    });

    it('without the Background Sync API the page delivers by itself on the online event and on its next load, each change exactly once', {
      timeout: 60_000,
    }, async () => {
      const { context, errors, syncEvents } = await newContext();
      // As in Firefox and Safari: no SyncManager, no registration.sync.
      await context.addInitScript(() => {
        if (typeof ServiceWorkerRegistration === 'undefined') return; // not a page
        delete (globalThis as { SyncManager?: unknown }).SyncManager;
        delete (ServiceWorkerRegistration.prototype as { sync?: unknown }).sync;
      });
      const firstRequest = example.requests().length;
      const duplicatesBefore = example.api.stats().duplicates;
      const page = await openPage(context);
      expect(await page.evaluate(() => document.body.dataset.backgroundSync)).toBe('false');
      await signIn(page, 'fallback-user');

      await context.setOffline(true);
      const a = await register(page, 'Home visit');
      const b = await register(page, 'Phone call');
      await context.setOffline(false);
      await waitFor(
        'the page to deliver on `online`',
        () => appliedFor('fallback-user').length === 2,
        SYNC_EVENT_BOUND_MS,
      );
      await page.waitForSelector('#notices li', { timeout: 10_000 });

      await context.setOffline(true);
      const c = await register(page, 'Walk');
      await page.close();
      await context.setOffline(false);
      await sleep(1_000);
      // Nothing wakes a closed site without the API: c waits for the next visit.
      expect(appliedFor('fallback-user')).toHaveLength(2);
      const again = await openPage(context);
      await waitFor(
        'the page to deliver on load',
        () => appliedFor('fallback-user').length === 3,
        SYNC_EVENT_BOUND_MS,
      );
      await again.waitForFunction(
        () => document.querySelector('#queue-count')?.textContent === '0',
        undefined,
        {
          timeout: 10_000,
        },
      );

      expect(appliedFor('fallback-user').map((row) => row.entityId)).toEqual([a, b, c]);
      expect(example.api.stats().duplicates).toBe(duplicatesBefore);
      const pushes = pushesSince(firstRequest);
      expect(pushes.map((push) => push.context)).toEqual(pushes.map(() => 'page'));
      expect(syncEvents).toEqual([]);
      expect(errors).toEqual([]);
      await context.close();
    });
  },
);
