/**
 * Storage faults (FAULTS.md 8–10, DESIGN.md section 7 invariants 1, 2, 8) over REAL database files:
 *
 * - 9: another PROCESS (a child `node -e` with better-sqlite3) holds the write lock past the
 *   engine's busy timeout — before a call, and in the middle of a run;
 * - 8: the disk is full (`PRAGMA max_page_count` lowered on the engine's own connection) — on
 *   enqueue, and while a run records its results;
 * - 10: a corrupted file (garbage over the middle pages, or over the header), for better-sqlite3 and
 *   for a sql.js image loaded with `createNodeFileSnapshot`;
 * - a read-only database (`STORAGE_READONLY`).
 *
 * The network is the testing kit's model server behind its faulty network; the model server's log
 * is the ground truth for "applied exactly once". Bad inputs are covered by
 * test/unit/validation.test.ts (FAULTS.md 25–27) and not repeated here; a whole-file garbage image
 * is covered by test/adapters/*.test.ts.
 *
 * Tests marked `it.fails` are bugs found by this suite: the test states the expected behaviour and
 * the comment above it names the bug (file and line).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import {
  createManualScheduler,
  createSyncEngine,
  type EnqueuedMutation,
  type Mutation,
  type MutationInput,
  type PushRequest,
  type Scope,
  StorageError,
  type SyncEngine,
  type SyncEngineOptions,
  SyncError,
} from 'sync-core';
import { createBetterSqlite3Storage } from 'sync-core/better-sqlite3';
import { createNodeFileSnapshot, createSqlJsStorage } from 'sync-core/sql-js';
import {
  createFakeClock,
  createFakeTimers,
  createFaultyNetwork,
  createModelServer,
  createSeededRandom,
  type FakeClock,
  type FaultyNetwork,
  type ModelServer,
} from 'sync-core/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { loadSqlJs, tempDir } from '../helpers/storage-factories.js';

const ROOT = join(__dirname, '..', '..');
const U1: Scope = Object.freeze({ userId: 'u1', orgId: 'o1' });
const U2: Scope = Object.freeze({ userId: 'u2', orgId: 'o1' });
const BUSY_TIMEOUT_MS = 100;
const LEASE_TTL_MS = 60_000;

// ---------------------------------------------------------------------------------------------
// Fixtures: temp files, engines over real files, a child process holding the write lock.
// ---------------------------------------------------------------------------------------------

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  // Reverse order: engines close before their databases, children die before their files go.
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function tempFile(name: string): string {
  const dir = tempDir('sync-core-faults-');
  cleanups.push(() => {
    try {
      chmodSync(join(dir.dir, name), 0o644);
    } catch {
      // absent
    }
    dir.remove();
  });
  return join(dir.dir, name);
}

interface FileEngine {
  readonly engine: SyncEngine;
  /** The engine's own connection (the adapter leaves it open: closeDatabase: false). */
  readonly db: Database.Database;
  readonly file: string;
  readonly clock: FakeClock;
  readonly server: ModelServer;
  readonly network: FaultyNetwork;
}

/**
 * An engine over a better-sqlite3 FILE with a 100 ms busy timeout, on a fake clock and fake timers,
 * pushing to a model server through the faulty network (or `push` wrapping it).
 */
async function fileEngine(
  options: {
    file?: string;
    wrapPush?: (inner: FaultyNetwork, request: PushRequest) => ReturnType<FaultyNetwork['push']>;
    extra?: Partial<SyncEngineOptions>;
    scope?: Scope | null;
  } = {},
): Promise<FileEngine> {
  const file = options.file ?? tempFile('queue.db');
  const db = new Database(file);
  const clock = createFakeClock();
  const server = createModelServer();
  const network = createFaultyNetwork(server, { random: createSeededRandom(3) });
  const wrap = options.wrapPush;
  const engine = createSyncEngine({
    storage: createBetterSqlite3Storage(db, { busyTimeoutMs: BUSY_TIMEOUT_MS, closeDatabase: false }),
    entities: { activity: {}, contact: {} },
    clock,
    timers: createFakeTimers(clock),
    random: createSeededRandom(11),
    network: wrap ? { ...network, push: (request) => wrap(network, request) } : network,
    leaseTtlMs: LEASE_TTL_MS,
    ...options.extra,
  });
  cleanups.push(() => {
    if (db.open) db.close();
  });
  cleanups.push(() => engine.close().catch(() => undefined));
  await engine.open();
  if (options.scope !== null) await engine.start(options.scope ?? U1);
  return { engine, db, file, clock, server, network };
}

