/**
 * {@link startServer}: start the reference server and get a handle to drive it from tests.
 *
 * @packageDocumentation
 */

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { expireTokens, issueToken } from './auth.js';
import type { ServerContext } from './context.js';
import { FaultInjector } from './faults.js';
import { createRequestHandler, type PipelineState } from './routes.js';
import { createStats, snapshotStats } from './stats.js';
import { partitionOf, ServerStore } from './store.js';
import type { JsonObject, ReferenceServer, ReferenceServerOptions, Scope, StoredRecord } from './types.js';

const DEFAULT_TOKEN_TTL_MS = 3_600_000;
const DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024;

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value;
}

function invalid(name: string, expected: string, got: unknown): never {
  throw new TypeError(`startServer: ${name}: expected ${expected}, got ${describe(got)}`);
}

function checkScope(scope: Scope, name = 'scope'): Scope {
  if (typeof scope !== 'object' || scope === null) invalid(name, '{ userId, orgId? }', scope);
  if (typeof scope.userId !== 'string' || scope.userId === '')
    invalid(`${name}.userId`, 'a non-empty string', scope.userId);
  if (scope.orgId !== undefined && (typeof scope.orgId !== 'string' || scope.orgId === '')) {
    invalid(`${name}.orgId`, 'a non-empty string or undefined', scope.orgId);
  }
  return scope.orgId === undefined ? { userId: scope.userId } : { userId: scope.userId, orgId: scope.orgId };
}

interface ResolvedOptions {
  readonly port: number;
  readonly host: string;
  readonly dbPath: string;
  readonly tokenTtlMs: number;
  readonly now: () => number;
  readonly assignIds: ReadonlySet<string>;
  readonly seed: number;
  readonly maxBodyBytes: number;
  readonly onError: (error: unknown) => void;
}

function resolveOptions(options: ReferenceServerOptions): ResolvedOptions {
  if (typeof options !== 'object' || options === null) invalid('options', 'an object', options);
  const {
    port = 0,
    host = '127.0.0.1',
    dbPath = ':memory:',
    tokenTtlMs = DEFAULT_TOKEN_TTL_MS,
    now = Date.now,
    assignIds = [],
    seed = 1,
    maxBodyBytes = DEFAULT_MAX_BODY_BYTES,
    onError = (error: unknown) => console.error('[reference-server]', error),
  } = options;
  if (!Number.isInteger(port) || port < 0 || port > 65_535) invalid('port', 'an integer in [0, 65535]', port);
  if (typeof host !== 'string' || host === '') invalid('host', 'a non-empty string', host);
  if (typeof dbPath !== 'string' || dbPath === '') invalid('dbPath', "a file path or ':memory:'", dbPath);
  if (typeof tokenTtlMs !== 'number' || !Number.isFinite(tokenTtlMs) || tokenTtlMs <= 0) {
    invalid('tokenTtlMs', 'a positive number of milliseconds', tokenTtlMs);
  }
  if (typeof now !== 'function') invalid('now', 'a function returning milliseconds', now);
  if (!Array.isArray(assignIds) || assignIds.some((entity) => typeof entity !== 'string' || entity === '')) {
    invalid('assignIds', 'an array of entity type names', assignIds);
  }
  if (!Number.isInteger(seed)) invalid('seed', 'an integer', seed);
  if (!Number.isInteger(maxBodyBytes) || maxBodyBytes < 1)
    invalid('maxBodyBytes', 'a positive integer', maxBodyBytes);
  if (typeof onError !== 'function') invalid('onError', 'a function', onError);
  return { port, host, dbPath, tokenTtlMs, now, assignIds: new Set(assignIds), seed, maxBodyBytes, onError };
}

function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error): void => reject(error);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

