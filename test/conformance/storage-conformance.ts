/**
 * The storage conformance suite: every StorageAdapter must pass it. Each adapter's test file calls
 * `describeStorageConformance(factory)` and adds its own extras.
 */

import { createSyncEngine, type StorageAdapter, StorageError, type SyncEngine, SyncError } from 'sync-core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MutationQueue } from '../../src/queue/mutation-queue.js';
import { GuardedStorage } from '../../src/storage/guarded-storage.js';
import { migrate } from '../../src/storage/migrations.js';
import { manualClock, type StorageFactory, seededRandom } from '../helpers/storage-factories.js';

const HOSTILE = [
  `it's "quoted" \\ back\\slash`,
  'NUL in the middle: a\u0000b',
  '4-byte: 😀 𝄞 𠜎',
  "'; DROP TABLE sync_mutations; --",
  '\u2028\u2029 line separators',
  '',
];

export function describeStorageConformance(makeFactory: () => StorageFactory): void {
  const probe = makeFactory();
  probe.cleanup();

  describe(`storage conformance: ${probe.name}`, () => {
    let factory: StorageFactory;
    let adapters: StorageAdapter[];
    const clock = manualClock();

    const fresh = async () => {
      const adapter = await factory.create();
      adapters.push(adapter);
      return adapter;
    };
    const reopen = async () => {
      const adapter = await factory.reopen();
      adapters.push(adapter);
      return adapter;
    };
    const engineOver = async (
      storage: StorageAdapter,
      entities = { activity: {}, contact: { coalesce: true } },
    ) => {
      const engine = createSyncEngine({ storage, entities, clock, random: seededRandom(7) });
      await engine.open();
      await engine.start({ userId: 'u1', orgId: 'o1' });
      return engine;
    };

    beforeEach(() => {
      factory = makeFactory();
      adapters = [];
    });
    afterEach(async () => {
      for (const adapter of adapters) {
        try {
          await adapter.close();
        } catch {
          // already closed by the test
        }
      }
      factory.cleanup();
    });

    describe('the port', () => {
      it('binds parameters and returns rows as plain objects with numbers for integers', async () => {
        const storage = new GuardedStorage(await fresh());
        await storage.open();
        await storage.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, s TEXT, n INTEGER, r REAL)');
        const { changes } = await storage.run('INSERT INTO t (s, n, r) VALUES (?, ?, ?)', [
          'x',
          1_795_000_000_000,
          1.5,
        ]);
        expect(changes).toBe(1);
        const rows = await storage.all('SELECT id, s, n, r FROM t');
        expect(rows).toEqual([{ id: 1, s: 'x', n: 1_795_000_000_000, r: 1.5 }]);
        expect(typeof rows[0]!.n).toBe('number');
      });

      it('declares insertRowid only if run() of an INSERT reports the new rowid, in and out of transactions', async () => {
        const adapter = await fresh();
        const storage = new GuardedStorage(adapter);
        await storage.open();
        await storage.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, s TEXT)');
        await storage.run('INSERT INTO t (id, s) VALUES (41, ?)', ['a']);
        const outside = await storage.run('INSERT INTO t (s) VALUES (?)', ['b']);
        const inside = await storage.transaction('immediate', (tx) =>
          tx.run('INSERT INTO t (s) VALUES (?)', ['c']),
        );
        if (adapter.capabilities?.insertRowid === true) {
          expect(Number(outside.lastInsertRowid)).toBe(42);
          expect(Number(inside.lastInsertRowid)).toBe(43);
        } else {
          // The queue then uses INSERT … RETURNING: this adapter must support it.
          expect(await storage.all('INSERT INTO t (s) VALUES (?) RETURNING id', ['d'])).toEqual([{ id: 44 }]);
        }
      });

      it('round-trips hostile strings unchanged, parameters never interpolated (FAULTS 27)', async () => {
        const storage = new GuardedStorage(await fresh());
        await storage.open();
        await storage.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, s TEXT)');
        for (const s of HOSTILE) await storage.run('INSERT INTO t (s) VALUES (?)', [s]);
        const rows = await storage.all<{ s: string }>('SELECT s FROM t ORDER BY id');
        expect(rows.map((r) => r.s)).toEqual(HOSTILE);
      });

      it('commits a transaction, and rolls back and rethrows the same error when fn throws', async () => {
        const storage = new GuardedStorage(await fresh());
        await storage.open();
        await storage.exec('CREATE TABLE t (v INTEGER)');
        await storage.transaction('immediate', async (tx) => {
          await tx.run('INSERT INTO t (v) VALUES (?)', [1]);
        });
        const boom = new Error('boom');
        await expect(
          storage.transaction('immediate', async (tx) => {
            await tx.run('INSERT INTO t (v) VALUES (?)', [2]);
            throw boom;
          }),
        ).rejects.toBe(boom);
        // No transaction was left open: a new one starts and the rollback held.
        await storage.transaction('deferred', async () => undefined);
        expect(await storage.all('SELECT v FROM t')).toEqual([{ v: 1 }]);
      });

      it('maps a SQL error inside a transaction to a StorageError and leaves no transaction open', async () => {
        const storage = new GuardedStorage(await fresh());
        await storage.open();
        await storage.exec('CREATE TABLE t (v INTEGER NOT NULL)');
        const failure = storage.transaction('immediate', async (tx) => {
          await tx.run('INSERT INTO t (v) VALUES (?)', [1]);
          await tx.run('INSERT INTO t (v) VALUES (?)', [null]);
        });
        await expect(failure).rejects.toBeInstanceOf(StorageError);
        await expect(failure).rejects.toMatchObject({ code: 'STORAGE_FAILED' });
        expect(await storage.all('SELECT v FROM t')).toEqual([]);
        await storage.run('INSERT INTO t (v) VALUES (?)', [3]);
        expect(await storage.all('SELECT v FROM t')).toEqual([{ v: 3 }]);
      });

      it('serialises concurrent transactions on one connection', async () => {
        const storage = new GuardedStorage(await fresh());
        await storage.open();
        await storage.exec('CREATE TABLE t (v INTEGER)');
        const order: string[] = [];
        await Promise.all(
          [1, 2, 3].map((n) =>
            storage.transaction('immediate', async (tx) => {
              order.push(`begin ${n}`);
              await tx.run('INSERT INTO t (v) VALUES (?)', [n]);
              await Promise.resolve();
              order.push(`end ${n}`);
            }),
          ),
        );
        expect(order).toEqual(['begin 1', 'end 1', 'begin 2', 'end 2', 'begin 3', 'end 3']);
      });

      it('refuses use after close with STORAGE_CLOSED', async () => {
        const storage = new GuardedStorage(await fresh());
        await storage.open();
        await storage.close();
        await expect(storage.all('SELECT 1')).rejects.toMatchObject({ code: 'STORAGE_CLOSED' });
        await expect(storage.transaction('immediate', async () => 1)).rejects.toBeInstanceOf(StorageError);
        await storage.close(); // idempotent
      });
    });

    describe('the queue over this adapter', () => {
      it('keeps enqueue order (seq increasing) and every field across close and reopen (invariant 1)', async () => {
        let engine: SyncEngine = await engineOver(await fresh());
        const stored = [];
        for (let i = 0; i < 25; i++) {
          stored.push(
            await engine.enqueue({
              entity: 'activity',
              op: i % 3 === 0 ? 'create' : 'update',
              entityId: `a${i % 5}`,
              data: { i, title: HOSTILE[i % HOSTILE.length]! },
              baseVersion: i % 2 === 0 ? i : null,
            }),
          );
        }
        const clientId = engine.clientId;
        await engine.close();
        engine = await engineOver(await reopen());
        expect(engine.clientId).toBe(clientId);
        const listed = await engine.queue.list({ limit: 1000 });
        expect(listed.map((m) => m.id)).toEqual(stored.map((m) => m.id));
        expect(listed.map((m) => m.seq)).toEqual([...listed.map((m) => m.seq)].sort((a, b) => a - b));
        for (const [i, m] of listed.entries()) {
          const { coalesced: _, ...expected } = stored[i]!;
          expect(m).toEqual(expected);
        }
        await engine.close();
      });

      it('stores every one of many concurrent enqueues exactly once, in call order', async () => {
        const engine = await engineOver(await fresh());
        const results = await Promise.all(
          Array.from({ length: 200 }, (_, i) =>
            engine.enqueue({ entity: 'activity', op: 'create', entityId: `c${i}`, data: { i } }),
          ),
        );
        const listed = await engine.queue.list({ limit: 1000 });
        expect(listed.map((m) => m.entityId)).toEqual(results.map((m) => m.entityId));
        expect(new Set(listed.map((m) => m.key)).size).toBe(200);
        expect((await engine.queue.stats()).pending).toBe(200);
        await engine.close();
      });

      it('round-trips large and Unicode payloads unchanged', async () => {
        const engine = await engineOver(await fresh());
        const big = { blob: 'x'.repeat(200_000), list: Array.from({ length: 1000 }, (_, i) => i) };
        const unicode = { s: HOSTILE.join('|'), nested: { 键: ['😀', { ключ: '\u0000' }] } };
        const a = await engine.enqueue({ entity: 'activity', op: 'create', entityId: 'big', data: big });
        const b = await engine.enqueue({
          entity: 'activity',
          op: 'create',
          entityId: '😀/\u0000',
          data: unicode,
        });
        expect((await engine.queue.get(a.id))?.data).toEqual(big);
        const gotB = await engine.queue.get(b.id);
        expect(gotB?.data).toEqual(unicode);
        expect(gotB?.entityId).toBe('😀/\u0000');
        await engine.close();
      });

      it("commits the app's own write and its mutation together or not at all", async () => {
        const engine = await engineOver(await fresh());
        await engine.transaction((tx) =>
          tx.run('CREATE TABLE activities (id TEXT PRIMARY KEY, title TEXT)').then(() => undefined),
        );
        await engine.transaction(async (tx) => {
          await tx.run('INSERT INTO activities (id, title) VALUES (?, ?)', ['a1', 'kept']);
          await tx.enqueue({ entity: 'activity', op: 'create', entityId: 'a1', data: { title: 'kept' } });
        });
        await expect(
          engine.transaction(async (tx) => {
            await tx.run('INSERT INTO activities (id, title) VALUES (?, ?)', ['a2', 'lost']);
            await tx.enqueue({ entity: 'activity', op: 'create', entityId: 'a2', data: { title: 'lost' } });
            throw new Error('app failed after both writes');
          }),
        ).rejects.toThrow('app failed after both writes');
        // A validation failure of the enqueue also rolls back the app's write.
        await expect(
          engine.transaction(async (tx) => {
            await tx.run('INSERT INTO activities (id, title) VALUES (?, ?)', ['a3', 'lost']);
            await tx.enqueue({ entity: 'nope', op: 'create', entityId: 'a3', data: {} });
          }),
        ).rejects.toMatchObject({ code: 'UNKNOWN_ENTITY' });
        const rows = await engine.transaction((tx) => tx.all<{ id: string }>('SELECT id FROM activities'));
        expect(rows.map((r) => r.id)).toEqual(['a1']);
        expect((await engine.queue.list()).map((m) => m.entityId)).toEqual(['a1']);
        await engine.close();
      });

      it('records a batch of results all-or-nothing (FAULTS 4)', async () => {
        const clockLocal = manualClock();
        const inner = await fresh();
        let failOnWrite = 0;
        // Fail the n-th write statement of the recording transaction, whether it runs through
        // run() or all() (DELETE … RETURNING).
        const failing = (sql: string) => {
          if (failOnWrite > 0 && /^\s*(DELETE|UPDATE|INSERT)/i.test(sql) && --failOnWrite === 0) {
            throw Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
          }
        };
        const faulty: StorageAdapter = {
          ...inner,
          name: inner.name,
          exec: inner.exec.bind(inner),
          run: inner.run.bind(inner),
          all: inner.all.bind(inner),
          close: inner.close.bind(inner),
          open: inner.open?.bind(inner),
          transaction: (mode, fn) =>
            inner.transaction(mode, (tx) =>
              fn({
                exec: tx.exec.bind(tx),
                all: (sql, params) => {
                  failing(sql);
                  return tx.all(sql, params);
                },
                run: (sql, params) => {
                  failing(sql);
                  return tx.run(sql, params);
                },
              }),
            ),
        };
        const storage = new GuardedStorage(faulty);
        await storage.open();
        await migrate(storage);
        const queue = new MutationQueue(storage, clockLocal, seededRandom(1));
        const entity = {
          name: 'activity',
          schema: undefined,
          updateSchema: undefined,
          coalesce: false,
          customOps: new Map(),
          maxPayloadBytes: 1000,
          conflict: 'manual' as const,
          references: new Map<string, string>(),
          onIdAssigned: undefined,
          pull: undefined,
        };
        const scope = { userId: 'u1' };
        for (let i = 0; i < 3; i++) {
          await queue.insert(storage, scope, {
            entity,
            op: 'create',
            entityId: `r${i}`,
            data: { i },
            dataJson: JSON.stringify({ i }),
            bytes: 7,
            baseVersion: null,
            dependsOn: [],
          });
        }
        const claimed = await queue.claim({
          scope,
          token: 't1',
          claimTtlMs: 60_000,
          maxCount: 10,
          maxBytes: 1e6,
        });
        expect(claimed).toHaveLength(3);
        // Two confirmations (deleted together) and a retry (an update): the update fails after
        // the deletes went through, and the deletes must roll back with it.
        failOnWrite = 2;
        await expect(
          queue.record(
            't1',
            claimed.map((m, i) => ({
              id: m.id,
              outcome:
                i < 2
                  ? ({ type: 'confirmed' } as const)
                  : ({
                      type: 'retry',
                      countsAttempt: true,
                      nextAttemptAt: 0,
                      error: { code: 'http-503', message: 'unavailable' },
                    } as const),
            })),
          ),
        ).rejects.toMatchObject({ code: 'STORAGE_FULL' });
        expect(failOnWrite).toBe(0);
        // Nothing was recorded: all three still inflight under the claim.
        expect((await queue.stats('all')).inflight).toBe(3);
        const again = await queue.record(
          't1',
          claimed.map((m) => ({ id: m.id, outcome: { type: 'confirmed' } as const })),
        );
        expect(again).toEqual({ recorded: 3, stale: [] });
        expect((await queue.stats('all')).total).toBe(0);
        await storage.close();
      });

      it('claims heads of records only, honours dependsOn, and recovers expired claims (invariant 3)', async () => {
        const engine = await engineOver(await fresh());
        const storage = new GuardedStorage(adapters[adapters.length - 1]!);
        await storage.open();
        const queue = new MutationQueue(storage, clock, seededRandom(3));
        const scope = { userId: 'u1', orgId: 'o1' };
        const a1 = await engine.enqueue({ entity: 'activity', op: 'create', entityId: 'a', data: { n: 1 } });
        const a2 = await engine.enqueue({ entity: 'activity', op: 'update', entityId: 'a', data: { n: 2 } });
        const b1 = await engine.enqueue({
          entity: 'activity',
          op: 'create',
          entityId: 'b',
          data: {},
          dependsOn: [a1.id],
        });
        const c1 = await engine.enqueue({ entity: 'contact', op: 'create', entityId: 'c', data: {} });
        const first = await queue.claim({
          scope,
          token: 'run-1',
          claimTtlMs: 1000,
          maxCount: 10,
          maxBytes: 1e6,
        });
        expect(first.map((m) => m.id)).toEqual([a1.id, c1.id]);
        // Nothing more is claimable while a1 is in flight.
        expect(
          await queue.claim({ scope, token: 'run-2', claimTtlMs: 1000, maxCount: 10, maxBytes: 1e6 }),
        ).toEqual([]);
        // The run dies; after the claim expires, its mutations are pending again, no attempt counted.
        clock.advance(1001);
        expect(await queue.recoverExpired()).toBe(2);
        expect((await engine.queue.get(a1.id))?.attempts).toBe(0);
        const second = await queue.claim({
          scope,
          token: 'run-3',
          claimTtlMs: 1000,
          maxCount: 10,
          maxBytes: 1e6,
        });
        expect(second.map((m) => m.id)).toEqual([a1.id, c1.id]);
        // A stale holder can no longer record: its claim token is gone.
        expect(await queue.record('run-1', [{ id: a1.id, outcome: { type: 'confirmed' } }])).toEqual({
          recorded: 0,
          stale: [a1.id],
        });
        await queue.record('run-3', [
          { id: a1.id, outcome: { type: 'confirmed' } },
          { id: c1.id, outcome: { type: 'confirmed' } },
        ]);
        const third = await queue.claim({
          scope,
          token: 'run-4',
          claimTtlMs: 1000,
          maxCount: 10,
          maxBytes: 1e6,
        });
        expect(third.map((m) => m.id)).toEqual([a2.id, b1.id]);
        await storage.close();
      });

      it('refuses every use after close with a typed error', async () => {
        const engine = await engineOver(await fresh());
        await engine.close();
        await expect(
          engine.enqueue({ entity: 'activity', op: 'create', entityId: 'x', data: {} }),
        ).rejects.toMatchObject({
          code: 'ENGINE_CLOSED',
        });
        await expect(engine.queue.stats()).rejects.toBeInstanceOf(SyncError);
        await expect(engine.open()).rejects.toMatchObject({ code: 'ENGINE_CLOSED' });
        await engine.close();
      });
    });
  });
}