function inputs(n: number, entity = 'activity', bytes = 40): MutationInput[] {
  return Array.from({ length: n }, (_, i) => ({
    entity,
    op: 'create',
    entityId: `${entity}-${i}`,
    data: { i, note: 'n'.repeat(bytes) },
  }));
}

async function everything(engine: SyncEngine): Promise<Mutation[]> {
  const out: Mutation[] = [];
  for (;;) {
    const page = await engine.queue.list({
      scope: 'all',
      limit: 1000,
      ...(out.length > 0 ? { afterSeq: out[out.length - 1]!.seq } : {}),
    });
    out.push(...page);
    if (page.length < 1000) return out;
  }
}

async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected the promise to reject, but it resolved');
}

function expectStorageError(error: unknown, code: StorageError['code']): void {
  expect(error).toBeInstanceOf(StorageError);
  expect(error).toBeInstanceOf(SyncError);
  expect((error as StorageError).code).toBe(code);
}

/** Every applied server entry's idempotency key, once each: the "applied exactly once" check. */
function expectAppliedExactlyOnce(server: ModelServer, enqueued: readonly EnqueuedMutation[]): void {
  const keys = server.log().map((entry) => entry.key);
  expect(new Set(keys).size).toBe(keys.length); // no key applied twice
  expect([...keys].sort()).toEqual(enqueued.map((m) => m.key).sort()); // every mutation applied
}

interface Locker {
  readonly pid: number;
  /** SIGKILL the child (by its pid) and wait until it has exited: its lock is gone. */
  release(): Promise<void>;
}

/**
 * Another PROCESS opens `file`, runs `BEGIN IMMEDIATE` (SQLite's write lock), prints `locked`, and
 * waits until killed. Resolves once the lock is held.
 */
async function holdWriteLock(file: string): Promise<Locker> {
  const script = [
    "const Database = require('better-sqlite3');",
    `const db = new Database(${JSON.stringify(file)});`,
    "db.exec('BEGIN IMMEDIATE');",
    "process.stdout.write('locked\\n');",
    'setInterval(() => {}, 1 << 30);',
  ].join(' ');
  const child: ChildProcess = spawn(process.execPath, ['-e', script], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const release = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGKILL');
    await exited;
  };
  cleanups.push(release);
  await new Promise<void>((resolve, reject) => {
    let out = '';
    let err = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      out += String(chunk);
      if (out.includes('locked')) resolve();
    });
    child.stderr!.on('data', (chunk: Buffer) => {
      err += String(chunk);
    });
    child.once('exit', (code) =>
      reject(new Error(`the lock holder exited (${code}) before locking: ${err}`)),
    );
  });
  return { pid: child.pid!, release };
}

// ---------------------------------------------------------------------------------------------
// FAULTS.md 9: another process holds the write lock past the busy timeout
// ---------------------------------------------------------------------------------------------

