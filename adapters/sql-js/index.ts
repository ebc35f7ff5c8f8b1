/**
 * `sync-core/sql-js`: the storage adapter for browsers, web workers and any JavaScript runtime,
 * over sql.js (SQLite compiled to WebAssembly, in memory) with a persistence hook, and its IndexedDB
 * persistence shared safely by tabs and a service worker ({@link openIndexedDbStorage}).
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

import {
  createSqlJsExecutor,
  notPersistedError,
  parsePersistMode,
  type SqlJsStatements,
} from './sql-js-executor.js';

export type {
  IndexedDbImage,
  IndexedDbSaveOptions,
  IndexedDbSnapshot,
  IndexedDbSnapshotOptions,
  IndexedDbStorageOptions,
  SqlJsStatic,
} from './indexeddb.js';
export { createIndexedDbSnapshot, openIndexedDbStorage } from './indexeddb.js';

/**
 * A value sql.js binds to a `?` parameter: TEXT, INTEGER or REAL, BLOB, NULL. The engine binds only
 * these; booleans and `undefined` are never passed (sql.js would reject or coerce them).
 *
 * @example
 * ```ts
 * import type { SqlJsBindValue, SqlJsDatabase } from 'sync-core/sql-js';
 *
 * declare const db: SqlJsDatabase;
 * const params: SqlJsBindValue[] = ['a1', 30, null, new Uint8Array([1, 2])];
 * db.run('INSERT INTO attachments (id, minutes, note, bytes) VALUES (?, ?, ?, ?)', params);
 * ```
 */
export type SqlJsBindValue = string | number | Uint8Array | null;

/**
 * The few members of a sql.js `Statement` this adapter uses, typed structurally so that
 * sync-core does not depend on sql.js's types: a `db.prepare()` result satisfies it. The adapter
 * prepares, binds, steps through the rows and frees the statement within one call, synchronously.
 *
 * @example
 * ```ts
 * import initSqlJs from 'sql.js';
 * import type { SqlJsStatement } from 'sync-core/sql-js';
 *
 * const db = new (await initSqlJs()).Database();
 * const statement: SqlJsStatement = db.prepare('SELECT ? AS answer');
 * statement.bind([42]);
 * while (statement.step()) console.log(statement.getAsObject()); // { answer: 42 }
 * statement.free();
 * ```
 */
export interface SqlJsStatement {
  /** Bind the `?` parameters in order; `true` on success. Throws on a value sql.js cannot bind. */
  bind(values?: SqlJsBindValue[]): boolean;
  /** Advance to the next row: `true` while there is one, `false` once the statement is done. */
  step(): boolean;
  /** The current row as `{ column: value }` (INTEGER and REAL as numbers, BLOB as Uint8Array). */
  getAsObject(): Record<string, unknown>;
  /** Release the statement's memory in the wasm heap; the adapter always calls it, even on error. */
  free(): boolean;
}

/**
 * The few members of a sql.js `Database` this adapter uses, typed structurally so that sync-core
 * does not depend on sql.js's types: `new SQL.Database()` satisfies it. Every member is
 * synchronous and throws on a SQLite error (the adapter maps it to a `StorageError`).
 *
 * @example
 * ```ts
 * import initSqlJs from 'sql.js';
 * import { createSqlJsStorage, type SqlJsDatabase } from 'sync-core/sql-js';
 *
 * const SQL = await initSqlJs();
 * const db: SqlJsDatabase = new SQL.Database(); // or new SQL.Database(savedImage)
 * const storage = createSqlJsStorage(db);
 * ```
 */
export interface SqlJsDatabase {
  /** Run one statement with optional parameters, discarding any rows. */
  run(sql: string, params?: SqlJsBindValue[]): unknown;
  /** Run one or more statements without parameters (schema, `BEGIN`, `COMMIT`). */
  exec(sql: string): unknown;
  /** Compile one statement for binding and stepping through its rows. */
  prepare(sql: string): SqlJsStatement;
  /** How many rows the last INSERT, UPDATE or DELETE changed. */
  getRowsModified(): number;
  /**
   * The whole database as a SQLite file image. Never called inside a transaction: sql.js closes
   * and reopens the database to export it, which would end an open transaction.
   */
  export(): Uint8Array;
  /** Free the database; with `closeDatabase: true` (the default) the engine's `close()` calls it. */
  close(): void;
}

