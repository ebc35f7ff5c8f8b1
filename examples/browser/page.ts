/**
 * The page: register activities (offline or not), see the queue, see what background runs did.
 *
 * Every activity is the app's own row plus its queued mutation, written in one transaction to the
 * sql.js database persisted in IndexedDB. The page then asks the browser for a Background Sync
 * (`registration.sync.register`): the service worker delivers the queue when the browser is online,
 * even after this page was closed. Where the Background Sync API is missing (Firefox, Safari), or
 * `register()` rejects (the user blocked background sync for the site), the page syncs by itself on
 * load and on every `online` event; the engine's lease and the database's Web Lock keep two tabs
 * (or a tab and the worker) from sending the same change twice.
 *
 * @packageDocumentation
 */
import { formatNotices, type Mutation, type SyncEngine } from 'sync-core';
import { type Activity, type AppEngine, openAppEngine, SYNC_TAG } from './app-engine.js';
import { loadSession, saveSession, signIn } from './session.js';

type SyncRegistration = ServiceWorkerRegistration & {
  readonly sync?: { register(tag: string): Promise<void> };
};

/** A page-triggered run may take this long (the page may be closed any time; nothing is lost). */
const PAGE_RUN_BUDGET_MS = 25_000;

function element<T extends HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (found === null) throw new Error(`#${id} is missing from the page`);
  return found as T;
}

function listItem(text: string, attributes: Record<string, string> = {}): HTMLLIElement {
  const li = document.createElement('li');
  li.textContent = text;
  for (const [name, value] of Object.entries(attributes)) li.setAttribute(name, value);
  return li;
}

function describeMutation(m: Mutation): string {
  const data = (m.data ?? {}) as Partial<Activity>;
  const error = m.lastError ? ` (${m.lastError.message})` : '';
  return `${data.title ?? m.entityId}, ${data.minutes ?? '?'} min: ${m.state}${error}`;
}

async function render(engine: SyncEngine): Promise<void> {
  const session = await loadSession();
  element('who').textContent = session ? `Signed in as ${session.scope.userId}` : 'Signed out';
  element<HTMLFieldSetElement>('activity-fields').disabled = session === undefined;

  const queued = await engine.queue.list();
  element('queue-count').textContent = String(queued.length);
  element('queue').replaceChildren(
    ...queued.map((m) => listItem(describeMutation(m), { 'data-state': m.state, 'data-id': m.entityId })),
  );

  // Next-launch notices: shown once, quietly, then acknowledged (docs/notices.md).
  const notices = await engine.status.unseenNotices();
  const lines = formatNotices(notices, { labels: { activity: 'activity' } });
  for (const line of lines) {
    element('notices').append(listItem(line.text, { 'data-key': line.key, 'data-severity': line.severity }));
    await engine.status.acknowledge(line.noticeIds);
  }
}

async function main(): Promise<void> {
  const registration = (await navigator.serviceWorker.register('/sw.js')) as SyncRegistration;
  await navigator.serviceWorker.ready;
  const hasBackgroundSync = registration.sync !== undefined;
  element('mode').textContent = hasBackgroundSync
    ? 'Background Sync: the service worker delivers the queue when the browser is online, even with this page closed.'
    : 'No Background Sync API in this browser: the page syncs on load and whenever it comes back online.';
  document.body.dataset.backgroundSync = String(hasBackgroundSync);
  /** Who sends: the worker (on the browser's `sync` event) or this page (the fallback). */
  let syncsInPage = !hasBackgroundSync;
  document.body.dataset.syncMode = syncsInPage ? 'page' : 'worker';

  const app: AppEngine = await openAppEngine('page');
  const { engine, storage } = app;

  let running: Promise<void> | undefined;
  /** The fallback: a deadline-bounded run in the page. */
  const runInPage = (): Promise<void> => {
    running ??= (async () => {
      try {
        const report = await engine.runOnce({
          trigger: 'foreground',
          deadline: Date.now() + PAGE_RUN_BUDGET_MS,
        });
        element('last-run').textContent = `page run: ${report.outcome}, ${report.counts.pushed} delivered`;
      } finally {
        running = undefined;
        await render(engine);
      }
    })();
    return running;
  };

  const onOnline = (): void => void runInPage().catch(showError);

  /** From now on this page sends: on `online`, on each change, and on its next loads. */
  const syncInPage = (reason: unknown): void => {
    if (syncsInPage) return;
    syncsInPage = true;
    document.body.dataset.syncMode = 'page';
    const why = reason instanceof Error ? `${reason.name}: ${reason.message}` : String(reason);
    element('mode').textContent =
      `Background Sync is blocked for this site (${why}): the page syncs on load and whenever it comes back online.`;
    console.warn(`[page] Background Sync unavailable, syncing from the page: ${why}`);
    window.addEventListener('online', onOnline);
  };

  /** Ask for a delivery: a Background Sync registration, or a run in the page where there is none. */
  const requestSync = async (): Promise<void> => {
    if (!syncsInPage && registration.sync !== undefined) {
      try {
        // Fires at once when online, or as soon as the browser is online again — in the worker.
        await registration.sync.register(SYNC_TAG);
        return;
      } catch (error) {
        // NotAllowedError when the user (or a policy) blocked background sync for the site:
        // nothing would ever wake the worker, so the page sends, as where the API is missing.
        syncInPage(error);
      }
    }
    if (navigator.onLine) await runInPage();
  };

  element<HTMLFormElement>('signin').addEventListener('submit', (event) => {
    event.preventDefault();
    const userId = element<HTMLInputElement>('user').value.trim() || 'field-worker';
    void (async () => {
      const session = await signIn({ userId, orgId: 'example' });
      await engine.start(session.scope);
      await render(engine);
    })().catch(showError);
  });

  element<HTMLButtonElement>('signout').addEventListener('click', () => {
    void (async () => {
      await engine.stop();
      await saveSession(undefined);
      await render(engine);
    })().catch(showError);
  });

  element<HTMLFormElement>('activity').addEventListener('submit', (event) => {
    event.preventDefault();
    const title = element<HTMLInputElement>('title').value.trim() || 'Home visit';
    const minutes = Number(element<HTMLInputElement>('minutes').value) || 30;
    const id = crypto.randomUUID();
    void (async () => {
      // The app's row and its mutation commit together, or not at all.
      await engine.transaction(async (tx) => {
        await tx.run('INSERT INTO activities (id, title, minutes, created_at) VALUES (?, ?, ?, ?)', [
          id,
          title,
          minutes,
          Date.now(),
        ]);
        await tx.enqueue({ entity: 'activity', op: 'create', entityId: id, data: { title, minutes } });
      });
      await render(engine);
      await requestSync();
    })().catch(showError);
  });

  // Saved after every commit already; this narrows nothing but costs nothing either.
  window.addEventListener('pagehide', () => void storage.flush().catch(() => undefined));
  if (syncsInPage) window.addEventListener('online', onOnline);
  // What the worker did while this page was open shows up when the user comes back to it.
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible') void render(engine).catch(showError);
  });

  await render(engine);
  // Work left by an earlier visit: ask again (the browser may have given up after its retries).
  if ((await engine.queue.stats()).total > 0 && engine.activeScope !== undefined) await requestSync();
  document.body.dataset.ready = 'true';
}

function showError(error: unknown): void {
  element('error').textContent = error instanceof Error ? error.message : String(error);
  console.error(error);
}

main().catch(showError);