describe('FAULTS 9: another process holds the write lock past the busy timeout', () => {
  it('enqueue, enqueueMany and transaction wait busyTimeoutMs, then reject STORAGE_BUSY with nothing stored', async () => {
    const { engine, db, file } = await fileEngine();
    db.exec('CREATE TABLE app_notes (id TEXT PRIMARY KEY, body TEXT)');
    await engine.enqueueMany(inputs(3));
    const before = await everything(engine);
    const statsBefore = await engine.queue.stats();
    const announced: string[] = [];
    engine.on('mutation:enqueued', (e) => announced.push(e.id));

    const lock = await holdWriteLock(file);
    const started = performance.now();
    const single = await rejectionOf(
      engine.enqueue({ entity: 'activity', op: 'create', entityId: 'new-1', data: { t: 1 } }),
    );
    const waited = performance.now() - started;
    expectStorageError(single, 'STORAGE_BUSY');
    // It waited for the other process, as long as the busy timeout and not the 5 s default.
    expect(waited).toBeGreaterThanOrEqual(BUSY_TIMEOUT_MS * 0.9);
    expect(waited).toBeLessThan(3_000);
    expectStorageError(await rejectionOf(engine.enqueueMany(inputs(2, 'contact'))), 'STORAGE_BUSY');
    expectStorageError(
      await rejectionOf(
        engine.transaction(async (tx) => {
          await tx.run('INSERT INTO app_notes (id, body) VALUES (?, ?)', ['n1', 'saved locally']);
          await tx.enqueue({ entity: 'activity', op: 'update', entityId: 'activity-0', data: { t: 2 } });
        }),
      ),
      'STORAGE_BUSY',
    );
    // Reads still work in WAL mode while the other process writes: the queue is exactly as before.
    expect(await everything(engine)).toEqual(before);
    expect(await engine.queue.stats()).toEqual(statsBefore);
    expect(db.prepare('SELECT COUNT(*) AS n FROM app_notes').get()).toEqual({ n: 0 });
    expect(announced).toEqual([]);

    await lock.release();
    const after = await engine.enqueue({
      entity: 'activity',
      op: 'create',
      entityId: 'new-1',
      data: { t: 1 },
    });
    expect(announced).toEqual([after.id]);
    expect((await engine.queue.stats()).pending).toBe(statsBefore.pending + 1);
  });

  // Was a bug (fixed; src/engine/create-sync-engine.ts:824, #leasedRun): `await this.#lease.acquire(run.runId)`
  // (and the auth_paused read at :819) run outside any try: SQLITE_BUSY from the lease's
  // BEGIN IMMEDIATE escapes, so `runOnce` REJECTS with StorageError STORAGE_BUSY instead of
  // returning a report with outcome `busy` or `error` (RunOutcome docs: "`error`: storage failed").
  it('runOnce while another process holds the write lock returns outcome busy or error (it rejects)', async () => {
    const { engine, file } = await fileEngine();
    await engine.enqueueMany(inputs(5));
    const lock = await holdWriteLock(file);
    const report = await engine.runOnce({ trigger: 'background' });
    expect(['busy', 'error']).toContain(report.outcome);
    await lock.release();
  });

  // Was a bug (fixed; same place; consequence in src/engine/create-sync-engine.ts:665-672, runOnce): because
  // runOnce rejects, `#afterRun` — and with it `#reschedule('run')` — is skipped. The scheduler's request
  // was consumed when the run started (`this.#scheduled = null`), so NO next run is scheduled:
  // background sync stops until the next enqueue, sign-in or connectivity change.
  it('a scheduled run that hits a locked database still schedules the next run', async () => {
    const clock = createFakeClock();
    const scheduler = createManualScheduler(clock);
    const { engine, file } = await fileEngine({
      extra: { clock, timers: createFakeTimers(clock), scheduler },
    });
    await engine.enqueueMany(inputs(5));
    expect(scheduler.current()).not.toBeNull();
    const lock = await holdWriteLock(file);
    await scheduler.runDue();
    await lock.release();
    expect(scheduler.current()).not.toBeNull();
  });

  it('while locked nothing is claimed or sent; once the other process is killed one run applies each mutation exactly once', async () => {
    const { engine, file, server, network } = await fileEngine({ extra: { batch: { maxCount: 10 } } });
    const enqueued = await engine.enqueueMany(inputs(25));
    const lock = await holdWriteLock(file);
    for (let i = 0; i < 3; i++) {
      // Outcome busy/error — or, today, a STORAGE_BUSY rejection (see the it.fails above).
      const result = await engine.runOnce().catch((error: unknown) => error);
      if (result instanceof Error) expectStorageError(result, 'STORAGE_BUSY');
      else expect(['busy', 'error']).toContain((result as { outcome: string }).outcome);
    }
    expect(network.requests()).toHaveLength(0);
    const stats = await engine.queue.stats();
    expect(stats).toMatchObject({ pending: 25, inflight: 0 });
    expect((await everything(engine)).every((m) => m.attempts === 0)).toBe(true);

    await lock.release();
    const report = await engine.runOnce();
    expect(report.outcome).toBe('ok');
    expect(report.counts).toMatchObject({ pushed: 25, retried: 0, failed: 0, recovered: 0, batches: 3 });
    expectAppliedExactlyOnce(server, enqueued);
    expect(server.stats().duplicates).toBe(0);
    const sent = network
      .requests()
      .flatMap((r) => (r.type === 'push' ? r.request.mutations.map((m) => m.id) : []));
    expect(new Set(sent).size).toBe(sent.length); // each mutation sent once
    expect((await engine.queue.stats()).total).toBe(0);
  });

  it('lock taken mid-run while a batch is on the wire: outcome error STORAGE_BUSY; the claims are never sent twice at once; after release each mutation is applied exactly once', async () => {
    let lock: Locker | undefined;
    const file = tempFile('queue.db');
    const { engine, server, network, clock } = await fileEngine({
      file,
      wrapPush: async (inner, request) => {
        const response = await inner.push(request); // the server applies the batch…
        lock ??= await holdWriteLock(file); // …and another process locks the database meanwhile
        return response;
      },
    });
    const enqueued = await engine.enqueueMany(inputs(30));

    const first = await engine.runOnce();
    expect(first.outcome).toBe('error');
    expect(first.error?.code).toBe('STORAGE_BUSY');
    expect(server.log()).toHaveLength(30);
    // Nothing was recorded (the confirmations rolled back): the rows are still claimed by run 1.
    expect(await engine.queue.stats()).toMatchObject({ total: 30 });

    await lock!.release();
    // The dead run's lease and claims have not expired yet: nobody sends them meanwhile.
    const second = await engine.runOnce();
    expect(['busy', 'ok']).toContain(second.outcome);
    expect(network.requests()).toHaveLength(1);

    clock.advance(LEASE_TTL_MS + 1);
    const third = await engine.runOnce();
    expect(third.outcome).toBe('ok');
    expect(third.counts.pushed).toBe(30);
    expect(network.requests()).toHaveLength(2);
    // Resent with the same keys: the server replays, nothing is applied twice.
    expect(server.stats().duplicates).toBe(30);
    expectAppliedExactlyOnce(server, enqueued);
    expect((await engine.queue.stats()).total).toBe(0);
  });

  // Was a bug (fixed; src/engine/create-sync-engine.ts:477-483, start): the new scope is assigned at :479
  // (`this.#scope = checked`, generation bumped, the running run aborted) BEFORE the write at :483 that
  // can fail (`DELETE FROM sync_meta WHERE key = 'auth_paused'`). When that write hits a busy (or
  // read-only, full) database, start() rejects — yet the engine has switched to the new user. The
  // app, told sign-in failed, keeps enqueuing the previous user's changes: they are queued (and
  // sent) under the other user's scope (DESIGN.md invariant 5).
  it('start() of another user that fails on a locked database leaves the previous user active', async () => {
    const { engine, file } = await fileEngine();
    // Sync was paused (auth-required): signing in must clear that, which needs the write lock.
    const other = new Database(file);
    other.prepare("INSERT INTO sync_meta (key, value) VALUES ('auth_paused', 'x')").run();
    other.close();
    const lock = await holdWriteLock(file);
    expectStorageError(await rejectionOf(engine.start(U2)), 'STORAGE_BUSY');
    await lock.release();
    expect(engine.activeScope).toEqual(U1);
    const m = await engine.enqueue({ entity: 'activity', op: 'create', entityId: 'mine', data: {} });
    expect(m.scope).toEqual(U1);
  });

  it('start() needs no write when there is nothing to clear: signing in works while another process writes', async () => {
    const { engine, file } = await fileEngine();
    const lock = await holdWriteLock(file);
    await engine.start(U2);
    await lock.release();
    expect(engine.activeScope).toEqual(U2);
  });
});

