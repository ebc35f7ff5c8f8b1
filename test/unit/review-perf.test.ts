/**
 * Review of the drain/idle hot-path commits (ad707f7 claim as one UPDATE … RETURNING and batched
 * confirmations, 5594c63 pinned version carry-over, ecf666f idle fast path, 150ca35 INSERT without
 * RETURNING). Tests marked `it.fails` demonstrate a cost or bug that is still there; the others pin
 * subtle behaviours that were checked and found correct (and the Retry-After race found and fixed).
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import {
  createSyncEngine,
  type NetworkAdapter,
  type PushRequest,
  type PushResponse,
  type SqlExecutor,
  type StorageAdapter,
  type SyncEngine,
  type SyncEngineOptions,
} from 'sync-core';
import { createBetterSqlite3Storage } from 'sync-core/better-sqlite3';
import { createSqlJsStorage } from 'sync-core/sql-js';
import { afterEach, describe, expect, it } from 'vitest';
import { MutationQueue } from '../../src/queue/mutation-queue.js';
import { scopeKey } from '../../src/queue/scope.js';
import { GuardedStorage } from '../../src/storage/guarded-storage.js';
import { migrate } from '../../src/storage/migrations.js';
import { manualTimers } from '../helpers/manual-timers.js';
import { loadSqlJs, manualClock, seededRandom, tempDir } from '../helpers/storage-factories.js';

type Handler = (request: PushRequest, call: number) => PushResponse | Promise<PushResponse>;

function scriptedNetwork(handler: Handler) {
  const requests: PushRequest[] = [];
  const network: NetworkAdapter = {
    async push(request) {
      requests.push(request);
      return handler(request, requests.length);
    },
  };
  return { network, requests };
}

const applyAll: Handler = (request) => ({
  type: 'results',
  results: request.mutations.map((m) => ({ id: m.id, status: 'applied', version: 1 })),
});

const engines: SyncEngine[] = [];
const cleanups: (() => void)[] = [];
afterEach(async () => {
  for (const engine of engines.splice(0)) await engine.close().catch(() => undefined);
  for (const c of cleanups.splice(0)) c();
});

const U1 = Object.freeze({ userId: 'u1', orgId: 'o1' });
const U2 = Object.freeze({ userId: 'u2', orgId: 'o1' });

/** A file shared by several connections ("processes") with one fake clock. */
function sharedFile() {
  const { dir, remove } = tempDir('sync-core-review-perf-');
  cleanups.push(remove);
  const file = join(dir, 'queue.db');
  const clock = manualClock();
  const make = async (
    network: NetworkAdapter,
    extra: Partial<SyncEngineOptions> = {},
    wrap: (adapter: StorageAdapter) => StorageAdapter = (a) => a,
    busyTimeoutMs = 5000,
  ) => {
    const engine = createSyncEngine({
      storage: wrap(createBetterSqlite3Storage(new Database(file), { busyTimeoutMs })),
      entities: { activity: {}, contact: {} },
      network,
      clock,
      random: seededRandom(engines.length + 1),
      timers: manualTimers().timers,
      ...extra,
    });
    engines.push(engine);
    await engine.open();
    await engine.start(U1);
    return engine;
  };
  return { file, clock, make };
}

/** Wrap an adapter: `onAll`/`onTxAll` run after the statement, before its rows are returned. */
function hooked(
  inner: StorageAdapter,
  hooks: {
    onAll?: (sql: string) => Promise<void> | void;
    onTxAll?: (sql: string, params: readonly unknown[]) => Promise<void> | void;
    onTxRun?: (sql: string, params: readonly unknown[]) => Promise<void> | void;
  },
): StorageAdapter {
  return {
    ...inner,
    name: inner.name,
    async all(sql, params) {
      const rows = await inner.all(sql, params);
      await hooks.onAll?.(sql);
      return rows;
    },
    transaction(mode, fn) {
      return inner.transaction(mode, (tx) => {
        const wrapped: SqlExecutor = {
          exec: tx.exec.bind(tx),
          async all(sql, params) {
            const rows = await tx.all(sql, params);
            await hooks.onTxAll?.(sql, params ?? []);
            return rows;
          },
          async run(sql, params) {
            const result = await tx.run(sql, params);
            await hooks.onTxRun?.(sql, params ?? []);
            return result;
          },
        };
        return fn(wrapped);
      });
    },
  };
}

