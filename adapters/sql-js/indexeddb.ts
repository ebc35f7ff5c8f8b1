/**
 * sql.js persisted to IndexedDB, safe when several tabs and a service worker of one origin use the
 * same queue.
 *
 * sql.js keeps the database in memory, so every context (each tab, the service worker) holds its
 * own copy. The IndexedDB record is the source of truth; each context's copy is a cache tagged with
 * the generation of the image it was loaded from. Every storage call runs under one exclusive Web
 * Lock per queue: on taking the lock the context compares the stored generation with its own and
 * reloads the image when another context saved since; a write is saved (generation + 1) before the
 * lock is released. The engine's lease row, taken in a write transaction, therefore sees the
 * freshest image in every context, and single flight (DESIGN.md invariant 6) holds across them.
 *
 * @packageDocumentation
 */
import {
  ConfigError,
  type SqlExecutor,
  type StorageAdapter,
  StorageError,
  type TransactionMode,
} from 'sync-core';
import type { SqlJsDatabase, SqlJsStorage } from './index.js';
import {
  createSqlJsExecutor,
  notPersistedError,
  type PersistSchedule,
  parsePersistMode,
  type SqlJsStatements,
} from './sql-js-executor.js';

const STORE = 'snapshot';
const IMAGE_KEY = 'image';
const GENERATION_KEY = 'generation';
const SQLITE_HEADER = 'SQLite format 3\u0000';
/** Delay before a failed save is tried again on its own (flush() and the next write try at once). */
const RETRY_SAVE_MS = 1000;

/** The IndexedDB database name of a queue: `sync-core:<name>`. */
function databaseName(name: string): string {
  return `sync-core:${name}`;
}

/**
 * Options of {@link createIndexedDbSnapshot}.
 *
 * @example
 * ```ts
 * import { IDBFactory } from 'fake-indexeddb';
 * import { createIndexedDbSnapshot, type IndexedDbSnapshotOptions } from 'sync-core/sql-js';
 *
 * const options: IndexedDbSnapshotOptions = { indexedDB: new IDBFactory() }; // a test's own IndexedDB
 * const snapshot = createIndexedDbSnapshot('outbox', options);
 * ```
 */
export interface IndexedDbSnapshotOptions {
  /**
   * The IndexedDB factory to use (a `fake-indexeddb` one in tests).
   * @default globalThis.indexedDB
   */
  readonly indexedDB?: IDBFactory;
}

/**
 * A stored database image and the generation it was saved as.
 *
 * @example
 * ```ts
 * import initSqlJs from 'sql.js';
 * import { createIndexedDbSnapshot, type IndexedDbImage } from 'sync-core/sql-js';
 *
 * const stored: IndexedDbImage | undefined = await createIndexedDbSnapshot('outbox').load();
 * const db = new (await initSqlJs()).Database(stored?.image); // empty on a first start
 * ```
 */
export interface IndexedDbImage {
  /** The SQLite database image, as `db.export()` produced it. */
  readonly image: Uint8Array;
  /** How many saves produced it: 1 for the first, +1 for each later one. */
  readonly generation: number;
}

/**
 * Options of {@link IndexedDbSnapshot.save}.
 *
 * @example
 * ```ts
 * import type { IndexedDbSaveOptions, IndexedDbSnapshot } from 'sync-core/sql-js';
 *
 * declare const snapshot: IndexedDbSnapshot;
 * declare const image: Uint8Array;
 * const loadedAt = await snapshot.generation();
 * const options: IndexedDbSaveOptions = { expectedGeneration: loadedAt }; // refuse to overwrite a newer save
 * await snapshot.save(image, loadedAt + 1, options);
 * ```
 */
export interface IndexedDbSaveOptions {
  /**
   * Save only if the stored generation is this one (0: nothing stored yet), checked in the same
   * IndexedDB transaction as the write: a compare-and-set that refuses to overwrite an image
   * another context saved meanwhile. Omitted: save unconditionally.
   */
  readonly expectedGeneration?: number;
}

/**
 * One queue's database image in IndexedDB. Create it with {@link createIndexedDbSnapshot}.
 *
 * @example
 * ```ts
 * import { createIndexedDbSnapshot, type IndexedDbSnapshot } from 'sync-core/sql-js';
 *
 * const snapshot: IndexedDbSnapshot = createIndexedDbSnapshot('outbox');
 * console.log(snapshot.databaseName, await snapshot.generation()); // 'sync-core:outbox' 0
 * snapshot.close();
 * ```
 */
