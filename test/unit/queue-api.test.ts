import { join } from 'node:path';
import Database from 'better-sqlite3';
import {
  ConfigError,
  createSyncEngine,
  type MutationInput,
  SCHEMA_VERSION,
  type Scope,
  StateError,
  SyncError,
  type SyncErrorCode,
  ValidationError,
} from 'sync-core';
import { describe, expect, it } from 'vitest';
import { createBetterSqlite3Storage } from '../../adapters/better-sqlite3/index.js';
import { claimAll, rejectionOf, startTestEngine, thrownBy, USER } from '../helpers/engine-harness.js';
import { manualClock, seededRandom, tempDir } from '../helpers/storage-factories.js';

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const OTHER: Scope = { userId: 'user-2' };
const ENTITIES = { note: {}, doc: { coalesce: true } };

const note = (entityId: string, op = 'create', data: unknown = { v: entityId }): MutationInput => ({
  entity: 'note',
  op,
  entityId,
  data,
});

const REJECTED = { code: 'rejected', message: 'refused by the server' };

function expectStateError(error: unknown, code: SyncErrorCode): void {
  expect(error).toBeInstanceOf(StateError);
  expect(error).toBeInstanceOf(SyncError);
  expect((error as StateError).code).toBe(code);
}

function newEngine(db = new Database(':memory:')) {
  return createSyncEngine({
    storage: createBetterSqlite3Storage(db),
    entities: ENTITIES,
    clock: manualClock(),
    random: seededRandom(1),
  });
}

describe('engine lifecycle', () => {
  it('opens idempotently: concurrent and repeated open() migrate once and keep one clientId', async () => {
    const db = new Database(':memory:');
    const engine = newEngine(db);
    await Promise.all([engine.open(), engine.open()]);
    const clientId = engine.clientId;
    await engine.open();
    expect(engine.isOpen).toBe(true);
    expect(engine.clientId).toBe(clientId);
    expect(db.prepare("SELECT value FROM sync_meta WHERE key = 'schema_version'").all()).toEqual([
      { value: String(SCHEMA_VERSION) },
    ]);
    expect(db.prepare("SELECT COUNT(*) AS n FROM sync_meta WHERE key = 'client_id'").get()).toEqual({ n: 1 });
    await engine.close();
  });

  it('refuses every call before open() with ENGINE_NOT_OPEN', async () => {
    const engine = newEngine();
    expect(engine.isOpen).toBe(false);
    expectStateError(
      thrownBy(() => engine.clientId),
      'ENGINE_NOT_OPEN',
    );
    expectStateError(await rejectionOf(engine.enqueue(note('n1'))), 'ENGINE_NOT_OPEN');
    expectStateError(await rejectionOf(engine.enqueueMany([note('n1')])), 'ENGINE_NOT_OPEN');
    expectStateError(await rejectionOf(engine.start(USER)), 'ENGINE_NOT_OPEN');
    expectStateError(await rejectionOf(engine.stop()), 'ENGINE_NOT_OPEN');
    expectStateError(await rejectionOf(engine.transaction(async () => 1)), 'ENGINE_NOT_OPEN');
    expectStateError(await rejectionOf(engine.queue.stats()), 'ENGINE_NOT_OPEN');
    expectStateError(await rejectionOf(engine.queue.list()), 'ENGINE_NOT_OPEN');
    expectStateError(await rejectionOf(engine.queue.get('x')), 'ENGINE_NOT_OPEN');
    expectStateError(await rejectionOf(engine.queue.retry({ allFailed: true })), 'ENGINE_NOT_OPEN');
    expectStateError(await rejectionOf(engine.queue.discard(['x'])), 'ENGINE_NOT_OPEN');
    await engine.close();
  });

  it('refuses enqueue before start() with NO_ACTIVE_SCOPE and stores nothing', async () => {
    const t = await startTestEngine({ entities: ENTITIES, scope: null });
    expect(t.engine.activeScope).toBeUndefined();
    expectStateError(await rejectionOf(t.engine.enqueue(note('n1'))), 'NO_ACTIVE_SCOPE');
    expectStateError(await rejectionOf(t.engine.enqueueMany([note('n1')])), 'NO_ACTIVE_SCOPE');
    const inTransaction = await rejectionOf(t.engine.transaction((tx) => tx.enqueue(note('n1'))));
    expectStateError(inTransaction, 'NO_ACTIVE_SCOPE');
    expect((await t.engine.queue.stats()).total).toBe(0);
    expect(t.events).toEqual([]);
  });

  it('refuses an invalid scope at start()', async () => {
    const t = await startTestEngine({ entities: ENTITIES, scope: null });
    const error = await rejectionOf(t.engine.start({ userId: '' }));
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as ValidationError).path).toEqual(['scope', 'userId']);
    expect(t.engine.activeScope).toBeUndefined();
  });

  it('refuses every call after close() with ENGINE_CLOSED, and close() is idempotent', async () => {
    const t = await startTestEngine({ entities: ENTITIES });
    await t.engine.close();
    await t.engine.close();
    expect(t.engine.isOpen).toBe(false);
    expectStateError(await rejectionOf(t.engine.open()), 'ENGINE_CLOSED');
    expectStateError(await rejectionOf(t.engine.enqueue(note('n1'))), 'ENGINE_CLOSED');
    expectStateError(await rejectionOf(t.engine.queue.stats()), 'ENGINE_CLOSED');
  });

  it('keeps the clientId across reopening the same database file, and a new file gets a new one', async () => {
    const { dir, remove } = tempDir();
    try {
      const first = newEngine(new Database(join(dir, 'app.db')));
      await first.open();
      const clientId = first.clientId;
      expect(clientId).toMatch(UUID_V4);
      await first.close();

      const reopened = newEngine(new Database(join(dir, 'app.db')));
      expectStateError(
        thrownBy(() => reopened.clientId),
        'ENGINE_NOT_OPEN',
      );
      await reopened.open();
      expect(reopened.clientId).toBe(clientId);
      await reopened.close();

      // Another device: another random source, another file.
      const other = createSyncEngine({
        storage: createBetterSqlite3Storage(new Database(join(dir, 'other.db'))),
        entities: ENTITIES,
        random: seededRandom(2),
      });
      await other.open();
      expect(other.clientId).not.toBe(clientId);
      await other.close();
    } finally {
      remove();
    }
  });
});

