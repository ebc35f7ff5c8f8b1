/**
 * Scheduling end to end (DESIGN.md sections 1 and 4): a device's day with a fake clock, a manual
 * scheduler and a connectivity port the test flips. Every scheduling decision is asserted; the
 * next run is always requested while anything is pending; nothing runs while offline.
 */
import Database from 'better-sqlite3';
import {
  ConfigError,
  type ConnectivityAdapter,
  createManualScheduler,
  createSyncEngine,
  type NetworkAdapter,
  type PushRequest,
  type PushResponse,
  type RunReport,
  type SyncEngine,
} from 'sync-core';
import { createBetterSqlite3Storage } from 'sync-core/better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { manualClock, seededRandom } from '../helpers/storage-factories.js';

const HOUR = 3_600_000;
const MINUTE = 60_000;

function toggleConnectivity(initial = true) {
  let online = initial;
  const listeners = new Set<(online: boolean) => void>();
  const adapter: ConnectivityAdapter = {
    isOnline: () => online,
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
  return {
    adapter,
    set(value: boolean) {
      online = value;
      for (const listener of listeners) listener(value);
    },
  };
}

const engines: SyncEngine[] = [];
afterEach(async () => {
  for (const engine of engines.splice(0)) await engine.close();
});

describe("a device's day", () => {
  it('login, offline edits, coming online, a throttling server, periodic runs, logout: every decision', async () => {
    const clock = manualClock(Date.UTC(2026, 10, 25, 8, 0, 0));
    const scheduler = createManualScheduler(clock);
    const net = toggleConnectivity(true);
    let serverMode: 'ok' | 'throttle' = 'ok';
    const sent: string[] = [];
    const network: NetworkAdapter = {
      async push(request: PushRequest): Promise<PushResponse> {
        if (serverMode === 'throttle') {
          return {
            type: 'failure',
            failure: {
              class: 'retryable',
              code: 'http-503',
              message: '503',
              status: 503,
              retryAfterMs: 120_000,
            },
          };
        }
        sent.push(...request.mutations.map((m) => m.entityId));
        return {
          type: 'results',
          results: request.mutations.map((m) => ({ id: m.id, status: 'applied', version: 1 })),
        };
      },
    };
    const engine = createSyncEngine({
      storage: createBetterSqlite3Storage(new Database(':memory:')),
      entities: { activity: {} },
      network,
      clock,
      random: seededRandom(3),
      scheduler,
      connectivity: net.adapter,
    });
    engines.push(engine);
    const reports: RunReport[] = [];
    engine.on('run:finished', (r) => reports.push(r));
    await engine.open();

    // 08:00 login: nothing queued, a periodic refresh in 15 minutes.
    await engine.start({ userId: 'peer-mentor' });
    expect(scheduler.current()).toMatchObject({ reason: 'periodic', notBefore: clock.now() + 15 * MINUTE });

    // 08:05 the worker goes offline and registers three activities.
    clock.advance(5 * MINUTE);
    net.set(false);
    for (const id of ['a1', 'a2', 'a3'])
      await engine.enqueue({ entity: 'activity', op: 'create', entityId: id, data: {} });
    await engine.nextRunRequest(); // let the enqueue's reschedule settle
    expect(scheduler.current()).toMatchObject({ notBefore: clock.now(), requiresNetwork: true });
    // The OS runs the job, but the device is offline: no run starts, nothing is sent.
    expect(await scheduler.runDue()).toBe(1);
    expect(sent).toEqual([]);
    expect((await engine.queue.stats()).pending).toBe(3);
    // Waiting for connectivity, not backing off.
    expect(scheduler.current()).toMatchObject({ reason: 'connectivity', notBefore: clock.now() });

    // 09:00 back online: a run within a jittered 10 s, then the server says 503 Retry-After 120.
    clock.set(Date.UTC(2026, 10, 25, 9, 0, 0));
    serverMode = 'throttle';
    net.set(true);
    await engine.nextRunRequest();
    const reconnect = scheduler.current()!;
    expect(reconnect.reason).toBe('connectivity');
    expect(reconnect.notBefore - clock.now()).toBeGreaterThanOrEqual(0);
    expect(reconnect.notBefore - clock.now()).toBeLessThanOrEqual(10_000);
    clock.set(reconnect.notBefore);
    await scheduler.runDue();
    expect(reports.at(-1)?.outcome).toBe('throttled');
    // Next run: not before the server's Retry-After.
    const afterThrottle = scheduler.current()!;
    expect(afterThrottle.notBefore - clock.now()).toBeGreaterThanOrEqual(120_000);
    expect(afterThrottle.notBefore - clock.now()).toBeLessThanOrEqual(15 * MINUTE);

    // The server recovers; the retry run delivers everything with no user action.
    serverMode = 'ok';
    clock.set(afterThrottle.notBefore);
    await scheduler.runDue();
    expect(sent.sort()).toEqual(['a1', 'a2', 'a3']);
    expect(reports.at(-1)).toMatchObject({ outcome: 'ok', counts: { pushed: 3 } });
    expect(scheduler.current()).toMatchObject({ reason: 'periodic', notBefore: clock.now() + 15 * MINUTE });

    // Periodic refreshes keep coming with nothing queued.
    clock.advance(15 * MINUTE);
    await scheduler.runDue();
    expect(reports.at(-1)?.outcome).toBe('ok');
    expect(scheduler.current()).toMatchObject({ reason: 'periodic' });

    // 17:00 logout: nothing is scheduled any more.
    clock.set(Date.UTC(2026, 10, 25, 17, 0, 0));
    await engine.stop();
    expect(scheduler.current()).toBeNull();
    expect(await engine.nextRunRequest()).toBeNull();
    expect(await scheduler.runDue()).toBe(0);
  });

  it('an offline run with connectivity saying online backs off run-level, growing, persisted across engines', async () => {
    const clock = manualClock();
    const scheduler = createManualScheduler(clock);
    const network: NetworkAdapter = {
      push: async () => ({
        type: 'failure',
        failure: { class: 'offline', code: 'econnrefused', message: 'refused' },
      }),
    };
    const db = new Database(':memory:');
    const make = () =>
      createSyncEngine({
        storage: createBetterSqlite3Storage(db, { closeDatabase: false }),
        entities: { activity: {} },
        network,
        clock,
        random: seededRandom(9),
        scheduler,
      });
    const engine = make();
    engines.push(engine);
    await engine.open();
    await engine.start({ userId: 'u' });
    await engine.enqueue({ entity: 'activity', op: 'create', entityId: 'a', data: {} });
    const delays: number[] = [];
    for (let i = 0; i < 5; i++) {
      clock.set(scheduler.current()!.notBefore);
      await scheduler.runDue();
      const next = scheduler.current()!;
      expect(next.reason).toBe('offline-backoff');
      delays.push(next.notBefore - clock.now());
    }
    // 30 s, 60 s, 2 min, 4 min, 8 min, each with equal jitter: within [d/2, d].
    const bases = [30_000, 60_000, 120_000, 240_000, 480_000];
    delays.forEach((d, i) => {
      expect(d).toBeGreaterThanOrEqual(bases[i]! / 2);
      expect(d).toBeLessThanOrEqual(bases[i]!);
    });
    // Never counted as attempts.
    expect((await engine.queue.list())[0]?.attempts).toBe(0);
    // A fresh process (a new engine on the same database) continues the backoff where it was.
    await engine.close();
    engines.pop();
    const fresh = make();
    engines.push(fresh);
    await fresh.open();
    await fresh.start({ userId: 'u' });
    clock.advance(HOUR);
    expect((await fresh.runOnce()).outcome).toBe('offline');
    const next = (await fresh.nextRunRequest())!;
    expect(next.notBefore - clock.now()).toBeGreaterThanOrEqual(480_000);
  });

  it('a local write schedules a run at once; it never waits for the periodic refresh (no stall)', async () => {
    const clock = manualClock();
    const scheduler = createManualScheduler(clock);
    const engine = createSyncEngine({
      storage: createBetterSqlite3Storage(new Database(':memory:')),
      entities: { activity: {} },
      network: {
        push: async (r) => ({
          type: 'results',
          results: r.mutations.map((m) => ({ id: m.id, status: 'applied' })),
        }),
      },
      clock,
      scheduler,
    });
    engines.push(engine);
    await engine.open();
    await engine.start({ userId: 'u' });
    expect(scheduler.current()?.reason).toBe('periodic');
    await engine.enqueue({ entity: 'activity', op: 'create', entityId: 'a', data: {} });
    await engine.nextRunRequest();
    expect(scheduler.current()?.notBefore).toBe(clock.now());
    await scheduler.runDue();
    expect((await engine.queue.stats()).total).toBe(0);
  });

  it('connectivityDelayMaxMs widens the reconnection window for a large fleet; bad values are a ConfigError', async () => {
    const clock = manualClock();
    const scheduler = createManualScheduler(clock);
    const net = toggleConnectivity(false);
    const delays: number[] = [];
    for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
      const engine = createSyncEngine({
        storage: createBetterSqlite3Storage(new Database(':memory:')),
        entities: { activity: {} },
        network: { push: async () => ({ type: 'results', results: [] }) },
        clock,
        random: seededRandom(seed),
        scheduler,
        connectivity: net.adapter,
        connectivityDelayMaxMs: 60_000,
      });
      engines.push(engine);
      await engine.open();
      await engine.start({ userId: 'u' });
      await engine.enqueue({ entity: 'activity', op: 'create', entityId: 'a', data: {} });
      net.set(true);
      await engine.nextRunRequest();
      const request = scheduler.current()!;
      expect(request.reason).toBe('connectivity');
      delays.push(request.notBefore - clock.now());
      net.set(false);
      await engine.close();
    }
    for (const delay of delays) {
      expect(delay).toBeGreaterThanOrEqual(0);
      expect(delay).toBeLessThanOrEqual(60_000);
    }
    // Spread over the whole window, not the default 10 s.
    expect(Math.max(...delays)).toBeGreaterThan(10_000);
    for (const bad of [0, -1, 1.5, Number.NaN, '10s']) {
      expect(() =>
        createSyncEngine({
          storage: createBetterSqlite3Storage(new Database(':memory:')),
          entities: { activity: {} },
          connectivityDelayMaxMs: bad as number,
        }),
      ).toThrow(ConfigError);
    }
  });
});