// ---------------------------------------------------------------------------------------------
// FAULTS.md 8: disk full
// ---------------------------------------------------------------------------------------------

function pageCount(db: Database.Database): number {
  return db.pragma('page_count', { simple: true }) as number;
}

/** Use up every page the database may have: max_page_count = page_count, then a filler table. */
function fillDatabase(db: Database.Database): void {
  db.exec('CREATE TABLE IF NOT EXISTS app_filler (b BLOB)');
  db.pragma(`max_page_count = ${pageCount(db)}`);
  const insert = db.prepare('INSERT INTO app_filler (b) VALUES (randomblob(1000))');
  try {
    for (let i = 0; i < 100_000; i++) insert.run();
  } catch (error) {
    expect((error as { code?: string }).code).toBe('SQLITE_FULL');
    return;
  }
  throw new Error('the database never filled up');
}

describe('FAULTS 8: disk full', () => {
  it('enqueue of a big payload on a full database: STORAGE_FULL, not saved, queue intact; works once space is raised', async () => {
    const { engine, db } = await fileEngine();
    db.exec('CREATE TABLE app_notes (id TEXT PRIMARY KEY, body TEXT)');
    await engine.enqueueMany(inputs(20));
    const before = await everything(engine);
    const statsBefore = await engine.queue.stats();
    const announced: string[] = [];
    engine.on('mutation:enqueued', (e) => announced.push(e.id));
    const big = { entity: 'activity', op: 'create', entityId: 'big', data: { blob: 'x'.repeat(200_000) } };

    db.pragma(`max_page_count = ${pageCount(db) + 2}`);
    const error = await rejectionOf(engine.enqueue(big));
    expectStorageError(error, 'STORAGE_FULL');
    expect((error as Error).message).not.toContain('xxxx'); // FAULTS.md 33: no payload in messages
    // The caller knows it was not saved: no event, stats unchanged, and the queue is exactly as before.
    expect(announced).toEqual([]);
    expect(await engine.queue.stats()).toEqual(statsBefore);
    expect(await everything(engine)).toEqual(before);
    expect(await engine.queue.list({ entity: 'activity', scope: 'all', limit: 1000 })).not.toContainEqual(
      expect.objectContaining({ entityId: 'big' }),
    );
    // The app's own write in the same transaction rolls back with it (both or neither).
    expectStorageError(
      await rejectionOf(
        engine.transaction(async (tx) => {
          await tx.run('INSERT INTO app_notes (id, body) VALUES (?, ?)', ['n1', 'saved locally']);
          await tx.enqueue(big);
        }),
      ),
      'STORAGE_FULL',
    );
    expect(db.prepare('SELECT COUNT(*) AS n FROM app_notes').get()).toEqual({ n: 0 });
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');

    // Space freed: small and big enqueues work again; nothing earlier was lost.
    db.pragma('max_page_count = 1073741823');
    const small = await engine.enqueue({ entity: 'contact', op: 'create', entityId: 'c1', data: { t: 1 } });
    const bigAgain = await engine.enqueue(big);
    expect(announced).toEqual([small.id, bigAgain.id]);
    const after = await everything(engine);
    expect(after.slice(0, before.length)).toEqual(before);
    expect(after.map((m) => m.entityId).slice(before.length)).toEqual(['c1', 'big']);
  });

  it('full while a run records its results: outcome error STORAGE_FULL, no mutation lost, the next run after freeing space drains', async () => {
    let filled = false;
    let db: Database.Database | undefined;
    const fixture = await fileEngine({
      wrapPush: async (inner, request) => {
        if (!filled) inner.faults.next({ kind: 'partial', pattern: ['apply', 'reject'] });
        const response = await inner.push(request); // applied and rejected on the server…
        if (!filled) {
          filled = true;
          fillDatabase(db!); // …and the disk fills up before the results are recorded
        }
        return response;
      },
    });
    db = fixture.db;
    const { engine, server, network } = fixture;
    const enqueued = await engine.enqueueMany(inputs(40, 'activity', 300));

    const first = await engine.runOnce();
    expect(first.outcome).toBe('error');
    expect(first.error?.code).toBe('STORAGE_FULL');
    // Nothing of the batch was recorded, nothing was lost: every mutation is queued and sendable.
    expect(await engine.queue.stats()).toMatchObject({ pending: 40, inflight: 0, failed: 0, total: 40 });
    expect((await everything(engine)).map((m) => m.key).sort()).toEqual(enqueued.map((m) => m.key).sort());
    expect(await engine.status.unseenNotices()).toEqual([]);

    db.exec('DROP TABLE app_filler');
    db.pragma('max_page_count = 1073741823');
    const second = await engine.runOnce();
    expect(second.outcome).toBe('ok');
    // The server replays each key's first answer: 20 applied (now duplicates), 20 rejected.
    expect(second.counts).toMatchObject({ pushed: 20, failed: 20, retried: 0 });
    expect(network.requests()).toHaveLength(2);
    expect(server.stats()).toMatchObject({ applied: 20, duplicates: 40 });
    const keys = server.log().map((e) => e.key);
    expect(new Set(keys).size).toBe(20);
    const stats = await engine.queue.stats();
    expect(stats).toMatchObject({ pending: 0, inflight: 0, failed: 20 });
    const notices = await engine.status.unseenNotices();
    expect(notices.filter((n) => n.kind === 'failed')).toHaveLength(20);
    expect(second.nextDueAt).toBeNull();
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
  });
});