export interface IndexedDbSnapshot {
  /** The IndexedDB database this snapshot uses: `sync-core:<name>`. */
  readonly databaseName: string;
  /**
   * The stored image and its generation, read in one transaction; `undefined` when nothing was
   * saved yet (a first start).
   * @throws StorageError `STORAGE_CORRUPT` when a record exists but is not a SQLite image (empty,
   *   the wrong type, no `SQLite format 3` header) or has no valid generation: never treated as
   *   "no database", which would silently start an empty queue. The stored record is left as it is.
   * @throws StorageError with the code of {@link createIndexedDbSnapshot}'s open errors.
   */
  load(): Promise<IndexedDbImage | undefined>;
  /**
   * The stored generation alone (0 when nothing was saved yet): one small read, without the image.
   * @throws StorageError `STORAGE_CORRUPT` when the stored generation is not a non-negative integer.
   */
  generation(): Promise<number>;
  /**
   * Write `image` and `generation` in one readwrite transaction with `durability: 'strict'`:
   * after a crash the store holds the old pair or the new one, never a mix. Resolves once the
   * transaction has committed.
   * @throws StorageError `STORAGE_CORRUPT` if `image` is not a SQLite image (nothing is written);
   *   `STORAGE_BUSY` if `expectedGeneration` does not match (nothing is written); `STORAGE_FULL`
   *   when the origin's quota is exhausted; `STORAGE_FAILED` for other IndexedDB failures.
   */
  save(image: Uint8Array, generation: number, options?: IndexedDbSaveOptions): Promise<void>;
  /** Close the IndexedDB connection; a later call reopens it. */
  close(): void;
}

/** Is this a Uint8Array (or ArrayBuffer) from any realm? */
function asBytes(value: unknown): Uint8Array | undefined {
  const tag = Object.prototype.toString.call(value);
  if (tag === '[object Uint8Array]') return value as Uint8Array;
  if (tag === '[object ArrayBuffer]') return new Uint8Array(value as ArrayBuffer);
  return undefined;
}

function describeValue(value: unknown): string {
  if (value === null) return 'null';
  const bytes = asBytes(value);
  if (bytes !== undefined) return bytes.length === 0 ? 'empty (0 bytes)' : `${bytes.length} bytes`;
  if (typeof value === 'object') return Object.prototype.toString.call(value).slice(8, -1);
  return typeof value;
}

/** The image as bytes if it starts with the SQLite header, else `undefined`. */
function sqliteImage(value: unknown): Uint8Array | undefined {
  const bytes = asBytes(value);
  if (bytes === undefined || bytes.length < SQLITE_HEADER.length) return undefined;
  for (let i = 0; i < SQLITE_HEADER.length; i++) {
    if (bytes[i] !== SQLITE_HEADER.charCodeAt(i)) return undefined;
  }
  return bytes;
}

function isGeneration(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/**
 * An IndexedDB failure as a StorageError. DOMException names are the stable part: `VersionError`
 * (a newer sync-core upgraded the database), `QuotaExceededError`, the rest.
 */
function idbError(error: unknown, action: string): StorageError {
  if (error instanceof StorageError) return error;
  const name = String((error as { name?: unknown } | null)?.name ?? '');
  if (name === 'VersionError') {
    return new StorageError(
      'STORAGE_SCHEMA_TOO_NEW',
      `${action}: the IndexedDB database has a newer version than this sync-core knows (an app downgrade?); it was left untouched`,
      { cause: error },
    );
  }
  if (name === 'QuotaExceededError') {
    return new StorageError('STORAGE_FULL', `${action}: the origin's storage quota is exhausted`, {
      cause: error,
    });
  }
  const detail = name ? ` [${name}]` : '';
  return new StorageError('STORAGE_FAILED', `${action}: IndexedDB reported an error${detail}`, {
    cause: error,
  });
}

function completion(tx: IDBTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error ?? new Error('IndexedDB transaction failed'));
    tx.onabort = () => reject(tx.error ?? new Error('IndexedDB transaction aborted'));
  });
}