describe('engine.queue.stats', () => {
  it('is all zeros with oldestAgeMs null when the queue is empty', async () => {
    const { engine } = await startTestEngine({ entities: ENTITIES });
    expect(await engine.queue.stats()).toEqual({
      pending: 0,
      inflight: 0,
      failed: 0,
      conflict: 0,
      total: 0,
      oldestAgeMs: null,
    });
  });

  it('counts each state and measures the oldest age on the injected clock', async () => {
    const t = await startTestEngine({ entities: ENTITIES });
    const queue = t.internalQueue();
    const ids: string[] = [];
    for (const entityId of ['r1', 'r2', 'r3', 'r4']) {
      ids.push((await t.engine.enqueue(note(entityId))).id);
      t.clock.advance(1_000);
    }
    const [r1, r2, r3, r4] = ids as [string, string, string, string];
    await claimAll(queue, 'run');
    await queue.record('run', [
      { id: r1, outcome: { type: 'release' } },
      { id: r3, outcome: { type: 'failed', error: REJECTED, countsAttempt: true } },
      { id: r4, outcome: { type: 'release' } },
    ]);
    t.db.prepare("UPDATE sync_mutations SET state = 'conflict' WHERE id = ?").run(r4);
    t.clock.advance(6_000);
    expect(await t.engine.queue.stats()).toEqual({
      pending: 1,
      inflight: 1,
      failed: 1,
      conflict: 1,
      total: 4,
      oldestAgeMs: 10_000,
    });
    expect((await t.engine.queue.get(r2))?.state).toBe('inflight');

    // Confirming the oldest makes the next one the oldest.
    await queue.record('run', [{ id: r2, outcome: { type: 'confirmed' } }]);
    await t.engine.queue.discard([r1]);
    expect((await t.engine.queue.stats()).oldestAgeMs).toBe(8_000);
  });

  it('never reports a negative age when the clock went back', async () => {
    const t = await startTestEngine({ entities: ENTITIES });
    await t.engine.enqueue(note('r1'));
    t.clock.advance(-86_400_000);
    expect((await t.engine.queue.stats()).oldestAgeMs).toBe(0);
  });

  it('counts the active scope by default, a given scope, or every scope with "all"', async () => {
    const t = await startTestEngine({ entities: ENTITIES });
    await t.engine.enqueue(note('a1'));
    await t.engine.enqueue(note('a2'));
    await t.engine.stop();
    await t.engine.start(OTHER);
    await t.engine.enqueue(note('b1'));
    expect((await t.engine.queue.stats()).total).toBe(1);
    expect((await t.engine.queue.stats({ scope: USER })).total).toBe(2);
    expect((await t.engine.queue.stats({ scope: { userId: USER.userId } })).total).toBe(0);
    expect((await t.engine.queue.stats({ scope: 'all' })).total).toBe(3);
    await t.engine.stop();
    expect((await t.engine.queue.stats()).total).toBe(3);
  });
});

