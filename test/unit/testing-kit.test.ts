/**
 * `sync-core/testing`: the fake clock and timers, the model server (the reference server's push
 * and pull semantics), every fault of the faulty network — directly and against a real engine over
 * better-sqlite3 — the arbitraries, and the delivery checker on crafted histories.
 */
import Database from 'better-sqlite3';
import fc from 'fast-check';
import {
  ConfigError,
  createSyncEngine,
  type EnqueuedMutation,
  type PushRequest,
  type RunReport,
  type Scope,
  type SyncEngine,
  type SyncEngineOptions,
} from 'sync-core';
import { createBetterSqlite3Storage } from 'sync-core/better-sqlite3';
import {
  type AcknowledgedMutation,
  type AppliedMutationRecord,
  arbClockJump,
  arbFault,
  arbFaultSchedule,
  arbMutationInput,
  arbScope,
  assertDelivery,
  checkDelivery,
  checkFault,
  createFakeClock,
  createFakeTimers,
  createFaultyNetwork,
  createModelServer,
  createSeededRandom,
  DeliveryCheckError,
  FAULT_KINDS,
  type Fault,
  type FaultyNetworkOptions,
  failureOfStatus,
  type ModelServer,
  type ModelServerOptions,
  runUntilIdle,
} from 'sync-core/testing';
import { afterEach, describe, expect, it } from 'vitest';

const SCOPE: Scope = { userId: 'u1', orgId: 'o1' };
const engines: SyncEngine[] = [];
afterEach(async () => {
  for (const engine of engines.splice(0)) await engine.close();
});

function pushOf(mutations: PushRequest['mutations'], entity = 'activity', scope: Scope = SCOPE): PushRequest {
  return { entity, scope, clientId: 'c1', mutations, signal: new AbortController().signal };
}

function mutation(id: string, op: string, entityId: string, data?: Record<string, number | string> | null) {
  return {
    id,
    key: `key-${id}`,
    op,
    entityId,
    baseVersion: null,
    data: data ?? null,
    clientTime: '2026-11-25T08:00:00.000Z',
    dependsOn: [],
  };
}

// ---------------------------------------------------------------------------------------------
// Fake clock and timers
// ---------------------------------------------------------------------------------------------

describe('createFakeClock / createFakeTimers', () => {
  it('advance fires due timers in due order, each at its own time, including timers armed meanwhile', () => {
    const clock = createFakeClock(1_000);
    const timers = createFakeTimers(clock);
    const fired: string[] = [];
    timers.setTimeout(() => fired.push(`b@${clock.now()}`), 200);
    timers.setTimeout(() => {
      fired.push(`a@${clock.now()}`);
      timers.setTimeout(() => fired.push(`c@${clock.now()}`), 50);
    }, 100);
    timers.setTimeout(() => fired.push(`late@${clock.now()}`), 1_000);
    clock.advance(99);
    expect(fired).toEqual([]);
    clock.advance(151);
    expect(fired).toEqual(['a@1100', 'c@1150', 'b@1200']);
    expect(clock.now()).toBe(1_250);
    expect(timers.pending()).toEqual([{ handle: 3, dueAt: 1_000, dueInMs: 750 }]);
  });

  it('ties fire in the order they were armed; clearTimeout disarms', () => {
    const clock = createFakeClock(0);
    const timers = createFakeTimers(clock);
    const fired: number[] = [];
    timers.setTimeout(() => fired.push(1), 10);
    const second = timers.setTimeout(() => fired.push(2), 10);
    timers.setTimeout(() => fired.push(3), 10);
    timers.clearTimeout(second);
    timers.clearTimeout('not a handle');
    clock.advance(10);
    expect(fired).toEqual([1, 3]);
  });

  it('jump and set move only the wall clock: timers measure elapsed time (FAULTS 28/29)', () => {
    const clock = createFakeClock(0);
    const timers = createFakeTimers(clock);
    let fired = 0;
    timers.setTimeout(() => fired++, 1_000);
    clock.jump(365 * 86_400_000);
    expect(fired).toBe(0);
    clock.jump(-2 * 365 * 86_400_000);
    expect(clock.now()).toBe(-365 * 86_400_000);
    clock.set(42);
    expect(fired).toBe(0);
    expect(clock.elapsed()).toBe(0);
    clock.advance(1_000);
    expect(fired).toBe(1);
    expect(clock.now()).toBe(1_042);
  });

  it('runAll fires everything in order, advancing the clock, and stops a runaway callback', () => {
    const clock = createFakeClock(0);
    const timers = createFakeTimers(clock);
    const at: number[] = [];
    timers.setTimeout(() => at.push(clock.now()), 300);
    timers.setTimeout(() => at.push(clock.now()), 100);
    expect(timers.runAll()).toBe(2);
    expect(at).toEqual([100, 300]);
    expect(timers.pending()).toEqual([]);
    const rearm = () => {
      timers.setTimeout(rearm, 1);
    };
    timers.setTimeout(rearm, 1);
    expect(() => timers.runAll(50)).toThrow(ConfigError);
  });

  it('validates its inputs', () => {
    const clock = createFakeClock();
    expect(() => clock.advance(-1)).toThrow(/use jump/);
    expect(() => clock.jump(Number.NaN)).toThrow(ConfigError);
    expect(() => createFakeClock(Number.POSITIVE_INFINITY)).toThrow(ConfigError);
    createFakeTimers(clock);
    expect(() => createFakeTimers(clock)).toThrow(/already has fake timers/);
    expect(() => createFakeTimers({ now: () => 0 } as unknown as ReturnType<typeof createFakeClock>)).toThrow(
      /createFakeClock/,
    );
  });

  it('createSeededRandom is reproducible and in [0, 1)', () => {
    const a = createSeededRandom(5);
    const b = createSeededRandom(5);
    const xs = Array.from({ length: 100 }, () => a());
    expect(xs).toEqual(Array.from({ length: 100 }, () => b()));
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);
    expect(() => createSeededRandom(1.5)).toThrow(ConfigError);
  });
});