// ---------------------------------------------------------------------------------------------
// FAULTS.md 10: corrupted database file
// ---------------------------------------------------------------------------------------------

/** A valid queue file with `n` mutations, written by an engine and closed (WAL checkpointed). */
async function validQueueFile(n: number): Promise<string> {
  const file = tempFile('queue.db');
  const engine = createSyncEngine({
    storage: createBetterSqlite3Storage(new Database(file)),
    entities: { activity: {}, contact: {} },
    clock: createFakeClock(),
    random: createSeededRandom(5),
  });
  await engine.open();
  await engine.start(U1);
  await engine.enqueueMany(inputs(n, 'activity', 400));
  await engine.close();
  expect(existsSync(`${file}-wal`)).toBe(false);
  return file;
}

const GARBAGE = Buffer.from('\xde\xad\xbe\xef garbage, not a b-tree page ', 'latin1');

function garbage(length: number): Buffer {
  const out = Buffer.alloc(length);
  for (let i = 0; i < length; i++) out[i] = GARBAGE[i % GARBAGE.length]!;
  return out;
}

/** Overwrite the middle third of the pages (the 100-byte header and the schema page are kept). */
function corruptMiddlePages(bytes: Buffer): Buffer {
  const pageSize = bytes.readUInt16BE(16) === 1 ? 65_536 : bytes.readUInt16BE(16);
  const pages = bytes.length / pageSize;
  expect(pages).toBeGreaterThan(12);
  const out = Buffer.from(bytes);
  const from = Math.floor(pages / 3);
  const to = Math.floor((2 * pages) / 3);
  garbage((to - from) * pageSize).copy(out, from * pageSize);
  expect(out.subarray(0, 100).equals(bytes.subarray(0, 100))).toBe(true);
  return out;
}