describe('engine.queue.list and get', () => {
  async function populated() {
    const t = await startTestEngine({ entities: ENTITIES });
    const a = [];
    for (const entityId of ['n1', 'n2', 'n3']) a.push(await t.engine.enqueue(note(entityId)));
    const d = await t.engine.enqueue({ entity: 'doc', op: 'create', entityId: 'd1', data: {} });
    await t.engine.stop();
    await t.engine.start(OTHER);
    const b = await t.engine.enqueue(note('other-1'));
    await t.engine.stop();
    await t.engine.start(USER);
    return { ...t, a, d, b };
  }

  it('lists the active scope in queue order by default', async () => {
    const { engine, a, d } = await populated();
    expect((await engine.queue.list()).map((m) => m.id)).toEqual([...a.map((m) => m.id), d.id]);
  });

  it('filters by entity, by state (one or several) and by scope', async () => {
    const t = await populated();
    const queue = t.internalQueue();
    await claimAll(queue, 'run');
    await queue.record('run', [
      { id: t.a[0]!.id, outcome: { type: 'failed', error: REJECTED, countsAttempt: true } },
      { id: t.a[1]!.id, outcome: { type: 'release' } },
      { id: t.d.id, outcome: { type: 'release' } },
    ]);
    const ids = async (options: Parameters<typeof t.engine.queue.list>[0]) =>
      (await t.engine.queue.list(options)).map((m) => m.entityId);
    expect(await ids({ entity: 'doc' })).toEqual(['d1']);
    expect(await ids({ state: 'failed' })).toEqual(['n1']);
    expect(await ids({ state: 'inflight' })).toEqual(['n3']);
    expect(await ids({ state: ['failed', 'inflight'] })).toEqual(['n1', 'n3']);
    expect(await ids({ state: 'pending', entity: 'note' })).toEqual(['n2']);
    expect(await ids({ state: [] })).toEqual([]);
    expect(await ids({ scope: OTHER })).toEqual(['other-1']);
    expect(await ids({ scope: 'all', entity: 'note' })).toEqual(['n1', 'n2', 'n3', 'other-1']);
  });

  it('paginates with afterSeq and limit without skipping or repeating', async () => {
    const t = await startTestEngine({ entities: ENTITIES });
    const stored = [];
    for (let i = 0; i < 7; i++) stored.push(await t.engine.enqueue(note(`n${i}`)));
    const pages: string[][] = [];
    let afterSeq: number | undefined;
    for (;;) {
      const page = await t.engine.queue.list({ limit: 3, ...(afterSeq === undefined ? {} : { afterSeq }) });
      if (page.length === 0) break;
      pages.push(page.map((m) => m.entityId));
      afterSeq = page[page.length - 1]!.seq;
    }
    expect(pages).toEqual([['n0', 'n1', 'n2'], ['n3', 'n4', 'n5'], ['n6']]);
    expect(await t.engine.queue.list({ limit: 1000 })).toHaveLength(7);
  });

  it.each([0, -1, 1001, 1.5, Number.NaN])(
    'refuses limit %s with VALIDATION_FAILED at limit',
    async (limit) => {
      const { engine } = await startTestEngine({ entities: ENTITIES });
      const error = await rejectionOf(engine.queue.list({ limit }));
      expect(error).toBeInstanceOf(ValidationError);
      expect((error as ValidationError).code).toBe('VALIDATION_FAILED');
      expect((error as ValidationError).path).toEqual(['limit']);
      expect((error as ValidationError).message).toMatch(/^limit: expected an integer from 1 to 1000/);
    },
  );

  it('gets one mutation as stored, or undefined for an unknown id', async () => {
    const t = await startTestEngine({ entities: ENTITIES });
    const { coalesced, ...stored } = await t.engine.enqueue({
      entity: 'note',
      op: 'update',
      entityId: 'n1',
      data: { title: 'x', list: [1, null] },
      baseVersion: 'etag-1',
      dependsOn: ['dep'],
    });
    expect(coalesced).toBe('none');
    expect(await t.engine.queue.get(stored.id)).toEqual(stored);
    expect(stored).toMatchObject({ state: 'pending', attempts: 0, lastError: null, scope: USER });
    expect(stored.nextAttemptAt).toBe(t.clock.now());
    expect(await t.engine.queue.get('no-such-id')).toBeUndefined();
  });
});