// ---------------------------------------------------------------------------------------------
// Model server
// ---------------------------------------------------------------------------------------------

describe('createModelServer: push (the reference server semantics)', () => {
  it('applies once per key and replays the original result as duplicate', () => {
    const server = createModelServer();
    const push = pushOf([mutation('m1', 'create', 'a1', { title: 'x' })]);
    expect(server.handlePush(push)).toEqual({
      type: 'results',
      results: [{ id: 'm1', status: 'applied', version: 1 }],
    });
    expect(server.handlePush(push)).toEqual({
      type: 'results',
      results: [{ id: 'm1', status: 'duplicate', version: 1 }],
    });
    expect(server.log()).toEqual([
      {
        seq: 1,
        key: 'key-m1',
        clientId: 'c1',
        scope: SCOPE,
        entity: 'activity',
        entityId: 'a1',
        clientEntityId: 'a1',
        op: 'create',
        baseVersion: null,
        version: 1,
        data: { title: 'x' },
        noop: false,
      },
    ]);
    expect(server.stats()).toMatchObject({ pushRequests: 2, applied: 1, duplicates: 1 });
  });

  it('versions: update merges and bumps, delete leaves a tombstone, re-create continues the version', () => {
    const server = createModelServer();
    server.handlePush(pushOf([mutation('m1', 'create', 'a1', { title: 'x', n: 1 })]));
    const update = server.handlePush(
      pushOf([{ ...mutation('m2', 'update', 'a1', { n: 2 }), baseVersion: 1 }]),
    );
    expect(update).toEqual({ type: 'results', results: [{ id: 'm2', status: 'applied', version: 2 }] });
    expect(server.record(SCOPE, 'activity', 'a1')).toEqual({
      version: 2,
      data: { title: 'x', n: 2 },
      deleted: false,
    });
    server.handlePush(pushOf([mutation('m3', 'delete', 'a1')]));
    expect(server.record(SCOPE, 'activity', 'a1')).toEqual({ version: 3, data: null, deleted: true });
    const again = server.handlePush(pushOf([mutation('m4', 'create', 'a1', { title: 'y' })]));
    expect(again).toEqual({ type: 'results', results: [{ id: 'm4', status: 'applied', version: 4 }] });
  });

  it('conflicts: create over a live record, a stale base version, an update of a missing record', () => {
    const server = createModelServer();
    server.put(SCOPE, 'activity', 'a1', { title: 'elsewhere' });
    const results = server.handlePush(
      pushOf([
        mutation('m1', 'create', 'a1', { title: 'mine' }),
        { ...mutation('m2', 'update', 'a1', { title: 'mine' }), baseVersion: 7 },
        mutation('m3', 'update', 'nope', { title: 'mine' }),
      ]),
    );
    expect(results).toEqual({
      type: 'results',
      results: [
        { id: 'm1', status: 'conflict', version: 1, data: { title: 'elsewhere' } },
        { id: 'm2', status: 'conflict', version: 1, data: { title: 'elsewhere' } },
        { id: 'm3', status: 'conflict', version: 0, data: null },
      ],
    });
    expect(server.log()).toEqual([]);
    // A remembered conflict is replayed as it was.
    expect(server.handlePush(pushOf([mutation('m1', 'create', 'a1', { title: 'mine' })]))).toMatchObject({
      results: [{ status: 'conflict', version: 1 }],
    });
  });

  it('a delete of a missing record is applied (logged as a noop); unknown ops and bad data are rejected and remembered', () => {
    const server = createModelServer();
    const results = server.handlePush(
      pushOf([
        mutation('m1', 'delete', 'ghost'),
        mutation('m2', 'archive', 'a1'),
        mutation('m3', 'create', 'a2'),
      ]),
    );
    expect(results).toMatchObject({
      results: [
        { id: 'm1', status: 'applied', version: 0 },
        { id: 'm2', status: 'rejected', error: { code: 'unknown-op' } },
        { id: 'm3', status: 'rejected', error: { code: 'invalid' } },
      ],
    });
    expect(server.log().map((e) => [e.key, e.op, e.noop])).toEqual([['key-m1', 'delete', true]]);
    expect(server.handlePush(pushOf([mutation('m2', 'archive', 'a1')]))).toMatchObject({
      results: [{ status: 'rejected', error: { code: 'unknown-op' } }],
    });
  });

  it('server-assigned ids: applied and duplicate carry entityId; later mutations with the client id reach the record', () => {
    const server = createModelServer({ assignIds: ['activity'] });
    const create = pushOf([mutation('m1', 'create', 'local-1', { title: 'x' })]);
    expect(server.handlePush(create)).toEqual({
      type: 'results',
      results: [{ id: 'm1', status: 'applied', version: 1, entityId: 'srv-1' }],
    });
    expect(server.handlePush(create)).toEqual({
      type: 'results',
      results: [{ id: 'm1', status: 'duplicate', version: 1, entityId: 'srv-1' }],
    });
    server.handlePush(pushOf([mutation('m2', 'update', 'local-1', { title: 'y' })]));
    expect(server.record(SCOPE, 'activity', 'srv-1')?.data).toEqual({ title: 'y' });
    expect(server.log().map((e) => [e.entityId, e.clientEntityId])).toEqual([
      ['srv-1', 'local-1'],
      ['srv-1', 'local-1'],
    ]);
  });

  it('item faults: retry is neither applied nor remembered; reject is remembered; rejectWhen hooks in', () => {
    const server = createModelServer({
      rejectWhen: (m) => (m.data?.['title'] === 'bad' ? 'title is bad' : undefined),
    });
    const push = pushOf([
      mutation('m1', 'create', 'a1', { title: 'x' }),
      mutation('m2', 'create', 'a2', { title: 'x' }),
      mutation('m3', 'create', 'a3', { title: 'bad' }),
    ]);
    expect(server.handlePush(push, { retryIds: ['m1'], retryAfterMs: 5, rejectIds: ['m2'] })).toEqual({
      type: 'results',
      results: [
        { id: 'm1', status: 'retry', retryAfterMs: 5 },
        {
          id: 'm2',
          status: 'rejected',
          error: { code: 'invalid', message: 'rejected by the fault schedule' },
        },
        { id: 'm3', status: 'rejected', error: { code: 'invalid', message: 'title is bad' } },
      ],
    });
    expect(server.handlePush(push)).toMatchObject({
      results: [{ status: 'applied' }, { status: 'rejected' }, { status: 'rejected' }],
    });
  });

  it('answers 400 (rejected, nothing applied) to what the reference server would refuse', () => {
    const server = createModelServer();
    const twice = server.handlePush(
      pushOf([mutation('m1', 'create', 'a', { t: 1 }), mutation('m1', 'create', 'b', { t: 1 })]),
    );
    expect(twice).toMatchObject({
      type: 'failure',
      failure: { class: 'rejected', code: 'http-400', status: 400 },
    });
    const etag = server.handlePush(
      pushOf([{ ...mutation('m2', 'update', 'a', { t: 1 }), baseVersion: 'W/"1"' }]),
    );
    expect(etag).toMatchObject({ type: 'failure', failure: { code: 'http-400' } });
    expect(server.log()).toEqual([]);
  });

  it('partitions by org, else by user: keys and records of one scope are invisible to another', () => {
    const server = createModelServer();
    const other: Scope = { userId: 'u2', orgId: 'o2' };
    const sameOrg: Scope = { userId: 'u9', orgId: 'o1' };
    server.handlePush(pushOf([mutation('m1', 'create', 'a1', { t: 1 })]));
    expect(
      server.handlePush(pushOf([mutation('m1', 'create', 'a1', { t: 1 })], 'activity', other)),
    ).toMatchObject({
      results: [{ status: 'applied' }],
    });
    expect(
      server.handlePush(pushOf([mutation('m1', 'create', 'a1', { t: 1 })], 'activity', sameOrg)),
    ).toMatchObject({
      results: [{ status: 'duplicate' }],
    });
    expect(server.records(other, 'activity').size).toBe(1);
    expect(server.record({ userId: 'u1' }, 'activity', 'a1')).toBeUndefined();
  });
});

