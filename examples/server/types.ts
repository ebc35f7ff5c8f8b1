/**
 * Public types of the reference server: its options, the handle {@link ReferenceServer} that
 * {@link startServer} returns, and the wire shapes of sync protocol v1 (DESIGN.md section 8).
 *
 * @packageDocumentation
 */

import type { FaultController, FaultOptions } from './faults.js';

/** A JSON object as the server stores record data. */
export type JsonObject = { [key: string]: unknown };

/**
 * Who a credential belongs to. Data is partitioned by `orgId` when present, else by `userId`:
 * records, the change log, assigned ids and idempotency keys of one partition are invisible to
 * every other partition.
 */
export interface Scope {
  readonly userId: string;
  readonly orgId?: string;
}

/** Credentials issued by `POST /auth/token`, `POST /auth/refresh` or {@link ReferenceServer.issueToken}. */
export interface IssuedToken {
  /** The bearer access token, sent as `Authorization: Bearer <token>`. */
  readonly token: string;
  /** Single use: `POST /auth/refresh` answers new credentials and invalidates this one. */
  readonly refreshToken: string;
  /** When the access token expires, in milliseconds since the epoch on the server's clock. */
  readonly expiresAt: number;
}

/** A record as the server holds it. */
export interface StoredRecord {
  /** 1 on create, +1 on every update and delete; a deleted record keeps its version (tombstone). */
  readonly version: number;
  /** The record's data; `null` once deleted. */
  readonly data: JsonObject | null;
  readonly deleted: boolean;
}

/** The built-in operations the server applies; any other `op` is rejected with `unknown-op`. */
export type AppliedOp = 'create' | 'update' | 'delete';

/**
 * One mutation the server applied: exactly one row per real effect, never one for an idempotent
 * replay. A delete of a missing record (answered `applied` with no effect) has no row, and neither
 * have writes made with {@link ReferenceServer.put} or {@link ReferenceServer.remove}.
 */
export interface AppliedMutation {
  /** Order of application, starting at 1, across all partitions. */
  readonly seq: number;
  /** The idempotency key; `null` for a REST `PATCH`/`DELETE` sent without `Idempotency-Key`. */
  readonly key: string | null;
  /** The push request's `clientId`, or a REST request's `X-Client-Id` header; `null` when absent. */
  readonly clientId: string | null;
  /** Whose credentials sent it. */
  readonly scope: Scope;
  readonly entity: string;
  /** The record's id on the server (the assigned `srv-<n>` id for types listed in `assignIds`). */
  readonly entityId: string;
  readonly op: AppliedOp;
  /** The base version the client sent (`null` when none, and always for creates over REST). */
  readonly baseVersion: number | null;
  /** The record's version after this mutation. */
  readonly version: number;
  /** The data as sent (an update's patch, not the merged record); `null` for deletes. */
  readonly data: JsonObject | null;
  /** Server clock ({@link ReferenceServerOptions.now}) at application, ms since the epoch. */
  readonly appliedAt: number;
  /** Which API applied it. */
  readonly via: 'push' | 'rest';
}

/** Counters since the server started, returned by {@link ReferenceServer.stats} as a snapshot. */
export interface ServerStats {
  /** Every HTTP request received, whatever its route or outcome. */
  readonly requests: number;
  /** Requests to `POST /sync/push`. */
  readonly pushRequests: number;
  /** Requests to `GET /sync/pull`. */
  readonly pullRequests: number;
  /** Requests to `/rest/...`. */
  readonly restRequests: number;
  /** Fresh `applied` outcomes (push results and REST 2xx writes), including no-op deletes. */
  readonly applied: number;
  /** Idempotent replays of a remembered key, whatever the original outcome was. */
  readonly duplicates: number;
  /** Fresh conflicts: push `conflict` results, REST 409 (exists) and 412 (stale `If-Match`). */
  readonly conflicts: number;
  /** Fresh rejections: push `rejected` results and REST 422 answers. */
  readonly rejected: number;
  /** Push items answered `retry` by the `partial` fault (never applied, never remembered). */
  readonly retries: number;
  /** Responses written, by HTTP status (injected faults included, dropped connections not). */
  readonly statusCounts: Readonly<Record<number, number>>;
  /** Successful `POST /auth/refresh` calls. */
  readonly refreshes: number;
  /** 401 answers. */
  readonly unauthorized: number;
  /** Connections destroyed by the `dropNext` fault. */
  readonly droppedConnections: number;
  /**
   * Faults fired: scripted responses, random errors, redirects, drops, hangs, malformed bodies and
   * per-item retries (latency is not counted).
   */
  readonly injectedFaults: number;
}

