/**
 * What the sql.js adapters share, kept out of the entry file so that it is not public API: the
 * statement executor (which notices writes), the transaction wrapper, the `persistMode` parser and
 * the "queued but not saved" error. `createSqlJsStorage` and `openIndexedDbStorage` differ only in
 * when and where they save.
 *
 * @internal
 * @packageDocumentation
 */
import {
  ConfigError,
  type RunResult,
  type SqlExecutor,
  type SqlParams,
  type SqlRow,
  StorageError,
  type TransactionMode,
} from 'sync-core';
import type { SqlJsBindValue, SqlJsDatabase } from './index.js';

/** A parsed `persistMode`: save before each write resolves, or once writes pause. */
export type PersistSchedule =
  | { readonly kind: 'commit' }
  | { readonly kind: 'debounce'; readonly debounceMs: number; readonly maxWaitMs: number };

/** Validate a `persistMode` option; `undefined` gives `fallback`. */
export function parsePersistMode(mode: unknown, fallback: PersistSchedule): PersistSchedule {
  if (mode === undefined) return fallback;
  if (mode === 'commit') return { kind: 'commit' };
  const debounce = mode as { debounceMs?: unknown; maxWaitMs?: unknown } | null;
  if (
    typeof debounce !== 'object' ||
    debounce === null ||
    typeof debounce.debounceMs !== 'number' ||
    !Number.isFinite(debounce.debounceMs) ||
    debounce.debounceMs < 0
  ) {
    throw new ConfigError("persistMode: expected 'commit' or { debounceMs: number ≥ 0, maxWaitMs? }");
  }
  const debounceMs = debounce.debounceMs;
  const maxWaitMs = debounce.maxWaitMs ?? debounceMs * 10;
  if (typeof maxWaitMs !== 'number' || !Number.isFinite(maxWaitMs) || maxWaitMs < debounceMs) {
    throw new ConfigError('persistMode.maxWaitMs: expected a number ≥ debounceMs');
  }
  return { kind: 'debounce', debounceMs, maxWaitMs };
}

/**
 * The error a write rejects with when it committed in memory but its save failed. The write is
 * queued and will be sent: saying "not saved" would make the app enqueue it again, under a new
 * idempotency key.
 */
export function notPersistedError(cause: unknown): StorageError {
  return new StorageError(
    'STORAGE_NOT_PERSISTED',
    'the write is queued in memory, but saving the database image failed; it is saved again by the next save',
    { cause },
  );
}

/** The executor's statements: sql.js answers synchronously. */
export interface SqlJsStatements extends SqlExecutor {
  exec(sql: string): void;
  run(sql: string, params?: SqlParams): RunResult;
  all(sql: string, params?: SqlParams): SqlRow[];
}

/** Runs statements and transactions on whichever sql.js `Database` is current, noting writes. */
export interface SqlJsExecutor {
  /** Run one top-level statement; `wrote` tells whether it may have changed the database. */
  statement<T>(fn: (executor: SqlJsStatements) => T): { readonly result: T; readonly wrote: boolean };
  /**
   * Run `fn` between BEGIN and COMMIT (rolled back and rethrown on failure); `wrote` tells whether
   * a committed statement may have changed the database.
   */
  transaction<T>(
    mode: TransactionMode,
    fn: (tx: SqlExecutor) => Promise<T>,
  ): Promise<{ readonly result: T; readonly wrote: boolean }>;
}

/**
 * The executor over `current()`, read at each statement: the IndexedDB adapter swaps the database
 * when another context saved a newer image (never inside a transaction).
 */
export function createSqlJsExecutor(current: () => SqlJsDatabase): SqlJsExecutor {
  let wrote = false;
  const executor: SqlJsStatements = {
    exec(sql: string): void {
      current().exec(sql);
      wrote = true;
    },
    run(sql: string, params: SqlParams = []): RunResult {
      const db = current();
      db.run(sql, params as SqlJsBindValue[]);
      wrote = true;
      return { changes: db.getRowsModified() };
    },
    all(sql: string, params: SqlParams = []): SqlRow[] {
      const stmt = current().prepare(sql);
      try {
        if (params.length > 0) stmt.bind(params as SqlJsBindValue[]);
        const rows: SqlRow[] = [];
        while (stmt.step()) rows.push(stmt.getAsObject() as SqlRow);
        // An INSERT … RETURNING is a write too.
        if (!/^\s*select/i.test(sql)) wrote = true;
        return rows;
      } finally {
        stmt.free();
      }
    },
  };
  return {
    statement(fn) {
      wrote = false;
      const result = fn(executor);
      return { result, wrote };
    },
    async transaction(mode, fn) {
      const db = current();
      db.exec(mode === 'immediate' ? 'BEGIN IMMEDIATE' : 'BEGIN');
      wrote = false;
      let result: Awaited<ReturnType<typeof fn>>;
      try {
        result = await fn(executor);
        db.exec('COMMIT');
      } catch (error) {
        try {
          db.exec('ROLLBACK');
        } catch {
          // SQLite already rolled back (e.g. after SQLITE_FULL); nothing is open.
        }
        throw error;
      }
      return { result, wrote };
    },
  };
}