describe('engine.queue.retry', () => {
  it('makes failed mutations pending with attempts reset to 0, due now', async () => {
    const t = await startTestEngine({ entities: ENTITIES });
    const queue = t.internalQueue();
    const failed = await t.engine.enqueue(note('n1'));
    const waiting = await t.engine.enqueue(note('n2'));
    const busy = await t.engine.enqueue(note('n3'));
    await claimAll(queue, 'run');
    await queue.record('run', [
      { id: failed.id, outcome: { type: 'failed', error: REJECTED, countsAttempt: true } },
      {
        id: waiting.id,
        outcome: {
          type: 'retry',
          nextAttemptAt: t.clock.now() + 3_600_000,
          error: REJECTED,
          countsAttempt: true,
        },
      },
    ]);
    t.clock.advance(5_000);
    const retried = await t.engine.queue.retry([failed.id, waiting.id, busy.id, 'unknown-id']);
    expect(retried).toEqual([failed.id, waiting.id]);
    expect(await t.engine.queue.get(failed.id)).toMatchObject({
      state: 'pending',
      attempts: 0,
      nextAttemptAt: t.clock.now(),
    });
    // A pending one is only made due now; its attempts still count.
    expect(await t.engine.queue.get(waiting.id)).toMatchObject({
      state: 'pending',
      attempts: 1,
      nextAttemptAt: t.clock.now(),
    });
    expect((await t.engine.queue.get(busy.id))?.state).toBe('inflight');
    expect((await claimAll(queue, 'run-2')).map((m) => m.id)).toEqual([failed.id, waiting.id]);
  });

  it('retries every failed mutation of the active scope with { allFailed: true }, or of all scopes', async () => {
    const t = await startTestEngine({ entities: ENTITIES });
    const queue = t.internalQueue();
    const failAll = async (scope: Scope, token: string) => {
      const claimed = await claimAll(queue, token, scope);
      await queue.record(
        token,
        claimed.map((m) => ({
          id: m.id,
          outcome: { type: 'failed', error: REJECTED, countsAttempt: true } as const,
        })),
      );
      return claimed.map((m) => m.id);
    };
    await t.engine.enqueue(note('n1'));
    await t.engine.enqueue(note('n2'));
    const mine = await failAll(USER, 'mine');
    await t.engine.stop();
    await t.engine.start(OTHER);
    await t.engine.enqueue(note('o1'));
    const theirs = await failAll(OTHER, 'theirs');
    await t.engine.stop();
    await t.engine.start(USER);

    expect(await t.engine.queue.retry({ allFailed: true })).toEqual(mine);
    expect((await t.engine.queue.stats({ scope: OTHER })).failed).toBe(1);
    expect(await t.engine.queue.retry({ allFailed: true }, { scope: 'all' })).toEqual(theirs);
    expect((await t.engine.queue.stats({ scope: 'all' })).failed).toBe(0);
  });
});