async function rawQueue(db: Database.Database) {
  const clock = manualClock();
  const guarded = new GuardedStorage(createBetterSqlite3Storage(db));
  await guarded.open();
  await migrate(guarded);
  return { queue: new MutationQueue(guarded, clock, seededRandom(3)), clock, guarded };
}

/** An open engine signed in as U1 over an in-memory better-sqlite3 database, answering "applied". */
async function startedEngine() {
  const db = new Database(':memory:');
  const clock = manualClock();
  const engine = createSyncEngine({
    storage: createBetterSqlite3Storage(db),
    entities: { activity: {} },
    network: scriptedNetwork(applyAll).network,
    clock,
    random: seededRandom(5),
    timers: manualTimers().timers,
  });
  engines.push(engine);
  await engine.open();
  await engine.start(U1);
  return { db, clock, engine };
}

const LEASE_META_SQL = "SELECT key, value FROM sync_meta WHERE key IN ('auth_paused', 'not_before')";

describe('review-perf: idle fast path (ecf666f)', () => {
  // Found in review (invariant 4, two processes; the leased path had the same race): runOnce
  // reads not_before outside any transaction, then decides. A run in another process that ends
  // `throttled` (429, Retry-After 120 s) between that read and the idle transaction writes
  // not_before and releases its lease; the idle run then reports `ok`. It used to delete
  // not_before on the strength of its stale read; now a run deletes only a not_before that has
  // passed.
  it("an idle run never deletes a Retry-After another process wrote after this run's read", async () => {
    const { file, clock, make } = sharedFile();
    const throttling = scriptedNetwork(() => ({
      type: 'failure',
      failure: { class: 'retryable', code: 'http-429', message: '429', status: 429, retryAfterMs: 120_000 },
    }));
    const background = await make(throttling.network);
    let between: (() => Promise<void>) | undefined;
    const foregroundNet = scriptedNetwork(applyAll);
    const foreground = await make(foregroundNet.network, {}, (adapter) =>
      hooked(adapter, {
        onAll: async (sql) => {
          if (sql === LEASE_META_SQL && between) {
            const run = between;
            between = undefined;
            await run();
          }
        },
      }),
    );
    await background.enqueue({ entity: 'activity', op: 'create', entityId: 'a1', data: {} });
    between = async () => {
      expect((await background.runOnce()).outcome).toBe('throttled');
    };
    const report = await foreground.runOnce({ trigger: 'background' });
    expect(report.outcome).toBe('ok');
    // The Retry-After must survive the idle run …
    const raw = new Database(file);
    const stored = raw.prepare("SELECT value FROM sync_meta WHERE key = 'not_before'").all();
    raw.close();
    expect.soft(stored).toHaveLength(1); // actual: [] — deleted by the idle run
    // … so a mutation queued within the 120 s is not sent before it.
    await foreground.enqueue({ entity: 'contact', op: 'create', entityId: 'c1', data: {} });
    clock.advance(1_000);
    const next = await foreground.runOnce();
    expect(next.outcome).toBe('throttled');
    expect(foregroundNet.requests).toHaveLength(0); // actual: c1 sent 119 s before the Retry-After
  });
});

/** Every statement a storage ran (top level and inside transactions), with its parameters. */
function recording(inner: StorageAdapter) {
  const statements: { sql: string; params: readonly unknown[] }[] = [];
  const note = (sql: string, params: readonly unknown[] | undefined) =>
    statements.push({ sql, params: params ?? [] });
  const adapter: StorageAdapter = {
    ...inner,
    name: inner.name,
    run(sql, params) {
      note(sql, params);
      return inner.run(sql, params);
    },
    all(sql, params) {
      note(sql, params);
      return inner.all(sql, params);
    },
    transaction(mode, fn) {
      return inner.transaction(mode, (tx) =>
        fn({
          exec: tx.exec.bind(tx),
          run: (sql, params) => {
            note(sql, params);
            return tx.run(sql, params);
          },
          all: (sql, params) => {
            note(sql, params);
            return tx.all(sql, params);
          },
        }),
      );
    },
  };
  return { adapter, statements };
}

/** Plan lines that read every row of sync_mutations (a SCAN without an index). */
function fullScans(
  db: Database.Database,
  statements: readonly { sql: string; params: readonly unknown[] }[],
) {
  const found: string[] = [];
  for (const { sql, params } of statements) {
    if (!/sync_mutations/.test(sql)) continue;
    const plan = db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...(params as unknown[])) as {
      detail: string;
    }[];
    for (const { detail } of plan) {
      if (/^SCAN (sync_mutations|m|p|q)$/.test(detail))
        found.push(`${detail} ← ${sql.replace(/\s+/g, ' ').slice(0, 120)}`);
    }
  }
  return found;
}

