/**
 * runOnce with a scripted network port: every run-level decision of DESIGN.md sections 4 and 5,
 * deterministic (manual clock, manual timers, seeded random), over a real better-sqlite3 database.
 */
import Database from 'better-sqlite3';
import {
  ConfigError,
  createSyncEngine,
  type NetworkAdapter,
  type PushItemResult,
  type PushRequest,
  type PushResponse,
  type RunReport,
  type SyncEngine,
  type SyncEngineOptions,
  type TransportFailure,
} from 'sync-core';
import { createBetterSqlite3Storage } from 'sync-core/better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { manualTimers } from '../helpers/manual-timers.js';
import { manualClock, seededRandom } from '../helpers/storage-factories.js';

type Handler = (request: PushRequest, call: number) => PushResponse | Promise<PushResponse>;

function scriptedNetwork(handler: Handler, refresh?: () => Promise<boolean>) {
  const requests: PushRequest[] = [];
  let refreshes = 0;
  const network: NetworkAdapter = {
    async push(request) {
      requests.push(request);
      return handler(request, requests.length);
    },
    ...(refresh
      ? {
          refreshCredentials: async () => {
            refreshes++;
            return refresh();
          },
        }
      : {}),
  };
  return { network, requests, refreshes: () => refreshes };
}

const applyAll: Handler = (request) => ({
  type: 'results',
  results: request.mutations.map((m, i) => ({ id: m.id, status: 'applied', version: i + 1 })),
});

const engines: SyncEngine[] = [];
afterEach(async () => {
  for (const engine of engines.splice(0)) await engine.close();
});

async function setup(network: NetworkAdapter, extra: Partial<SyncEngineOptions> = {}) {
  const clock = manualClock();
  const timers = manualTimers();
  const engine = createSyncEngine({
    storage: createBetterSqlite3Storage(new Database(':memory:')),
    entities: { activity: {}, contact: {} },
    network,
    clock,
    random: seededRandom(11),
    timers: timers.timers,
    ...extra,
  });
  engines.push(engine);
  await engine.open();
  await engine.start({ userId: 'u1', orgId: 'o1' });
  return { engine, clock, timers };
}

async function enqueueN(engine: SyncEngine, n: number, entity = 'activity') {
  const out = [];
  for (let i = 0; i < n; i++) {
    out.push(await engine.enqueue({ entity, op: 'create', entityId: `${entity}-${i}`, data: { i } }));
  }
  return out;
}

function failure(partial: Partial<TransportFailure> & Pick<TransportFailure, 'class'>): PushResponse {
  return { type: 'failure', failure: { code: partial.class, message: partial.class, ...partial } };
}