describe('engine.queue.discard', () => {
  it('removes mutations so later mutations of the record and dependants become claimable', async () => {
    const t = await startTestEngine({ entities: ENTITIES });
    const queue = t.internalQueue();
    const head = await t.engine.enqueue(note('r1'));
    const next = await t.engine.enqueue(note('r1', 'update', { v: 2 }));
    const dependant = await t.engine.enqueue({ ...note('r2'), dependsOn: [head.id] });
    const [claimed] = await claimAll(queue, 'run');
    expect(claimed?.id).toBe(head.id);
    await queue.record('run', [
      { id: head.id, outcome: { type: 'failed', error: REJECTED, countsAttempt: true } },
    ]);
    expect(await claimAll(queue, 'blocked')).toEqual([]);

    expect(await t.engine.queue.discard([head.id, 'unknown-id'])).toEqual([head.id]);
    expect(await t.engine.queue.get(head.id)).toBeUndefined();
    expect((await claimAll(queue, 'run-2')).map((m) => m.id)).toEqual([next.id, dependant.id]);
  });

  it('refuses to discard an inflight mutation with MUTATION_INFLIGHT and removes nothing', async () => {
    const t = await startTestEngine({ entities: ENTITIES });
    const sending = await t.engine.enqueue(note('r1'));
    await claimAll(t.internalQueue(), 'run');
    const idle = await t.engine.enqueue(note('r2'));
    const error = await rejectionOf(t.engine.queue.discard([idle.id, sending.id]));
    expectStateError(error, 'MUTATION_INFLIGHT');
    expect((error as StateError).message).toContain(sending.id);
    expect(await t.engine.queue.get(idle.id)).toBeDefined();
    expect(await t.engine.queue.get(sending.id)).toMatchObject({ state: 'inflight' });
  });

  it('refuses a selection that is not an array with a ConfigError', async () => {
    const { engine } = await startTestEngine({ entities: ENTITIES });
    const error = await rejectionOf(engine.queue.discard('some-id' as unknown as string[]));
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toBe(
      'discard(ids): expected an array of mutation ids, got string',
    );
  });
});

describe('engine.stop', () => {
  it('purges only the active scope with { purge: true } and returns the count', async () => {
    const t = await startTestEngine({ entities: ENTITIES });
    await t.engine.start(OTHER);
    await t.engine.enqueue(note('o1'));
    await t.engine.start(USER);
    await t.engine.enqueue(note('u1'));
    await t.engine.enqueue(note('u2'));
    expect(await t.engine.stop({ purge: true })).toEqual({ purged: 2 });
    expect(t.engine.activeScope).toBeUndefined();
    expect((await t.engine.queue.list({ scope: 'all' })).map((m) => m.entityId)).toEqual(['o1']);
  });

  it('keeps the rows on a plain stop(), and a purge without an active scope removes nothing', async () => {
    const t = await startTestEngine({ entities: ENTITIES });
    await t.engine.enqueue(note('u1'));
    expect(await t.engine.stop()).toEqual({ purged: 0 });
    expect(await t.engine.stop({ purge: true })).toEqual({ purged: 0 });
    expect((await t.engine.queue.stats()).total).toBe(1);
    await t.engine.start(USER);
    expect((await t.engine.queue.list()).map((m) => m.entityId)).toEqual(['u1']);
  });
});