/**
 * Store one queue's sql.js database image in IndexedDB: one database per queue
 * (`sync-core:<name>`, version 1), one object store, the image and its generation counter written
 * together in one transaction. This is the low-level part of {@link openIndexedDbStorage}; use it
 * directly to back up, inspect or move an image.
 *
 * The connection opens on first use. A failure to open is a {@link StorageError}: `STORAGE_BUSY`
 * when another connection blocks the open, `STORAGE_SCHEMA_TOO_NEW` for a `VersionError`,
 * `STORAGE_FULL` for `QuotaExceededError`, `STORAGE_FAILED` otherwise (IndexedDB unavailable,
 * e.g. storage disabled).
 *
 * @throws ConfigError when `name` is not a non-empty string or no IndexedDB factory is available.
 *
 * @example
 * ```ts
 * import initSqlJs from 'sql.js';
 * import { createIndexedDbSnapshot } from 'sync-core/sql-js';
 *
 * const SQL = await initSqlJs();
 * const snapshot = createIndexedDbSnapshot('outbox');
 * const stored = await snapshot.load(); // undefined on a first start
 * const db = new SQL.Database(stored?.image);
 * await snapshot.save(db.export(), (stored?.generation ?? 0) + 1, {
 *   expectedGeneration: stored?.generation ?? 0,
 * });
 * ```
 */