describe('review-perf: query plans of the idle path (ecf666f)', () => {
  // PERF (pre-existing in clampFutureSchedules' UPDATEs, kept by the new read): the "does any
  // schedule need re-basing?" check, CLAMP_NEEDED_SQL (`state = 'pending' AND (updated_at > ? OR
  // next_attempt_at > ?) LIMIT 1`), has no usable index (sync_mutations_state leads with scope):
  // when nothing matches — the normal case — it reads every row of every scope, inside the idle
  // path's write transaction, on every wake-up and every scheduling decision. A backlog of
  // mutations waiting out a backoff makes each "free" idle run O(queue).
  it.fails('an idle run with a backlog waiting on backoff reads no statement that scans the whole queue', async () => {
    const db = new Database(':memory:');
    const { adapter, statements } = recording(createBetterSqlite3Storage(db));
    const clock = manualClock();
    const engine = createSyncEngine({
      storage: adapter,
      entities: { activity: {} },
      network: scriptedNetwork(applyAll).network,
      clock,
      random: seededRandom(5),
      timers: manualTimers().timers,
    });
    engines.push(engine);
    await engine.open();
    await engine.start(U1);
    const insert = db.prepare(
      `INSERT INTO sync_mutations (id, key, scope, entity, entity_id, op, data, bytes, state, next_attempt_at, created_at, updated_at)
       VALUES (?, ?, ?, 'activity', ?, 'update', '{}', 2, 'pending', ?, ?, ?)`,
    );
    db.transaction(() => {
      for (let i = 0; i < 3000; i++) {
        const scope = scopeKey(i % 2 === 0 ? U1 : U2);
        insert.run(`id${i}`, `k${i}`, scope, `e${i}`, clock.now() + 600_000, clock.now(), clock.now());
      }
    })();
    statements.length = 0;
    const report = await engine.runOnce({ trigger: 'background' });
    expect(report).toMatchObject({ outcome: 'ok', nextDueAt: clock.now() + 600_000 });
    expect(db.prepare('SELECT COUNT(*) AS n FROM sync_lease').get()).toEqual({ n: 0 }); // idle path taken
    // actual: CLAMP_NEEDED_SQL twice (isIdle, then #decide's clampFutureSchedules): 'SCAN sync_mutations'.
    // (After an ANALYZE, isIdle's "anything of the scope due?" branch also becomes a full SCAN.)
    expect(fullScans(db, statements)).toEqual([]);
  });
});

/** Queue rows inserted directly, in order (the same entity id = the same record). */
function insertRows(
  db: Database.Database,
  rows: readonly { entityId: string; bytes: number; nextAttemptAt: number; state?: string; scope?: string }[],
) {
  const insert = db.prepare(
    `INSERT INTO sync_mutations (id, key, scope, entity, entity_id, op, data, bytes, state, next_attempt_at, created_at, updated_at)
     VALUES (?, ?, ?, 'activity', ?, 'update', '{}', ?, ?, ?, 0, 0)`,
  );
  let i = (db.prepare('SELECT COUNT(*) AS n FROM sync_mutations').get() as { n: number }).n;
  db.transaction(() => {
    for (const r of rows) {
      insert.run(
        `m${i}`,
        `k${i}`,
        r.scope ?? scopeKey(U1),
        r.entityId,
        r.bytes,
        r.state ?? 'pending',
        r.nextAttemptAt,
      );
      i++;
    }
  })();
}