/** Options of {@link startServer}. Every option is optional. */
export interface ReferenceServerOptions {
  /**
   * TCP port; `0` picks a free one (read it back from {@link ReferenceServer.port}).
   * @default 0
   */
  readonly port?: number;
  /**
   * Interface to listen on. The server has no TLS and dev-only auth: keep it on loopback.
   * @default '127.0.0.1'
   */
  readonly host?: string;
  /**
   * SQLite database file. A file keeps records, tokens and idempotency keys across restarts (the
   * crash tests restart the server on the same file).
   * @default ':memory:'
   */
  readonly dbPath?: string;
  /**
   * Lifetime of access tokens in milliseconds.
   * @default 3_600_000 (1 hour)
   */
  readonly tokenTtlMs?: number;
  /**
   * The server's clock in milliseconds since the epoch: token expiry, `appliedAt`, and the `Date`
   * header (so a test can skew the server against the client). Latency faults use real timers.
   * @default Date.now
   */
  readonly now?: () => number;
  /**
   * Entity types for which the server assigns its own ids (`srv-<n>`) on create. The client's id is
   * remembered, so later mutations sent with it still reach the record.
   * @default []
   */
  readonly assignIds?: readonly string[];
  /**
   * Seed of the fault injector's PRNG (mulberry32), so random faults are reproducible.
   * @default 1
   */
  readonly seed?: number;
  /** Initial fault injection; change it at runtime through {@link ReferenceServer.faults}. */
  readonly faults?: FaultOptions;
  /**
   * Largest accepted request body in bytes; larger bodies are answered 413.
   * @default 8_388_608 (8 MiB)
   */
  readonly maxBodyBytes?: number;
  /**
   * Called with unexpected errors (each also answered 500).
   * @default writes to `console.error`
   */
  readonly onError?: (error: unknown) => void;
}

/** A running reference server, returned by {@link startServer}. */
export interface ReferenceServer {
  /** Base URL without trailing slash, e.g. `http://127.0.0.1:54321`. */
  readonly url: string;
  /** The port actually bound (stays the same across {@link ReferenceServer.goOnline}). */
  readonly port: number;
  /** `false` between {@link ReferenceServer.goOffline} and {@link ReferenceServer.goOnline}, and after close. */
  readonly isOnline: boolean;
  /** Fault injection, changeable at runtime. */
  readonly faults: FaultController;
  /** Issue credentials without HTTP (same as `POST /auth/token`). */
  issueToken(identity: Scope): IssuedToken;
  /** Make every access token issued so far expired (refresh tokens stay valid). */
  expireTokens(): void;
  /** The applied mutations, in application order. */
  log(): AppliedMutation[];
  /** A snapshot of the counters. */
  stats(): ServerStats;
  /**
   * The current state of a record, or `undefined` if it never existed. `entityId` may be the
   * server's id or, for types in `assignIds`, the client's id it was created with.
   */
  record(scope: Scope, entity: string, entityId: string): StoredRecord | undefined;
  /**
   * Write a record as if another client changed it: replaces its data (creating or re-creating it),
   * bumps its version and appends to the change log. Use it to provoke conflicts.
   */
  put(scope: Scope, entity: string, entityId: string, data: JsonObject): StoredRecord;
  /**
   * Delete a record as if another client did: tombstone, version + 1, change log entry. Returns the
   * tombstone, or `undefined` when the record is missing or already deleted.
   */
  remove(scope: Scope, entity: string, entityId: string): StoredRecord | undefined;
  /**
   * Stop listening and destroy every open connection, so clients get `ECONNREFUSED`. Requests
   * already past their latency keep being processed, as on a server whose network went away.
   */
  goOffline(): Promise<void>;
  /** Listen again on the same host and port. */
  goOnline(): Promise<void>;
  /** Stop listening, destroy every connection (keep-alive ones too) and close the database. Idempotent. */
  close(): Promise<void>;
}

/** `POST /sync/push` request body (protocol v1). */
export interface PushRequest {
  readonly protocol: 1;
  readonly clientId: string;
  readonly entity: string;
  readonly mutations: readonly PushMutation[];
}

/** One mutation of a {@link PushRequest}. */
export interface PushMutation {
  /** Matches the mutation to its result. */
  readonly id: string;
  /** Idempotency key: the same key is applied at most once per partition. */
  readonly key: string;
  readonly op: string;
  readonly entityId: string;
  readonly baseVersion?: number | null;
  readonly data?: unknown;
  readonly clientTime?: string;
  readonly dependsOn?: readonly string[];
}

/** A per-mutation result of `POST /sync/push`. */
export type PushResult =
  | { readonly id: string; readonly status: 'applied'; readonly version: number; readonly entityId?: string }
  | {
      readonly id: string;
      readonly status: 'duplicate';
      readonly version: number;
      readonly entityId?: string;
    }
  | {
      readonly id: string;
      readonly status: 'conflict';
      readonly version: number;
      readonly data: JsonObject | null;
    }
  | {
      readonly id: string;
      readonly status: 'rejected';
      readonly error: { readonly code: string; readonly message: string };
    }
  | { readonly id: string; readonly status: 'retry'; readonly retryAfterMs: number };

/** `POST /sync/push` 200 response body. */
export interface PushResponse {
  readonly results: readonly PushResult[];
}

/** One change of a `GET /sync/pull` page. */
export type PullChange =
  | { readonly entityId: string; readonly op: 'upsert'; readonly version: number; readonly data: JsonObject }
  | { readonly entityId: string; readonly op: 'delete'; readonly version: number };

/** `GET /sync/pull` 200 response body. */
export interface PullResponse {
  readonly changes: readonly PullChange[];
  /** Opaque; pass it back to get the changes after this page. */
  readonly cursor: string;
  readonly hasMore: boolean;
}