describe('runOnce: draining', () => {
  it('drains the queue in batches, confirming each mutation once, and reports counts that match', async () => {
    const net = scriptedNetwork(applyAll);
    const { engine } = await setup(net.network, { batch: { maxCount: 100 } });
    await enqueueN(engine, 250);
    const events: string[] = [];
    engine.on('run:started', () => events.push('started'));
    engine.on('run:finished', () => events.push('finished'));
    const progress: number[] = [];
    engine.on('run:progress', (e) => progress.push(e.done));
    const report = await engine.runOnce({ trigger: 'background' });
    expect(report.outcome).toBe('ok');
    expect(report.counts).toMatchObject({ pushed: 250, retried: 0, failed: 0, batches: 3 });
    expect(net.requests.map((r) => r.mutations.length)).toEqual([100, 100, 50]);
    const sentIds = net.requests.flatMap((r) => r.mutations.map((m) => m.id));
    expect(new Set(sentIds).size).toBe(250);
    expect((await engine.queue.stats()).total).toBe(0);
    expect(report.nextDueAt).toBeNull();
    expect(events).toEqual(['started', 'finished']);
    expect(progress).toEqual([100, 200, 250]);
  });

  it('sends each request with the scope, client id, ISO client time and the idempotency key', async () => {
    const net = scriptedNetwork(applyAll);
    const { engine, clock } = await setup(net.network);
    const m = await engine.enqueue({
      entity: 'activity',
      op: 'create',
      entityId: 'a1',
      data: { t: 1 },
      baseVersion: 3,
    });
    await engine.runOnce();
    const request = net.requests[0]!;
    expect(request.scope).toEqual({ userId: 'u1', orgId: 'o1' });
    expect(request.clientId).toBe(engine.clientId);
    expect(request.entity).toBe('activity');
    expect(request.mutations).toEqual([
      {
        id: m.id,
        key: m.key,
        op: 'create',
        entityId: 'a1',
        baseVersion: 3,
        data: { t: 1 },
        clientTime: new Date(clock.now()).toISOString(),
        dependsOn: [],
      },
    ]);
  });

  it('groups a round by entity type, one request per type', async () => {
    const net = scriptedNetwork(applyAll);
    const { engine } = await setup(net.network);
    await enqueueN(engine, 3, 'activity');
    await enqueueN(engine, 2, 'contact');
    await engine.runOnce();
    expect(net.requests.map((r) => [r.entity, r.mutations.length]).sort()).toEqual([
      ['activity', 3],
      ['contact', 2],
    ]);
  });

  it('keeps per-record order: a later mutation waits while the earlier one is retried (invariant 3)', async () => {
    const net = scriptedNetwork((request) => ({
      type: 'results',
      results: request.mutations.map(
        (m): PushItemResult =>
          m.op === 'create' ? { id: m.id, status: 'retry' } : { id: m.id, status: 'applied' },
      ),
    }));
    const { engine } = await setup(net.network);
    await engine.enqueue({ entity: 'activity', op: 'create', entityId: 'a', data: {} });
    await engine.enqueue({ entity: 'activity', op: 'update', entityId: 'a', data: { x: 1 } });
    await engine.enqueue({ entity: 'activity', op: 'update', entityId: 'b', data: { x: 1 } });
    const report = await engine.runOnce();
    const sent = net.requests.flatMap((r) => r.mutations.map((m) => `${m.entityId}:${m.op}`));
    expect(sent).toEqual(['a:create', 'b:update']);
    expect(report.counts).toMatchObject({ pushed: 1, retried: 1 });
    // Head-of-line blocking is per record: b went through.
    expect((await engine.queue.list()).map((m) => `${m.entityId}:${m.op}`)).toEqual(['a:create', 'a:update']);
  });
});

describe('runOnce: bounded memory (invariant 7)', () => {
  it('holds at most one claim of maxCount mutations at a time, whatever the backlog', async () => {
    const db = new Database(':memory:');
    let maxInflight = 0;
    const net = scriptedNetwork((request) => {
      const { n } = db.prepare("SELECT COUNT(*) AS n FROM sync_mutations WHERE state = 'inflight'").get() as {
        n: number;
      };
      maxInflight = Math.max(maxInflight, n);
      return applyAll(request, 0);
    });
    const engine = createSyncEngine({
      storage: createBetterSqlite3Storage(db, { closeDatabase: false }),
      entities: { activity: {}, contact: {} },
      network: net.network,
      batch: { maxCount: 50 },
    });
    engines.push(engine);
    await engine.open();
    await engine.start({ userId: 'u1' });
    await engine.enqueueMany(
      Array.from({ length: 2_000 }, (_, i) => ({
        entity: i % 2 ? 'activity' : 'contact',
        op: 'create',
        entityId: `r${i}`,
        data: { i },
      })),
    );
    const report = await engine.runOnce();
    expect(report.counts.pushed).toBe(2_000);
    expect(maxInflight).toBeLessThanOrEqual(50);
    expect(Math.max(...net.requests.map((r) => r.mutations.length))).toBeLessThanOrEqual(50);
  });
});

