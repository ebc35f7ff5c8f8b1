/**
 * sql.js persisted to IndexedDB (fake-indexeddb), shared by several contexts ("tabs" and a
 * service worker) through one Web Lock (the in-process LockManager of test/helpers).
 */
import { IDBFactory, IDBObjectStore } from 'fake-indexeddb';
import {
  ConfigError,
  createSyncEngine,
  type EnqueuedMutation,
  type NetworkAdapter,
  type SyncEngine,
} from 'sync-core';
import {
  checkDelivery,
  createFakeClock,
  createFakeTimers,
  createFaultyNetwork,
  createModelServer,
  describeDelivery,
} from 'sync-core/testing';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  createIndexedDbSnapshot,
  type IndexedDbStorageOptions,
  openIndexedDbStorage,
  type SqlJsStorage,
} from '../../adapters/sql-js/index.js';
import { describeStorageConformance } from '../conformance/storage-conformance.js';
import { createInProcessLockManager, type InProcessLockManager } from '../helpers/in-process-lock-manager.js';
import { loadSqlJs, type StorageFactory } from '../helpers/storage-factories.js';

const LOCK = 'sync-core:q';

/** One origin: an IndexedDB and a LockManager every context of the test shares. */
function origin() {
  return { indexedDB: new IDBFactory(), locks: createInProcessLockManager() };
}

function indexedDbFactory(name: string, extra: Partial<IndexedDbStorageOptions> = {}): () => StorageFactory {
  return () => {
    let shared = origin();
    const open = async () => openIndexedDbStorage(await loadSqlJs(), { name: 'q', ...shared, ...extra });
    return {
      name,
      create: async () => {
        shared = origin();
        return open();
      },
      reopen: open,
      cleanup: () => undefined,
    };
  };
}

describeStorageConformance(indexedDbFactory('sql.js + IndexedDB (debounced, the default)'));
describeStorageConformance(indexedDbFactory('sql.js + IndexedDB (commit)', { persistMode: 'commit' }));