describe('createModelServer: pull', () => {
  it('pages the change log with an opaque cursor, per partition and entity type', () => {
    const server = createModelServer();
    for (let i = 1; i <= 5; i++) server.put(SCOPE, 'activity', `a${i}`, { i });
    server.put({ userId: 'x' }, 'activity', 'hidden', { i: 0 });
    server.put(SCOPE, 'contact', 'c1', { i: 0 });
    server.remove(SCOPE, 'activity', 'a2');
    const first = server.handlePull({ entity: 'activity', scope: SCOPE, cursor: null, limit: 4 });
    expect(first).toMatchObject({ type: 'page', hasMore: true });
    if (first.type !== 'page') throw new Error('expected a page');
    expect(first.changes.map((c) => `${c.entityId}:${c.op}:${c.version}`)).toEqual([
      'a1:upsert:1',
      'a2:upsert:1',
      'a3:upsert:1',
      'a4:upsert:1',
    ]);
    const second = server.handlePull({ entity: 'activity', scope: SCOPE, cursor: first.cursor, limit: 4 });
    if (second.type !== 'page') throw new Error('expected a page');
    expect(second.changes.map((c) => `${c.entityId}:${c.op}:${c.version}`)).toEqual([
      'a5:upsert:1',
      'a2:delete:2',
    ]);
    expect(second.hasMore).toBe(false);
    const empty = server.handlePull({ entity: 'activity', scope: SCOPE, cursor: second.cursor, limit: 4 });
    expect(empty).toEqual({ type: 'page', changes: [], cursor: second.cursor, hasMore: false });
  });

  it('refuses a cursor it did not issue and a bad limit with 400', () => {
    const server = createModelServer();
    for (const request of [
      { entity: 'activity', scope: SCOPE, cursor: 'garbage!', limit: 10 },
      { entity: 'activity', scope: SCOPE, cursor: 'c01', limit: 10 },
      { entity: 'activity', scope: SCOPE, cursor: null, limit: 0 },
    ]) {
      expect(server.handlePull(request)).toMatchObject({ type: 'failure', failure: { code: 'http-400' } });
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Faulty network, directly
// ---------------------------------------------------------------------------------------------

describe('createFaultyNetwork: each fault, directly', () => {
  const cases: { fault: Fault; reached: boolean; failure: Record<string, unknown> | null }[] = [
    { fault: { kind: 'offline' }, reached: false, failure: { class: 'offline', code: 'econnrefused' } },
    { fault: { kind: 'reset-before' }, reached: false, failure: { class: 'ambiguous', code: 'econnreset' } },
    { fault: { kind: 'reset-after' }, reached: true, failure: { class: 'ambiguous', code: 'econnreset' } },
    {
      fault: { kind: 'timeout-after-commit' },
      reached: true,
      failure: { class: 'ambiguous', code: 'timeout' },
    },
    { fault: { kind: 'malformed' }, reached: true, failure: { class: 'retryable', code: 'bad-response' } },
    {
      fault: { kind: 'status', status: 429, retryAfterMs: 9_000 },
      reached: false,
      failure: { class: 'retryable', code: 'http-429', status: 429, retryAfterMs: 9_000 },
    },
    {
      fault: { kind: 'unauthorized-until-refresh' },
      reached: false,
      failure: { class: 'auth', code: 'http-401', status: 401 },
    },
    { fault: { kind: 'partial', pattern: ['retry'] }, reached: true, failure: null },
  ];
  for (const { fault, reached, failure } of cases) {
    it(`${fault.kind}: ${reached ? 'the server commits' : 'nothing reaches the server'}, the client gets ${failure?.['class'] ?? 'results'}`, async () => {
      const server = createModelServer();
      const network = createFaultyNetwork(server);
      network.faults.next(fault);
      const response = await network.push(pushOf([mutation('m1', 'create', 'a1', { t: 1 })]));
      if (failure === null)
        expect(response).toMatchObject({ type: 'results', results: [{ status: 'retry' }] });
      else expect(response).toMatchObject({ type: 'failure', failure });
      expect(server.log().length).toBe(reached && fault.kind !== 'partial' ? 1 : 0);
      expect(network.requests()).toMatchObject([
        { type: 'push', callNumber: 1, fault, reachedServer: reached },
      ]);
    });
  }

  it('status faults are classified as the fetch adapter classifies a batch endpoint', () => {
    expect(failureOfStatus(401)).toMatchObject({ class: 'auth', code: 'http-401' });
    expect(failureOfStatus(503, 1_000)).toMatchObject({
      class: 'retryable',
      code: 'http-503',
      retryAfterMs: 1_000,
    });
    for (const status of [408, 425, 500, 502, 504]) expect(failureOfStatus(status).class).toBe('retryable');
    for (const status of [400, 403, 413, 422]) {
      expect(failureOfStatus(status, 5)).toEqual({
        class: 'rejected',
        code: `http-${status}`,
        status,
        message: expect.any(String),
      });
    }
    expect(failureOfStatus(409)).toMatchObject({ class: 'conflict' });
    expect(failureOfStatus(404)).toMatchObject({ class: 'retryable', code: 'endpoint-not-found' });
    expect(failureOfStatus(302)).toMatchObject({ class: 'retryable', code: 'bad-response' });
    expect(() => checkFault({ kind: 'status', status: 204 })).toThrow(ConfigError);
  });

  it('unauthorized-until-refresh holds every request at 401 until a refresh succeeds; refreshes are counted', async () => {
    const network = createFaultyNetwork(createModelServer(), { refresh: (_scope, n) => n >= 2 });
    network.faults.next({ kind: 'unauthorized-until-refresh' }, { kind: 'offline' });
    const push = () => network.push(pushOf([mutation('m1', 'create', 'a1', { t: 1 })]));
    expect(await push()).toMatchObject({ failure: { class: 'auth' } });
    expect(await push()).toMatchObject({ failure: { class: 'auth' } });
    expect(await network.refreshCredentials!(SCOPE, new AbortController().signal)).toBe(false);
    expect(network.isUnauthorized).toBe(true);
    expect(await network.refreshCredentials!(SCOPE, new AbortController().signal)).toBe(true);
    expect(network.refreshes()).toBe(2);
    // The queued fault waited for a usable network.
    expect(await push()).toMatchObject({ failure: { class: 'offline' } });
    expect(await push()).toMatchObject({ type: 'results', results: [{ status: 'applied' }] });
    expect(
      createFaultyNetwork(createModelServer(), { canRefresh: false }).refreshCredentials,
    ).toBeUndefined();
  });

  it('partial by ids or by pattern; by the injected random source otherwise, reproducibly', async () => {
    const network = createFaultyNetwork(createModelServer());
    const batch = (prefix: string) =>
      pushOf(
        ['1', '2', '3', '4'].map((n) => mutation(`${prefix}${n}`, 'create', `${prefix}-a${n}`, { t: 1 })),
      );
    network.faults.next(
      { kind: 'partial', retryIds: ['x2'], rejectIds: ['x4'] },
      { kind: 'partial', pattern: ['apply', 'reject'] },
    );
    const byIds = await network.push(batch('x'));
    expect(byIds.type === 'results' && byIds.results.map((r) => r.status)).toEqual([
      'applied',
      'retry',
      'applied',
      'rejected',
    ]);
    const byPattern = await network.push(batch('y'));
    expect(byPattern.type === 'results' && byPattern.results.map((r) => r.status)).toEqual([
      'applied',
      'rejected',
      'applied',
      'rejected',
    ]);
    const statuses = async (seed: number) => {
      const n = createFaultyNetwork(createModelServer(), {
        random: createSeededRandom(seed),
        schedule: [{ kind: 'partial' }],
      });
      const r = await n.push(batch('z'));
      return r.type === 'results' ? r.results.map((x) => x.status) : [];
    };
    expect(await statuses(3)).toEqual(await statuses(3));
  });

  it('an aborted signal: nothing sent; aborted mid-request (latency on a fake clock): applied, client gets aborted', async () => {
    const clock = createFakeClock();
    const timers = createFakeTimers(clock);
    const server = createModelServer();
    const network = createFaultyNetwork(server, { clock, latencyMs: 1_000 });
    const before = new AbortController();
    before.abort();
    const early = await network.push({
      ...pushOf([mutation('m1', 'create', 'a1', { t: 1 })]),
      signal: before.signal,
    });
    expect(early).toMatchObject({ type: 'failure', failure: { class: 'aborted' } });
    expect(server.log()).toEqual([]);
    const during = new AbortController();
    timers.setTimeout(() => during.abort(), 500);
    const late = await network.push({
      ...pushOf([mutation('m1', 'create', 'a1', { t: 1 })]),
      signal: during.signal,
    });
    expect(late).toMatchObject({ type: 'failure', failure: { class: 'aborted' } });
    expect(server.log()).toHaveLength(1);
    expect(clock.elapsed()).toBe(1_000);
  });

  it('schedules: an array by call number, or a function; push and pull are numbered apart', async () => {
    const seen: number[] = [];
    const network = createFaultyNetwork(createModelServer(), {
      schedule: [null, { kind: 'offline' }],
      pullSchedule: (_request, n) => {
        seen.push(n);
        return n === 1 ? { kind: 'status', status: 503, retryAfterMs: 10 } : undefined;
      },
    });
    const push = () => network.push(pushOf([mutation(`m${network.requests().length}`, 'delete', 'x')]));
    expect((await push()).type).toBe('results');
    expect(await push()).toMatchObject({ failure: { class: 'offline' } });
    const pull = () =>
      network.pull({
        entity: 'activity',
        scope: SCOPE,
        clientId: 'c1',
        cursor: null,
        limit: 10,
        signal: new AbortController().signal,
      });
    expect(await pull()).toMatchObject({ type: 'failure', failure: { code: 'http-503', retryAfterMs: 10 } });
    expect(await pull()).toMatchObject({ type: 'page' });
    expect(seen).toEqual([1, 2]);
    network.setOnline(false);
    expect(await pull()).toMatchObject({ failure: { class: 'offline' } });
    expect(() =>
      createFaultyNetwork(createModelServer(), { schedule: [{ kind: 'nope' } as unknown as Fault] }),
    ).toThrow(/expected a fault with kind/);
  });
});

// ---------------------------------------------------------------------------------------------
// Against a real engine
// ---------------------------------------------------------------------------------------------

async function setup(
  options: FaultyNetworkOptions & { server?: ModelServerOptions; engine?: Partial<SyncEngineOptions> } = {},
) {
  const clock = createFakeClock();
  const timers = createFakeTimers(clock);
  const server = createModelServer(options.server);
  const network = createFaultyNetwork(server, { ...options, clock: options.clock ?? clock });
  const engine = createSyncEngine({
    storage: createBetterSqlite3Storage(new Database(':memory:')),
    entities: { activity: {}, contact: {} },
    network,
    clock,
    timers,
    random: createSeededRandom(3),
    ...options.engine,
  });
  engines.push(engine);
  await engine.open();
  await engine.start(SCOPE);
  return { engine, clock, timers, server, network };
}

/** runOnce until nothing sendable remains; fails the test when that takes more than `maxRuns`. */
async function drain(
  engine: SyncEngine,
  clock: ReturnType<typeof createFakeClock>,
  maxRuns = 20,
): Promise<readonly RunReport[]> {
  const { reports, isIdle } = await runUntilIdle(engine, clock, { maxRuns });
  if (!isIdle)
    throw new Error(`not drained after ${maxRuns} runs: ${reports.map((r) => r.outcome).join(', ')}`);
  return reports;
}

async function enqueueCreates(
  engine: SyncEngine,
  n: number,
  entity = 'activity',
): Promise<EnqueuedMutation[]> {
  const out: EnqueuedMutation[] = [];
  for (let i = 0; i < n; i++)
    out.push(await engine.enqueue({ entity, op: 'create', entityId: `${entity}-${i}`, data: { i } }));
  return out;
}

async function delivery(
  engine: SyncEngine,
  server: ModelServer,
  enqueued: readonly AcknowledgedMutation[],
  discarded: string[] = [],
) {
  return checkDelivery({
    enqueued,
    applied: server.log(),
    queued: await engine.queue.list({ scope: 'all', limit: 1000 }),
    discarded,
  });
}

describe('every fault against a real engine (better-sqlite3 :memory:, fake clock and timers)', () => {
  it('offline: the run stops, no attempt counted, nothing applied; the next run delivers', async () => {
    const { engine, clock, server, network } = await setup({ schedule: [{ kind: 'offline' }] });
    const enqueued = await enqueueCreates(engine, 3);
    const first = await engine.runOnce();
    expect(first.outcome).toBe('offline');
    expect(server.log()).toEqual([]);
    expect((await engine.queue.list()).every((m) => m.attempts === 0 && m.state === 'pending')).toBe(true);
    await drain(engine, clock);
    expect(server.log()).toHaveLength(3);
    expect(network.requests().map((r) => r.fault?.kind ?? 'none')).toEqual(['offline', 'none']);
    assertDelivery(await delivery(engine, server, enqueued));
  });

  it('reset-before: nothing applied, one attempt, resent with the same key and applied fresh', async () => {
    const { engine, clock, server, network } = await setup({ schedule: [{ kind: 'reset-before' }] });
    const [m] = await enqueueCreates(engine, 1);
    expect((await engine.runOnce()).outcome).toBe('server-error');
    expect(await engine.queue.get(m!.id)).toMatchObject({ attempts: 1, lastError: { code: 'econnreset' } });
    expect(server.log()).toEqual([]);
    await drain(engine, clock);
    const [, resend] = network.requests();
    expect(resend?.type === 'push' && resend.request.mutations[0]?.key).toBe(m!.key);
    expect(resend?.response).toMatchObject({ results: [{ status: 'applied' }] });
    assertDelivery(await delivery(engine, server, [m!]));
  });

  for (const kind of ['reset-after', 'timeout-after-commit'] as const) {
    it(`${kind}: applied but unconfirmed; the resend is replayed as duplicate and the log has one entry`, async () => {
      const { engine, clock, server, network } = await setup({ schedule: [{ kind }] });
      const [m] = await enqueueCreates(engine, 1);
      expect((await engine.runOnce()).outcome).toBe('server-error');
      expect(server.log()).toHaveLength(1);
      expect(await engine.queue.get(m!.id)).toMatchObject({ state: 'pending', attempts: 1 });
      await drain(engine, clock);
      expect(network.requests().map((r) => r.response)).toMatchObject([
        { type: 'failure', failure: { class: 'ambiguous' } },
        { type: 'results', results: [{ id: m!.id, status: 'duplicate', version: 1 }] },
      ]);
      expect(server.log()).toHaveLength(1);
      expect(await engine.queue.get(m!.id)).toBeUndefined();
      assertDelivery(await delivery(engine, server, [m!]));
    });
  }

  it('malformed: a 200 after applying never confirms; the resend is a duplicate (FAULTS 15/22)', async () => {
    const { engine, clock, server } = await setup({ schedule: [{ kind: 'malformed' }] });
    const [m] = await enqueueCreates(engine, 1);
    const confirmed: string[] = [];
    engine.on('mutation:confirmed', (e) => confirmed.push(e.id));
    const first = await engine.runOnce();
    expect(first.counts.pushed).toBe(0);
    expect(confirmed).toEqual([]);
    expect(await engine.queue.get(m!.id)).toMatchObject({
      state: 'pending',
      lastError: { code: 'bad-response' },
    });
    await drain(engine, clock);
    expect(confirmed).toEqual([m!.id]);
    expect(server.log()).toHaveLength(1);
    expect(server.stats().duplicates).toBe(1);
  });

  it('status 429 with Retry-After: nothing applied, throttled, not resent before it (FAULTS 16)', async () => {
    const { engine, clock, server } = await setup({
      schedule: [{ kind: 'status', status: 429, retryAfterMs: 120_000 }],
    });
    const [m] = await enqueueCreates(engine, 1);
    const report = await engine.runOnce();
    expect(report.outcome).toBe('throttled');
    expect(server.log()).toEqual([]);
    expect((await engine.queue.get(m!.id))!.nextAttemptAt - clock.now()).toBeGreaterThanOrEqual(120_000);
    clock.advance(119_000);
    expect((await engine.runOnce()).counts.batches).toBe(0);
    await drain(engine, clock);
    expect(server.log()).toHaveLength(1);
  });

  it('status 500/502/504: retried with backoff; 422: dead-lettered while the rest drains (FAULTS 17)', async () => {
    const { engine, clock, server } = await setup({
      schedule: (request) => (request.entity === 'contact' ? { kind: 'status', status: 422 } : undefined),
    });
    const activities = await enqueueCreates(engine, 2, 'activity');
    const contacts = await enqueueCreates(engine, 2, 'contact');
    await drain(engine, clock);
    expect(server.log().map((e) => e.entity)).toEqual(['activity', 'activity']);
    expect((await engine.queue.list()).map((m) => [m.id, m.state])).toEqual(
      contacts.map((c) => [c.id, 'failed']),
    );
    const result = await delivery(engine, server, [...activities, ...contacts]);
    expect(result).toMatchObject({ ok: true, delivered: 2 });

    const retry = await setup({
      schedule: [
        { kind: 'status', status: 500 },
        { kind: 'status', status: 502 },
        { kind: 'status', status: 504 },
      ],
    });
    const [m] = await enqueueCreates(retry.engine, 1);
    const reports = await drain(retry.engine, retry.clock);
    expect(reports.map((r) => r.outcome)).toEqual(['server-error', 'server-error', 'server-error', 'ok']);
    expect(retry.server.log()).toHaveLength(1);
    assertDelivery(await delivery(retry.engine, retry.server, [m!]));
  });

  it('status 401 once: one refresh, one resend, delivered', async () => {
    const { engine, clock, server, network } = await setup({ schedule: [{ kind: 'status', status: 401 }] });
    const enqueued = await enqueueCreates(engine, 2);
    await drain(engine, clock);
    expect(network.refreshes()).toBe(1);
    expect(server.log()).toHaveLength(2);
    assertDelivery(await delivery(engine, server, enqueued));
  });

  it('partial: each item recorded on its own — applied, retried, rejected (FAULTS 21)', async () => {
    const { engine, clock, server } = await setup({
      schedule: [{ kind: 'partial', pattern: ['apply', 'retry', 'reject'] }],
    });
    const enqueued = await enqueueCreates(engine, 3);
    const first = await engine.runOnce();
    expect(first.counts).toMatchObject({ pushed: 1, retried: 1, failed: 1 });
    await drain(engine, clock);
    expect(server.log().map((e) => e.key)).toEqual([enqueued[0]!.key, enqueued[1]!.key]);
    expect((await engine.queue.list()).map((m) => [m.id, m.state])).toEqual([[enqueued[2]!.id, 'failed']]);
    assertDelivery(await delivery(engine, server, enqueued));
    // The server remembers the rejection under the key: retrying the dead letter sends it with a
    // new key, and both keys stand for the one mutation in the checker.
    await engine.queue.retry([enqueued[2]!.id]);
    const retried = (await engine.queue.get(enqueued[2]!.id))!;
    expect(retried.key).not.toBe(enqueued[2]!.key);
    await drain(engine, clock);
    expect(server.log().map((e) => e.key)).toEqual([enqueued[0]!.key, enqueued[1]!.key, retried.key]);
    assertDelivery(await delivery(engine, server, [...enqueued, retried]));
  });

  it('unauthorized-until-refresh: one shared refresh, then delivered; a refresh that fails pauses sync', async () => {
    const ok = await setup({ schedule: [{ kind: 'unauthorized-until-refresh' }] });
    const enqueued = [
      ...(await enqueueCreates(ok.engine, 2, 'activity')),
      ...(await enqueueCreates(ok.engine, 2, 'contact')),
    ];
    const report = await ok.engine.runOnce();
    expect(report.outcome).toBe('ok');
    expect(ok.network.refreshes()).toBe(1);
    assertDelivery(await delivery(ok.engine, ok.server, enqueued));
    expect(ok.server.log()).toHaveLength(4);

    const denied = await setup({ schedule: [{ kind: 'unauthorized-until-refresh' }], refresh: () => false });
    await enqueueCreates(denied.engine, 2);
    expect((await denied.engine.runOnce()).outcome).toBe('auth-required');
    expect((await denied.engine.queue.list()).every((m) => m.attempts === 0)).toBe(true);
    expect(denied.server.log()).toEqual([]);
  });

  it('a conflict provoked with server.put stops the mutation in conflict; its key is never applied', async () => {
    const { engine, clock, server } = await setup();
    server.put(SCOPE, 'activity', 'activity-0', { title: 'edited elsewhere' });
    const enqueued = await enqueueCreates(engine, 2);
    await drain(engine, clock);
    expect((await engine.queue.list()).map((m) => [m.entityId, m.state])).toEqual([
      ['activity-0', 'conflict'],
    ]);
    expect(server.log().map((e) => e.entityId)).toEqual(['activity-1']);
    assertDelivery(await delivery(engine, server, enqueued));
  });

  it('the deadline fires mid-request (latency on the fake clock): the run is cut, the resend is a duplicate', async () => {
    const { engine, clock, server } = await setup({ latencyMs: 10_000 });
    const [m] = await enqueueCreates(engine, 1);
    const report = await engine.runOnce({ deadline: clock.now() + 5_000 });
    expect(report.outcome).toBe('deadline');
    expect(server.log()).toHaveLength(1);
    expect(await engine.queue.get(m!.id)).toMatchObject({ state: 'pending', attempts: 0 });
    await drain(engine, clock);
    expect(server.stats()).toMatchObject({ applied: 1, duplicates: 1 });
    assertDelivery(await delivery(engine, server, [m!]));
  });
});

describe('runUntilIdle', () => {
  it('advances the fake clock to each next due time, lets the test play the app, and stops at maxRuns', async () => {
    const { engine, clock, network } = await setup({
      schedule: [{ kind: 'reset-before' }, { kind: 'status', status: 503, retryAfterMs: 600_000 }],
    });
    await enqueueCreates(engine, 1);
    const start = clock.now();
    const seen: string[] = [];
    const { reports, isIdle } = await runUntilIdle(engine, clock, {
      runOptions: (i) => ({ trigger: `run-${i}` }),
      onReport: (report, i) => {
        seen.push(`${i}:${report.trigger}:${report.outcome}`);
      },
    });
    expect(isIdle).toBe(true);
    expect(seen).toEqual(['0:run-0:server-error', '1:run-1:throttled', '2:run-2:ok']);
    expect(reports).toHaveLength(3);
    expect(clock.now() - start).toBeGreaterThanOrEqual(600_000);
    expect(network.requests()).toHaveLength(3);

    network.setOnline(false);
    await enqueueCreates(engine, 1, 'contact');
    const offline = await runUntilIdle(engine, clock, { maxRuns: 3 });
    expect(offline).toMatchObject({ isIdle: false });
    expect(offline.reports.map((r) => r.outcome)).toEqual(['offline', 'offline', 'offline']);
    await expect(runUntilIdle(engine, clock, { maxRuns: 0 })).rejects.toThrow(ConfigError);
  });
});

// ---------------------------------------------------------------------------------------------
// The delivery checker
// ---------------------------------------------------------------------------------------------

describe('checkDelivery (Jepsen total-queue terms)', () => {
  const ack = (
    id: string,
    entityId = 'r1',
    extra: Partial<AcknowledgedMutation> = {},
  ): AcknowledgedMutation => ({
    id,
    key: `k-${id}`,
    scope: SCOPE,
    entity: 'activity',
    entityId,
    op: 'update',
    ...extra,
  });
  const applied = (
    m: AcknowledgedMutation,
    extra: Partial<AppliedMutationRecord> = {},
  ): AppliedMutationRecord => ({
    key: m.key,
    scope: m.scope,
    entity: m.entity,
    entityId: m.entityId,
    op: m.op,
    ...extra,
  });

  it('ok when every acknowledged mutation is applied once, queued or discarded', () => {
    const [a, b, c, d] = [ack('a'), ack('b'), ack('c'), ack('d')];
    const result = checkDelivery({
      enqueued: [a!, b!, c!, d!],
      applied: [applied(a!), applied(b!)],
      queued: ['c'],
      discarded: [{ id: 'd' }],
    });
    expect(result).toEqual({
      ok: true,
      lost: [],
      unexpected: [],
      duplicated: [],
      outOfOrder: [],
      delivered: 2,
    });
    expect(() => assertDelivery(result)).not.toThrow();
  });

  it('lost: acknowledged, not applied, not queued, not discarded', () => {
    const [a, b] = [ack('a'), ack('b')];
    const result = checkDelivery({ enqueued: [a!, b!], applied: [applied(a!)], queued: [] });
    expect(result.ok).toBe(false);
    expect(result.lost).toEqual([b]);
  });

  it('unexpected: never acknowledged, no key, or applied under another scope or entity type', () => {
    const a = ack('a');
    const stray = applied(ack('zzz'));
    const noKey = { ...applied(a), key: null };
    const otherScope = applied(a, { scope: { userId: 'u2' } });
    const result = checkDelivery({ enqueued: [a], applied: [stray, noKey, otherScope], queued: ['a'] });
    expect(result.unexpected).toEqual([stray, noKey, otherScope]);
    expect(result.lost).toEqual([]);
  });

  it('duplicated: one key applied twice', () => {
    const a = ack('a');
    const result = checkDelivery({ enqueued: [a], applied: [applied(a), applied(a)], queued: [] });
    expect(result.duplicated).toEqual([{ key: 'k-a', id: 'a', count: 2 }]);
    // Two keys of one mutation (a retried dead letter) applied: still one mutation applied twice.
    const again = { ...a, key: 'k-a2' };
    const twoKeys = checkDelivery({
      enqueued: [a, again],
      applied: [applied(a), applied(again)],
      queued: [],
    });
    expect(twoKeys.duplicated).toEqual([{ key: 'k-a', id: 'a', count: 2 }]);
    expect(result.outOfOrder).toEqual([]);
  });

  it('outOfOrder: per record, by the client id — other records interleave freely', () => {
    const [a1, b1, a2, b2] = [ack('a1', 'A'), ack('b1', 'B'), ack('a2', 'A'), ack('b2', 'B')];
    const ok = checkDelivery({
      enqueued: [a1!, b1!, a2!, b2!],
      applied: [b1, a1, b2, a2].map((m) => applied(m!)),
      queued: [],
    });
    expect(ok.ok).toBe(true);
    const bad = checkDelivery({
      enqueued: [a1!, b1!, a2!, b2!],
      applied: [
        applied(a2!, { entityId: 'srv-9' }),
        applied(a1!, { entityId: 'srv-9' }),
        applied(b1!),
        applied(b2!),
      ],
      queued: [],
    });
    expect(bad.outOfOrder).toEqual([
      { scope: SCOPE, entity: 'activity', entityId: 'A', expected: ['a1', 'a2'], actual: ['a2', 'a1'] },
    ]);
  });

  it('coalescing: a merged enqueue repeats an id (first place kept); a cancelled one counts as discarded', () => {
    const create = ack('m1', 'A', { op: 'create', coalesced: 'none' });
    const merged = ack('m1', 'A', { op: 'create', coalesced: 'merged' });
    const other = ack('m2', 'A', { op: 'delete' });
    const cancelled = ack('m3', 'B', { op: 'create', coalesced: 'cancelled' });
    const result = checkDelivery({
      enqueued: [create, other, merged, cancelled],
      applied: [applied(create), applied(other)],
      queued: [],
    });
    expect(result).toMatchObject({ ok: true, delivered: 2 });
  });

  it('assertDelivery throws a readable DeliveryCheckError naming every anomaly', () => {
    const [a, b] = [ack('a'), ack('b')];
    const result = checkDelivery({
      enqueued: [a!, b!],
      applied: [applied(b!), applied(b!), applied(a!), applied(ack('x'))],
      queued: [],
    });
    let thrown: unknown;
    try {
      assertDelivery(result);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(DeliveryCheckError);
    const message = (thrown as Error).message;
    expect(message).toMatch(/unexpected .*\(1\)/);
    expect(message).toMatch(/duplicated .*\(1\):\n {4}- mutation b \(key k-b\) applied 2 times/);
    expect(message).toMatch(/out of order .*\n {4}- activity\/r1 \(u1@o1\): enqueued a, b; applied b, a/);
    expect((thrown as DeliveryCheckError).result).toBe(result);
  });
});

// ---------------------------------------------------------------------------------------------
// Arbitraries
// ---------------------------------------------------------------------------------------------

describe('arbitraries', () => {
  it('generate valid values', () => {
    fc.assert(
      fc.property(
        arbMutationInput(fc, { entities: ['activity', 'contact'], ids: ['a', 'b'] }),
        arbFault(fc),
        arbFaultSchedule(fc, { maxLength: 5 }),
        arbClockJump(fc),
        arbScope(fc),
        (input, fault, schedule, jump, scope) => {
          expect(['activity', 'contact']).toContain(input.entity);
          expect(input.op === 'delete' ? input.data : typeof input.data).toBe(
            input.op === 'delete' ? undefined : 'object',
          );
          expect(checkFault(fault)).toBe(fault);
          expect(schedule.length).toBeLessThanOrEqual(5);
          for (const f of schedule) if (f !== null) checkFault(f);
          expect(Number.isSafeInteger(jump)).toBe(true);
          expect(['u1', 'u2']).toContain(scope.userId);
        },
      ),
      { numRuns: 200, seed: 1 },
    );
  });

  it('cover every fault kind, and can be narrowed', () => {
    const kinds = new Set(fc.sample(arbFault(fc), { numRuns: 500, seed: 2 }).map((f) => f.kind));
    expect([...kinds].sort()).toEqual([...FAULT_KINDS].sort());
    expect(new Set(fc.sample(arbFault(fc, { kinds: ['offline'] }), 20).map((f) => f.kind))).toEqual(
      new Set(['offline']),
    );
    expect(fc.sample(arbScope(fc, { orgIds: [] }), 20).every((s) => s.orgId === undefined)).toBe(true);
  });

  it('fail with a clear ConfigError when fast-check is not passed', () => {
    const noFc = undefined as unknown as typeof fc;
    expect(() => arbFault(noFc)).toThrow(/expected the fast-check module .*optional peer dependency/);
    expect(() => arbMutationInput(fc, { entities: [], ids: ['a'] })).toThrow(ConfigError);
    expect(() => arbFault(fc, { statuses: [200] })).toThrow(ConfigError);
  });
});