describe('engine.transaction and mutation:enqueued', () => {
  async function withAppTable() {
    const t = await startTestEngine({ entities: ENTITIES });
    t.db.exec('CREATE TABLE activities (id TEXT PRIMARY KEY, title TEXT)');
    return t;
  }

  it('emits only after the transaction commits', async () => {
    const t = await withAppTable();
    let seenInside = -1;
    const result = await t.engine.transaction(async (tx) => {
      await tx.run('INSERT INTO activities (id, title) VALUES (?, ?)', ['a1', 'Visit']);
      await tx.enqueue(note('a1'));
      await tx.enqueueMany([note('a2'), note('a3')]);
      seenInside = t.events.length;
      return 'done';
    });
    expect(result).toBe('done');
    expect(seenInside).toBe(0);
    expect(t.events.map((e) => e.coalesced)).toEqual(['none', 'none', 'none']);
    expect((await t.engine.queue.stats()).total).toBe(3);
  });

  it('emits nothing and stores nothing when the transaction rolls back, rethrowing the same error', async () => {
    const t = await withAppTable();
    const failure = new Error('the app failed after enqueuing');
    const error = await rejectionOf(
      t.engine.transaction(async (tx) => {
        await tx.run('INSERT INTO activities (id, title) VALUES (?, ?)', ['a1', 'Visit']);
        await tx.enqueue(note('a1'));
        throw failure;
      }),
    );
    expect(error).toBe(failure);
    expect(t.events).toEqual([]);
    expect((await t.engine.queue.stats()).total).toBe(0);
    expect(t.db.prepare('SELECT COUNT(*) AS n FROM activities').get()).toEqual({ n: 0 });
  });

  it("rolls back the app's own write when tx.enqueue refuses invalid input", async () => {
    const t = await withAppTable();
    const error = await rejectionOf(
      t.engine.transaction(async (tx) => {
        await tx.run('INSERT INTO activities (id, title) VALUES (?, ?)', ['a1', 'Visit']);
        await tx.enqueue(note('a1', 'create', { at: new Date() }));
      }),
    );
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as ValidationError).code).toBe('PAYLOAD_NOT_JSON');
    expect(t.db.prepare('SELECT COUNT(*) AS n FROM activities').get()).toEqual({ n: 0 });
    expect(t.events).toEqual([]);
  });

  it('refuses use of the transaction handle after the transaction finished', async () => {
    const t = await withAppTable();
    let escaped: Parameters<Parameters<typeof t.engine.transaction>[0]>[0] | undefined;
    await t.engine.transaction(async (tx) => {
      escaped = tx;
    });
    expect(await rejectionOf(escaped!.enqueue(note('late')))).toBeInstanceOf(StateError);
    expect(await rejectionOf(escaped!.run('DELETE FROM activities'))).toBeInstanceOf(StateError);
    expect((await t.engine.queue.stats()).total).toBe(0);
  });

  it('emits once per stored mutation for enqueue and enqueueMany', async () => {
    const t = await startTestEngine({ entities: ENTITIES });
    const one = await t.engine.enqueue(note('n1'));
    const many = await t.engine.enqueueMany([note('n2'), note('n3')]);
    expect(t.events).toEqual(
      [one, ...many].map((m) => ({ id: m.id, entity: 'note', op: 'create', coalesced: 'none' })),
    );
  });
});

describe('mutation ids and idempotency keys', () => {
  it('gives UUID v7 ids carrying the clock time, ordered by enqueue time, and unique UUID v4 keys', async () => {
    const t = await startTestEngine({ entities: ENTITIES });
    const stored = [];
    for (let i = 0; i < 50; i++) {
      stored.push(await t.engine.enqueue(note(`n${i}`)));
      t.clock.advance(i % 5 === 0 ? 1 : 250_000);
    }
    for (const m of stored) {
      expect(m.id).toMatch(UUID_V7);
      expect(m.key).toMatch(UUID_V4);
      expect(m.id.replace(/-/g, '').slice(0, 12)).toBe(m.createdAt.toString(16).padStart(12, '0'));
    }
    const ids = stored.map((m) => m.id);
    expect([...ids].sort()).toEqual(ids);
    expect(new Set(ids).size).toBe(ids.length);
    expect(new Set(stored.map((m) => m.key)).size).toBe(stored.length);
  });

  it('keeps the idempotency key of a mutation through release and retry', async () => {
    const t = await startTestEngine({ entities: ENTITIES });
    const queue = t.internalQueue();
    const stored = await t.engine.enqueue(note('n1'));
    const [first] = await claimAll(queue, 'run-1');
    await queue.record('run-1', [{ id: stored.id, outcome: { type: 'release' } }]);
    const [second] = await claimAll(queue, 'run-2');
    expect(first?.key).toBe(stored.key);
    expect(second?.key).toBe(stored.key);
  });
});