describe('runOnce: failure classification (DESIGN.md section 5)', () => {
  it('offline: stops the run, releases every claim and counts no attempt', async () => {
    const net = scriptedNetwork(() => failure({ class: 'offline', code: 'econnrefused' }));
    const { engine } = await setup(net.network);
    await enqueueN(engine, 3, 'activity');
    await enqueueN(engine, 3, 'contact');
    const report = await engine.runOnce();
    expect(report.outcome).toBe('offline');
    expect(report.counts.released).toBe(6);
    const rows = await engine.queue.list();
    expect(rows.every((m) => m.state === 'pending' && m.attempts === 0)).toBe(true);
    expect(report.nextDueAt).not.toBeNull();
  });

  it('ambiguous (timeout): resend later with the same key, one attempt counted, backoff within bounds', async () => {
    const net = scriptedNetwork(() => failure({ class: 'ambiguous', code: 'timeout' }));
    const { engine, clock } = await setup(net.network);
    const [m] = await enqueueN(engine, 1);
    const retries: number[] = [];
    engine.on('retry:scheduled', (e) => retries.push(e.nextAttemptAt - clock.now()));
    const report = await engine.runOnce();
    expect(report.outcome).toBe('server-error');
    const stored = await engine.queue.get(m!.id);
    expect(stored).toMatchObject({
      state: 'pending',
      attempts: 1,
      key: m!.key,
      lastError: { code: 'timeout' },
    });
    // Equal jitter on 30 s: within [15 s, 30 s].
    expect(retries[0]).toBeGreaterThanOrEqual(15_000);
    expect(retries[0]).toBeLessThanOrEqual(30_000);
  });

  it('429 with Retry-After: never before it, and the run stops (slow down)', async () => {
    const net = scriptedNetwork(() =>
      failure({ class: 'retryable', code: 'http-429', status: 429, retryAfterMs: 120_000 }),
    );
    const { engine, clock } = await setup(net.network);
    await enqueueN(engine, 2, 'activity');
    await enqueueN(engine, 2, 'contact');
    const report = await engine.runOnce();
    expect(report.outcome).toBe('throttled');
    for (const m of await engine.queue.list()) {
      if (m.attempts === 1) expect(m.nextAttemptAt - clock.now()).toBeGreaterThanOrEqual(120_000);
    }
    expect(report.nextDueAt! - clock.now()).toBeGreaterThanOrEqual(0);
  });

  it('a batch refused with 429 and no Retry-After is due again together, within its bounds: the next run sends it in one request', async () => {
    const net = scriptedNetwork((request, call) =>
      call === 1 ? failure({ class: 'retryable', code: 'http-429', status: 429 }) : applyAll(request, call),
    );
    const { engine, clock } = await setup(net.network);
    await enqueueN(engine, 20);
    expect((await engine.runOnce()).outcome).toBe('throttled');
    const due = new Set((await engine.queue.list()).map((m) => m.nextAttemptAt - clock.now()));
    // One jitter draw for the batch (a draw per mutation spread them over 15–30 s).
    expect(due.size).toBe(1);
    const [delay] = [...due];
    expect(delay).toBeGreaterThanOrEqual(15_000);
    expect(delay).toBeLessThanOrEqual(30_000);
    clock.advance(delay!);
    const report = await engine.runOnce();
    expect(report.counts.pushed).toBe(20);
    expect(net.requests).toHaveLength(2);
  });

  it('per-item results are each recorded on their own (partial batch, FAULTS 21)', async () => {
    const net = scriptedNetwork((request) => ({
      type: 'results',
      results: request.mutations.flatMap((m, i): PushItemResult[] => {
        switch (i) {
          case 0:
            return [{ id: m.id, status: 'applied', version: 1 }];
          case 1:
            return [{ id: m.id, status: 'duplicate', version: 1 }];
          case 2:
            return [
              { id: m.id, status: 'rejected', error: { code: 'invalid', message: 'title is required' } },
            ];
          case 3:
            return [{ id: m.id, status: 'retry', retryAfterMs: 5000 }];
          case 4:
            return [{ id: m.id, status: 'conflict', version: 9, data: { t: 'server' } }];
          default:
            return []; // missing result → ambiguous
        }
      }),
    }));
    const { engine, clock } = await setup(net.network);
    const ms = await enqueueN(engine, 6);
    const report = await engine.runOnce();
    expect(report.counts).toMatchObject({ pushed: 2, failed: 1, retried: 2, conflicted: 1 });
    const byId = new Map((await engine.queue.list()).map((m) => [m.id, m]));
    expect(byId.has(ms[0]!.id)).toBe(false);
    expect(byId.has(ms[1]!.id)).toBe(false);
    expect(byId.get(ms[2]!.id)).toMatchObject({
      state: 'failed',
      lastError: { code: 'rejected:invalid', message: 'title is required' },
    });
    expect(byId.get(ms[3]!.id)!.nextAttemptAt - clock.now()).toBeGreaterThanOrEqual(15_000);
    expect(byId.get(ms[4]!.id)).toMatchObject({ state: 'conflict' });
    expect(byId.get(ms[5]!.id)).toMatchObject({
      state: 'pending',
      attempts: 1,
      lastError: { code: 'bad-response' },
    });
  });

  it('gone: a delete is confirmed, an update becomes a conflict (FAULTS 20)', async () => {
    const gone: TransportFailure = { class: 'gone', code: 'http-404', message: 'not found', status: 404 };
    const net = scriptedNetwork((request) => ({
      type: 'results',
      results: request.mutations.map((m): PushItemResult => ({ id: m.id, status: 'failed', failure: gone })),
    }));
    const { engine } = await setup(net.network);
    await engine.enqueue({ entity: 'activity', op: 'delete', entityId: 'd' });
    const u = await engine.enqueue({ entity: 'activity', op: 'update', entityId: 'u', data: { x: 1 } });
    const report = await engine.runOnce();
    expect(report.counts).toMatchObject({ pushed: 1, conflicted: 1 });
    expect((await engine.queue.list()).map((m) => [m.id, m.state])).toEqual([[u.id, 'conflict']]);
  });

  it('rejected (other 4xx) dead-letters the batch and the rest of the queue keeps draining (FAULTS 17)', async () => {
    const net = scriptedNetwork((request) =>
      request.entity === 'contact'
        ? failure({ class: 'rejected', code: 'http-422', status: 422, message: 'unprocessable' })
        : applyAll(request, 0),
    );
    const { engine } = await setup(net.network);
    await enqueueN(engine, 2, 'contact');
    await enqueueN(engine, 3, 'activity');
    const report = await engine.runOnce();
    expect(report.outcome).toBe('ok');
    expect(report.counts).toMatchObject({ pushed: 3, failed: 2 });
    expect((await engine.queue.stats()).failed).toBe(2);
  });

  it('maxAttempts: a mutation out of attempts is dead-lettered as exhausted', async () => {
    const net = scriptedNetwork((request) => ({
      type: 'results',
      results: request.mutations.map((m): PushItemResult => ({ id: m.id, status: 'retry' })),
    }));
    const { engine, clock } = await setup(net.network, { backoff: { maxAttempts: 2 } });
    const [m] = await enqueueN(engine, 1);
    await engine.runOnce();
    expect((await engine.queue.get(m!.id))?.state).toBe('pending');
    clock.advance(3_600_000);
    const failed: string[] = [];
    engine.on('mutation:failed', (e) => failed.push(e.code));
    await engine.runOnce();
    expect(await engine.queue.get(m!.id)).toMatchObject({
      state: 'failed',
      attempts: 2,
      lastError: { code: 'exhausted' },
    });
    expect(failed).toEqual(['exhausted']);
  });

  it('an adapter that throws is treated as ambiguous, never as a confirmation', async () => {
    const net = scriptedNetwork(() => {
      throw new Error('bug in adapter');
    });
    const { engine } = await setup(net.network);
    const [m] = await enqueueN(engine, 1);
    const report = await engine.runOnce();
    expect(report.counts.pushed).toBe(0);
    expect(await engine.queue.get(m!.id)).toMatchObject({
      state: 'pending',
      attempts: 1,
      lastError: { code: 'adapter-error' },
    });
  });
});

