/**
 * `sync-core/better-sqlite3`: the storage adapter for Node and Electron.
 *
 * @packageDocumentation
 */
import {
  ConfigError,
  type RunResult,
  type SqlExecutor,
  type SqlParams,
  type SqlRow,
  type StorageAdapter,
  type TransactionMode,
} from 'sync-core';

/**
 * The few members of a better-sqlite3 `Statement` this adapter uses, typed structurally so the
 * package never imports better-sqlite3 at run time (it is an optional peer dependency).
 */
export interface BetterSqlite3Statement {
  run(...params: unknown[]): { changes: number; lastInsertRowid: number | bigint };
  all(...params: unknown[]): unknown[];
}

/** The few members of a better-sqlite3 `Database` this adapter uses. */
export interface BetterSqlite3Database {
  prepare(sql: string): BetterSqlite3Statement;
  exec(sql: string): unknown;
  pragma(source: string, options?: { simple?: boolean }): unknown;
  close(): unknown;
  readonly inTransaction: boolean;
  readonly memory: boolean;
  readonly open: boolean;
}

/**
 * SQLite's `synchronous` level. See https://www.sqlite.org/pragma.html#pragma_synchronous.
 *
 * - `FULL` (default): in WAL mode, every commit is fsynced to the WAL before the call returns.
 *   A mutation whose `enqueue` resolved survives a power failure or OS crash, not only a process
 *   crash (DESIGN.md invariant 1). Costs an fsync per commit.
 * - `NORMAL`: WAL is fsynced only at checkpoints. Survives any process crash and never corrupts
 *   the database, but the last commits may roll back after a power loss. Several times faster
 *   per small transaction; choose it knowingly, e.g. on desktops with a battery.
 * - `EXTRA`: FULL plus a directory sync when the journal is deleted (matters outside WAL).
 * - `OFF`: no fsync at all; a power loss may corrupt the database. Tests and benchmarks only.
 */
export type SynchronousLevel = 'OFF' | 'NORMAL' | 'FULL' | 'EXTRA';

/** Options of {@link createBetterSqlite3Storage}. */
export interface BetterSqlite3StorageOptions {
  /**
   * Durability of each commit; see {@link SynchronousLevel}.
   * @default 'FULL' — chosen so that no acknowledged mutation is lost on power failure.
   */
  readonly synchronous?: SynchronousLevel;
  /**
   * How long a statement waits for another connection's write lock before failing with
   * `STORAGE_BUSY`. better-sqlite3 is synchronous: the wait blocks this thread, so keep it short.
   * @default 5000
   */
  readonly busyTimeoutMs?: number;
  /**
   * Switch the database to WAL journaling (readers never block the writer; required for a
   * foreground app and a background job to share the file). Ignored for in-memory databases.
   * @default true
   */
  readonly wal?: boolean;
  /**
   * Close the `Database` when the engine closes. Set `false` when the app keeps using the same
   * handle for its own tables after the engine is closed.
   * @default true
   */
  readonly closeDatabase?: boolean;
}

const LEVELS: readonly SynchronousLevel[] = ['OFF', 'NORMAL', 'FULL', 'EXTRA'];
const STATEMENT_CACHE_SIZE = 256;

/**
 * Wrap a better-sqlite3 `Database` the app opened as a sync-core {@link StorageAdapter}.
 *
 * On `open()` it applies WAL, the busy timeout and the `synchronous` level. Statements are prepared
 * once and cached (a bounded cache), so the queue's hot paths cost one `step` each.
 *
 * @throws ConfigError for an invalid option.
 *
 * @example
 * ```ts
 * import Database from 'better-sqlite3';
 * import { createSyncEngine } from 'sync-core';
 * import { createBetterSqlite3Storage } from 'sync-core/better-sqlite3';
 *
 * const storage = createBetterSqlite3Storage(new Database('app.db'), { synchronous: 'FULL' });
 * const engine = createSyncEngine({ storage, entities: { activity: {} } });
 * ```
 */
export function createBetterSqlite3Storage(
  db: BetterSqlite3Database,
  options: BetterSqlite3StorageOptions = {},
): StorageAdapter {
  if (
    typeof db !== 'object' ||
    db === null ||
    typeof db.prepare !== 'function' ||
    typeof db.exec !== 'function'
  ) {
    throw new ConfigError('createBetterSqlite3Storage: expected a better-sqlite3 Database');
  }
  const synchronous = options.synchronous ?? 'FULL';
  if (!LEVELS.includes(synchronous)) {
    throw new ConfigError(`synchronous: expected one of ${LEVELS.join(', ')}, got ${String(synchronous)}`);
  }
  const busyTimeoutMs = options.busyTimeoutMs ?? 5000;
  if (!Number.isInteger(busyTimeoutMs) || busyTimeoutMs < 0) {
    throw new ConfigError(`busyTimeoutMs: expected an integer ≥ 0, got ${String(busyTimeoutMs)}`);
  }
  const wal = options.wal ?? true;
  const closeDatabase = options.closeDatabase ?? true;

  const cache = new Map<string, BetterSqlite3Statement>();
  const statement = (sql: string): BetterSqlite3Statement => {
    let stmt = cache.get(sql);
    if (stmt === undefined) {
      stmt = db.prepare(sql);
      if (cache.size >= STATEMENT_CACHE_SIZE) cache.delete(cache.keys().next().value as string);
      cache.set(sql, stmt);
    }
    return stmt;
  };

  const executor: SqlExecutor = {
    exec(sql: string): void {
      db.exec(sql);
    },
    run(sql: string, params: SqlParams = []): RunResult {
      const { changes, lastInsertRowid } = statement(sql).run(...params);
      return { changes, lastInsertRowid };
    },
    all(sql: string, params: SqlParams = []): SqlRow[] {
      return statement(sql).all(...params) as SqlRow[];
    },
  };

  return {
    name: 'better-sqlite3',
    capabilities: {
      multiProcess: !db.memory,
      durable: !db.memory && synchronous !== 'OFF',
      insertRowid: true,
    },
    open(): void {
      // Busy timeout first: switching to WAL itself needs the lock another process may hold.
      db.pragma(`busy_timeout = ${busyTimeoutMs}`);
      if (wal && !db.memory) db.pragma('journal_mode = WAL');
      db.pragma(`synchronous = ${synchronous}`);
    },
    ...executor,
    async transaction<T>(mode: TransactionMode, fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
      db.exec(mode === 'immediate' ? 'BEGIN IMMEDIATE' : 'BEGIN');
      try {
        const result = await fn(executor);
        db.exec('COMMIT');
        return result;
      } catch (error) {
        // A failed COMMIT (or a statement error SQLite already rolled back) may or may not leave
        // the transaction open; never leave one behind.
        if (db.inTransaction) db.exec('ROLLBACK');
        throw error;
      }
    },
    close(): void {
      cache.clear();
      if (closeDatabase && db.open) db.close();
    },
  };
}
