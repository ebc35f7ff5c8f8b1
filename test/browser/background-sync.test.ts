/**
 * The browser example (examples/browser) in real Chromium: activities registered in a page while
 * offline are delivered by the service worker when the browser fires the Background Sync `sync`
 * event — by itself, after going back online, with the page closed — each exactly once; the next
 * visit shows the notices. Plus the fallback for browsers without the API, or where the user
 * blocked it (sync on load and on `online`), a page and a worker sharing one IndexedDB-persisted
 * database, and two pages sending at once, each mutation received exactly once.
 *
 * What Chromium does with a registration (stored, dispatched, completed or failed and rescheduled)
 * is read from its own record, DevTools' Background Services log, rather than inferred from
 * sleeps: each "nothing happened" check waits for a positive signal that the window it is about
 * is over.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, BrowserContext, CDPSession, Page } from 'playwright-core';
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

/** One entry of Chromium's Background Services log for Background Sync. */
interface BackgroundSyncRecord {
  /** e.g. 'Registered sync', 'Dispatched sync event', 'Sync completed', 'sync event failed'. */
  readonly name: string;
  /** The tag. */
  readonly tag: string;
  /** When Chromium recorded it (ms since epoch, the same clock as `Date.now()` here). */
  readonly at: number;
  readonly metadata: Readonly<Record<string, string>>;
}