describe('runOnce: credentials (401)', () => {
  it('refreshes once and resends on 401, then confirms', async () => {
    let authorized = false;
    const net = scriptedNetwork(
      (request) =>
        authorized ? applyAll(request, 0) : failure({ class: 'auth', code: 'http-401', status: 401 }),
      async () => {
        authorized = true;
        return true;
      },
    );
    const { engine } = await setup(net.network);
    await enqueueN(engine, 3);
    const report = await engine.runOnce();
    expect(report.outcome).toBe('ok');
    expect(report.counts.pushed).toBe(3);
    expect(net.refreshes()).toBe(1);
    expect(report.counts.batches).toBe(2);
  });

  it('a second 401 pauses sync (auth-required), keeps every row and counts no attempt, until start()', async () => {
    const net = scriptedNetwork(
      () => failure({ class: 'auth', code: 'http-401', status: 401 }),
      async () => true,
    );
    const { engine } = await setup(net.network);
    await enqueueN(engine, 3);
    const required: string[] = [];
    engine.on('auth:required', (e) => required.push(e.runId));
    const report = await engine.runOnce();
    expect(report.outcome).toBe('auth-required');
    expect(required).toHaveLength(1);
    expect(net.refreshes()).toBe(1);
    const rows = await engine.queue.list();
    expect(rows).toHaveLength(3);
    expect(rows.every((m) => m.state === 'pending' && m.attempts === 0)).toBe(true);
    // Paused: the next run sends nothing.
    const sentBefore = net.requests.length;
    expect((await engine.runOnce()).outcome).toBe('auth-required');
    expect(net.requests.length).toBe(sentBefore);
    // Signing in again resumes.
    await engine.start({ userId: 'u1', orgId: 'o1' });
    await engine.runOnce();
    expect(net.requests.length).toBeGreaterThan(sentBefore);
  });

  it('20 concurrent 401s trigger exactly one refresh (FAULTS 24)', async () => {
    let generation = 0;
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let arrived = 0;
    const net = scriptedNetwork(
      async (request) => {
        if (generation === 0) {
          // Hold every first request until all 20 are in flight at once.
          if (++arrived === 20) release();
          await gate;
          return failure({ class: 'auth', code: 'http-401', status: 401 });
        }
        return applyAll(request, 0);
      },
      async () => {
        generation++;
        return true;
      },
    );
    const entities = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`e${i}`, {}]));
    const { engine } = await setup(net.network, { entities, batch: { concurrency: 20 } });
    for (let i = 0; i < 20; i++)
      await engine.enqueue({ entity: `e${i}`, op: 'create', entityId: 'x', data: {} });
    const report = await engine.runOnce();
    expect(net.refreshes()).toBe(1);
    expect(report.outcome).toBe('ok');
    expect(report.counts.pushed).toBe(20);
  });

  it('without a refresh method a 401 pauses at once', async () => {
    const net = scriptedNetwork(() => failure({ class: 'auth', code: 'http-401', status: 401 }));
    const { engine } = await setup(net.network);
    await enqueueN(engine, 1);
    expect((await engine.runOnce()).outcome).toBe('auth-required');
  });
});