/** Raw IndexedDB access, to plant records the adapter did not write and to read them back. */
async function rawStore(
  indexedDB: IDBFactory,
  mode: IDBTransactionMode,
  body: (store: IDBObjectStore) => void,
) {
  const db = await new Promise<IDBDatabase>((resolve, reject) => {
    const request = indexedDB.open('sync-core:q', 1);
    request.onupgradeneeded = () => request.result.createObjectStore('snapshot');
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
  const tx = db.transaction('snapshot', mode);
  body(tx.objectStore('snapshot'));
  await new Promise<void>((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
  });
  db.close();
}

async function rawRead(indexedDB: IDBFactory): Promise<{ image: unknown; generation: unknown }> {
  let image: IDBRequest | undefined;
  let generation: IDBRequest | undefined;
  await rawStore(indexedDB, 'readonly', (store) => {
    image = store.get('image');
    generation = store.get('generation');
  });
  return { image: image!.result, generation: generation!.result };
}

/** Counts IndexedDB puts of the database image (one per save). */
function countImagePuts() {
  const put = IDBObjectStore.prototype.put;
  let count = 0;
  const spy = vi.spyOn(IDBObjectStore.prototype, 'put').mockImplementation(function (
    this: IDBObjectStore,
    value: unknown,
    key?: IDBValidKey,
  ) {
    if (key === 'image') count++;
    return put.call(this, value, key);
  });
  return { count: () => count, reset: () => void (count = 0), restore: () => spy.mockRestore() };
}

async function engineOver(storage: SqlJsStorage, extra: { network?: NetworkAdapter } = {}) {
  const clock = createFakeClock();
  const engine = createSyncEngine({
    storage,
    entities: { activity: {} },
    clock,
    timers: createFakeTimers(clock),
    ...extra,
  });
  await engine.open();
  await engine.start({ userId: 'u1', orgId: 'o1' });
  return engine;
}

/** Let IndexedDB (setImmediate-driven in fake-indexeddb) finish what is under way. */
async function settle(rounds = 30): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((resolve) => setImmediate(resolve));
}

const create = (entityId: string) => ({ entity: 'activity', op: 'create', entityId, data: { entityId } });

const engines: SyncEngine[] = [];
afterEach(async () => {
  vi.restoreAllMocks();
  for (const engine of engines.splice(0)) await engine.close().catch(() => undefined);
});
const track = (engine: SyncEngine) => {
  engines.push(engine);
  return engine;
};

describe('sql.js + IndexedDB: durability', () => {
  it('reopening after close recovers every acknowledged enqueue (debounced mode saves on close)', async () => {
    const SQL = await loadSqlJs();
    const shared = origin();
    const engine = await engineOver(await openIndexedDbStorage(SQL, { name: 'q', ...shared }));
    const acknowledged: EnqueuedMutation[] = [];
    for (let i = 0; i < 50; i++) acknowledged.push(await engine.enqueue(create(`a${i}`)));
    await engine.close();
    const reopened = track(await engineOver(await openIndexedDbStorage(SQL, { name: 'q', ...shared })));
    const listed = await reopened.queue.list({ limit: 1000 });
    expect(listed.map((m) => m.id)).toEqual(acknowledged.map((m) => m.id));
  });

  it("'commit' mode: an acknowledged enqueue is in IndexedDB before enqueue resolves, with no close", async () => {
    const SQL = await loadSqlJs();
    const shared = origin();
    const engine = track(
      await engineOver(await openIndexedDbStorage(SQL, { name: 'q', ...shared, persistMode: 'commit' })),
    );
    await engine.enqueue(create('a1'));
    // What a crash leaves: the stored image alone, read by a fresh snapshot.
    const stored = await createIndexedDbSnapshot('q', { indexedDB: shared.indexedDB }).load();
    const db = new SQL.Database(stored!.image);
    expect(db.exec('SELECT entity_id FROM sync_mutations')[0]?.values).toEqual([['a1']]);
    db.close();
  });

  it('a first start (nothing stored) opens an empty database and stores nothing until a write', async () => {
    const SQL = await loadSqlJs();
    const shared = origin();
    const storage = await openIndexedDbStorage(SQL, { name: 'q', ...shared });
    expect(await storage.all('SELECT 1 AS one')).toEqual([{ one: 1 }]);
    await storage.close();
    expect(await createIndexedDbSnapshot('q', { indexedDB: shared.indexedDB }).load()).toBeUndefined();
  });
});

describe('sql.js + IndexedDB: a corrupt stored image is STORAGE_CORRUPT, never a silently empty queue', () => {
  const VALID = Symbol('a real SQLite image');
  const garbage = new TextEncoder().encode('garbage, not SQLite '.repeat(300));
  const headerThenGarbage = new Uint8Array(4096).fill(7);
  headerThenGarbage.set(new TextEncoder().encode('SQLite format 3\u0000'));
  const cases: [string, { image?: unknown; generation?: unknown }][] = [
    ['bytes without the SQLite header', { image: garbage, generation: 3 }],
    ['an empty image', { image: new Uint8Array(0), generation: 3 }],
    ['a string instead of bytes', { image: 'SQLite format 3', generation: 3 }],
    ['the SQLite header followed by garbage', { image: headerThenGarbage, generation: 3 }],
    ['a real image without a generation', { image: VALID }],
    ['a real image with a negative generation', { image: VALID, generation: -1 }],
    ['a generation without an image', { generation: 3 }],
  ];
  it.each(cases)(
    '%s: open rejects STORAGE_CORRUPT and leaves the stored record untouched',
    async (_, record) => {
      const SQL = await loadSqlJs();
      const shared = origin();
      const empty = new SQL.Database();
      const image = record.image === VALID ? empty.export() : record.image;
      empty.close();
      await rawStore(shared.indexedDB, 'readwrite', (store) => {
        if ('image' in record) store.put(image, 'image');
        if ('generation' in record) store.put(record.generation, 'generation');
      });
      const before = await rawRead(shared.indexedDB);
      const failure = await openIndexedDbStorage(SQL, { name: 'q', ...shared }).catch((e: unknown) => e);
      expect(failure).toMatchObject({ name: 'StorageError', code: 'STORAGE_CORRUPT' });
      expect((failure as Error).message).toMatch(/IndexedDB sync-core:q/);
      expect(await rawRead(shared.indexedDB)).toEqual(before);
      expect(shared.locks.held(LOCK)).toBe(false);
    },
  );
});

describe('sql.js + IndexedDB: bounded save cost', () => {
  it('a burst of 100 enqueues in debounced mode costs one save (one image put)', async () => {
    const SQL = await loadSqlJs();
    const puts = countImagePuts();
    const storage = await openIndexedDbStorage(SQL, {
      name: 'q',
      ...origin(),
      persistMode: { debounceMs: 60_000, maxWaitMs: 600_000 },
    });
    const engine = track(await engineOver(storage));
    await storage.flush();
    expect(puts.count()).toBe(1); // the migrations
    puts.reset();
    for (let i = 0; i < 100; i++) await engine.enqueue(create(`a${i}`));
    expect(puts.count()).toBe(0);
    await storage.flush();
    expect(puts.count()).toBe(1);
    await storage.flush(); // nothing pending: no put
    expect(puts.count()).toBe(1);
  });

  it('the default debounce saves once a burst pauses, at the latest maxWaitMs after its first write', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    try {
      const SQL = await loadSqlJs();
      const shared = origin();
      const puts = countImagePuts();
      const storage = await openIndexedDbStorage(SQL, { name: 'q', ...shared });
      await storage.exec('CREATE TABLE t (v INTEGER)');
      // A write every 40 ms never pauses for 50 ms: only maxWaitMs (500) ends the window.
      for (let i = 0; i < 20; i++) {
        await storage.run('INSERT INTO t (v) VALUES (?)', [i]);
        await vi.advanceTimersByTimeAsync(40);
      }
      // 20 × 40 ms = 800 ms: one save at 500 ms, the next window still open.
      expect(puts.count()).toBe(1);
      // While the window is open, this context holds the lock: other contexts wait.
      expect(shared.locks.held(LOCK)).toBe(true);
      await vi.advanceTimersByTimeAsync(60);
      await settle();
      expect(puts.count()).toBe(2);
      expect(shared.locks.held(LOCK)).toBe(false);
      await storage.close();
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('sql.js + IndexedDB: a failed save', () => {
  it('rejects STORAGE_NOT_PERSISTED, keeps the write queued and the lock held, and a later flush saves it', async () => {
    const SQL = await loadSqlJs();
    const shared = origin();
    const tab1 = await openIndexedDbStorage(SQL, { name: 'q', ...shared, persistMode: 'commit' });
    const engine1 = track(await engineOver(tab1));
    const put = IDBObjectStore.prototype.put;
    vi.spyOn(IDBObjectStore.prototype, 'put').mockImplementation(() => {
      throw new DOMException('quota', 'QuotaExceededError');
    });
    const failure = await engine1.enqueue(create('a1')).catch((e: unknown) => e);
    expect(failure).toMatchObject({ code: 'STORAGE_NOT_PERSISTED', cause: { code: 'STORAGE_FULL' } });
    // Queued in memory: the app must not enqueue it again. (A read retries the save, quietly.)
    expect((await engine1.queue.stats()).total).toBe(1);
    // Another tab cannot take the lock (and then overwrite the unsaved write) until it is saved.
    const tab2 = await openIndexedDbStorage(SQL, { name: 'q', ...shared, persistMode: 'commit' });
    let seen: unknown;
    const read = tab2.all('SELECT entity_id FROM sync_mutations').then((rows) => {
      seen = rows;
    });
    await settle();
    expect(seen).toBeUndefined();
    expect(shared.locks.held(LOCK)).toBe(true);
    vi.mocked(IDBObjectStore.prototype.put).mockImplementation(put);
    await tab1.flush();
    await read;
    expect(seen).toEqual([{ entity_id: 'a1' }]);
    await tab2.close();
  });

  it('a failed image write leaves the previous image and generation in IndexedDB, never half of each', async () => {
    const SQL = await loadSqlJs();
    const shared = origin();
    const snapshot = createIndexedDbSnapshot('q', { indexedDB: shared.indexedDB });
    const db = new SQL.Database();
    db.exec('CREATE TABLE t (v INTEGER)');
    const first = db.export();
    await snapshot.save(first, 1);
    db.exec('INSERT INTO t VALUES (1)');
    const put = IDBObjectStore.prototype.put;
    vi.spyOn(IDBObjectStore.prototype, 'put').mockImplementation(function (
      this: IDBObjectStore,
      value: unknown,
      key?: IDBValidKey,
    ) {
      // The image is written, then the generation's write fails.
      if (key === 'generation') throw new DOMException('quota', 'QuotaExceededError');
      return put.call(this, value, key);
    });
    await expect(snapshot.save(db.export(), 2, { expectedGeneration: 1 })).rejects.toMatchObject({
      code: 'STORAGE_FULL',
    });
    await expect(snapshot.save(db.export(), 2)).rejects.toMatchObject({ code: 'STORAGE_FULL' });
    vi.restoreAllMocks();
    const stored = await snapshot.load();
    expect(stored?.generation).toBe(1);
    expect([...stored!.image]).toEqual([...first]);
    snapshot.close();
    db.close();
  });
});