async function waitFor(
  what: string,
  condition: () => boolean | Promise<boolean>,
  timeoutMs: number,
): Promise<number> {
  const started = Date.now();
  while (!(await condition())) {
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
      // Chromium fires `sync` only while it believes it is online, and the page falls back only
      // on `online`: in a container without a network interface (only loopback), every test
      // below would wait out its timeouts. Say why at once instead.
      const probe = await browser.newContext();
      try {
        const page = await probe.newPage();
        await page.goto(example.url);
        if (!(await page.evaluate(() => navigator.onLine))) {
          throw new Error(
            'Chromium reports navigator.onLine === false (on Linux it counts only network interfaces besides loopback: a network-isolated container has none), so it would never fire a Background Sync event and the page would never see `online`: these tests cannot pass. Run them where the machine has a network interface besides loopback; the tests themselves only talk to 127.0.0.1.',
          );
        }
      } finally {
        await probe.close();
      }
    }, 60_000);

    afterAll(async () => {
      for (const context of contexts) await context.close().catch(() => undefined);
      await browser?.close();
      await example?.close();
      if (outDir !== undefined) rmSync(outDir, { recursive: true, force: true });
    }, 30_000);

    /**
     * A fresh profile: no service worker, no IndexedDB. Page errors fail the test. `background`
     * is Chromium's Background Sync log for this profile, read through an `about:blank` page that
     * stays open (it is no client of the example's origin, so it changes nothing for the worker).
     */
    async function newContext(): Promise<{
      context: BrowserContext;
      errors: string[];
      syncEvents: number[];
      background: BackgroundSyncRecord[];
      devtools: CDPSession;
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
      const devtools = await context.newCDPSession(await context.newPage());
      const background: BackgroundSyncRecord[] = [];
      devtools.on('BackgroundService.backgroundServiceEventReceived', ({ backgroundServiceEvent: e }) => {
        background.push({
          name: e.eventName,
          tag: e.instanceId,
          at: e.timestamp * 1000,
          metadata: Object.fromEntries(e.eventMetadata.map((m) => [m.key, m.value])),
        });
      });
      await devtools.send('BackgroundService.startObserving', { service: 'backgroundSync' });
      await devtools.send('BackgroundService.setRecording', {
        shouldRecord: true,
        service: 'backgroundSync',
      });
      return { context, errors, syncEvents, background, devtools };
    }

    const named = (records: readonly BackgroundSyncRecord[], name: string) =>
      records.filter((r) => r.name === name && r.tag === 'sync-core');

    /** The pages of the example open in `context` (the DevTools observer page is not one). */
    const examplePages = (context: BrowserContext) =>
      context.pages().filter((page) => page.url().startsWith(example.url));

    /** As in Firefox and Safari: no SyncManager, no registration.sync. */
    const removeBackgroundSyncApi = (context: BrowserContext) =>
      context.addInitScript(() => {
        if (typeof ServiceWorkerRegistration === 'undefined') return; // not a page
        delete (globalThis as { SyncManager?: unknown }).SyncManager;
        delete (ServiceWorkerRegistration.prototype as { sync?: unknown }).sync;
      });

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
    /** The pushes that arrived at `since` (ms since epoch) or later. */
    const pushesSince = (since: number) =>
      example.requests().filter((r) => r.path === '/sync/push' && r.at >= since);

    it('activities registered offline are delivered by the service worker when Chromium fires the sync event by itself after going online, with the page closed, each applied exactly once; the next visit shows the notices', {
      timeout: 60_000,
    }, async () => {
      const { context, errors, syncEvents, background } = await newContext();
      const startedAt = Date.now();
      const duplicatesBefore = example.api.stats().duplicates;
      const page = await openPage(context);
      expect(await page.evaluate(() => document.body.dataset.backgroundSync)).toBe('true');
      await signIn(page, 'sw-user');

      await context.setOffline(true);
      const ids = [];
      for (const title of ['Home visit', 'Phone call', 'Hospital visit'])
        ids.push(await register(page, title));
      expect(await page.locator('#queue li[data-state="pending"]').count()).toBe(3);
      // Chromium stored the registration while offline (online, it dispatches within milliseconds
      // of this record; the tests below see it). Whether it held the event is checked after going
      // online, from its own log: nothing was dispatched before.
      await waitFor(
        'Chromium to record the sync registration',
        () => named(background, 'Registered sync').length > 0,
        10_000,
      );
      const registeredAt = named(background, 'Registered sync')[0]!.at;

      await page.close();
      const closedAt = Date.now();
      expect(examplePages(context)).toHaveLength(0);
      const onlineAt = Date.now(); // before the switch: the browser may dispatch before it returns
      await context.setOffline(false);
      // No CDP help: the browser itself dispatches `sync` to the worker.
      const tookMs = await waitFor(
        'the server to apply 3 mutations',
        () => appliedFor('sw-user').length >= 3,
        SYNC_EVENT_BOUND_MS,
      );
      await waitFor(
        'Chromium to record the sync event as completed',
        () => named(background, 'Sync completed').length > 0,
        10_000,
      );
      const dispatched = named(background, 'Dispatched sync event');
      console.info(
        `[browser] Chromium held the registration ${Math.round(onlineAt - registeredAt)} ms offline, dispatched ${Math.round(dispatched[0]!.at - onlineAt)} ms after going online; 3 mutations delivered after ${tookMs} ms`,
      );

      // Held while offline: every dispatch, and every log line of the worker, came after going online.
      expect(registeredAt).toBeLessThan(onlineAt);
      expect(dispatched.length).toBeGreaterThan(0);
      expect(dispatched.every((d) => d.at >= onlineAt)).toBe(true);
      expect(syncEvents.every((at) => at >= onlineAt)).toBe(true);
      expect(named(background, 'Sync completed')[0]!.metadata).toEqual({ Status: 'succeeded' });
      const pushes = pushesSince(startedAt);
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
      const { context, errors, syncEvents, background } = await newContext();
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
      // Had the page's write restored its stale copy, the second event would have resent the
      // first change (the server counts a duplicate), or left work behind and failed, keeping the
      // tag for a retry. Chromium's record says both events completed, and no tag is left: no
      // later event can come.
      await waitFor(
        'Chromium to record both sync events as completed',
        () => named(background, 'Sync completed').length >= 2,
        10_000,
      );
      expect(named(background, 'Sync completed').map((r) => r.metadata.Status)).toEqual([
        'succeeded',
        'succeeded',
      ]);
      expect(await syncTags(page)).toEqual([]);
      expect(appliedFor('open-page-user').map((row) => row.entityId)).toEqual([first, second]);
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
      const { context, background } = await newContext();
      const messages: string[] = [];
      context.on('console', (message) => {
        if (message.text().startsWith('[sw] sync event')) messages.push(message.text());
      });
      const page = await openPage(context);
      await signIn(page, 'retry-user');

      example.api.faults.failNext(1, { status: 503 });
      await register(page, 'Refused once');
      // The worker logs before its waitUntil promise rejects, and a tag still firing is listed by
      // getTags() too: wait for Chromium's own record that the event settled, as failed.
      await waitFor(
        'Chromium to record the sync event as failed',
        () => named(background, 'sync event failed').length >= 1,
        SYNC_EVENT_BOUND_MS,
      );
      expect(messages).toHaveLength(1);
      expect(messages[0]).toMatch(/^\[sw\] sync event: (throttled|server-error), 1 left$/);
      const [failed] = named(background, 'sync event failed');
      expect(failed!.metadata['Failure Reason']).toBe('waitUntil rejected');
      const retryInMs = Number(failed!.metadata['Next Attempt Delay (ms)']);
      expect(retryInMs).toBeGreaterThan(0);
      console.info(`[browser] Chromium will fire the rejected sync event again in ${retryInMs} ms`);
      expect(named(background, 'Sync completed')).toEqual([]);
      expect(appliedFor('retry-user')).toEqual([]);
      // Settled and rejected: the registration stays, waiting for that retry.
      expect(await syncTags(page)).toEqual(['sync-core']);
      await context.close();
    });

    it('without the Background Sync API the page delivers by itself on the online event and on its next load, each change exactly once', {
      timeout: 60_000,
    }, async () => {
      const { context, errors, syncEvents, background } = await newContext();
      await removeBackgroundSyncApi(context);
      const startedAt = Date.now();
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
      // Nothing wakes a closed site without the API: c waits for the next visit (checked below
      // from the server's log: c arrived only after the page was opened again, from the page).
      expect(appliedFor('fallback-user')).toHaveLength(2);
      const reopenedAt = Date.now();
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
      const pushes = pushesSince(startedAt);
      expect(pushes.map((push) => push.context)).toEqual(pushes.map(() => 'page'));
      const sentC = pushes.filter((push) => push.entityIds?.includes(c));
      expect(sentC).toHaveLength(1);
      expect(sentC[0]!.at).toBeGreaterThanOrEqual(reopenedAt);
      expect(syncEvents).toEqual([]);
      expect(background).toEqual([]);
      expect(errors).toEqual([]);
      await context.close();
    });

    it('where the user blocked Background Sync (register() rejects NotAllowedError), the page falls back to sending by itself: on the online event and at once when online, each change exactly once', {
      timeout: 60_000,
    }, async () => {
      const { context, errors, syncEvents, background, devtools } = await newContext();
      // The site setting a user changes: background sync blocked for this origin, in this profile.
      const { targetInfo } = await devtools.send('Target.getTargetInfo');
      await devtools.send('Browser.setPermission', {
        permission: { name: 'background-sync' },
        setting: 'denied',
        origin: new URL(example.url).origin,
        browserContextId: targetInfo.browserContextId,
      });
      const startedAt = Date.now();
      const duplicatesBefore = example.api.stats().duplicates;
      const warnings: string[] = [];
      context.on('console', (message) => {
        if (message.type() === 'warning') warnings.push(message.text());
      });
      const page = await openPage(context);
      // The API is there; only using it fails.
      expect(await page.evaluate(() => document.body.dataset.backgroundSync)).toBe('true');
      expect(await page.evaluate(() => document.body.dataset.syncMode)).toBe('worker');
      await signIn(page, 'blocked-user');

      await context.setOffline(true);
      const a = await register(page, 'Home visit');
      await page.waitForSelector('body[data-sync-mode="page"]', { timeout: 10_000 });
      expect(await page.locator('#mode').textContent()).toMatch(/blocked for this site \(NotAllowedError/);
      await context.setOffline(false);
      await waitFor(
        'the page to deliver on `online`',
        () => appliedFor('blocked-user').length === 1,
        SYNC_EVENT_BOUND_MS,
      );
      // Online, the page delivers at once: its queue entry may be gone before it could be seen.
      await page.fill('#title', 'Phone call');
      await page.click('#register');
      await waitFor(
        'the page to deliver the change made online',
        () => appliedFor('blocked-user').length === 2,
        SYNC_EVENT_BOUND_MS,
      );

      const applied = appliedFor('blocked-user');
      expect(applied[0]!.entityId).toBe(a);
      expect(example.api.record(applied[1]!.scope, 'activity', applied[1]!.entityId)?.data).toMatchObject({
        title: 'Phone call',
      });
      expect(example.api.stats().duplicates).toBe(duplicatesBefore);
      const pushes = pushesSince(startedAt);
      expect(pushes.length).toBeGreaterThan(0);
      expect(pushes.map((push) => push.context)).toEqual(pushes.map(() => 'page'));
      expect(syncEvents).toEqual([]);
      expect(named(background, 'Dispatched sync event')).toEqual([]);
      expect(warnings.some((w) => w.includes('Background Sync unavailable'))).toBe(true);
      expect(errors).toEqual([]);
      await context.close();
    });

    it('two pages of one origin that come back online at the same moment: one sends while the other finds the lease taken; the server receives each mutation exactly once, and pushes from different pages never overlap', {
      timeout: 60_000,
    }, async () => {
      const { context, errors, syncEvents } = await newContext();
      await removeBackgroundSyncApi(context); // both pages send by themselves, on `online`
      const startedAt = Date.now();
      const duplicatesBefore = example.api.stats().duplicates;
      const pageA = await openPage(context);
      await signIn(pageA, 'two-pages-user');
      const pageB = await openPage(context); // same origin: same IndexedDB image, same Web Lock
      await pageB.waitForSelector('#activity-fields:not([disabled])', { timeout: 10_000 });

      await context.setOffline(true);
      const ids = [
        await register(pageA, 'A: home visit'),
        await register(pageB, 'B: phone call'),
        await register(pageA, 'A: walk'),
        await register(pageB, 'B: hospital visit'),
      ];
      // The first push is held at the server: the run that sent it stays in flight, with the
      // lease, while the other page's run takes its chance.
      const gate = example.holdPushes();
      await context.setOffline(false);
      await waitFor('a page to send its push', () => gate.held() >= 1, SYNC_EVENT_BOUND_MS);
      const lastRun = async (page: Page) => (await page.locator('#last-run').textContent()) ?? '';
      // Until the other page's run is over: it found the lease taken, or (what must not happen)
      // it sent a push of its own while the first is in flight.
      await waitFor(
        "the other page's run to end",
        async () =>
          gate.held() >= 2 ||
          (await lastRun(pageA)).includes('busy') ||
          (await lastRun(pageB)).includes('busy'),
        10_000,
      );
      gate.release();
      await waitFor(
        'the server to apply 4 mutations',
        () => appliedFor('two-pages-user').length === 4,
        SYNC_EVENT_BOUND_MS,
      );
      await waitFor(
        'the sending page to report its run',
        async () => /^page run: ok/.test(await lastRun(pageA)) || /^page run: ok/.test(await lastRun(pageB)),
        10_000,
      );

      const pushes = pushesSince(startedAt);
      expect(pushes.every((push) => push.context === 'page' && push.instance !== undefined)).toBe(true);
      // No two pushes from different pages were in flight at once (server-side times).
      for (const x of pushes) {
        for (const y of pushes) {
          if (x.instance === y.instance) continue;
          expect(
            x.endedAt <= y.at || y.endedAt <= x.at,
            `${JSON.stringify(x)} overlaps ${JSON.stringify(y)}`,
          ).toBe(true);
        }
      }
      // Exactly once on the wire, not only applied once: each change is in one push body.
      expect(pushes.flatMap((push) => push.entityIds ?? []).sort()).toEqual([...ids].sort());
      expect(
        appliedFor('two-pages-user')
          .map((row) => row.entityId)
          .sort(),
      ).toEqual([...ids].sort());
      expect(example.api.stats().duplicates).toBe(duplicatesBefore);
      // Both pages ran: the contention was real.
      expect([await lastRun(pageA), await lastRun(pageB)].sort()).toEqual([
        'page run: busy, 0 delivered',
        'page run: ok, 4 delivered',
      ]);
      expect(syncEvents).toEqual([]);
      expect(errors).toEqual([]);
      await context.close();
    });
  },
);