export function createIndexedDbSnapshot(
  name: string,
  options: IndexedDbSnapshotOptions = {},
): IndexedDbSnapshot {
  if (typeof name !== 'string' || name.length === 0) {
    throw new ConfigError(`name: expected a non-empty string, got ${describeValue(name)}`);
  }
  const factory = options.indexedDB ?? (globalThis as { indexedDB?: IDBFactory }).indexedDB;
  if (factory === undefined || typeof factory?.open !== 'function') {
    throw new ConfigError(
      `indexedDB: expected an IDBFactory (none in this environment), got ${describeValue(factory)}`,
    );
  }
  const dbName = databaseName(name);
  let connection: Promise<IDBDatabase> | undefined;

  const open = (): Promise<IDBDatabase> => {
    if (connection !== undefined) return connection;
    const opening = new Promise<IDBDatabase>((resolve, reject) => {
      let settled = false;
      const fail = (error: StorageError) => {
        settled = true;
        reject(error);
      };
      let request: IDBOpenDBRequest;
      try {
        request = factory.open(dbName, 1);
      } catch (error) {
        fail(idbError(error, `opening IndexedDB ${dbName}`));
        return;
      }
      request.onupgradeneeded = () => {
        const db = request.result;
        if (!db.objectStoreNames.contains(STORE)) db.createObjectStore(STORE);
      };
      request.onblocked = () =>
        fail(
          new StorageError(
            'STORAGE_BUSY',
            `opening IndexedDB ${dbName}: blocked by another connection that holds an older version open`,
          ),
        );
      request.onerror = () => fail(idbError(request.error, `opening IndexedDB ${dbName}`));
      request.onsuccess = () => {
        const db = request.result;
        // Opened after it was reported blocked: nobody waits for it any more.
        if (settled) {
          db.close();
          return;
        }
        // Never hold up another context's upgrade (a newer sync-core in another tab): close, and
        // reopen on next use.
        db.onversionchange = () => {
          db.close();
          if (connection === opening) connection = undefined;
        };
        db.onclose = () => {
          if (connection === opening) connection = undefined;
        };
        settled = true;
        resolve(db);
      };
    });
    connection = opening;
    opening.catch(() => {
      if (connection === opening) connection = undefined;
    });
    return opening;
  };

  /** Run `body` in one transaction on the store; resolves with its result after `complete`. */
  const transact = async <T>(
    mode: IDBTransactionMode,
    action: string,
    body: (store: IDBObjectStore, tx: IDBTransaction) => () => T,
  ): Promise<T> => {
    try {
      let db = await open();
      let tx: IDBTransaction;
      try {
        tx = db.transaction(STORE, mode, { durability: 'strict' });
      } catch {
        // The connection was closed under us (versionchange); one fresh try.
        connection = undefined;
        db = await open();
        tx = db.transaction(STORE, mode, { durability: 'strict' });
      }
      const completed = completion(tx);
      let read: () => T;
      try {
        read = body(tx.objectStore(STORE), tx);
      } catch (error) {
        // Never let a half-issued write commit (the image without its generation).
        tx.abort();
        await completed.catch(() => undefined);
        throw error;
      }
      await completed;
      return read();
    } catch (error) {
      throw idbError(error, `${action} ${dbName}`);
    }
  };

  const readGeneration = (value: unknown): number => {
    if (value === undefined) return 0;
    if (!isGeneration(value)) {
      throw new StorageError(
        'STORAGE_CORRUPT',
        `the generation stored in IndexedDB ${dbName} is ${describeValue(value)}, not a non-negative integer`,
      );
    }
    return value;
  };

  return {
    databaseName: dbName,
    async load() {
      const [image, generation] = await transact('readonly', 'reading', (store) => {
        const a = store.get(IMAGE_KEY);
        const b = store.get(GENERATION_KEY);
        return () => [a.result as unknown, b.result as unknown] as const;
      });
      if (image === undefined && generation === undefined) return undefined;
      const bytes = sqliteImage(image);
      if (bytes === undefined) {
        // Saves are atomic and checked: this record was not written by us. Opening it as a new
        // database would start an empty queue in silence.
        throw new StorageError(
          'STORAGE_CORRUPT',
          `the database image stored in IndexedDB ${dbName} is ${describeValue(image)}, not a SQLite database (no "SQLite format 3" header); it was left untouched`,
        );
      }
      const stored = readGeneration(generation);
      if (stored === 0) {
        throw new StorageError(
          'STORAGE_CORRUPT',
          `the database image stored in IndexedDB ${dbName} has no generation; it was left untouched`,
        );
      }
      return { image: bytes, generation: stored };
    },
    async generation() {
      const value = await transact('readonly', 'reading', (store) => {
        const request = store.get(GENERATION_KEY);
        return () => request.result as unknown;
      });
      return readGeneration(value);
    },
    async save(image, generation, saveOptions = {}) {
      if (sqliteImage(image) === undefined) {
        throw new StorageError(
          'STORAGE_CORRUPT',
          `refusing to save ${describeValue(image)} to IndexedDB ${dbName}: not a SQLite database image`,
        );
      }
      if (!isGeneration(generation) || generation === 0) {
        throw new ConfigError(`generation: expected a positive integer, got ${describeValue(generation)}`);
      }
      const { expectedGeneration } = saveOptions;
      let conflict: { readonly stored: unknown } | undefined;
      let failure: { readonly error: unknown } | undefined;
      await transact('readwrite', 'saving to', (store, tx) => {
        if (expectedGeneration === undefined) {
          store.put(image, IMAGE_KEY);
          store.put(generation, GENERATION_KEY);
        } else {
          const current = store.get(GENERATION_KEY);
          current.onsuccess = () => {
            // Still inside the transaction: the check and the write are one atomic step.
            if ((current.result ?? 0) !== expectedGeneration) {
              conflict = { stored: current.result ?? 0 };
              tx.abort();
              return;
            }
            try {
              store.put(image, IMAGE_KEY);
              store.put(generation, GENERATION_KEY);
            } catch (error) {
              failure = { error };
              tx.abort();
            }
          };
        }
        return () => undefined;
      }).catch((error: unknown) => {
        if (failure !== undefined) throw idbError(failure.error, `saving to ${dbName}`);
        if (conflict === undefined) throw error;
      });
      if (conflict !== undefined) {
        throw new StorageError(
          'STORAGE_BUSY',
          `saving to IndexedDB ${dbName}: the stored generation is ${String(conflict.stored)}, another context saved meanwhile (expected ${expectedGeneration}); nothing was written`,
        );
      }
    },
    close() {
      const current = connection;
      connection = undefined;
      void current?.then((db) => db.close()).catch(() => undefined);
    },
  };
}

/**
 * The part of the sql.js module (`await initSqlJs()`) this adapter uses (typed structurally, so
 * sync-core does not depend on sql.js' types).
 *
 * @example
 * ```ts
 * import initSqlJs from 'sql.js';
 * import type { SqlJsStatic } from 'sync-core/sql-js';
 *
 * const SQL: SqlJsStatic = await initSqlJs({ locateFile: (file) => `/assets/${file}` });
 * ```
 */
export interface SqlJsStatic {
  /** `new SQL.Database(image?)`: a database, empty or loaded from an image. */
  readonly Database: new (
    data?: Uint8Array,
  ) => SqlJsDatabase;
}

