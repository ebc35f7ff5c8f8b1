/**
 * The one engine setup the page and the service worker share: the same IndexedDB-persisted sql.js
 * database, the same entities, the same API (this origin, proxied to the reference server).
 *
 * @packageDocumentation
 */
import initSqlJs from 'sql.js';
import { createSyncEngine, type SyncEngine } from 'sync-core';
import { createFetchNetwork } from 'sync-core/fetch';
import { openIndexedDbStorage, type SqlJsStorage } from 'sync-core/sql-js';
import { loadSession, refreshSession } from './session.js';

/** The database name: one IndexedDB image, one Web Lock (`sync-core:<name>`) for every context. */
export const DATABASE_NAME = 'sync-core-example';

/** The Background Sync tag the page registers and the service worker answers. */
export const SYNC_TAG = 'sync-core';

/** Which context sent a request; the example server records it so the test can tell them apart. */
export type SyncContext = 'page' | 'service-worker';

/** The app's own table, written in the same transaction as the mutation that sends it. */
const APP_SCHEMA = `CREATE TABLE IF NOT EXISTS activities (
  id TEXT PRIMARY KEY,
  title TEXT NOT NULL,
  minutes INTEGER NOT NULL,
  created_at INTEGER NOT NULL
)`;

/** An activity as the app stores and sends it. */
export interface Activity {
  readonly title: string;
  readonly minutes: number;
}

type SqlJs = Awaited<ReturnType<typeof initSqlJs>>;
let sqlJs: Promise<SqlJs> | undefined;

/** sql.js, loaded once per context; the wasm file is served next to the bundles. */
export function loadSqlJs(): Promise<SqlJs> {
  sqlJs ??= initSqlJs({ locateFile: (file) => new URL(`/${file}`, self.location.origin).href });
  return sqlJs;
}

/** An open engine over the shared database, plus its storage for `flush()`. */
export interface AppEngine {
  readonly engine: SyncEngine;
  readonly storage: SqlJsStorage;
}

/**
 * Open the shared database and an engine over it, started for the signed-in user when there is one.
 * Nothing is scheduled by the engine itself: the page registers a Background Sync tag (or runs on
 * load and `online` where the API is missing) and the service worker runs when the browser fires it.
 */
export async function openAppEngine(context: SyncContext): Promise<AppEngine> {
  const SQL = await loadSqlJs();
  // 'commit': an activity is in IndexedDB before the form says "queued" — the tab may be closed
  // right after, and the worker must find it.
  const storage = await openIndexedDbStorage(SQL, { name: DATABASE_NAME, persistMode: 'commit' });
  await storage.exec(APP_SCHEMA);
  // Tells the example server's request log which page load or `sync` event sent a request.
  const instance = crypto.randomUUID();
  const engine = createSyncEngine({
    storage,
    network: createFetchNetwork({
      baseUrl: self.location.origin,
      fetch: (url, init) =>
        fetch(url, {
          ...init,
          headers: { ...init.headers, 'x-sync-context': context, 'x-sync-instance': instance },
        }),
      credentials: async () => {
        const session = await loadSession();
        if (session === undefined) throw new Error('signed out');
        return { token: session.token };
      },
      refresh: () => refreshSession(),
      timeoutMs: 15_000,
    }),
    entities: { activity: {} },
  });
  try {
    await engine.open();
    const session = await loadSession();
    if (session !== undefined) await engine.start(session.scope);
  } catch (error) {
    await engine.close().catch(() => undefined);
    throw error;
  }
  return { engine, storage };
}
