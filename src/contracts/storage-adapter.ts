/**
 * The storage port: a small async SQL driver over one SQLite connection.
 *
 * The core owns the schema and every SQL statement; an adapter only moves SQL text and positional
 * parameters to its binding and rows back. Writing one for a new SQLite binding (expo-sqlite,
 * op-sqlite, wa-sqlite, Capacitor SQLite…) takes about fifty lines; see docs/adapters.md.
 *
 * The core never calls an adapter directly: it wraps it in a guard that opens it once, refuses use
 * after close, serialises every call (an adapter sees at most one call or transaction at a time),
 * and maps driver errors to {@link StorageError} codes. Adapters therefore need no locking of their
 * own, and may throw whatever their binding throws.
 *
 * @packageDocumentation
 */

/**
 * A value that can be bound to a `?` parameter or read from a column.
 * The core binds only strings, finite numbers and null; it reads integers back as `number`.
 */
export type SqlValue = string | number | bigint | null | Uint8Array;

/** Positional parameters for the `?` placeholders of one statement, in order. */
export type SqlParams = readonly SqlValue[];

/** A row as an object keyed by column name (or alias). */
export type SqlRow = Record<string, SqlValue>;

/** What a write statement reports. */
export interface RunResult {
  /** Rows inserted, updated or deleted by this statement (not by triggers). */
  readonly changes: number;
  /**
   * The rowid of the row an `INSERT` added (SQLite's `last_insert_rowid()`). Required from
   * adapters that declare the `insertRowid` capability, ignored otherwise.
   */
  readonly lastInsertRowid?: number | bigint;
}

/** A value or a promise of it: adapters over synchronous bindings may answer synchronously. */
export type MaybePromise<T> = T | Promise<T>;

/**
 * The three statement-level operations, available on the adapter and inside a transaction.
 *
 * Every method may return synchronously or asynchronously; the core awaits either. A method throws
 * (or rejects) on any SQLite error, with the binding's error as-is: the core maps `SQLITE_BUSY`,
 * `SQLITE_FULL`, `SQLITE_CORRUPT`, `SQLITE_NOTADB` and `SQLITE_READONLY` (by `code` or by message)
 * to {@link StorageError} codes.
 */
export interface SqlExecutor {
  /**
   * Execute one or more statements without parameters and without results (DDL, pragmas).
   * Statements run in order; the first error stops the rest.
   */
  exec(sql: string): MaybePromise<void>;

  /**
   * Execute one statement with positional parameters and report the rows it changed.
   * Guarantee: the statement's effect is applied in full or not at all.
   */
  run(sql: string, params?: SqlParams): MaybePromise<RunResult>;

  /**
   * Execute one statement and return every row it yields, in the order SQLite yields them, as
   * plain objects keyed by column name. Integers must come back as `number` (not bigint) for
   * values within 2^53; the core never stores larger integers.
   */
  all(sql: string, params?: SqlParams): MaybePromise<SqlRow[]>;
}

/**
 * How a transaction takes its locks.
 *
 * - `immediate` (`BEGIN IMMEDIATE`): take the write lock at once, so two processes that both read
 *   then write cannot deadlock or both claim the same rows. Every write transaction of the core
 *   is immediate.
 * - `deferred` (`BEGIN`): take locks as statements need them; the core uses it for read-only
 *   snapshots.
 */
export type TransactionMode = 'immediate' | 'deferred';

/**
 * What an adapter can do that the core (and the conformance suite) adapts to.
 * Every flag is optional; its default is stated.
 */
export interface StorageCapabilities {
  /**
   * Other processes may open the same database file at the same time, so the core relies on
   * SQLite's file locks (and its lease table) for single flight across processes.
   * Default is `false`.
   */
  readonly multiProcess?: boolean;
  /**
   * Committed writes survive a process crash once the call that committed them has resolved.
   * `false` for in-memory databases and for sql.js with debounced persistence.
   * Default is `true`.
   */
  readonly durable?: boolean;
  /**
   * `run()` of an `INSERT` reports the new row's rowid in `lastInsertRowid` (better-sqlite3 does,
   * for free). The queue then inserts without `RETURNING`, which SQLite runs through a temporary
   * table. Default is `false`: the queue uses `INSERT … RETURNING`.
   */
  readonly insertRowid?: boolean;
}

/**
 * A SQLite connection the core can drive. Implement this to use any SQLite binding.
 *
 * Guarantees the adapter must give (the conformance suite checks each one):
 * - {@link StorageAdapter.transaction} runs `fn` between `BEGIN [IMMEDIATE]` and `COMMIT` on this
 *   connection; if `fn` throws or rejects, it rolls back and rethrows the same error. A failed
 *   `COMMIT` must leave no transaction open.
 * - Statements issued through the `tx` executor run inside that transaction.
 * - Parameters are always bound, never interpolated into SQL text.
 *
 * What the adapter need not do (the core's guard does it): serialise calls, refuse calls after
 * `close()`, translate errors.
 *
 * @example
 * ```ts
 * import type { StorageAdapter } from 'sync-core';
 *
 * function createMyStorage(db: MyBinding): StorageAdapter {
 *   return {
 *     name: 'my-binding',
 *     exec: (sql) => db.execute(sql),
 *     run: async (sql, params = []) => ({ changes: (await db.run(sql, params)).changes }),
 *     all: (sql, params = []) => db.getAll(sql, params),
 *     async transaction(mode, fn) {
 *       await db.execute(mode === 'immediate' ? 'BEGIN IMMEDIATE' : 'BEGIN');
 *       try { const out = await fn(this); await db.execute('COMMIT'); return out; }
 *       catch (error) { await db.execute('ROLLBACK').catch(() => {}); throw error; }
 *     },
 *     close: () => db.close(),
 *   };
 * }
 * ```
 */
export interface StorageAdapter extends SqlExecutor {
  /** A short name for diagnostics, e.g. `'better-sqlite3'`. */
  readonly name: string;

  /** What this adapter supports; see {@link StorageCapabilities} for defaults. */
  readonly capabilities?: StorageCapabilities;

  /**
   * Prepare the connection (pragmas, persistence). Called once by the core before any statement.
   * Optional.
   */
  open?(): MaybePromise<void>;

  /**
   * Run `fn` inside one transaction; see the interface's guarantees. The core never nests
   * transactions and never calls the adapter's own methods while `fn` runs.
   */
  transaction<T>(mode: TransactionMode, fn: (tx: SqlExecutor) => Promise<T>): Promise<T>;

  /**
   * Release the connection (and flush any pending persistence). Called once. Whether the
   * underlying database handle is closed is the adapter's documented choice.
   */
  close(): MaybePromise<void>;
}