/**
 * Options of {@link openIndexedDbStorage}.
 *
 * @example
 * ```ts
 * import type { IndexedDbStorageOptions } from 'sync-core/sql-js';
 *
 * // Nothing acknowledged may be lost to a crash: save before every write resolves.
 * const options: IndexedDbStorageOptions = { name: 'outbox', persistMode: 'commit' };
 * ```
 */
export interface IndexedDbStorageOptions {
  /**
   * The queue's name: the IndexedDB database is `sync-core:<name>` and the Web Lock is
   * `sync-core:<name>`. Every context (tab, worker, service worker) that shares a queue must pass
   * the same name; two queues of one origin need two names.
   */
  readonly name: string;
  /**
   * When to save the image to IndexedDB. Either way a write is saved before this context releases
   * the lock, so other contexts always load every write; the modes differ in what a crash can lose.
   * - `'commit'`: after every write, before its promise resolves. Nothing an `enqueue`
   *   acknowledged is lost, at the cost of one export and one IndexedDB put per write.
   * - `{ debounceMs, maxWaitMs? }`: once writes pause for `debounceMs`, at the latest `maxWaitMs`
   *   after the first unsaved write (default 10 × debounceMs), on `flush()`, on `close()`, and at
   *   once while the page is hidden. The `maxWaitMs` bound holds against a busy writer too: a
   *   call that ends `maxWaitMs` or more after the first unsaved write saves before it returns (a
   *   loop of awaited writes never lets a timer fire), and the save releases the lock, so a
   *   waiting context goes next. This context keeps the lock until then, so other contexts wait
   *   about `maxWaitMs` at most (plus the one call running when the window ends). A crash or a
   *   killed tab loses the writes of the last window.
   *
   * The default keeps a burst (a form saving twenty rows, a run recording a batch's results) to
   * one export and one put, and bounds both the crash window and another context's wait to half a
   * second: an export of a large queue costs tens of milliseconds, too much for every statement.
   * @default { debounceMs: 50, maxWaitMs: 500 }
   */
  readonly persistMode?: 'commit' | { readonly debounceMs: number; readonly maxWaitMs?: number };
  /**
   * The IndexedDB factory.
   * @default globalThis.indexedDB
   */
  readonly indexedDB?: IDBFactory;
  /**
   * The Web Locks manager that serialises the contexts sharing this queue.
   * @default globalThis.navigator?.locks
   */
  readonly locks?: LockManager;
  /**
   * Allow running without Web Locks (browsers before 2022). Then only ONE context (one tab or one
   * worker) may use the queue: two would each save their own copy, and a save that finds another
   * context's newer image fails with `STORAGE_NOT_PERSISTED` instead of overwriting it. When
   * `locks` is available it is used whatever this says.
   * @default false
   */
  readonly singleContext?: boolean;
  /**
   * How long a call waits for the queue's Web Lock before it fails with `STORAGE_BUSY` (nothing
   * done). A context holds the lock for one call and its save, or through its debounce window (at
   * most about `maxWaitMs`, however busy it is); it keeps it longer only while its saves fail, or
   * during one long call (a transaction the app keeps open). `Infinity` waits forever.
   * @default 10_000
   */
  readonly lockTimeoutMs?: number;
  /**
   * Save pending writes when the page is hidden (`visibilitychange` to hidden) or unloaded
   * (`pagehide`), and save at once, without debouncing, while it stays hidden: a hidden tab may
   * be frozen or killed without another event, and its timers are throttled. The listeners are
   * removed by `close()`.
   * @default true in a document (a page), false elsewhere (workers)
   */
  readonly flushOnPageHide?: boolean;
}

function describeOption(value: unknown): string {
  return value === null ? 'null' : typeof value;
}

/** Open the stored image as a database, checking that SQLite can read it. */
function openImage(SQL: SqlJsStatic, image: Uint8Array, dbName: string): SqlJsDatabase {
  let db: SqlJsDatabase | undefined;
  try {
    db = new SQL.Database(image);
    // sql.js reads nothing until the first statement: a bad image fails here, not mid-run.
    db.exec('SELECT count(*) FROM sqlite_master');
    return db;
  } catch (error) {
    try {
      db?.close();
    } catch {
      // nothing more to release
    }
    throw new StorageError(
      'STORAGE_CORRUPT',
      `the database image stored in IndexedDB ${dbName} cannot be read by SQLite; it was left untouched`,
      { cause: error },
    );
  }
}

