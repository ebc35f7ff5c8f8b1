/**
 * Wiring a real engine to the real reference server over loopback, as an app would: better-sqlite3
 * on a temp file, the fetch adapter, and a credentials provider holding a token it can refresh.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import {
  type Clock,
  createSyncEngine,
  type EntityOptions,
  type Scope,
  type SyncEngine,
  type SyncEngineOptions,
} from 'sync-core';
import { createBetterSqlite3Storage } from 'sync-core/better-sqlite3';
import { createFetchNetwork, type FetchNetworkOptions } from 'sync-core/fetch';
import type { ReferenceServer } from '../../examples/server/index.js';
import { tempDir } from './storage-factories.js';

/** An app-side credentials store: one token per scope, refreshed through the server's endpoint. */
export function serverCredentials(server: ReferenceServer, scope: Scope) {
  let issued = server.issueToken(scope);
  let refreshes = 0;
  return {
    get refreshes() {
      return refreshes;
    },
    credentials: async () => ({ token: issued.token }),
    refresh: async () => {
      refreshes++;
      const response = await fetch(`${server.url}/auth/refresh`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ refreshToken: issued.refreshToken }),
      });
      if (!response.ok) return false;
      issued = (await response.json()) as typeof issued;
      return true;
    },
  };
}

export interface ClientOptions {
  readonly scope?: Scope;
  readonly entities?: Record<string, EntityOptions>;
  readonly clock?: Clock;
  readonly fetch?: Partial<FetchNetworkOptions>;
  readonly engine?: Partial<SyncEngineOptions>;
  readonly file?: string;
}

/** A started engine against `server`, on a temp-file database. Call `dispose()` when done. */
export async function referenceClient(server: ReferenceServer, options: ClientOptions = {}) {
  const scope = options.scope ?? { userId: 'u1', orgId: 'o1' };
  const auth = serverCredentials(server, scope);
  const dir = options.file ? undefined : tempDir('sync-core-it-');
  const file = options.file ?? join(dir!.dir, 'app.db');
  const network = createFetchNetwork({
    baseUrl: server.url,
    credentials: auth.credentials,
    refresh: auth.refresh,
    timeoutMs: 5_000,
    ...(options.clock ? { now: () => options.clock!.now() } : {}),
    ...options.fetch,
  });
  const engine: SyncEngine = createSyncEngine({
    storage: createBetterSqlite3Storage(new Database(file)),
    entities: options.entities ?? { activity: {}, contact: {} },
    network,
    ...(options.clock ? { clock: options.clock } : {}),
    ...options.engine,
  });
  await engine.open();
  await engine.start(scope);
  return {
    engine,
    auth,
    file,
    scope,
    async dispose() {
      await engine.close();
      dir?.remove();
    },
  };
}