/**
 * Saves an exported database image somewhere durable (a file, IndexedDB, OPFS…). Called with the
 * whole database, after committed writes, one call at a time (the next waits for this one's
 * promise). Must replace the previous image atomically (write a new copy, then swap), or a crash
 * mid-save loses both. A rejection is reported as `STORAGE_NOT_PERSISTED` and the image is
 * written again by the next save.
 *
 * @example
 * ```ts
 * import initSqlJs from 'sql.js';
 * import { createSqlJsStorage, type SqlJsPersist } from 'sync-core/sql-js';
 *
 * // Origin private file system (browsers): one file, replaced by one atomic write.
 * const persist: SqlJsPersist = async (image) => {
 *   const root = await navigator.storage.getDirectory();
 *   const file = await root.getFileHandle('queue.sqlite', { create: true });
 *   const writable = await file.createWritable(); // written to a swap file until close()
 *   await writable.write(image as Uint8Array<ArrayBuffer>); // sql.js exports into a plain ArrayBuffer
 *   await writable.close();
 * };
 * const storage = createSqlJsStorage(new (await initSqlJs()).Database(), { persist });
 * ```
 */
export type SqlJsPersist = (image: Uint8Array) => void | Promise<void>;

/**
 * Options of {@link createSqlJsStorage}.
 *
 * @example
 * ```ts
 * import type { SqlJsStorageOptions } from 'sync-core/sql-js';
 *
 * declare function saveImage(image: Uint8Array): Promise<void>;
 * // A crash may lose up to 2 s of acknowledged writes; a burst costs one export.
 * const options: SqlJsStorageOptions = {
 *   persist: saveImage,
 *   persistMode: { debounceMs: 200, maxWaitMs: 2_000 },
 * };
 * ```
 */
export interface SqlJsStorageOptions {
  /** Where committed writes are saved. Without it, the queue lives only in memory. */
  readonly persist?: SqlJsPersist;
  /**
   * When to save.
   * - `'commit'` (default): after every write, before the write's promise resolves. Nothing an
   *   `enqueue` acknowledged is lost to a crash, at the cost of exporting the whole database per
   *   write (about 50 ms for 100k rows).
   * - `{ debounceMs, maxWaitMs? }`: save once writes pause for `debounceMs`, at the latest
   *   `maxWaitMs` after the first unsaved write (default 10 × debounceMs; a write that comes
   *   `maxWaitMs` or more after it saves before it resolves, so a loop of writes that never lets
   *   a timer fire is bounded too), and on `close()`. Much cheaper for bursts, but a crash
   *   or a killed tab loses the writes of the last window: `enqueue` resolved, yet the mutation is
   *   gone after reload. Call `flush()` (e.g. on `pagehide`) to narrow the window.
   * @default 'commit'
   */
  readonly persistMode?: 'commit' | { readonly debounceMs: number; readonly maxWaitMs?: number };
  /**
   * Close the sql.js `Database` when the engine closes.
   * @default true
   */
  readonly closeDatabase?: boolean;
}

/**
 * The sql.js storage adapter ({@link createSqlJsStorage} and {@link openIndexedDbStorage} both
 * return one): a `StorageAdapter` with a way to force a pending save.
 *
 * @example
 * ```ts
 * import type { SqlJsStorage } from 'sync-core/sql-js';
 *
 * declare const storage: SqlJsStorage;
 * document.addEventListener('visibilitychange', () => {
 *   if (document.visibilityState === 'hidden') void storage.flush().catch(console.warn);
 * });
 * ```
 */
export interface SqlJsStorage extends StorageAdapter {
  /**
   * Save now whatever is not saved yet, and resolve once it is; resolves at once when nothing is
   * pending (always the case in `'commit'` mode after a successful write).
   *
   * - {@link createSqlJsStorage}: exports the database and calls `persist` if there are unsaved
   *   writes (the debounce window, or an earlier save that failed), waiting for a save already
   *   under way. Rejects with `STORAGE_NOT_PERSISTED` if `persist` fails; the writes stay
   *   pending for the next save.
   * - {@link openIndexedDbStorage}: also retries an earlier failed save (a write that rejected
   *   with `STORAGE_NOT_PERSISTED`, in any mode), then releases the queue's Web Lock, so another
   *   tab or the service worker can go on. If the save fails it rejects with
   *   `STORAGE_NOT_PERSISTED` and the lock stays held (no other context may save over the unsaved
   *   writes) until a save succeeds. Called with nothing pending it only releases the lock.
   */
  flush(): Promise<void>;
}