describe('runOnce: deadline, abort, lease', () => {
  it('does not start a round that would not finish before the deadline', async () => {
    const { engine, clock } = await setup(scriptedNetwork(applyAll).network, {
      initialBatchEstimateMs: 5_000,
    });
    await enqueueN(engine, 3);
    const report = await engine.runOnce({ deadline: clock.now() + 4_000 });
    expect(report.outcome).toBe('deadline');
    expect(report.counts.batches).toBe(0);
    expect((await engine.queue.stats()).pending).toBe(3);
  });

  it('stops between rounds using measured batch durations', async () => {
    let clockRef: { advance(ms: number): void } | undefined;
    const net = scriptedNetwork((request) => {
      clockRef!.advance(3_000);
      return applyAll(request, 0);
    });
    const { engine, clock } = await setup(net.network, {
      batch: { maxCount: 10 },
      initialBatchEstimateMs: 100,
    });
    clockRef = clock;
    await enqueueN(engine, 50);
    const report = await engine.runOnce({ deadline: clock.now() + 8_000 });
    // Round 1 ends at +3 s, round 2 at +6 s; a third (est. 3 s × 1.25) would end after +8 s.
    expect(report.outcome).toBe('deadline');
    expect(report.counts.pushed).toBe(20);
    expect((await engine.queue.stats()).pending).toBe(30);
  });

  it('at the deadline in-flight requests are aborted and their claims released without an attempt', async () => {
    let timersRef: { fireAll(): void } | undefined;
    const net = scriptedNetwork(async (request) => {
      timersRef!.fireAll(); // the deadline timer fires while the request is in flight
      expect(request.signal.aborted).toBe(true);
      return failure({ class: 'aborted', code: 'aborted' });
    });
    const { engine, clock, timers } = await setup(net.network, { initialBatchEstimateMs: 1 });
    timersRef = timers;
    await enqueueN(engine, 4);
    const report = await engine.runOnce({ deadline: clock.now() + 60_000 });
    expect(report.outcome).toBe('deadline');
    expect(report.counts).toMatchObject({ released: 4, retried: 0 });
    expect((await engine.queue.list()).every((m) => m.state === 'pending' && m.attempts === 0)).toBe(true);
  });

  it("the host's AbortSignal aborts the run", async () => {
    const controller = new AbortController();
    const net = scriptedNetwork(async (request) => {
      controller.abort();
      return request.signal.aborted ? failure({ class: 'aborted' }) : applyAll(request, 0);
    });
    const { engine } = await setup(net.network);
    await enqueueN(engine, 2);
    const report = await engine.runOnce({ signal: controller.signal });
    expect(report.outcome).toBe('aborted');
    expect((await engine.queue.stats()).pending).toBe(2);
  });

  it('a second run while one is in flight returns busy without sending (single flight)', async () => {
    let second: Promise<RunReport> | undefined;
    let engineRef: SyncEngine | undefined;
    const net = scriptedNetwork((request) => {
      second ??= engineRef!.runOnce();
      return applyAll(request, 0);
    });
    const { engine } = await setup(net.network);
    engineRef = engine;
    await enqueueN(engine, 2);
    const first = await engine.runOnce();
    expect(first.outcome).toBe('ok');
    expect((await second!).outcome).toBe('busy');
  });

  it('a live lease held by another process makes the run busy; an expired one is taken over', async () => {
    const net = scriptedNetwork(applyAll);
    const clock = manualClock();
    const db = new Database(':memory:');
    const engine = createSyncEngine({
      storage: createBetterSqlite3Storage(db, { closeDatabase: false }),
      entities: { activity: {} },
      network: net.network,
      clock,
      leaseTtlMs: 60_000,
    });
    engines.push(engine);
    await engine.open();
    await engine.start({ userId: 'u1' });
    await enqueueN(engine, 1);
    db.prepare(
      "INSERT INTO sync_lease (name, holder, acquired_at, expires_at) VALUES ('sync', 'other', ?, ?)",
    ).run(clock.now(), clock.now() + 30_000);
    expect((await engine.runOnce()).outcome).toBe('busy');
    expect(net.requests).toHaveLength(0);
    clock.advance(30_001);
    expect((await engine.runOnce()).outcome).toBe('ok');
    expect(net.requests).toHaveLength(1);
  });

  it('a round longer than the lease TTL renews its claims before each request: none expires in flight', async () => {
    const db = new Database(':memory:');
    const clock = manualClock();
    const expiredInFlight: number[] = [];
    const net = scriptedNetwork((request) => {
      const rows = db
        .prepare("SELECT claim_expires_at AS e FROM sync_mutations WHERE state = 'inflight' AND entity = ?")
        .all(request.entity) as { e: number }[];
      for (const row of rows) if (row.e <= clock.now()) expiredInFlight.push(row.e);
      clock.advance(40_000); // each request takes 40 s of a 60 s TTL
      return applyAll(request, 0);
    });
    const engine = createSyncEngine({
      storage: createBetterSqlite3Storage(db, { closeDatabase: false }),
      entities: { activity: {}, contact: {}, visit: {} },
      network: net.network,
      clock,
      leaseTtlMs: 60_000,
      batch: { concurrency: 1 },
    });
    engines.push(engine);
    await engine.open();
    await engine.start({ userId: 'u1' });
    for (const entity of ['activity', 'contact', 'visit']) await enqueueN(engine, 2, entity);
    const report = await engine.runOnce();
    expect(report.counts.pushed).toBe(6);
    expect(expiredInFlight).toEqual([]);
  });

  it('recovers claims of a crashed run at the start of the next, with no attempt counted', async () => {
    const net = scriptedNetwork(applyAll);
    const clock = manualClock();
    const db = new Database(':memory:');
    const engine = createSyncEngine({
      storage: createBetterSqlite3Storage(db, { closeDatabase: false }),
      entities: { activity: {} },
      network: net.network,
      clock,
      leaseTtlMs: 60_000,
    });
    engines.push(engine);
    await engine.open();
    await engine.start({ userId: 'u1' });
    await enqueueN(engine, 2);
    db.prepare(
      "UPDATE sync_mutations SET state = 'inflight', claim_token = 'dead', claim_expires_at = ?",
    ).run(clock.now() + 60_000);
    expect((await engine.runOnce()).counts.pushed).toBe(0);
    clock.advance(60_001);
    const report = await engine.runOnce();
    expect(report.counts).toMatchObject({ recovered: 2, pushed: 2 });
  });

  it('a listener that throws does not break the run', async () => {
    const net = scriptedNetwork(applyAll);
    const { engine } = await setup(net.network);
    await enqueueN(engine, 2);
    engine.on('mutation:confirmed', () => {
      throw new Error('listener bug');
    });
    const uncaught: unknown[] = [];
    const onUncaught = (error: unknown) => uncaught.push(error);
    process.on('uncaughtException', onUncaught);
    try {
      const report = await engine.runOnce();
      await new Promise((resolve) => setImmediate(resolve));
      expect(report.counts.pushed).toBe(2);
    } finally {
      process.off('uncaughtException', onUncaught);
    }
  });

  it('no-scope without start(); ConfigError without a network', async () => {
    const net = scriptedNetwork(applyAll);
    const { engine } = await setup(net.network);
    await engine.stop();
    expect((await engine.runOnce()).outcome).toBe('no-scope');
    const bare = createSyncEngine({
      storage: createBetterSqlite3Storage(new Database(':memory:')),
      entities: { a: {} },
    });
    engines.push(bare);
    await bare.open();
    await expect(bare.runOnce()).rejects.toBeInstanceOf(ConfigError);
  });

  it('pulls schedules stranded far in the future by a clock jump back to within the cap (FAULTS 29)', async () => {
    const net = scriptedNetwork(() => failure({ class: 'retryable', code: 'http-500', status: 500 }));
    const { engine, clock } = await setup(net.network);
    const [m] = await enqueueN(engine, 1);
    await engine.runOnce();
    const scheduled = (await engine.queue.get(m!.id))!.nextAttemptAt;
    clock.advance(-2 * 86_400_000); // the wall clock jumps two days back
    await engine.runOnce();
    const after = (await engine.queue.get(m!.id))!.nextAttemptAt;
    expect(after).toBeLessThan(scheduled);
    expect(after - clock.now()).toBeLessThanOrEqual(3_600_000);
  });
});

