import type {
  RunResult,
  SqlExecutor,
  SqlParams,
  SqlRow,
  StorageAdapter,
  TransactionMode,
} from '../contracts/storage-adapter.js';
import { StorageError, type StorageErrorCode, SyncError } from '../errors.js';

/**
 * Map whatever a SQLite binding threw to a {@link StorageError} with a stable code.
 *
 * Bindings disagree on how they report errors: better-sqlite3 sets `code` (`SQLITE_BUSY`,
 * `SQLITE_FULL_…`), sql.js only has the message SQLite produced, other bindings wrap both. Both
 * are checked; the message is never copied into ours (it may quote SQL, never data, but the
 * original stays reachable as `cause`).
 */
export function toStorageError(error: unknown, action: string): SyncError {
  if (error instanceof SyncError) return error;
  const code = String((error as { code?: unknown } | null)?.code ?? '');
  const message = String((error as { message?: unknown } | null)?.message ?? '');
  const text = `${code} ${message}`;
  let mapped: StorageErrorCode = 'STORAGE_FAILED';
  let reason = 'the database reported an error';
  if (/SQLITE_BUSY|SQLITE_LOCKED|database is locked|database table is locked/i.test(text)) {
    mapped = 'STORAGE_BUSY';
    reason = 'another connection holds the database lock (busy timeout exceeded)';
  } else if (/SQLITE_FULL|database or disk is full|QuotaExceeded|quota/i.test(text)) {
    mapped = 'STORAGE_FULL';
    reason = 'the database or disk is full';
  } else if (
    /SQLITE_CORRUPT|SQLITE_NOTADB|disk image is malformed|not a database|file is encrypted/i.test(text)
  ) {
    mapped = 'STORAGE_CORRUPT';
    reason = 'the database file is corrupt or not a SQLite database';
  } else if (/SQLITE_READONLY|readonly database|read-only/i.test(text)) {
    mapped = 'STORAGE_READONLY';
    reason = 'the database is read-only';
  } else if (/SQLITE_CANTOPEN|unable to open/i.test(text)) {
    reason = 'the database file cannot be opened';
  }
  const detail = code && code !== 'undefined' ? ` [${code}]` : '';
  return new StorageError(mapped, `${action}: ${reason}${detail}`, { cause: error });
}

/**
 * The guard the core puts around every {@link StorageAdapter}:
 *
 * - opens the adapter once, and refuses any use after `close()` (`STORAGE_CLOSED`);
 * - serialises calls: a SQLite connection runs one transaction at a time, and the core's async
 *   code would otherwise interleave statements of two logical operations on one connection;
 * - maps driver errors to {@link StorageError} codes.
 *
 * Calls made on the `tx` executor inside {@link GuardedStorage.transaction} go straight to the
 * adapter: they are already inside the serialised section.
 */
export class GuardedStorage {
  readonly adapter: StorageAdapter;
  #tail: Promise<unknown> = Promise.resolve();
  #opened = false;
  #closed = false;

  constructor(adapter: StorageAdapter) {
    this.adapter = adapter;
  }

  get isClosed(): boolean {
    return this.#closed;
  }

  /** Open the adapter (once). */
  async open(): Promise<void> {
    this.#assertUsable('open');
    if (this.#opened) return;
    await this.#serialise(async () => {
      this.#assertUsable('open');
      if (this.#opened) return;
      try {
        await this.adapter.open?.();
      } catch (error) {
        throw toStorageError(error, 'opening the database');
      }
      this.#opened = true;
    });
  }

  run(sql: string, params?: SqlParams): Promise<RunResult> {
    return this.#call('writing', (a) => a.run(sql, params));
  }

  all<T = SqlRow>(sql: string, params?: SqlParams): Promise<T[]> {
    return this.#call('reading', (a) => a.all(sql, params)) as Promise<T[]>;
  }

  exec(sql: string): Promise<void> {
    return this.#call('executing', (a) => a.exec(sql));
  }

  /**
   * Run `fn` in one transaction of the given mode. Errors from `fn` that are already
   * {@link SyncError}s pass through unchanged; driver errors are mapped.
   */
  transaction<T>(mode: TransactionMode, fn: (tx: GuardedExecutor) => Promise<T>): Promise<T> {
    return this.#serialise(async () => {
      this.#assertUsable('transaction');
      // What `fn` throws (the app's own error, or an already-mapped statement error) must reach
      // the caller unchanged; only failures of BEGIN/COMMIT themselves are driver errors to map.
      let thrownByFn: { error: unknown } | undefined;
      try {
        return await this.adapter.transaction(mode, async (tx) => {
          try {
            return await fn(new GuardedExecutor(tx));
          } catch (error) {
            thrownByFn = { error };
            throw error;
          }
        });
      } catch (error) {
        if (thrownByFn && thrownByFn.error === error) throw error;
        throw toStorageError(error, 'in a transaction');
      }
    });
  }

  /** Close the adapter after every queued call has finished. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#tail.catch(() => undefined);
    try {
      await this.adapter.close();
    } catch (error) {
      throw toStorageError(error, 'closing the database');
    }
  }

  #assertUsable(what: string): void {
    if (this.#closed) {
      throw new StorageError('STORAGE_CLOSED', `${what}: the storage was closed`);
    }
  }

  #call<T>(action: string, fn: (adapter: StorageAdapter) => T | Promise<T>): Promise<T> {
    return this.#serialise(async () => {
      this.#assertUsable(action);
      try {
        return await fn(this.adapter);
      } catch (error) {
        throw toStorageError(error, action);
      }
    });
  }

  #serialise<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#tail.then(fn, fn);
    this.#tail = next.catch(() => undefined);
    return next;
  }
}

/** The executor handed to transaction bodies: the adapter's `tx` with error mapping. */
export class GuardedExecutor {
  readonly #tx: SqlExecutor;
  constructor(tx: SqlExecutor) {
    this.#tx = tx;
  }

  async run(sql: string, params?: SqlParams): Promise<RunResult> {
    try {
      return await this.#tx.run(sql, params);
    } catch (error) {
      throw toStorageError(error, 'writing');
    }
  }

  async all<T = SqlRow>(sql: string, params?: SqlParams): Promise<T[]> {
    try {
      return (await this.#tx.all(sql, params)) as T[];
    } catch (error) {
      throw toStorageError(error, 'reading');
    }
  }

  async exec(sql: string): Promise<void> {
    try {
      await this.#tx.exec(sql);
    } catch (error) {
      throw toStorageError(error, 'executing');
    }
  }
}

/** Anything that can run statements: the guarded storage or a transaction's executor. */
export type Executor = Pick<GuardedStorage, 'run' | 'all' | 'exec'> | GuardedExecutor;