/**
 * Open a sql.js storage adapter persisted to IndexedDB, safe to share between tabs, workers and
 * a service worker of one origin.
 *
 * Each context keeps the database in memory, and every call runs under the exclusive Web Lock
 * `sync-core:<name>`: on taking it, the context reloads the stored image if another context saved
 * a newer generation, and it saves its writes before releasing it. So no context ever works on a
 * stale copy, no write is overwritten by another context's save, and the engine's lease keeps
 * runs single-flight across contexts (DESIGN.md invariant 6).
 *
 * What a crash can lose: nothing acknowledged in `'commit'` mode; the writes of the last debounce
 * window (at most `maxWaitMs`, even while this context writes without pause) in debounced mode.
 * A save that fails keeps the lock, so no other context can save over the unsaved writes, and is
 * tried again on `flush()`, on its own after a second, and by the calls that follow ('commit'
 * mode: the next write; debounced mode: the first call a second or more later). A write whose own
 * save fails (every write in `'commit'` mode, any write while the page is hidden) rejects with
 * `STORAGE_NOT_PERSISTED`: it is queued in memory, not yet saved. Other debounced writes resolve
 * before they are saved, so a failed save never rejects them; `flush()` reports it.
 *
 * @param SQL - the sql.js module: `await initSqlJs()`.
 * @throws ConfigError for invalid options, or when Web Locks are unavailable and
 *   `singleContext` is not `true`.
 * @throws StorageError `STORAGE_CORRUPT` when the stored image is not a readable SQLite
 *   database (it is left untouched), or the codes of {@link createIndexedDbSnapshot}.
 *
 * @example
 * ```ts
 * import initSqlJs from 'sql.js';
 * import { createSyncEngine } from 'sync-core';
 * import { openIndexedDbStorage } from 'sync-core/sql-js';
 *
 * const SQL = await initSqlJs({ locateFile: (file) => `/wasm/${file}` });
 * const storage = await openIndexedDbStorage(SQL, { name: 'outbox' });
 * const engine = createSyncEngine({ storage, entities: { activity: {} } });
 * await engine.open();
 * ```
 */