function corruptHeader(bytes: Buffer): Buffer {
  const out = Buffer.from(bytes);
  garbage(100).copy(out, 0);
  return out;
}

/**
 * Use the engine as an app would after launch: open, sign in, read the whole queue, enqueue. The
 * first step that fails is returned; if none fails, the queue read is returned so the caller sees
 * a silently shortened queue.
 */
async function firstFailure(engine: SyncEngine): Promise<unknown> {
  try {
    await engine.open();
    await engine.start(U1);
    await engine.queue.stats({ scope: 'all' });
    const all = await everything(engine);
    await engine.enqueue({ entity: 'activity', op: 'create', entityId: 'after-corruption', data: {} });
    return { silentlyRead: all.length };
  } catch (error) {
    return error;
  }
}

describe('FAULTS 10: a corrupted database file is reported, never replaced by an empty queue', () => {
  for (const [what, corrupt] of [
    ['garbage over the middle pages (header kept)', corruptMiddlePages],
    ['a garbage header', corruptHeader],
  ] as const) {
    it(`better-sqlite3, ${what}: STORAGE_CORRUPT at open() or the first query; file bytes unchanged`, async () => {
      const file = await validQueueFile(120);
      const corrupted = corrupt(readFileSync(file));
      writeFileSync(file, corrupted);
      const db = new Database(file, { fileMustExist: true });
      cleanups.push(() => {
        if (db.open) db.close();
      });
      const engine = createSyncEngine({
        storage: createBetterSqlite3Storage(db, { closeDatabase: false }),
        entities: { activity: {}, contact: {} },
        clock: createFakeClock(),
      });
      const error = await firstFailure(engine);
      expectStorageError(error, 'STORAGE_CORRUPT');
      await engine.close().catch(() => undefined);
      db.close();
      // Not "repaired" into a fresh, empty queue: the bytes on disk are the corrupted ones.
      expect(readFileSync(file).equals(corrupted)).toBe(true);
      // And a second attempt fails the same way, rather than finding an empty queue.
      const again = createSyncEngine({
        storage: createBetterSqlite3Storage(new Database(file, { fileMustExist: true })),
        entities: { activity: {}, contact: {} },
        clock: createFakeClock(),
      });
      expectStorageError(await firstFailure(again), 'STORAGE_CORRUPT');
      await again.close().catch(() => undefined);
      expect(readFileSync(file).equals(corrupted)).toBe(true);
    });
  }

  for (const [what, corrupt] of [
    ['garbage over the middle pages (header kept)', corruptMiddlePages],
    ['a garbage header', corruptHeader],
  ] as const) {
    it(`sql.js image loaded with createNodeFileSnapshot, ${what}: STORAGE_CORRUPT; file bytes unchanged`, async () => {
      const SQL = await loadSqlJs();
      const path = tempFile('queue.sqlite');
      const snapshot = createNodeFileSnapshot(path);
      const writer = createSyncEngine({
        storage: createSqlJsStorage(new SQL.Database(), { persist: snapshot.save }),
        entities: { activity: {}, contact: {} },
        clock: createFakeClock(),
        random: createSeededRandom(5),
      });
      await writer.open();
      await writer.start(U1);
      await writer.enqueueMany(inputs(120, 'activity', 400));
      await writer.close();
      const corrupted = corrupt(readFileSync(path));
      writeFileSync(path, corrupted);

      const image = await snapshot.load();
      expect(image).toBeDefined();
      let error: unknown;
      let engine: SyncEngine | undefined;
      try {
        // sql.js opens lazily; should its constructor itself refuse the image, that is fine too.
        engine = createSyncEngine({
          storage: createSqlJsStorage(new SQL.Database(image), { persist: snapshot.save }),
          entities: { activity: {}, contact: {} },
          clock: createFakeClock(),
        });
        error = await firstFailure(engine);
      } catch (thrown) {
        error = thrown;
      }
      if (engine === undefined) expect(error).toBeInstanceOf(Error);
      else expectStorageError(error, 'STORAGE_CORRUPT');
      await engine?.close().catch(() => undefined);
      expect(readFileSync(path).equals(corrupted)).toBe(true);
    });
  }
});

