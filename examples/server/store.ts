/**
 * The reference server's SQLite data layer (better-sqlite3): tokens, records with integer versions
 * and tombstones, the change log behind pull, idempotency keys, assigned-id mappings and the log of
 * applied mutations. Every statement is parameterised. Methods are synchronous; callers compose
 * them inside {@link ServerStore.transaction} so an effect and its idempotency key commit together.
 *
 * @packageDocumentation
 */

import Database from 'better-sqlite3';
import type { AppliedMutation, AppliedOp, JsonObject, Scope, StoredRecord } from './types.js';

const SCHEMA_VERSION = 1;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS counters (
  name TEXT PRIMARY KEY,
  value INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS access_tokens (
  token_hash TEXT PRIMARY KEY,
  user_id TEXT NOT NULL,
  org_id TEXT,
  expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS refresh_tokens (
  token_hash TEXT PRIMARY KEY,
  user_id TEXT NOT NULL,
  org_id TEXT
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS records (
  partition TEXT NOT NULL,
  entity TEXT NOT NULL,
  entity_id TEXT NOT NULL,
  version INTEGER NOT NULL,
  data TEXT,
  deleted INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (partition, entity, entity_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS changes (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  partition TEXT NOT NULL,
  entity TEXT NOT NULL,
  entity_id TEXT NOT NULL,
  op TEXT NOT NULL CHECK (op IN ('upsert', 'delete')),
  version INTEGER NOT NULL,
  data TEXT
);
CREATE INDEX IF NOT EXISTS changes_by_entity ON changes (partition, entity, seq);
CREATE TABLE IF NOT EXISTS idempotency_keys (
  partition TEXT NOT NULL,
  key TEXT NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('push', 'rest')),
  response TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (partition, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS id_map (
  partition TEXT NOT NULL,
  entity TEXT NOT NULL,
  client_id TEXT NOT NULL,
  server_id TEXT NOT NULL,
  PRIMARY KEY (partition, entity, client_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS applied_log (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  key TEXT,
  client_id TEXT,
  user_id TEXT NOT NULL,
  org_id TEXT,
  entity TEXT NOT NULL,
  entity_id TEXT NOT NULL,
  op TEXT NOT NULL,
  base_version INTEGER,
  version INTEGER NOT NULL,
  data TEXT,
  applied_at INTEGER NOT NULL,
  via TEXT NOT NULL
);
`;

/**
 * The partition a scope's data lives in: the org when there is one, else the user. The prefixes
 * keep an org and a user with the same id apart.
 */
export function partitionOf(scope: Scope): string {
  return scope.orgId !== undefined ? `org:${scope.orgId}` : `user:${scope.userId}`;
}

/** A remembered idempotency key. */
export interface RememberedKey {
  readonly kind: 'push' | 'rest';
  /** What was answered the first time, as stored by {@link ServerStore.rememberKey}. */
  readonly response: unknown;
}

/** A change-log row as pull serves it. */
export interface ChangeRow {
  readonly seq: number;
  readonly entityId: string;
  readonly op: 'upsert' | 'delete';
  readonly version: number;
  readonly data: JsonObject | null;
}

/** The fields of an applied-log row that the caller provides. */
export type AppliedEntry = Omit<AppliedMutation, 'seq' | 'appliedAt'>;

interface RecordRow {
  version: number;
  data: string | null;
  deleted: number;
}

interface TokenRow {
  user_id: string;
  org_id: string | null;
  expires_at: number;
}

interface ChangeDbRow {
  seq: number;
  entity_id: string;
  op: 'upsert' | 'delete';
  version: number;
  data: string | null;
}

interface AppliedDbRow {
  seq: number;
  key: string | null;
  client_id: string | null;
  user_id: string;
  org_id: string | null;
  entity: string;
  entity_id: string;
  op: AppliedOp;
  base_version: number | null;
  version: number;
  data: string | null;
  applied_at: number;
  via: 'push' | 'rest';
}

function parseObject(text: string | null): JsonObject | null {
  // Only this module writes these columns, always from JSON.stringify of an object.
  return text === null ? null : (JSON.parse(text) as JsonObject);
}

function scopeOf(userId: string, orgId: string | null): Scope {
  return orgId === null ? { userId } : { userId, orgId };
}

/** Every statement the store runs, prepared once. */
function prepareStatements(db: Database.Database) {
  return {
    nextCounter: db.prepare<{ name: string }, { value: number }>(
      `INSERT INTO counters (name, value) VALUES (:name, 1)
       ON CONFLICT (name) DO UPDATE SET value = value + 1 RETURNING value`,
    ),
    insertAccess: db.prepare<{ hash: string; userId: string; orgId: string | null; expiresAt: number }>(
      'INSERT INTO access_tokens (token_hash, user_id, org_id, expires_at) VALUES (:hash, :userId, :orgId, :expiresAt)',
    ),
    findAccess: db.prepare<{ hash: string }, TokenRow>(
      'SELECT user_id, org_id, expires_at FROM access_tokens WHERE token_hash = :hash',
    ),
    expireAccess: db.prepare<{ now: number }>(
      'UPDATE access_tokens SET expires_at = :now WHERE expires_at > :now',
    ),
    insertRefresh: db.prepare<{ hash: string; userId: string; orgId: string | null }>(
      'INSERT INTO refresh_tokens (token_hash, user_id, org_id) VALUES (:hash, :userId, :orgId)',
    ),
    takeRefresh: db.prepare<{ hash: string }, Omit<TokenRow, 'expires_at'>>(
      'DELETE FROM refresh_tokens WHERE token_hash = :hash RETURNING user_id, org_id',
    ),
    findKey: db.prepare<{ partition: string; key: string }, { kind: 'push' | 'rest'; response: string }>(
      'SELECT kind, response FROM idempotency_keys WHERE partition = :partition AND key = :key',
    ),
    insertKey: db.prepare<{ partition: string; key: string; kind: string; response: string; now: number }>(
      `INSERT INTO idempotency_keys (partition, key, kind, response, created_at)
       VALUES (:partition, :key, :kind, :response, :now)`,
    ),
    findMapping: db.prepare<{ partition: string; entity: string; clientId: string }, { server_id: string }>(
      'SELECT server_id FROM id_map WHERE partition = :partition AND entity = :entity AND client_id = :clientId',
    ),
    insertMapping: db.prepare<{ partition: string; entity: string; clientId: string; serverId: string }>(
      'INSERT INTO id_map (partition, entity, client_id, server_id) VALUES (:partition, :entity, :clientId, :serverId)',
    ),
    findRecord: db.prepare<{ partition: string; entity: string; id: string }, RecordRow>(
      'SELECT version, data, deleted FROM records WHERE partition = :partition AND entity = :entity AND entity_id = :id',
    ),
    upsertRecord: db.prepare<{
      partition: string;
      entity: string;
      id: string;
      version: number;
      data: string | null;
      deleted: number;
    }>(
      `INSERT INTO records (partition, entity, entity_id, version, data, deleted)
       VALUES (:partition, :entity, :id, :version, :data, :deleted)
       ON CONFLICT (partition, entity, entity_id)
       DO UPDATE SET version = excluded.version, data = excluded.data, deleted = excluded.deleted`,
    ),
    insertChange: db.prepare<{
      partition: string;
      entity: string;
      id: string;
      op: 'upsert' | 'delete';
      version: number;
      data: string | null;
    }>(
      `INSERT INTO changes (partition, entity, entity_id, op, version, data)
       VALUES (:partition, :entity, :id, :op, :version, :data)`,
    ),
    changesAfter: db.prepare<
      { partition: string; entity: string; after: number; limit: number },
      ChangeDbRow
    >(
      `SELECT seq, entity_id, op, version, data FROM changes
       WHERE partition = :partition AND entity = :entity AND seq > :after
       ORDER BY seq LIMIT :limit`,
    ),
    insertApplied: db.prepare<{
      key: string | null;
      clientId: string | null;
      userId: string;
      orgId: string | null;
      entity: string;
      entityId: string;
      op: string;
      baseVersion: number | null;
      version: number;
      data: string | null;
      appliedAt: number;
      via: string;
    }>(
      `INSERT INTO applied_log
         (key, client_id, user_id, org_id, entity, entity_id, op, base_version, version, data, applied_at, via)
       VALUES
         (:key, :clientId, :userId, :orgId, :entity, :entityId, :op, :baseVersion, :version, :data, :appliedAt, :via)`,
    ),
    allApplied: db.prepare<[], AppliedDbRow>('SELECT * FROM applied_log ORDER BY seq'),
  };
}

/** The SQLite store. One instance per server; not safe to share a file between two servers. */
export class ServerStore {
  readonly #db: Database.Database;
  readonly #now: () => number;
  readonly #stmt: ReturnType<typeof prepareStatements>;

  /**
   * Open (creating if needed) the database.
   *
   * @param path a file path or `':memory:'`
   * @param now the server clock, for `applied_at` and key timestamps
   * @throws if the file cannot be opened or was written by a newer schema
   */
  constructor(path: string, now: () => number) {
    this.#db = new Database(path);
    this.#now = now;
    try {
      this.#db.pragma('busy_timeout = 5000');
      if (path !== ':memory:' && path !== '') {
        // WAL + NORMAL survives a SIGKILL of the server process (only an OS crash can lose the
        // last commits), which is what the crash tests need, and keeps commits cheap.
        this.#db.pragma('journal_mode = WAL');
        this.#db.pragma('synchronous = NORMAL');
      }
      const version = this.#db.pragma('user_version', { simple: true });
      if (typeof version === 'number' && version > SCHEMA_VERSION) {
        throw new Error(`reference server: database schema ${version} is newer than ${SCHEMA_VERSION}`);
      }
      this.#db.exec(SCHEMA);
      this.#db.pragma(`user_version = ${SCHEMA_VERSION}`);
    } catch (error) {
      this.#db.close();
      throw error;
    }
    this.#stmt = prepareStatements(this.#db);
  }

  /** Run `fn` in one SQLite transaction: committed when it returns, rolled back when it throws. */
  transaction<T>(fn: () => T): T {
    return this.#db.transaction(fn).immediate();
  }

  /** Next value of a named counter, starting at 1 (durable across restarts on a file database). */
  nextCounter(name: string): number {
    const row = this.#stmt.nextCounter.get({ name });
    if (row === undefined) throw new Error(`counter ${name} returned no row`);
    return row.value;
  }

  /** Store an access token by its hash. */
  insertAccessToken(hash: string, scope: Scope, expiresAt: number): void {
    this.#stmt.insertAccess.run({ hash, userId: scope.userId, orgId: scope.orgId ?? null, expiresAt });
  }

  /** Look up an access token by its hash. */
  findAccessToken(hash: string): { scope: Scope; expiresAt: number } | undefined {
    const row = this.#stmt.findAccess.get({ hash });
    return row === undefined
      ? undefined
      : { scope: scopeOf(row.user_id, row.org_id), expiresAt: row.expires_at };
  }

  /** Make every access token that is still valid at `now` expire at `now`. */
  expireAccessTokens(now: number): void {
    this.#stmt.expireAccess.run({ now });
  }

  /** Store a refresh token by its hash. */
  insertRefreshToken(hash: string, scope: Scope): void {
    this.#stmt.insertRefresh.run({ hash, userId: scope.userId, orgId: scope.orgId ?? null });
  }

  /** Delete a refresh token and return its scope (single use), or `undefined` if unknown. */
  takeRefreshToken(hash: string): Scope | undefined {
    const row = this.#stmt.takeRefresh.get({ hash });
    return row === undefined ? undefined : scopeOf(row.user_id, row.org_id);
  }

  /** The remembered outcome of an idempotency key in a partition. */
  findKey(partition: string, key: string): RememberedKey | undefined {
    const row = this.#stmt.findKey.get({ partition, key });
    return row === undefined ? undefined : { kind: row.kind, response: JSON.parse(row.response) as unknown };
  }

  /** Remember an idempotency key's outcome. Call inside the transaction that applied the effect. */
  rememberKey(partition: string, key: string, kind: 'push' | 'rest', response: unknown): void {
    this.#stmt.insertKey.run({ partition, key, kind, response: JSON.stringify(response), now: this.#now() });
  }

  /** The server id a client id was mapped to, if any. */
  findMapping(partition: string, entity: string, clientId: string): string | undefined {
    return this.#stmt.findMapping.get({ partition, entity, clientId })?.server_id;
  }

  /** Remember that `clientId` names the record stored as `serverId`. */
  insertMapping(partition: string, entity: string, clientId: string, serverId: string): void {
    this.#stmt.insertMapping.run({ partition, entity, clientId, serverId });
  }

  /** The id a record is stored under: the mapped server id when `id` is a mapped client id. */
  resolveId(partition: string, entity: string, id: string): string {
    return this.findMapping(partition, entity, id) ?? id;
  }

  /** A record's current state. */
  getRecord(partition: string, entity: string, id: string): StoredRecord | undefined {
    const row = this.#stmt.findRecord.get({ partition, entity, id });
    if (row === undefined) return undefined;
    return {
      version: row.version,
      data: row.deleted ? null : parseObject(row.data),
      deleted: row.deleted !== 0,
    };
  }

  /**
   * Write a record's new state and append the matching change-log entry (`upsert` with the full
   * data, or `delete` for a tombstone).
   */
  writeRecord(partition: string, entity: string, id: string, version: number, data: JsonObject | null): void {
    const text = data === null ? null : JSON.stringify(data);
    const deleted = data === null ? 1 : 0;
    this.#stmt.upsertRecord.run({ partition, entity, id, version, data: text, deleted });
    this.#stmt.insertChange.run({
      partition,
      entity,
      id,
      op: deleted ? 'delete' : 'upsert',
      version,
      data: text,
    });
  }

  /** Up to `limit` changes of a partition's entity type with a change-log seq greater than `after`. */
  changesAfter(partition: string, entity: string, after: number, limit: number): ChangeRow[] {
    return this.#stmt.changesAfter.all({ partition, entity, after, limit }).map((row) => ({
      seq: row.seq,
      entityId: row.entity_id,
      op: row.op,
      version: row.version,
      data: parseObject(row.data),
    }));
  }

  /** Append a row to the applied log. */
  appendApplied(entry: AppliedEntry): void {
    this.#stmt.insertApplied.run({
      key: entry.key,
      clientId: entry.clientId,
      userId: entry.scope.userId,
      orgId: entry.scope.orgId ?? null,
      entity: entry.entity,
      entityId: entry.entityId,
      op: entry.op,
      baseVersion: entry.baseVersion,
      version: entry.version,
      data: entry.data === null ? null : JSON.stringify(entry.data),
      appliedAt: this.#now(),
      via: entry.via,
    });
  }

  /** Every applied mutation, in order. */
  appliedLog(): AppliedMutation[] {
    return this.#stmt.allApplied.all().map((row) => ({
      seq: row.seq,
      key: row.key,
      clientId: row.client_id,
      scope: scopeOf(row.user_id, row.org_id),
      entity: row.entity,
      entityId: row.entity_id,
      op: row.op,
      baseVersion: row.base_version,
      version: row.version,
      data: parseObject(row.data),
      appliedAt: row.applied_at,
      via: row.via,
    }));
  }

  /** Whether the database is still open. */
  get isOpen(): boolean {
    return this.#db.open;
  }

  /** Close the database. Idempotent. */
  close(): void {
    if (this.#db.open) this.#db.close();
  }
}