describe('runOnce: a wake-up with nothing to do (one commit)', () => {
  /** A better-sqlite3 adapter that counts write transactions and the statements that changed rows. */
  function countingStorage(db: Database.Database) {
    const inner = createBetterSqlite3Storage(db, { closeDatabase: false });
    const counts = { transactions: 0, changedOutside: 0, leaseWrites: 0 };
    const watch = (sql: string) => {
      if (/INSERT INTO sync_lease/i.test(sql)) counts.leaseWrites++;
    };
    const storage: typeof inner = {
      ...inner,
      name: inner.name,
      open: inner.open?.bind(inner),
      close: inner.close.bind(inner),
      exec: inner.exec.bind(inner),
      all: (sql, params) => {
        watch(sql);
        return inner.all(sql, params);
      },
      run: async (sql, params) => {
        watch(sql);
        const result = await inner.run(sql, params);
        if (result.changes > 0) counts.changedOutside++;
        return result;
      },
      transaction: (mode, fn) => {
        // Write transactions only: a status snapshot reads in a deferred one.
        if (mode === 'immediate') counts.transactions++;
        return inner.transaction(mode, (tx) =>
          fn({
            exec: tx.exec.bind(tx),
            all: (sql, params) => {
              watch(sql);
              return tx.all(sql, params);
            },
            run: (sql, params) => {
              watch(sql);
              return tx.run(sql, params);
            },
          }),
        );
      },
    };
    return { storage, counts };
  }

  async function idleSetup(extra: Partial<SyncEngineOptions> = {}) {
    const clock = manualClock();
    const db = new Database(':memory:');
    const { storage, counts } = countingStorage(db);
    const net = scriptedNetwork(applyAll);
    const engine = createSyncEngine({
      storage,
      entities: { activity: {} },
      network: net.network,
      clock,
      random: seededRandom(5),
      timers: manualTimers().timers,
      ...extra,
    });
    engines.push(engine);
    await engine.open();
    await engine.start({ userId: 'u1' });
    return { engine, clock, db, counts, net };
  }

  it('writes its run row and nothing else in one transaction, never taking the lease (invariant 8)', async () => {
    const { engine, counts, net } = await idleSetup();
    const events: string[] = [];
    engine.on('run:started', () => events.push('started'));
    engine.on('run:finished', (report) => events.push(`finished:${report.outcome}`));
    counts.transactions = 0;
    counts.changedOutside = 0;
    const report = await engine.runOnce({ trigger: 'background' });
    expect(report).toMatchObject({ outcome: 'ok', nextDueAt: null, counts: { pushed: 0, batches: 0 } });
    expect(counts).toEqual({ transactions: 1, changedOutside: 0, leaseWrites: 0 });
    expect(events).toEqual(['started', 'finished:ok']);
    expect(net.requests).toHaveLength(0);
    const runs = await engine.status.runs();
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({ runId: report.runId, outcome: 'ok', trigger: 'background' });
  });

  it('reports when the next mutation is due, and still raises a stuck notice', async () => {
    const { engine, clock, db } = await idleSetup({ stuckAfterMs: 60_000 });
    const queued = await engine.enqueue({ entity: 'activity', op: 'create', entityId: 'a', data: {} });
    const due = clock.now() + 120_000;
    db.prepare('UPDATE sync_mutations SET next_attempt_at = ?, created_at = ? WHERE id = ?').run(
      due,
      clock.now() - 3_600_000,
      queued.id,
    );
    const report = await engine.runOnce();
    expect(report).toMatchObject({ outcome: 'ok', nextDueAt: due });
    const notices = await engine.status.unseenNotices();
    expect(notices.map((n) => n.kind)).toContain('stuck');
  });

  it.each([
    ['a mutation is due', 'due'],
    ['an expired claim waits for recovery', 'inflight'],
    ['another holder has the lease', 'lease'],
  ] as const)('takes the lease and runs as usual when %s', async (_label, situation) => {
    const { engine, clock, db, counts, net } = await idleSetup();
    await engine.enqueue({ entity: 'activity', op: 'create', entityId: 'a', data: {} });
    if (situation === 'inflight') {
      db.prepare(
        "UPDATE sync_mutations SET state = 'inflight', claim_token = 'dead', claim_expires_at = ?",
      ).run(clock.now() - 1);
    }
    if (situation === 'lease') {
      db.prepare(
        "INSERT INTO sync_lease (name, holder, acquired_at, expires_at) VALUES ('sync', 'other', ?, ?)",
      ).run(clock.now(), clock.now() + 30_000);
    }
    const report = await engine.runOnce();
    if (situation === 'lease') {
      expect(report.outcome).toBe('busy');
      expect(net.requests).toHaveLength(0);
      return;
    }
    expect(report).toMatchObject({ outcome: 'ok', counts: { pushed: 1 } });
    expect(counts.leaseWrites).toBe(1);
    if (situation === 'inflight') expect(report.counts.recovered).toBe(1);
  });

  it('runs the pull handlers: an engine that pulls never skips its run', async () => {
    let pulls = 0;
    const { engine } = await idleSetup({
      network: {
        push: async () => ({ type: 'results', results: [] }),
        pull: async () => {
          pulls++;
          return { type: 'page', changes: [], cursor: 'c1', hasMore: false };
        },
      },
      entities: { activity: { pull: async () => undefined } },
    });
    expect((await engine.runOnce()).outcome).toBe('ok');
    expect(pulls).toBe(1);
  });
});