/** Stop listening and destroy every connection, idle keep-alive and in-flight alike. */
function shutDown(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

/**
 * Start the reference server (a development and test tool — see examples/server/README.md).
 *
 * @example
 * ```ts
 * import { startServer } from './examples/server/index.js';
 *
 * const server = await startServer({ port: 0, assignIds: ['activity'] });
 * const { token } = server.issueToken({ userId: 'u1', orgId: 'o1' });
 * await fetch(`${server.url}/sync/pull?entity=activity`, { headers: { authorization: `Bearer ${token}` } });
 * server.faults.failNext(1, { status: 503, retryAfter: '120' });
 * await server.close();
 * ```
 *
 * @throws TypeError for invalid options; the listen error (e.g. `EADDRINUSE`) when the port is taken
 */
export async function startServer(options: ReferenceServerOptions = {}): Promise<ReferenceServer> {
  const resolved = resolveOptions(options);
  const faults = new FaultInjector(options.faults ?? {}, resolved.seed);
  const store = new ServerStore(resolved.dbPath, resolved.now);
  const ctx: ServerContext = {
    store,
    faults,
    stats: createStats(),
    assignIds: resolved.assignIds,
    now: resolved.now,
    tokenTtlMs: resolved.tokenTtlMs,
    maxBodyBytes: resolved.maxBodyBytes,
    onError: resolved.onError,
  };

  let closed = false;
  let online = false;
  let closing: Promise<void> | undefined;
  const closeListeners = new Set<() => void>();
  const state: PipelineState = {
    ctx,
    inProgress: new Set(),
    isClosed: () => closed,
    onClose(release) {
      closeListeners.add(release);
      return () => closeListeners.delete(release);
    },
  };

  const http = createServer(createRequestHandler(state));
  let port: number;
  try {
    port = await listen(http, resolved.port, resolved.host);
  } catch (error) {
    store.close();
    throw error;
  }
  online = true;
  const hostInUrl = resolved.host.includes(':') ? `[${resolved.host}]` : resolved.host;
  const url = `http://${hostInUrl}:${port}`;

  const assertOpen = (): void => {
    if (closed) throw new Error('reference server: already closed');
  };

  return {
    url,
    port,
    get isOnline() {
      return online;
    },
    faults,
    issueToken(identity) {
      assertOpen();
      return issueToken(ctx, checkScope(identity, 'identity'));
    },
    expireTokens() {
      assertOpen();
      expireTokens(ctx);
    },
    log() {
      assertOpen();
      return store.appliedLog();
    },
    stats() {
      return snapshotStats(ctx.stats);
    },
    record(scope, entity, entityId) {
      assertOpen();
      const partition = partitionOf(checkScope(scope));
      return store.getRecord(partition, entity, store.resolveId(partition, entity, entityId));
    },
    put(scope, entity, entityId, data): StoredRecord {
      assertOpen();
      if (typeof data !== 'object' || data === null || Array.isArray(data))
        invalid('put data', 'a JSON object', data);
      const partition = partitionOf(checkScope(scope));
      const copy = JSON.parse(JSON.stringify(data)) as JsonObject;
      return store.transaction(() => {
        const id = store.resolveId(partition, entity, entityId);
        const version = (store.getRecord(partition, entity, id)?.version ?? 0) + 1;
        store.writeRecord(partition, entity, id, version, copy);
        return { version, data: copy, deleted: false };
      });
    },
    remove(scope, entity, entityId) {
      assertOpen();
      const partition = partitionOf(checkScope(scope));
      return store.transaction(() => {
        const id = store.resolveId(partition, entity, entityId);
        const current = store.getRecord(partition, entity, id);
        if (current === undefined || current.deleted) return undefined;
        const version = current.version + 1;
        store.writeRecord(partition, entity, id, version, null);
        return { version, data: null, deleted: true };
      });
    },
    async goOffline() {
      assertOpen();
      if (!online) return;
      online = false;
      await shutDown(http);
    },
    async goOnline() {
      assertOpen();
      if (online) return;
      await listen(http, port, resolved.host);
      online = true;
    },
    close() {
      closing ??= (async () => {
        closed = true;
        for (const release of [...closeListeners]) release();
        if (online) {
          online = false;
          await shutDown(http);
        }
        store.close();
      })();
      return closing;
    },
  };
}
