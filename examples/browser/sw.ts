/**
 * The service worker: when the browser fires the Background Sync `sync` event (the device is
 * online again, possibly with every tab of the site closed), it opens the same database as the
 * page and delivers the queue with one deadline-bounded run.
 *
 * @packageDocumentation
 */
import { openAppEngine, SYNC_TAG } from './app-engine.js';

// The few service-worker types used here, typed structurally so that this file type-checks with
// the DOM library alone (the DOM and WebWorker libraries cannot be loaded together).
interface ExtendableEvent extends Event {
  waitUntil(promise: Promise<unknown>): void;
}
interface SyncEvent extends ExtendableEvent {
  readonly tag: string;
  /** The browser's last attempt for this registration: rejecting no longer buys a retry. */
  readonly lastChance: boolean;
}
interface ServiceWorkerScope {
  readonly clients: { claim(): Promise<void> };
  skipWaiting(): Promise<void>;
  addEventListener(type: 'install' | 'activate', listener: (event: ExtendableEvent) => void): void;
  addEventListener(type: 'sync', listener: (event: SyncEvent) => void): void;
}
declare const self: ServiceWorkerScope;

/**
 * The budget of one `sync` event. Chromium stops a service worker whose event runs for minutes
 * (about 3 min for a `sync` event); the run stops starting batches well before that.
 */
const SYNC_BUDGET_MS = 60_000;

self.addEventListener('install', (event) => event.waitUntil(self.skipWaiting()));
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

/**
 * One background run. Resolves when the queue is empty (or holds only what needs the user: failed
 * and conflicted changes); rejects while deliverable work remains, so that the browser fires the
 * event again later with its own backoff (Chromium: about 5 min, then 15 min, three attempts).
 */
async function syncInBackground(event: SyncEvent): Promise<void> {
  const startedAt = Date.now();
  const { engine } = await openAppEngine('service-worker');
  let remaining = 0;
  let outcome = 'no-scope';
  try {
    if (engine.activeScope !== undefined) {
      const report = await engine.runOnce({ trigger: 'background', deadline: startedAt + SYNC_BUDGET_MS });
      outcome = report.outcome;
      const stats = await engine.queue.stats();
      remaining = stats.pending + stats.inflight;
    }
  } finally {
    // Closing saves the image: the page finds the run, its notices and the queue's new states.
    await engine.close();
  }
  console.log(`[sw] sync event: ${outcome}, ${remaining} left${event.lastChance ? ' (last chance)' : ''}`);
  // Signed out or refused credentials: only the user can fix that, a retry would not.
  const userMustAct = outcome === 'auth-required' || outcome === 'no-scope';
  if (remaining > 0 && !userMustAct && !event.lastChance) {
    throw new Error(`sync-core: ${remaining} change(s) still queued after a ${outcome} run; retry later`);
  }
}

self.addEventListener('sync', (event) => {
  if (event.tag !== SYNC_TAG) return;
  event.waitUntil(syncInBackground(event));
});