export async function openIndexedDbStorage(
  SQL: SqlJsStatic,
  options: IndexedDbStorageOptions,
): Promise<SqlJsStorage> {
  if (typeof SQL !== 'object' || SQL === null || typeof SQL.Database !== 'function') {
    throw new ConfigError('SQL: expected the sql.js module (await initSqlJs())');
  }
  if (typeof options !== 'object' || options === null) {
    throw new ConfigError(`options: expected an object with a name, got ${describeOption(options)}`);
  }
  const { name } = options;
  if (typeof name !== 'string' || name.length === 0) {
    throw new ConfigError(`name: expected a non-empty string, got ${describeOption(name)}`);
  }
  const schedule: PersistSchedule = parsePersistMode(options.persistMode, {
    kind: 'debounce',
    debounceMs: 50,
    maxWaitMs: 500,
  });
  const locks = options.locks ?? (globalThis as { navigator?: { locks?: LockManager } }).navigator?.locks;
  if (locks !== undefined && (typeof locks !== 'object' || typeof locks.request !== 'function')) {
    throw new ConfigError(`locks: expected a LockManager, got ${describeOption(locks)}`);
  }
  if (locks === undefined && options.singleContext !== true) {
    throw new ConfigError(
      'locks: expected a LockManager (navigator.locks), none in this environment; pass singleContext: true if only one tab or worker will ever use this queue',
    );
  }
  const lockTimeoutMs = options.lockTimeoutMs ?? 10_000;
  if (typeof lockTimeoutMs !== 'number' || Number.isNaN(lockTimeoutMs) || lockTimeoutMs < 0) {
    throw new ConfigError(
      `lockTimeoutMs: expected a number ≥ 0 or Infinity, got ${describeOption(lockTimeoutMs)}`,
    );
  }
  const doc = (globalThis as { document?: Document }).document;
  const flushOnPageHide = options.flushOnPageHide ?? doc !== undefined;
  if (typeof flushOnPageHide !== 'boolean') {
    throw new ConfigError(`flushOnPageHide: expected a boolean, got ${describeOption(flushOnPageHide)}`);
  }

  const snapshot = createIndexedDbSnapshot(name, options.indexedDB ? { indexedDB: options.indexedDB } : {});
  const dbName = snapshot.databaseName;
  const lockName = `sync-core:${name}`;

  let stored: IndexedDbImage | undefined;
  try {
    stored = await snapshot.load();
  } catch (error) {
    snapshot.close();
    throw error;
  }
  let db: SqlJsDatabase;
  try {
    db = stored === undefined ? new SQL.Database() : openImage(SQL, stored.image, dbName);
  } catch (error) {
    snapshot.close();
    throw error;
  }
  /** The generation our in-memory copy was loaded at or last saved as (0: nothing stored). */
  let generation = stored?.generation ?? 0;
  const sql = createSqlJsExecutor(() => db);

  /** Release of the Web Lock while this context holds it. */
  let release: (() => void) | undefined;
  let dirty = false;
  let dirtySince = 0;
  /** After a failed save: the write path does not try again before this time (ms since epoch). */
  let retryAt = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let closing = false;
  let closed = false;

  // Every call, save, flush and close runs here one at a time: the lock is per context, not per
  // call, and a timer's save must never export in the middle of a transaction.
  let tail: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const next = tail.then(fn, fn);
    tail = next.catch(() => undefined);
    return next;
  };

  const releaseLock = (): void => {
    const current = release;
    release = undefined;
    current?.();
  };

  const clearTimer = (): void => {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
  };

  const setTimer = (ms: number): void => {
    clearTimer();
    timer = setTimeout(() => {
      timer = undefined;
      void serial(save).catch(() => undefined);
    }, ms);
    // Never keep a Node process alive just to save: close() and flush() save explicitly.
    (timer as { unref?: () => void }).unref?.();
  };

  const acquire = async (): Promise<void> => {
    if (release !== undefined) return;
    if (locks !== undefined) {
      const controller = new AbortController();
      const limit = Number.isFinite(lockTimeoutMs)
        ? setTimeout(() => controller.abort(), lockTimeoutMs)
        : undefined;
      (limit as { unref?: () => void } | undefined)?.unref?.();
      try {
        release = await new Promise<() => void>((resolve, reject) => {
          locks
            .request(
              lockName,
              { mode: 'exclusive', signal: controller.signal },
              () => new Promise<void>((done) => resolve(() => done())),
            )
            .catch(reject);
        });
      } catch (error) {
        if (!controller.signal.aborted) throw error;
        throw new StorageError(
          'STORAGE_BUSY',
          `another tab or worker held the Web Lock ${lockName} longer than lockTimeoutMs (${lockTimeoutMs} ms); nothing was done`,
          { cause: error },
        );
      } finally {
        clearTimeout(limit);
      }
    } else {
      release = () => undefined;
    }
    try {
      const current = await snapshot.generation();
      if (current !== generation) await reload();
    } catch (error) {
      releaseLock();
      throw error;
    }
  };

  // Only ever called holding the lock with nothing unsaved: a context with unsaved writes keeps
  // the lock, so nobody can have saved over them.
  const reload = async (): Promise<void> => {
    const latest = await snapshot.load();
    if (latest === undefined) {
      // The IndexedDB database was deleted under us (site data cleared by script). Our copy is
      // the only one left of the queue: write it back rather than start empty.
      generation = 0;
      if (!dirty) dirtySince = Date.now();
      dirty = true;
      return;
    }
    const next = openImage(SQL, latest.image, dbName);
    db.close();
    db = next;
    generation = latest.generation;
  };

  /** Save if dirty, then release the lock. On failure keep both, retry later, and throw. */
  const save = async (): Promise<void> => {
    clearTimer();
    if (!dirty) {
      releaseLock();
      return;
    }
    try {
      // A context may save without having re-checked since its lock was taken only if it holds
      // the lock (or runs alone): the compare-and-set catches anyone who broke that rule.
      await snapshot.save(db.export(), generation + 1, { expectedGeneration: generation });
    } catch (error) {
      // Keep the lock: released with unsaved writes, another context could save a newer image,
      // and this one would then reload it over its own writes.
      const delay = Math.max(RETRY_SAVE_MS, schedule.kind === 'debounce' ? schedule.debounceMs : 0);
      retryAt = Date.now() + delay;
      setTimer(delay);
      throw notPersistedError(error);
    }
    generation += 1;
    dirty = false;
    retryAt = 0;
    releaseLock();
    if (closing) finish();
  };

  const isHidden = (): boolean => flushOnPageHide && doc?.visibilityState === 'hidden';

  const afterCall = async (wrote: boolean): Promise<void> => {
    if (wrote) {
      if (!dirty) dirtySince = Date.now();
      dirty = true;
    }
    if (!dirty) {
      releaseLock();
      return;
    }
    if (schedule.kind === 'commit' || isHidden()) {
      // A call that wrote nothing only retries an earlier failed save: its own result stands.
      if (!wrote) return save().catch(() => undefined);
      return save();
    }
    const now = Date.now();
    const waited = now - dirtySince;
    if (waited >= schedule.maxWaitMs && now >= retryAt) {
      // The window is over: save here, before this call returns. A context that keeps calling
      // (a loop of awaited enqueues, a long drain) holds the lock, so each call goes through at
      // once without yielding to the event loop and the timer below would never fire: no save,
      // an unbounded crash window, and every other tab and the service worker left waiting until
      // lockTimeoutMs. The save releases the lock, so a waiting context goes next. Debounced
      // writes resolve before they are saved, so a failed save here does not reject this call:
      // the lock stays held, and the retry timer, the first call a second later, or flush() retry.
      return save().catch(() => undefined);
    }
    // Only a write postpones the save: reads in the window must not keep other contexts waiting.
    if (!wrote && timer !== undefined) return;
    setTimer(Math.max(0, Math.min(schedule.debounceMs, schedule.maxWaitMs - waited)));
  };

  const assertOpen = (action: string): void => {
    if (closing || closed) throw new StorageError('STORAGE_CLOSED', `${action}: the storage was closed`);
  };

  const call = <T>(action: string, fn: () => Promise<{ readonly result: T; readonly wrote: boolean }>) =>
    serial(async () => {
      assertOpen(action);
      await acquire();
      let outcome: { readonly result: T; readonly wrote: boolean };
      try {
        outcome = await fn();
      } catch (error) {
        // A failed statement or a rolled-back transaction wrote nothing.
        await afterCall(false).catch(() => undefined);
        throw error;
      }
      await afterCall(outcome.wrote);
      return outcome.result;
    });

  const statement = <T>(action: string, fn: (executor: SqlJsStatements) => T): Promise<T> =>
    call(action, async () => sql.statement(fn));

  const onPageHide = (): void => {
    void serial(save).catch(() => undefined);
  };
  const onVisibilityChange = (): void => {
    if (doc?.visibilityState === 'hidden') onPageHide();
  };
  const target = globalThis as Partial<Pick<EventTarget, 'addEventListener' | 'removeEventListener'>>;
  if (flushOnPageHide) {
    target.addEventListener?.('pagehide', onPageHide);
    doc?.addEventListener('visibilitychange', onVisibilityChange);
  }

  let finished = false;
  function finish(): void {
    if (finished) return;
    finished = true;
    closed = true;
    clearTimer();
    releaseLock();
    db.close();
    snapshot.close();
  }

  let closingPromise: Promise<void> | undefined;

  const storage: SqlJsStorage & StorageAdapter = {
    name: 'sql.js (IndexedDB)',
    capabilities: { multiProcess: true, durable: schedule.kind === 'commit' },
    exec: (text) => statement('executing', (executor) => executor.exec(text)),
    run: (text, params) => statement('writing', (executor) => executor.run(text, params)),
    all: (text, params) => statement('reading', (executor) => executor.all(text, params)),
    transaction<T>(mode: TransactionMode, fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
      return call('transaction', () => sql.transaction(mode, fn));
    },
    flush: () => serial(save),
    close(): Promise<void> {
      closingPromise ??= (async () => {
        closing = true;
        if (flushOnPageHide) {
          target.removeEventListener?.('pagehide', onPageHide);
          doc?.removeEventListener('visibilitychange', onVisibilityChange);
        }
        // If the last save fails, the lock and the database stay: the retry timer (and flush())
        // keep trying, and the first save that succeeds finishes the close.
        try {
          await serial(save);
        } catch (error) {
          closingPromise = undefined;
          throw error;
        }
        finish();
      })();
      return closingPromise;
    },
  };
  return storage;
}