/**
 * Wrap a sql.js `Database` as a sync-core storage adapter.
 *
 * sql.js keeps the whole database in memory; the `persist` hook makes it durable. What a crash can
 * lose: nothing acknowledged in `'commit'` mode (the write's promise resolves after the save), and
 * the last debounce window in debounced mode. sql.js has no cross-process locking: one tab or
 * worker per database (the engine's lease covers runs, not two independent copies of the image).
 *
 * @throws ConfigError for invalid options.
 *
 * @example
 * ```ts
 * import initSqlJs from 'sql.js';
 * import { createSqlJsStorage, createNodeFileSnapshot } from 'sync-core/sql-js';
 *
 * const SQL = await initSqlJs();
 * const file = createNodeFileSnapshot('queue.sqlite');
 * const db = new SQL.Database(await file.load());
 * const storage = createSqlJsStorage(db, { persist: file.save });
 * ```
 */
export function createSqlJsStorage(db: SqlJsDatabase, options: SqlJsStorageOptions = {}): SqlJsStorage {
  if (
    typeof db !== 'object' ||
    db === null ||
    typeof db.prepare !== 'function' ||
    typeof db.export !== 'function'
  ) {
    throw new ConfigError('createSqlJsStorage: expected a sql.js Database');
  }
  const { persist } = options;
  if (persist !== undefined && typeof persist !== 'function') {
    throw new ConfigError('persist: expected a function (image: Uint8Array) => void | Promise<void>');
  }
  const schedule = parsePersistMode(options.persistMode, { kind: 'commit' });
  const closeDatabase = options.closeDatabase ?? true;
  const sql = createSqlJsExecutor(() => db);

  let inTransaction = false;
  let dirty = false;
  let dirtySince = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let saving: Promise<void> = Promise.resolve();

  // Export happens only between transactions: `db.export()` of sql.js closes and reopens the
  // database, which would end an open transaction. A save asked for during one runs right after it.
  let saveAfterTransaction = false;
  const save = (): Promise<void> => {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    if (persist === undefined) return Promise.resolve();
    if (inTransaction) {
      saveAfterTransaction = true;
      return saving;
    }
    saveAfterTransaction = false;
    if (!dirty) return saving;
    dirty = false;
    const image = db.export();
    // One failed save must not poison later ones, and the image it failed to write is not lost:
    // the database is marked dirty again so the next save (or flush/close) writes it.
    const attempt = saving.catch(() => undefined).then(() => persist(image));
    saving = attempt.catch((error: unknown) => {
      if (!dirty) dirtySince = Date.now();
      dirty = true;
      throw notPersistedError(error);
    });
    return saving;
  };

  const afterWrite = async (): Promise<void> => {
    if (persist === undefined) return;
    if (!dirty) dirtySince = Date.now();
    dirty = true;
    if (schedule.kind === 'commit') return save();
    const waited = Date.now() - dirtySince;
    if (waited >= schedule.maxWaitMs) {
      // The window is over: save before this write returns. A loop of awaited writes never yields
      // to timers (sql.js answers synchronously), so the timer below alone would never fire and
      // the crash window would have no bound. Debounced writes resolve before they are saved, so
      // a failed save does not reject this one; it starts a new window (see save()).
      return save().catch(() => undefined);
    }
    if (timer !== undefined) clearTimeout(timer);
    timer = setTimeout(
      () => void save().catch(() => undefined),
      Math.max(0, Math.min(schedule.debounceMs, schedule.maxWaitMs - waited)),
    );
    // Never keep a Node process alive just to save: close() and flush() save explicitly.
    (timer as { unref?: () => void }).unref?.();
  };

  const outside = async <T>(fn: (executor: SqlJsStatements) => T): Promise<T> => {
    const { result, wrote } = sql.statement(fn);
    if (wrote) await afterWrite();
    return result;
  };

  return {
    name: 'sql.js',
    capabilities: { multiProcess: false, durable: persist !== undefined && schedule.kind === 'commit' },
    exec: (text) => outside((executor) => executor.exec(text)),
    run: (text, params) => outside((executor) => executor.run(text, params)),
    all: (text, params) => outside((executor) => executor.all(text, params)),
    async transaction<T>(txMode: TransactionMode, fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
      inTransaction = true;
      let outcome: { readonly result: T; readonly wrote: boolean };
      try {
        outcome = await sql.transaction(txMode, fn);
      } finally {
        inTransaction = false;
      }
      if (outcome.wrote) await afterWrite();
      if (saveAfterTransaction) await save();
      return outcome.result;
    },
    flush: () => save(),
    async close(): Promise<void> {
      await save();
      if (closeDatabase) db.close();
    },
  };
}