// ---------------------------------------------------------------------------------------------
// STORAGE_READONLY
// ---------------------------------------------------------------------------------------------

describe('a read-only database: STORAGE_READONLY, nothing written', () => {
  it('the engine’s connection turns read-only (query_only): enqueue, enqueueMany, transaction → STORAGE_READONLY', async () => {
    const { engine, db } = await fileEngine();
    db.exec('CREATE TABLE app_notes (id TEXT PRIMARY KEY, body TEXT)');
    await engine.enqueueMany(inputs(4));
    const before = await everything(engine);
    db.pragma('query_only = 1');
    expectStorageError(
      await rejectionOf(engine.enqueue({ entity: 'activity', op: 'create', entityId: 'ro', data: {} })),
      'STORAGE_READONLY',
    );
    expectStorageError(await rejectionOf(engine.enqueueMany(inputs(2, 'contact'))), 'STORAGE_READONLY');
    expectStorageError(
      await rejectionOf(
        engine.transaction(async (tx) => {
          await tx.run('INSERT INTO app_notes (id, body) VALUES (?, ?)', ['n1', 'x']);
          await tx.enqueue({ entity: 'activity', op: 'create', entityId: 'ro', data: {} });
        }),
      ),
      'STORAGE_READONLY',
    );
    expect(await everything(engine)).toEqual(before);
    db.pragma('query_only = 0');
    expect(db.prepare('SELECT COUNT(*) AS n FROM app_notes').get()).toEqual({ n: 0 });
    await engine.enqueue({ entity: 'activity', op: 'create', entityId: 'rw', data: {} });
    expect(await everything(engine)).toHaveLength(before.length + 1);
  });

  it('a read-only file (chmod 444, { readonly: true, fileMustExist: true }): the queue opens and reads; every write → STORAGE_READONLY; bytes unchanged', async () => {
    const file = await validQueueFile(6);
    chmodSync(file, 0o444);
    const bytes = readFileSync(file);
    const engine = createSyncEngine({
      storage: createBetterSqlite3Storage(new Database(file, { readonly: true, fileMustExist: true })),
      entities: { activity: {}, contact: {} },
      clock: createFakeClock(),
    });
    cleanups.push(() => engine.close().catch(() => undefined));
    await engine.open(); // nothing to migrate: opening needs no write
    const queued = await everything(engine);
    expect(queued).toHaveLength(6);
    // Signing in needs no write (a support tool can open a copy read-only); every write refuses.
    await engine.start(U1);
    const enqueueError = await rejectionOf(
      engine.enqueue({ entity: 'activity', op: 'create', entityId: 'ro', data: {} }),
    );
    expect(enqueueError).toBeInstanceOf(SyncError);
    expect((enqueueError as SyncError).code).toBe('STORAGE_READONLY');
    expectStorageError(await rejectionOf(engine.queue.discard([queued[0]!.id])), 'STORAGE_READONLY');
    expect(await everything(engine)).toEqual(queued);
    await engine.close();
    expect(readFileSync(file).equals(bytes)).toBe(true);
  });
});
