/**
 * sql.js persisted to IndexedDB (fake-indexeddb), shared by several contexts ("tabs" and a
 * service worker) through one Web Lock (the in-process LockManager of test/helpers).
 */
import { IDBFactory, IDBObjectStore } from 'fake-indexeddb';
import fc from 'fast-check';
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
  createSeededRandom,
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
import { createInProcessLockManager } from '../helpers/in-process-lock-manager.js';
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
  return {
    count: () => count,
    reset: () => {
      count = 0;
    },
    restore: () => spy.mockRestore(),
  };
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

describe('sql.js + IndexedDB: a deleted IndexedDB database', () => {
  it('is written back from the open context, never replaced by an empty queue', async () => {
    const SQL = await loadSqlJs();
    const shared = origin();
    const engine = track(
      await engineOver(await openIndexedDbStorage(SQL, { name: 'q', ...shared, persistMode: 'commit' })),
    );
    const a = await engine.enqueue(create('a1'));
    // Another tab's script deletes the database while this context has it open.
    await new Promise<void>((resolve, reject) => {
      const request = shared.indexedDB.deleteDatabase('sync-core:q');
      request.onsuccess = () => resolve();
      request.onerror = () => reject(request.error);
    });
    const b = await engine.enqueue(create('a2'));
    expect((await engine.queue.list()).map((m) => m.id)).toEqual([a.id, b.id]);
    const stored = await createIndexedDbSnapshot('q', { indexedDB: shared.indexedDB }).load();
    const db = new SQL.Database(stored!.image);
    expect(db.exec('SELECT entity_id FROM sync_mutations ORDER BY seq')[0]?.values).toEqual([['a1'], ['a2']]);
    db.close();
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

describe('sql.js + IndexedDB: maxWaitMs holds against a busy writer', () => {
  // While a context holds the lock, its calls go through without waiting for anything, so a loop
  // of awaited writes never yields to timers: only a save in the write path itself bounds the
  // crash window and lets another context in.
  it('a loop of awaited enqueues that never lets a timer fire saves at the latest maxWaitMs after each first unsaved write, and a waiting context gets the lock in between', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    try {
      const SQL = await loadSqlJs();
      const shared = origin();
      const storage = await openIndexedDbStorage(SQL, { name: 'q', ...shared }); // 50 ms / 500 ms
      const engine = track(await engineOver(storage));
      await storage.flush();
      const puts = countImagePuts();
      const other = await openIndexedDbStorage(SQL, { name: 'q', ...shared });
      const STEP_MS = 10;
      const WRITES = 200; // 2 s of writes, 10 ms apart; the timers are never advanced
      let write = 0;
      const windows: number[] = [];
      let windowStart: number | undefined = Date.now();
      await engine.enqueue(create('first')); // this context holds the lock from here on
      let otherSaw: { write: number; rows: number } | undefined;
      const otherRead = Promise.resolve(other.all('SELECT count(*) AS n FROM sync_mutations')).then(
        (rows) => {
          otherSaw = { write, rows: Number(rows[0]?.n) };
        },
      );
      for (; write < WRITES; write++) {
        vi.setSystemTime(Date.now() + STEP_MS); // the clock moves; no timer fires
        windowStart ??= Date.now();
        const before = puts.count();
        await engine.enqueue(create(`a${write}`));
        if (puts.count() > before) {
          windows.push(Date.now() - windowStart);
          windowStart = undefined;
        }
      }
      // 2 s of writing: a save at least every 500 ms (a window can start inside the enqueue that
      // saved, if one of its later statements writes, so it can end sooner than 500 ms after the
      // next enqueue), never later.
      expect(windows.length, String(windows)).toBeGreaterThanOrEqual(3);
      expect(Math.max(...windows), String(windows)).toBeLessThanOrEqual(500);
      // The other context (a service worker's sync event) got the lock after the first save, with
      // the writes saved by then, while the loop was still writing.
      expect(otherSaw).toBeDefined();
      expect(otherSaw!.write).toBeLessThan(WRITES);
      expect(otherSaw!.rows).toBeGreaterThanOrEqual(40);
      await otherRead;
      await storage.flush();
      await settle();
      expect(shared.locks.held(LOCK)).toBe(false);
      expect(shared.locks.maxHeld(LOCK)).toBe(1);
      await other.close();
    } finally {
      vi.useRealTimers();
    }
  });

  it('a save that fails in the write path does not reject the debounced write, keeps the lock, and is tried again by the first call a second later, not by every call', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    try {
      const SQL = await loadSqlJs();
      const shared = origin();
      const storage = await openIndexedDbStorage(SQL, { name: 'q', ...shared }); // 50 ms / 500 ms
      await storage.exec('CREATE TABLE t (v INTEGER)');
      await storage.flush();
      const put = IDBObjectStore.prototype.put;
      const attempts: number[] = [];
      let failing = true;
      vi.spyOn(IDBObjectStore.prototype, 'put').mockImplementation(function (
        this: IDBObjectStore,
        value: unknown,
        key?: IDBValidKey,
      ) {
        if (key === 'image') {
          attempts.push(Date.now());
          if (failing) throw new DOMException('quota', 'QuotaExceededError');
        }
        return put.call(this, value, key);
      });
      const started = Date.now();
      for (let i = 0; i < 20; i++) {
        await storage.run('INSERT INTO t (v) VALUES (?)', [i]); // resolves although the save fails
        vi.setSystemTime(Date.now() + 100);
      }
      // Saves tried at 500 ms (the window's end), then once a second: not on each of the writes.
      expect(attempts.map((at) => at - started)).toEqual([500, 1500]);
      expect(shared.locks.held(LOCK)).toBe(true);
      failing = false;
      await storage.flush();
      expect(shared.locks.held(LOCK)).toBe(false);
      const stored = await createIndexedDbSnapshot('q', { indexedDB: shared.indexedDB }).load();
      const db = new SQL.Database(stored!.image);
      expect(db.exec('SELECT count(*) FROM t')[0]?.values).toEqual([[20]]);
      db.close();
      await storage.close();
    } finally {
      vi.useRealTimers();
    }
  });

  it('with real timers, a context waiting with lockTimeoutMs gets the lock while another enqueues in a loop, instead of STORAGE_BUSY', async () => {
    const SQL = await loadSqlJs();
    const shared = origin();
    const storage = await openIndexedDbStorage(SQL, { name: 'q', ...shared }); // 50 ms / 500 ms
    const engine = track(await engineOver(storage));
    await storage.flush();
    await engine.enqueue(create('first')); // this context holds the lock from here on
    const worker = await openIndexedDbStorage(SQL, { name: 'q', ...shared, lockTimeoutMs: 2_000 });
    let outcome: unknown;
    const read = Promise.resolve(worker.all('SELECT count(*) AS n FROM sync_mutations')).then(
      (rows) => {
        outcome = rows;
      },
      (error: unknown) => {
        outcome = error;
      },
    );
    // Stops as soon as the worker's call settled; without a save in the write path it cannot
    // settle before the loop ends, and then its lockTimeoutMs has long passed.
    const started = Date.now();
    let writes = 0;
    while (outcome === undefined && Date.now() - started < 3_000) {
      await engine.enqueue(create(`a${writes++}`));
    }
    await read;
    expect(outcome).toEqual([{ n: expect.any(Number) }]);
    console.info(
      `[sql-js-indexeddb] a waiting context got the lock after ${writes} enqueues, ${Date.now() - started} ms`,
    );
    await worker.close();
  });
});

describe('sql.js + IndexedDB: reads in a debounce window', () => {
  it('do not postpone the save: only writes do', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    try {
      const SQL = await loadSqlJs();
      const shared = origin();
      const puts = countImagePuts();
      const storage = await openIndexedDbStorage(SQL, { name: 'q', ...shared });
      await storage.exec('CREATE TABLE t (v INTEGER)');
      for (let i = 0; i < 4; i++) {
        await vi.advanceTimersByTimeAsync(20);
        await storage.all('SELECT v FROM t');
      }
      // 80 ms of reads after one write: saved 50 ms after the write, and the lock released.
      await settle();
      expect(puts.count()).toBe(1);
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
    const read = Promise.resolve(tab2.all('SELECT entity_id FROM sync_mutations')).then((rows) => {
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

describe('sql.js + IndexedDB: several contexts (tabs, a service worker) share one queue', () => {
  /** A network in front of the shared model server that records how many pushes overlap. */
  function sharedServer() {
    const server = createModelServer();
    let sending = 0;
    let maxSending = 0;
    return {
      server,
      maxSending: () => maxSending,
      networkFor(clock: ReturnType<typeof createFakeClock>): NetworkAdapter {
        const inner = createFaultyNetwork(server, { clock });
        return {
          async push(request) {
            sending++;
            maxSending = Math.max(maxSending, sending);
            try {
              // Take a little while on the wire, so that the other contexts' calls interleave.
              await settle(3);
              return await inner.push(request);
            } finally {
              sending--;
            }
          },
        };
      },
    };
  }

  /** Two tabs and a service worker over one origin, interleaving enqueues and runs, then drained. */
  async function threeContexts(
    persistMode: IndexedDbStorageOptions['persistMode'],
    locks: LockManager = createInProcessLockManager(),
  ) {
    const SQL = await loadSqlJs();
    const { indexedDB } = origin();
    const wire = sharedServer();
    const clock = createFakeClock();
    const timers = createFakeTimers(clock);
    const contexts = await Promise.all(
      [1, 2, 3].map(async (seed) => {
        const storage = await openIndexedDbStorage(SQL, { name: 'q', indexedDB, locks, persistMode });
        const engine = track(
          createSyncEngine({
            storage,
            entities: { activity: {} },
            network: wire.networkFor(clock),
            clock,
            timers,
            random: createSeededRandom(seed),
          }),
        );
        await engine.open();
        await engine.start({ userId: 'u1', orgId: 'o1' });
        return engine;
      }),
    );
    const [tab1, tab2, worker] = contexts as [SyncEngine, SyncEngine, SyncEngine];
    const acknowledged: EnqueuedMutation[] = [];
    const outcomes: string[] = [];
    await Promise.all([
      ...[tab1, tab2].map(async (tab, k) => {
        for (let i = 0; i < 30; i++) {
          acknowledged.push(await tab.enqueue(create(`tab${k + 1}-${i}`)));
          if (i % 5 === k) outcomes.push((await tab.runOnce()).outcome);
        }
      }),
      (async () => {
        for (let i = 0; i < 12; i++) {
          outcomes.push((await worker.runOnce()).outcome);
          await settle(2);
        }
      })(),
    ]);
    for (let i = 0; i < 5; i++) outcomes.push((await worker.runOnce()).outcome);
    const queued = await tab2.queue.list({ scope: 'all', limit: 1000 });
    const result = checkDelivery({ enqueued: acknowledged, applied: wire.server.log(), queued });
    return { wire, outcomes, queued, result };
  }

  const modes: [string, IndexedDbStorageOptions['persistMode']][] = [
    ["'commit'", 'commit'],
    ['the default debounce', undefined],
    ['a zero debounce', { debounceMs: 0, maxWaitMs: 0 }],
  ];
  it.each(modes)(
    'two tabs and a service worker interleaving enqueues and runs (%s): every acknowledged mutation delivered exactly once, never two runs sending at once (invariants 1, 2, 6)',
    async (_, persistMode) => {
      const locks = createInProcessLockManager();
      const { wire, outcomes, queued, result } = await threeContexts(persistMode, locks);
      expect(result.ok, `${describeDelivery(result)}\noutcomes: ${outcomes.join(' ')}`).toBe(true);
      expect(queued).toEqual([]);
      expect(wire.server.log()).toHaveLength(60);
      expect(wire.server.stats().duplicates).toBe(0);
      expect(wire.maxSending()).toBe(1);
      expect(
        outcomes.every((o) => o === 'ok' || o === 'busy'),
        outcomes.join(' '),
      ).toBe(true);
      expect(locks.maxHeld(LOCK)).toBe(1);
      // Runs did overlap in time (some found the lease taken): what the lock has to survive.
      if (persistMode === 'commit') expect(outcomes).toContain('busy');
    },
  );

  /** No mutual exclusion: a LockManager that grants every request at once. */
  const noLock: LockManager = {
    request: (async (_name: string, options: unknown, callback?: (lock: Lock | null) => unknown) =>
      (typeof options === 'function' ? options : callback!)({ name: LOCK, mode: 'exclusive' })) as never,
    query: async () => ({ held: [], pending: [] }),
  };

  it("the same scenario without mutual exclusion ('commit') fails: two contexts' saves collide, and the compare-and-set rejects the second with STORAGE_NOT_PERSISTED before anything is sent twice", async () => {
    const outcome = await threeContexts('commit', noLock).catch((error: unknown) => error);
    expect(outcome).toMatchObject({
      name: 'StorageError',
      code: 'STORAGE_NOT_PERSISTED',
      cause: { code: 'STORAGE_BUSY' },
    });
  });

  it('without mutual exclusion an enqueue acknowledged in one tab (debounced) never reaches IndexedDB once another tab saved first; with the lock the same steps keep both', async () => {
    const steps = async (locks: LockManager) => {
      const SQL = await loadSqlJs();
      const { indexedDB } = origin();
      const open = async () => {
        const storage = await openIndexedDbStorage(SQL, {
          name: 'q',
          indexedDB,
          locks,
          persistMode: { debounceMs: 60_000, maxWaitMs: 600_000 },
        });
        const engine = track(await engineOver(storage));
        await storage.flush();
        return { engine, storage };
      };
      const tab1 = await open();
      const tab2 = await open();
      await tab1.engine.enqueue(create('a1')); // acknowledged, saved within the window
      const secondTab = tab2.engine
        .enqueue(create('a2'))
        .then(() => tab2.storage.flush())
        .then(() => 'saved');
      await Promise.race([secondTab, settle(200)]); // without the lock it is done; with it, it waits
      const firstTabSave = await tab1.storage.flush().then(
        () => 'saved',
        (error: { code?: string; cause?: { code?: string } }) => `${error.code} (${error.cause?.code})`,
      );
      await secondTab;
      // What the service worker (a fresh context) finds.
      const worker = await open();
      const stored = (await worker.engine.queue.list()).map((m) => m.entityId);
      return { firstTabSave, stored };
    };

    const unguarded = await steps(noLock);
    expect(unguarded.stored).toEqual(['a2']); // a1 is gone, although its enqueue resolved
    expect(unguarded.firstTabSave).toBe('STORAGE_NOT_PERSISTED (STORAGE_BUSY)');
    const guarded = await steps(createInProcessLockManager());
    expect(guarded.stored).toEqual(['a1', 'a2']);
    expect(guarded.firstTabSave).toBe('saved');
  });

  it('a context waiting longer than lockTimeoutMs for the lock fails with STORAGE_BUSY, having done nothing', async () => {
    const SQL = await loadSqlJs();
    const shared = origin();
    const holder = await openIndexedDbStorage(SQL, {
      name: 'q',
      ...shared,
      persistMode: { debounceMs: 60_000, maxWaitMs: 600_000 },
    });
    await holder.exec('CREATE TABLE t (v INTEGER)'); // unsaved: the holder keeps the lock
    const waiter = await openIndexedDbStorage(SQL, { name: 'q', ...shared, lockTimeoutMs: 5 });
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const failure = Promise.resolve(waiter.run('CREATE TABLE w (v INTEGER)')).catch((e: unknown) => e);
      await vi.advanceTimersByTimeAsync(5);
      expect(await failure).toMatchObject({ name: 'StorageError', code: 'STORAGE_BUSY' });
    } finally {
      vi.useRealTimers();
    }
    await holder.flush();
    expect(await waiter.all("SELECT name FROM sqlite_master WHERE type = 'table'")).toEqual([{ name: 't' }]);
    await Promise.all([holder.close(), waiter.close()]);
  });

  it('a write in one tab is read by another at its next call (the generation changed, so it reloads)', async () => {
    const SQL = await loadSqlJs();
    const shared = origin();
    const tab1 = track(await engineOver(await openIndexedDbStorage(SQL, { name: 'q', ...shared })));
    const tab2 = track(await engineOver(await openIndexedDbStorage(SQL, { name: 'q', ...shared })));
    const a = await tab1.enqueue(create('a1'));
    const b = await tab2.enqueue(create('a2'));
    expect((await tab1.queue.list()).map((m) => m.id)).toEqual([a.id, b.id]);
    await tab1.queue.discard([a.id]);
    expect((await tab2.queue.list()).map((m) => m.id)).toEqual([b.id]);
  });
});

describe('sql.js + IndexedDB: options', () => {
  it('without Web Locks and without singleContext: a ConfigError, nothing opened', async () => {
    const SQL = await loadSqlJs();
    const { indexedDB } = origin();
    const failure = await openIndexedDbStorage(SQL, { name: 'q', indexedDB }).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(ConfigError);
    expect((failure as Error).message).toMatch(/singleContext: true/);
  });

  it('singleContext: true runs without Web Locks, and a second context saving over it fails loudly instead of overwriting', async () => {
    const SQL = await loadSqlJs();
    const { indexedDB } = origin();
    const one = await openIndexedDbStorage(SQL, {
      name: 'q',
      indexedDB,
      singleContext: true,
      persistMode: { debounceMs: 60_000, maxWaitMs: 600_000 },
    });
    await one.exec('CREATE TABLE t (v INTEGER)');
    await one.flush();
    await one.run('INSERT INTO t VALUES (?)', [1]); // not saved yet
    // A misuse: a second context opens the same queue without locks, and saves first.
    const two = await openIndexedDbStorage(SQL, {
      name: 'q',
      indexedDB,
      singleContext: true,
      persistMode: 'commit',
    });
    await two.run('INSERT INTO t VALUES (?)', [2]);
    // The first context's save finds a generation it did not write: it refuses to overwrite.
    await expect(one.flush()).rejects.toMatchObject({
      code: 'STORAGE_NOT_PERSISTED',
      cause: { code: 'STORAGE_BUSY' },
    });
    const stored = await createIndexedDbSnapshot('q', { indexedDB }).load();
    const db = new SQL.Database(stored!.image);
    expect(db.exec('SELECT v FROM t')[0]?.values).toEqual([[2]]);
    db.close();
    await two.close();
  });

  it('rejects invalid options with a ConfigError naming the option', async () => {
    const SQL = await loadSqlJs();
    const { indexedDB, locks } = origin();
    const bad: [unknown, RegExp][] = [
      [{ name: '', indexedDB, locks }, /^name: expected a non-empty string/],
      [{ name: 7, indexedDB, locks }, /^name: expected a non-empty string, got number/],
      [{ name: 'q', indexedDB, locks, persistMode: { debounceMs: -1 } }, /^persistMode/],
      [
        { name: 'q', indexedDB, locks, persistMode: { debounceMs: 10, maxWaitMs: 5 } },
        /^persistMode.maxWaitMs/,
      ],
      [{ name: 'q', indexedDB, locks: {} }, /^locks: expected a LockManager/],
      [{ name: 'q', indexedDB, locks, flushOnPageHide: 'yes' }, /^flushOnPageHide: expected a boolean/],
      [{ name: 'q', indexedDB: {}, locks }, /^indexedDB: expected an IDBFactory/],
      [{ name: 'q', indexedDB, locks, lockTimeoutMs: -1 }, /^lockTimeoutMs: expected a number/],
      [undefined, /^options: expected an object/],
    ];
    for (const [options, message] of bad) {
      const failure = await openIndexedDbStorage(SQL, options as IndexedDbStorageOptions).catch(
        (e: unknown) => e,
      );
      expect(failure, String(message)).toBeInstanceOf(ConfigError);
      expect((failure as Error).message).toMatch(message);
    }
    await expect(openIndexedDbStorage({} as never, { name: 'q', indexedDB, locks })).rejects.toBeInstanceOf(
      ConfigError,
    );
    expect(() => createIndexedDbSnapshot('', { indexedDB })).toThrow(ConfigError);
  });
});

describe('sql.js + IndexedDB: page lifecycle', () => {
  function fakePage() {
    const win = new EventTarget();
    const doc = Object.assign(new EventTarget(), { visibilityState: 'visible' as DocumentVisibilityState });
    vi.stubGlobal('document', doc);
    vi.stubGlobal('addEventListener', win.addEventListener.bind(win));
    vi.stubGlobal('removeEventListener', win.removeEventListener.bind(win));
    return {
      hide() {
        doc.visibilityState = 'hidden';
        doc.dispatchEvent(new Event('visibilitychange'));
      },
      show() {
        doc.visibilityState = 'visible';
        doc.dispatchEvent(new Event('visibilitychange'));
      },
      pagehide: () => win.dispatchEvent(new Event('pagehide')),
    };
  }
  afterEach(() => {
    vi.unstubAllGlobals();
  });

  it('in a document, hiding the page saves pending writes and releases the lock; writes while hidden save at once', async () => {
    const SQL = await loadSqlJs();
    const page = fakePage();
    const shared = origin();
    const puts = countImagePuts();
    const storage = await openIndexedDbStorage(SQL, {
      name: 'q',
      ...shared,
      persistMode: { debounceMs: 60_000, maxWaitMs: 600_000 },
    });
    await storage.exec('CREATE TABLE t (v INTEGER)');
    expect(puts.count()).toBe(0);
    expect(shared.locks.held(LOCK)).toBe(true);
    page.hide();
    await settle();
    expect(puts.count()).toBe(1);
    expect(shared.locks.held(LOCK)).toBe(false);
    // Hidden: timers may be throttled or the tab frozen, so no debounce.
    await storage.run('INSERT INTO t VALUES (1)');
    expect(puts.count()).toBe(2);
    expect(shared.locks.held(LOCK)).toBe(false);
    page.show();
    await storage.run('INSERT INTO t VALUES (2)');
    expect(puts.count()).toBe(2);
    page.pagehide();
    await settle();
    expect(puts.count()).toBe(3);
    await storage.close();
    // The listeners went with close(): a later pagehide touches nothing.
    page.pagehide();
    await settle();
    expect(puts.count()).toBe(3);
  });

  it('flushOnPageHide: false leaves page events alone', async () => {
    const SQL = await loadSqlJs();
    const page = fakePage();
    const shared = origin();
    const puts = countImagePuts();
    const storage = await openIndexedDbStorage(SQL, {
      name: 'q',
      ...shared,
      persistMode: { debounceMs: 60_000, maxWaitMs: 600_000 },
      flushOnPageHide: false,
    });
    await storage.exec('CREATE TABLE t (v INTEGER)');
    page.hide();
    page.pagehide();
    await settle();
    expect(puts.count()).toBe(0);
    await storage.close();
    expect(puts.count()).toBe(1);
  });
});

describe('createIndexedDbSnapshot', () => {
  it('loads undefined on a first start, then the image and generation saved together', async () => {
    const SQL = await loadSqlJs();
    const { indexedDB } = origin();
    const snapshot = createIndexedDbSnapshot('q', { indexedDB });
    expect(snapshot.databaseName).toBe('sync-core:q');
    expect(await snapshot.load()).toBeUndefined();
    expect(await snapshot.generation()).toBe(0);
    const db = new SQL.Database();
    db.exec('CREATE TABLE t (v INTEGER)');
    const image = db.export();
    await snapshot.save(image, 1, { expectedGeneration: 0 });
    expect(await snapshot.generation()).toBe(1);
    const stored = await snapshot.load();
    expect(stored?.generation).toBe(1);
    expect([...stored!.image]).toEqual([...image]);
    snapshot.close();
    db.close();
  });

  it('a compare-and-set save against a stale generation writes nothing (STORAGE_BUSY)', async () => {
    const SQL = await loadSqlJs();
    const { indexedDB } = origin();
    const snapshot = createIndexedDbSnapshot('q', { indexedDB });
    const db = new SQL.Database();
    db.exec('CREATE TABLE t (v INTEGER)');
    await snapshot.save(db.export(), 1);
    await snapshot.save(db.export(), 2, { expectedGeneration: 1 });
    db.exec('INSERT INTO t VALUES (1)');
    await expect(snapshot.save(db.export(), 2, { expectedGeneration: 1 })).rejects.toMatchObject({
      code: 'STORAGE_BUSY',
    });
    expect(await snapshot.generation()).toBe(2);
    snapshot.close();
    db.close();
  });

  it('refuses to save bytes that are not a SQLite image (STORAGE_CORRUPT), writing nothing', async () => {
    const { indexedDB } = origin();
    const snapshot = createIndexedDbSnapshot('q', { indexedDB });
    await expect(snapshot.save(new Uint8Array(0), 1)).rejects.toMatchObject({ code: 'STORAGE_CORRUPT' });
    await expect(snapshot.save(new Uint8Array([1, 2, 3]), 1)).rejects.toMatchObject({
      code: 'STORAGE_CORRUPT',
    });
    expect(await snapshot.load()).toBeUndefined();
    snapshot.close();
  });

  it('maps IndexedDB open failures to StorageError codes', async () => {
    const { indexedDB } = origin();
    // A newer sync-core upgraded the database: VersionError.
    await new Promise<void>((resolve, reject) => {
      const request = indexedDB.open('sync-core:q', 5);
      request.onsuccess = () => {
        request.result.close();
        resolve();
      };
      request.onerror = () => reject(request.error);
    });
    await expect(createIndexedDbSnapshot('q', { indexedDB }).load()).rejects.toMatchObject({
      name: 'StorageError',
      code: 'STORAGE_SCHEMA_TOO_NEW',
    });
    // Blocked by another connection, and a quota error at open.
    const scripted = (event: 'blocked' | 'error', error?: DOMException) =>
      ({
        open() {
          const request = { error } as unknown as IDBOpenDBRequest;
          setImmediate(() =>
            (event === 'blocked' ? request.onblocked : request.onerror)?.call(
              request,
              new Event(event) as never,
            ),
          );
          return request;
        },
      }) as unknown as IDBFactory;
    await expect(
      createIndexedDbSnapshot('q', { indexedDB: scripted('blocked') }).generation(),
    ).rejects.toMatchObject({
      code: 'STORAGE_BUSY',
    });
    await expect(
      createIndexedDbSnapshot('q', {
        indexedDB: scripted('error', new DOMException('full', 'QuotaExceededError')),
      }).generation(),
    ).rejects.toMatchObject({ code: 'STORAGE_FULL' });
    await expect(
      createIndexedDbSnapshot('q', {
        indexedDB: scripted('error', new DOMException('no', 'InvalidStateError')),
      }).load(),
    ).rejects.toMatchObject({ code: 'STORAGE_FAILED', message: expect.stringMatching(/InvalidStateError/) });
  });
});

describe('sql.js + IndexedDB: any interleaving of contexts (property)', () => {
  const LONG = process.env.SYNC_CORE_LONG !== undefined && process.env.SYNC_CORE_LONG !== '';
  type Command =
    | { readonly kind: 'enqueue'; readonly context: number; readonly count: number }
    | { readonly kind: 'run' | 'flush' | 'reload'; readonly context: number };
  const arbCommand = (context: number): fc.Arbitrary<Command> =>
    fc.oneof(
      fc.record({
        kind: fc.constant('enqueue' as const),
        context: fc.constant(context),
        count: fc.integer({ min: 1, max: 4 }),
      }),
      fc.record({
        kind: fc.constantFrom('run' as const, 'flush' as const, 'reload' as const),
        context: fc.constant(context),
      }),
    );
  /** A step runs at most one command per context, all at once. */
  const arbStep = fc.subarray([0, 1, 2], { minLength: 1 }).chain((ids) => fc.tuple(...ids.map(arbCommand)));

  it(
    'No loss, effectively once, single flight across contexts: whatever the interleaving of enqueues, runs, flushes and reloads in two tabs and a service worker, once drained lost = duplicated = ∅ and at most one run sends at a time (invariants 1, 2, 6)',
    async () => {
      const SQL = await loadSqlJs();
      await fc.assert(
        fc.asyncProperty(
          // Short debounce windows: the default's 50 ms would only make each case slower.
          fc.constantFrom<IndexedDbStorageOptions['persistMode']>(
            'commit',
            { debounceMs: 0, maxWaitMs: 0 },
            { debounceMs: 2, maxWaitMs: 10 },
          ),
          fc.array(arbStep, { minLength: 1, maxLength: 12 }),
          async (persistMode, steps) => {
            const shared = origin();
            const server = createModelServer();
            let sending = 0;
            let maxSending = 0;
            const clock = createFakeClock();
            const timers = createFakeTimers(clock);
            const inner = createFaultyNetwork(server, { clock });
            const network: NetworkAdapter = {
              async push(request) {
                sending++;
                maxSending = Math.max(maxSending, sending);
                try {
                  await settle(2);
                  return await inner.push(request);
                } finally {
                  sending--;
                }
              },
            };
            let seed = 0;
            const openContext = async () => {
              const storage = await openIndexedDbStorage(SQL, { name: 'q', ...shared, persistMode });
              const engine = createSyncEngine({
                storage,
                entities: { activity: {} },
                network,
                clock,
                timers,
                random: createSeededRandom(++seed),
              });
              await engine.open();
              await engine.start({ userId: 'u1' });
              return { engine, storage };
            };
            const contexts = await Promise.all([openContext(), openContext(), openContext()]);
            const acknowledged: EnqueuedMutation[] = [];
            let next = 0;
            try {
              for (const step of steps) {
                await Promise.all(
                  step.map(async (command) => {
                    const { engine, storage } = contexts[command.context]!;
                    if (command.kind === 'enqueue') {
                      for (let i = 0; i < command.count; i++)
                        acknowledged.push(await engine.enqueue(create(`a${next++}`)));
                    } else if (command.kind === 'run') {
                      await engine.runOnce();
                    } else if (command.kind === 'flush') {
                      await storage.flush();
                    } else {
                      // A tab reloaded: its engine and storage closed (saving), a new one opened.
                      await engine.close();
                      contexts[command.context] = await openContext();
                    }
                  }),
                );
              }
              for (let i = 0; i < 6; i++) await contexts[i % 3]!.engine.runOnce();
              const queued = await contexts[0]!.engine.queue.list({ scope: 'all', limit: 1000 });
              const result = checkDelivery({ enqueued: acknowledged, applied: server.log(), queued });
              expect(result.ok, describeDelivery(result)).toBe(true);
              expect(queued).toEqual([]);
              expect(server.stats().duplicates).toBe(0);
              expect(maxSending).toBeLessThanOrEqual(1);
              expect(shared.locks.maxHeld(LOCK)).toBe(1);
            } finally {
              for (const { engine } of contexts) await engine.close().catch(() => undefined);
            }
          },
        ),
        { numRuns: LONG ? 500 : 40 },
      );
    },
    LONG ? 600_000 : 120_000,
  );
});

describe('the in-process LockManager these tests use', () => {
  it('grants one holder at a time, in request order, until its callback settles; a waiter can abort', async () => {
    const locks = createInProcessLockManager();
    const order: string[] = [];
    const hold = (id: string) =>
      locks.request('n', { mode: 'exclusive' }, async () => {
        order.push(`+${id}`);
        await settle(2);
        order.push(`-${id}`);
      });
    const a = hold('a');
    const controller = new AbortController();
    const aborted = locks.request('n', { signal: controller.signal }, async () => order.push('never'));
    const all = Promise.all([a, hold('b'), locks.request('n', async () => order.push('c'))]);
    controller.abort();
    await expect(aborted).rejects.toBeDefined();
    await all;
    expect(order).toEqual(['+a', '-a', '+b', '-b', 'c']);
    expect(locks.maxHeld('n')).toBe(1);
    expect(await locks.request('n', { ifAvailable: true }, async (lock) => lock?.name)).toBe('n');
  });
});