describe('review-perf: claim as one UPDATE … RETURNING (ad707f7) — checked, correct', () => {
  it('takes exactly what the old loop took: due heads oldest first, the first whatever its size, up to the first that would exceed the budget', async () => {
    const db = new Database(':memory:');
    const { queue, clock } = await rawQueue(db);
    const random = seededRandom(17);
    const rows = Array.from({ length: 60 }, (_, i) => ({
      // Some records get a second mutation (never a head), a few rows are not due, some are empty.
      entityId: `e${i % 45}`,
      bytes: i % 9 === 0 ? 0 : Math.floor(random() * 400),
      nextAttemptAt: i % 11 === 5 ? clock.now() + 1000 : clock.now(),
      state: i === 7 ? 'failed' : 'pending',
    }));
    insertRows(db, rows);
    // The old claim: SELECT due heads ORDER BY seq LIMIT maxCount, then the JS budget loop.
    const expected = (maxCount: number, maxBytes: number) => {
      const all = db
        .prepare('SELECT seq, entity_id, bytes, state, next_attempt_at FROM sync_mutations ORDER BY seq')
        .all() as {
        seq: number;
        entity_id: string;
        bytes: number;
        state: string;
        next_attempt_at: number;
      }[];
      const seen = new Set<string>();
      const heads = [];
      for (const r of all) {
        const head = !seen.has(r.entity_id);
        seen.add(r.entity_id);
        if (head && r.state === 'pending' && r.next_attempt_at <= clock.now()) heads.push(r);
      }
      let bytes = 0;
      let take = 0;
      for (const row of heads.slice(0, maxCount)) {
        if (take > 0 && bytes + row.bytes > maxBytes) break;
        bytes += row.bytes;
        take++;
      }
      return heads.slice(0, take).map((r) => r.seq);
    };
    for (const [maxCount, maxBytes] of [
      [100, 1],
      [100, 399],
      [100, 1000],
      [100, 5000],
      [3, 1_000_000],
      [100, 1_000_000],
      [1, 1],
    ] as const) {
      db.exec(
        "UPDATE sync_mutations SET state = 'pending', claim_token = NULL, claim_expires_at = NULL WHERE state = 'inflight'",
      );
      const want = expected(maxCount, maxBytes);
      const claimed = await queue.claim({ scope: U1, token: 't', claimTtlMs: 60_000, maxCount, maxBytes });
      expect(claimed.map((m) => m.seq)).toEqual(want);
      expect(claimed.every((m) => m.state === 'inflight')).toBe(true);
      const inflight = db
        .prepare("SELECT seq FROM sync_mutations WHERE state = 'inflight' ORDER BY seq")
        .all() as { seq: number }[];
      expect(inflight.map((r) => r.seq)).toEqual(want);
    }
  });

  it('two connections on one file: a claim blocked by the other writer claims nothing; later claims are disjoint, one per record', async () => {
    const { dir, remove } = tempDir('sync-core-review-perf-');
    cleanups.push(remove);
    const file = join(dir, 'queue.db');
    const dbA = new Database(file);
    const a = new GuardedStorage(createBetterSqlite3Storage(dbA, { busyTimeoutMs: 0 }));
    await a.open();
    await migrate(a);
    const dbB = new Database(file);
    const b = new GuardedStorage(createBetterSqlite3Storage(dbB, { busyTimeoutMs: 0 }));
    await b.open();
    cleanups.push(() => {
      dbA.close();
      dbB.close();
    });
    const clock = manualClock();
    const queueA = new MutationQueue(a, clock, seededRandom(1));
    const queueB = new MutationQueue(b, clock, seededRandom(2));
    insertRows(
      dbA,
      Array.from({ length: 20 }, (_, i) => ({
        entityId: `e${i % 8}`,
        bytes: 10,
        nextAttemptAt: clock.now(),
      })),
    );
    dbB.exec('BEGIN IMMEDIATE');
    await expect(
      queueA.claim({ scope: U1, token: 'A', claimTtlMs: 60_000, maxCount: 3, maxBytes: 1e6 }),
    ).rejects.toMatchObject({ code: 'STORAGE_BUSY' });
    dbB.exec('COMMIT');
    expect(dbA.prepare("SELECT COUNT(*) AS n FROM sync_mutations WHERE state = 'inflight'").get()).toEqual({
      n: 0,
    });
    const first = await queueA.claim({
      scope: U1,
      token: 'A',
      claimTtlMs: 60_000,
      maxCount: 3,
      maxBytes: 1e6,
    });
    const second = await queueB.claim({
      scope: U1,
      token: 'B',
      claimTtlMs: 60_000,
      maxCount: 100,
      maxBytes: 1e6,
    });
    expect(first).toHaveLength(3);
    expect(second).toHaveLength(5);
    const records = [...first, ...second].map((m) => m.entityId);
    expect(new Set(records).size).toBe(8);
    expect(second.map((m) => m.seq)).toEqual([...second.map((m) => m.seq)].sort((x, y) => x - y));
    expect(
      await queueB.claim({ scope: U1, token: 'B2', claimTtlMs: 60_000, maxCount: 100, maxBytes: 1e6 }),
    ).toEqual([]);
  });
});