// A specifier the bundler cannot see: a browser build of an app that imports `sync-core/sql-js`
// (esbuild, webpack, Vite) would otherwise try to resolve `fs/promises` and fail, or pull in a shim,
// for a function it never calls. Node resolves it when a Node app does call it.
const NODE_FS = 'node:fs/promises';
const loadNodeFs = (): Promise<typeof import('node:fs/promises')> =>
  import(/* webpackIgnore: true */ /* @vite-ignore */ NODE_FS);

/**
 * A database image saved to one file on Node, replaced atomically. Create it with
 * {@link createNodeFileSnapshot}.
 *
 * @example
 * ```ts
 * import { createNodeFileSnapshot, type NodeFileSnapshot } from 'sync-core/sql-js';
 *
 * const file: NodeFileSnapshot = createNodeFileSnapshot('queue.sqlite');
 * const image = await file.load(); // undefined on a first start
 * if (image) await file.save(image); // e.g. copy it back after a restore
 * ```
 */
export interface NodeFileSnapshot {
  /**
   * The saved image, or `undefined` when the file does not exist yet (a first start).
   * @throws StorageError `STORAGE_CORRUPT` when the file is empty; the file system's error when
   *   it cannot be read.
   */
  load(): Promise<Uint8Array | undefined>;
  /**
   * Write the image to a temporary file next to it, fsync it, then rename it over the old one: after
   * a crash the file holds the old image or the new one.
   */
  save: SqlJsPersist;
}

/**
 * Persist a sql.js database to a file on Node (Electron, tests, CLI tools). Node's `fs` is loaded
 * lazily, so importing `sync-core/sql-js` in a browser costs nothing.
 *
 * A file that exists but cannot be read is an error, never treated as "no database": starting
 * from an empty queue would silently lose every queued mutation.
 *
 * @throws ConfigError when `path` is not a non-empty string.
 *
 * @example
 * ```ts
 * import initSqlJs from 'sql.js';
 * import { createSyncEngine } from 'sync-core';
 * import { createNodeFileSnapshot, createSqlJsStorage } from 'sync-core/sql-js';
 *
 * const SQL = await initSqlJs();
 * const file = createNodeFileSnapshot('/var/lib/my-app/queue.sqlite');
 * const storage = createSqlJsStorage(new SQL.Database(await file.load()), { persist: file.save });
 * const engine = createSyncEngine({ storage, entities: { activity: {} } });
 * await engine.open();
 * ```
 */
export function createNodeFileSnapshot(path: string): NodeFileSnapshot {
  if (typeof path !== 'string' || path.length === 0) {
    throw new ConfigError('createNodeFileSnapshot: expected a non-empty file path');
  }
  return {
    async load() {
      const fs = await loadNodeFs();
      let bytes: Uint8Array;
      try {
        bytes = new Uint8Array(await fs.readFile(path));
      } catch (error) {
        if ((error as { code?: string }).code === 'ENOENT') return undefined;
        throw error;
      }
      // Saves are atomic, so an empty file was not written by us: opening it would start an
      // empty queue in silence.
      if (bytes.length === 0) {
        throw new StorageError('STORAGE_CORRUPT', `the database image ${path} is empty (0 bytes)`);
      }
      return bytes;
    },
    async save(image) {
      const fs = await loadNodeFs();
      const temporary = `${path}.${process.pid}.tmp`;
      const handle = await fs.open(temporary, 'w');
      try {
        await handle.writeFile(image);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await fs.rename(temporary, path);
    },
  };
}