describe('review-perf: idle fast path (ecf666f) — checked, correct', () => {
  it('holds the write lock from its lease check to its commit: another process cannot take the lease in between', async () => {
    const { make } = sharedFile();
    const otherNet = scriptedNetwork(applyAll);
    let inside: (() => Promise<void>) | undefined;
    let otherReport: Awaited<ReturnType<SyncEngine['runOnce']>> | undefined;
    const other = await make(otherNet.network, {}, (adapter) => adapter, 0);
    const idle = await make(scriptedNetwork(applyAll).network, {}, (adapter) =>
      hooked(adapter, {
        onTxAll: async (sql) => {
          if (sql === 'SELECT 1 FROM sync_lease LIMIT 1' && inside) {
            const run = inside;
            inside = undefined;
            await run();
          }
        },
      }),
    );
    inside = async () => {
      otherReport = await other.runOnce();
    };
    const report = await idle.runOnce({ trigger: 'background' });
    expect(report.outcome).toBe('ok');
    expect(otherReport).toMatchObject({ outcome: 'error', error: { code: 'STORAGE_BUSY' } });
    expect((await other.runOnce()).outcome).toBe('ok');
    expect((await idle.status.runs()).map((r) => r.outcome).sort()).toEqual(['ok', 'ok']);
  });

  it('a wall clock that went back a day is not idle: the schedule is re-based, as by a leased run (FAULTS 29)', async () => {
    const { db, clock, engine } = await startedEngine();
    const m = await engine.enqueue({ entity: 'activity', op: 'update', entityId: 'a', data: {} });
    db.prepare('UPDATE sync_mutations SET next_attempt_at = ?, updated_at = ? WHERE id = ?').run(
      clock.now() + 30_000,
      clock.now(),
      m.id,
    );
    clock.advance(-86_400_000);
    const report = await engine.runOnce({ trigger: 'background' });
    expect(report).toMatchObject({ outcome: 'ok', nextDueAt: clock.now() + 30_000 });
  });

  it('a deadline already passed goes the leased way (outcome deadline); a live one is an idle ok', async () => {
    const { db, clock, engine } = await startedEngine();
    expect((await engine.runOnce({ deadline: clock.now() })).outcome).toBe('deadline');
    expect((await engine.runOnce({ deadline: clock.now() + 25_000 })).outcome).toBe('ok');
    const signal = AbortSignal.abort();
    expect((await engine.runOnce({ signal })).outcome).toBe('aborted');
    expect(db.prepare('SELECT COUNT(*) AS n FROM sync_lease').get()).toEqual({ n: 0 });
    expect((await engine.status.runs()).map((r) => r.outcome).sort()).toEqual(['deadline', 'ok']);
  });
});

describe('review-perf: batched confirmations and version carry-over (ad707f7, 5594c63) — checked, correct', () => {
  it('later edits of every confirmed record made against its base get the new version; others keep theirs', async () => {
    const net = scriptedNetwork((request) => ({
      type: 'results',
      results: request.mutations.map((m) => ({
        id: m.id,
        status: 'applied',
        version: Number(m.baseVersion) + 1,
      })),
    }));
    const db = new Database(':memory:');
    const engine = createSyncEngine({
      storage: createBetterSqlite3Storage(db),
      entities: { activity: {}, contact: {} },
      network: net.network,
      clock: manualClock(),
      random: seededRandom(5),
      timers: manualTimers().timers,
      batch: { maxCount: 1000, concurrency: 1 },
    });
    engines.push(engine);
    await engine.open();
    await engine.start(U1);
    for (let i = 0; i < 30; i++) {
      await engine.enqueue({
        entity: 'activity',
        op: 'update',
        entityId: `a${i}`,
        data: { n: 1 },
        baseVersion: 1,
      });
    }
    for (let i = 0; i < 30; i++) {
      // a0..a29 edited again against v1; a5's second edit was made against v7; c0 shares a0's id in another entity.
      const base = i === 5 ? 7 : 1;
      await engine.enqueue({
        entity: 'activity',
        op: 'update',
        entityId: `a${i}`,
        data: { n: 2 },
        baseVersion: base,
      });
    }
    await engine.enqueue({ entity: 'contact', op: 'update', entityId: 'a0', data: {}, baseVersion: 1 });
    await engine.enqueue({ entity: 'contact', op: 'update', entityId: 'a0', data: {}, baseVersion: 1 });
    const report = await engine.runOnce();
    expect(report).toMatchObject({ outcome: 'ok', counts: { pushed: 62 } });
    const second = net.requests
      .slice(2)
      .flatMap((r) => r.mutations.map((m) => [r.entity, m.entityId, m.baseVersion]));
    expect(second).toHaveLength(31);
    for (const [entity, entityId, base] of second) {
      expect(base).toBe(entity === 'activity' && entityId === 'a5' ? 7 : 2);
    }
  });

  it('a mixed batch: confirmations deleted together, retries and releases recorded one by one, stale claims reported', async () => {
    const db = new Database(':memory:');
    const { queue, clock } = await rawQueue(db);
    insertRows(
      db,
      Array.from({ length: 6 }, (_, i) => ({ entityId: `e${i}`, bytes: 1, nextAttemptAt: clock.now() })),
    );
    const claimed = await queue.claim({
      scope: U1,
      token: 't',
      claimTtlMs: 60_000,
      maxCount: 10,
      maxBytes: 1e6,
    });
    // Another run recovered and re-claimed e5 meanwhile.
    db.prepare("UPDATE sync_mutations SET claim_token = 'other' WHERE entity_id = 'e5'").run();
    const error = { code: 'http-503', message: 'unavailable' };
    const result = await queue.record('t', [
      { id: claimed[0]!.id, outcome: { type: 'confirmed' } },
      {
        id: claimed[1]!.id,
        outcome: { type: 'retry', countsAttempt: true, nextAttemptAt: clock.now() + 5, error },
      },
      { id: claimed[2]!.id, outcome: { type: 'confirmed' } },
      { id: claimed[3]!.id, outcome: { type: 'release' } },
      { id: claimed[4]!.id, outcome: { type: 'drop' } },
      { id: claimed[5]!.id, outcome: { type: 'confirmed' } },
    ]);
    expect(result).toEqual({ recorded: 5, stale: [claimed[5]!.id] });
    const left = db.prepare('SELECT entity_id, state, claim_token FROM sync_mutations ORDER BY seq').all();
    expect(left).toEqual([
      { entity_id: 'e1', state: 'pending', claim_token: null },
      { entity_id: 'e3', state: 'pending', claim_token: null },
      { entity_id: 'e5', state: 'inflight', claim_token: 'other' },
    ]);
  });
});

describe('review-perf: enqueue hot path (150ca35) — checked, correct', () => {
  it('sql.js (no insertRowid) and better-sqlite3 (insertRowid) both report the row seq, and scope keys follow start()', async () => {
    const SQL = await loadSqlJs();
    for (const storage of [
      createSqlJsStorage(new SQL.Database()),
      createBetterSqlite3Storage(new Database(':memory:')),
    ]) {
      const net = scriptedNetwork(applyAll);
      const engine = createSyncEngine({
        storage,
        entities: { activity: {} },
        network: net.network,
        clock: manualClock(),
        random: seededRandom(5),
        timers: manualTimers().timers,
        batch: { maxBytes: 16, concurrency: 1 },
      });
      engines.push(engine);
      await engine.open();
      await engine.start(U1);
      const first = await engine.enqueueMany(
        Array.from({ length: 4 }, (_, i) => ({
          entity: 'activity',
          op: 'create',
          entityId: `a${i}`,
          data: { pad: 'x'.repeat(20) },
        })),
      );
      await engine.stop();
      await engine.start(U2);
      const second = await engine.enqueue({ entity: 'activity', op: 'create', entityId: 'b', data: {} });
      await engine.stop();
      await engine.start({ userId: 'u1', orgId: 'o1' });
      const third = await engine.enqueue({ entity: 'activity', op: 'create', entityId: 'c', data: {} });
      const listed = await engine.queue.list({ scope: 'all' });
      expect(listed).toHaveLength(6);
      const seqs = [...first, second, third].map((m) => m.seq);
      expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
      expect(new Set(seqs).size).toBe(6);
      for (const m of listed) {
        const enqueued = [...first, second, third].find((e) => e.id === m.id)!;
        expect(m.seq).toBe(enqueued.seq);
      }
      expect(second.scope).toEqual(U2);
      expect(third.scope).toEqual(U1);
      // Byte budget on either driver: each 30-byte payload is over 16, so one per request, in order.
      const report = await engine.runOnce();
      expect(report.counts.pushed).toBe(5);
      expect(net.requests.map((r) => r.mutations.map((m) => m.entityId))).toEqual([
        ['a0'],
        ['a1'],
        ['a2'],
        ['a3'],
        ['c'],
      ]);
    }
  });
});
