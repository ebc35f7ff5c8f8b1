import { afterEach, describe, expect, it, vi } from 'vitest';
import { backoffDelay, resolveBackoffPolicy, runBackoffDelay } from '../../src/backoff/index.js';
import type { Clock, TimerHandle, Timers } from '../../src/contracts/clock.js';
import type { RunOutcome, RunTrigger } from '../../src/engine/sync-run.js';
import { ConfigError } from '../../src/errors.js';
import {
  alwaysOnline,
  BUSY_RETRY_MAX_MS,
  BUSY_RETRY_MIN_MS,
  type ConnectivityAdapter,
  connectivityDelay,
  createBrowserConnectivity,
  createHostScheduler,
  createManualScheduler,
  createTimerScheduler,
  DEFAULT_PERIODIC_MS,
  DEFAULT_RUN_REQUEST_NAME,
  decideNextRun,
  MAX_TIMER_DELAY_MS,
  type NextRunInput,
  type RunRequest,
  resolvePeriodicMs,
} from '../../src/scheduler/index.js';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
/** 2026-11-25T10:00:00.000Z */
const NOW = Date.UTC(2026, 10, 25, 10, 0, 0);
const fixed = (value: number) => () => value;
const policy = resolveBackoffPolicy();

// ---------------------------------------------------------------------------------------------
// Fakes: a clock stepped by hand, timers that fire only when the clock is advanced, and a
// connectivity port flipped by hand. No real timers, no sleeps.
// ---------------------------------------------------------------------------------------------

interface FakeClock extends Clock {
  set(time: number): void;
}

function fakeClock(start = NOW): FakeClock {
  let time = start;
  return {
    now: () => time,
    set: (next) => {
      time = next;
    },
  };
}

interface ManualTimers extends Timers {
  /** Move the clock forward by `ms`, firing every timer that comes due, in order. */
  advance(ms: number): Promise<void>;
  /** Fire every armed timer now, whatever its delay, without moving the clock. */
  fireAllEarly(): Promise<void>;
  /** Delays of the armed timers, in ms. */
  armed(): number[];
}

/** Let every pending promise callback (and those they queue) run. */
async function flush(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}

function manualTimers(clock: FakeClock): ManualTimers {
  interface Timer {
    readonly id: number;
    readonly at: number;
    readonly delay: number;
    readonly callback: () => void;
  }
  let nextId = 1;
  const active = new Map<number, Timer>();
  const fireDue = async (until: number) => {
    for (;;) {
      const due = [...active.values()]
        .filter((t) => t.at <= until)
        .sort((a, b) => a.at - b.at || a.id - b.id);
      const first = due[0];
      if (first === undefined) break;
      active.delete(first.id);
      if (first.at > clock.now()) clock.set(first.at);
      first.callback();
      await flush();
    }
  };
  return {
    setTimeout(callback, delayMs) {
      const id = nextId++;
      active.set(id, { id, at: clock.now() + delayMs, delay: delayMs, callback });
      return id;
    },
    clearTimeout(handle: TimerHandle) {
      active.delete(handle as number);
    },
    async advance(ms) {
      const until = clock.now() + ms;
      await fireDue(until);
      clock.set(until);
      await flush();
    },
    async fireAllEarly() {
      const all = [...active.values()].sort((a, b) => a.id - b.id);
      for (const t of all) {
        active.delete(t.id);
        t.callback();
        await flush();
      }
    },
    armed: () => [...active.values()].map((t) => t.delay),
  };
}

interface ManualConnectivity extends ConnectivityAdapter {
  setOnline(online: boolean): void;
  listenerCount(): number;
}

function manualConnectivity(initial: boolean): ManualConnectivity {
  let online = initial;
  const listeners = new Set<(online: boolean) => void>();
  return {
    isOnline: () => online,
    subscribe(listener) {
      const entry = (value: boolean) => listener(value);
      listeners.add(entry);
      return () => listeners.delete(entry);
    },
    setOnline(next) {
      online = next;
      for (const listener of [...listeners]) listener(next);
    },
    listenerCount: () => listeners.size,
  };
}

function deferred(): { promise: Promise<void>; resolve: () => void; reject: (error: unknown) => void } {
  let resolve!: () => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

function request(notBefore: number, overrides: Partial<RunRequest> = {}): RunRequest {
  return { name: 'sync-core', notBefore, requiresNetwork: true, reason: 'retry-due', ...overrides };
}

// ---------------------------------------------------------------------------------------------
// decideNextRun
// ---------------------------------------------------------------------------------------------

function input(overrides: Partial<NextRunInput> = {}): NextRunInput {
  return {
    now: NOW,
    nextDueAt: null,
    hasPending: false,
    consecutiveOfflineRuns: 0,
    online: true,
    periodicMs: DEFAULT_PERIODIC_MS,
    policy,
    random: fixed(0.5),
    ...overrides,
  };
}

const afterRun = (outcome: RunOutcome) => ({ report: { outcome } });

describe('decideNextRun', () => {
  it('defaults: name sync-core, periodic 15 min, requiresNetwork, frozen result', () => {
    expect(DEFAULT_PERIODIC_MS).toBe(15 * MINUTE);
    expect(DEFAULT_RUN_REQUEST_NAME).toBe('sync-core');
    const next = decideNextRun(input());
    expect(next).toEqual({
      name: 'sync-core',
      notBefore: NOW + 15 * MINUTE,
      requiresNetwork: true,
      reason: 'periodic',
    });
    expect(Object.isFrozen(next)).toBe(true);
    expect(decideNextRun(input({ name: 'db-2' }))?.name).toBe('db-2');
  });

  describe('rule 1: paused → no schedule until sign-in', () => {
    it.each<RunOutcome>(['auth-required', 'no-scope'])('%s → null, even with work pending', (outcome) => {
      expect(decideNextRun(input({ ...afterRun(outcome), hasPending: true, nextDueAt: NOW }))).toBeNull();
    });

    it('paused: true → null even without a report (e.g. after a restart)', () => {
      expect(decideNextRun(input({ paused: true, hasPending: true, nextDueAt: NOW }))).toBeNull();
    });
  });

  describe('rule 2: busy / lease-lost → retry in 2–5 s, jittered', () => {
    it.each<RunOutcome>(['busy', 'lease-lost'])('%s', (outcome) => {
      expect(BUSY_RETRY_MIN_MS).toBe(2 * SECOND);
      expect(BUSY_RETRY_MAX_MS).toBe(5 * SECOND);
      const at = (r: number) =>
        decideNextRun(input({ ...afterRun(outcome), random: fixed(r), nextDueAt: NOW }));
      expect(at(0)).toMatchObject({ notBefore: NOW + 2_000, reason: 'retry-due' });
      expect(at(0.5)?.notBefore).toBe(NOW + 3_500);
      expect(at(1 - Number.EPSILON / 2)?.notBefore).toBe(NOW + 5_000);
      expect(at(Number.NaN)?.notBefore).toBe(NOW + 2_000);
    });
  });

  describe('rule 3: offline', () => {
    it('port online → run-level backoff by the consecutive-offline count (offline-backoff)', () => {
      const next = decideNextRun(
        input({ ...afterRun('offline'), consecutiveOfflineRuns: 1, hasPending: true }),
      );
      // Equal jitter, first offline run: [15 s, 30 s]; 0.5 → 22.5 s.
      expect(next).toEqual({
        name: 'sync-core',
        notBefore: NOW + 22_500,
        requiresNetwork: true,
        reason: 'offline-backoff',
      });
      const none = resolveBackoffPolicy({ jitter: 'none' });
      const third = decideNextRun(
        input({ ...afterRun('offline'), consecutiveOfflineRuns: 3, policy: none, nextDueAt: NOW }),
      );
      expect(third?.notBefore).toBe(NOW + 2 * MINUTE);
      const capped = decideNextRun(
        input({ ...afterRun('offline'), consecutiveOfflineRuns: 50, policy: none }),
      );
      expect(capped?.notBefore).toBe(NOW + HOUR);
      expect(third?.notBefore).toBe(NOW + runBackoffDelay(none, 3, fixed(0.5)));
    });

    it('a consecutive-offline count below 1 after an offline run counts as 1', () => {
      for (const count of [0, -3, Number.NaN]) {
        const next = decideNextRun(input({ ...afterRun('offline'), consecutiveOfflineRuns: count }));
        expect(next?.notBefore).toBe(NOW + 22_500);
      }
    });

    it('port offline → wait for connectivity: notBefore now, reason connectivity, requiresNetwork', () => {
      const next = decideNextRun(
        input({ ...afterRun('offline'), online: false, consecutiveOfflineRuns: 6, hasPending: true }),
      );
      expect(next).toEqual({
        name: 'sync-core',
        notBefore: NOW,
        requiresNetwork: true,
        reason: 'connectivity',
      });
    });
  });

  describe('rule 4: throttled / server-error / error', () => {
    it.each<RunOutcome>(['throttled', 'server-error', 'error'])(
      '%s: the earliest of nextDueAt and the periodic interval',
      (outcome) => {
        // A Retry-After of 10 min was recorded: before the periodic run.
        expect(
          decideNextRun(input({ ...afterRun(outcome), nextDueAt: NOW + 10 * MINUTE, hasPending: true })),
        ).toMatchObject({ notBefore: NOW + 10 * MINUTE, reason: 'retry-due' });
        // A Retry-After of 2 h: the periodic run comes first.
        expect(
          decideNextRun(input({ ...afterRun(outcome), nextDueAt: NOW + 2 * HOUR, hasPending: true })),
        ).toMatchObject({ notBefore: NOW + 15 * MINUTE, reason: 'periodic' });
        // Nothing sendable left (all dead-lettered): periodic.
        expect(decideNextRun(input({ ...afterRun(outcome), nextDueAt: null }))).toMatchObject({
          notBefore: NOW + 15 * MINUTE,
          reason: 'periodic',
        });
      },
    );

    it.each<RunOutcome>(['throttled', 'server-error', 'error'])(
      '%s: mutations released unsent (due now) wait at least one first-attempt backoff',
      (outcome) => {
        const next = decideNextRun(
          input({ ...afterRun(outcome), nextDueAt: NOW - MINUTE, hasPending: true }),
        );
        expect(next).toMatchObject({ notBefore: NOW + 22_500, reason: 'retry-due' });
        expect(next?.notBefore).toBe(NOW + backoffDelay(policy, 1, fixed(0.5)));
        // The floor never makes a later recorded retry earlier.
        expect(decideNextRun(input({ ...afterRun(outcome), nextDueAt: NOW + 40_000 }))?.notBefore).toBe(
          NOW + 40_000,
        );
      },
    );
  });

  describe('rule 5: otherwise the earliest of nextDueAt and now + periodicMs', () => {
    it.each<RunOutcome | undefined>(['ok', 'deadline', 'aborted', undefined])('after %s', (outcome) => {
      const report = outcome === undefined ? {} : afterRun(outcome);
      // Work left (deadline) or due in the past → now.
      expect(decideNextRun(input({ ...report, nextDueAt: NOW - HOUR, hasPending: true }))).toMatchObject({
        notBefore: NOW,
        reason: 'retry-due',
      });
      expect(
        decideNextRun(input({ ...report, nextDueAt: NOW + 5 * MINUTE, hasPending: true })),
      ).toMatchObject({
        notBefore: NOW + 5 * MINUTE,
        reason: 'retry-due',
      });
      expect(decideNextRun(input({ ...report, nextDueAt: NOW + HOUR, hasPending: true }))).toMatchObject({
        notBefore: NOW + 15 * MINUTE,
        reason: 'periodic',
      });
      expect(decideNextRun(input({ ...report, nextDueAt: null }))).toMatchObject({
        notBefore: NOW + 15 * MINUTE,
        reason: 'periodic',
      });
    });

    it('a tie between nextDueAt and the periodic run is reported as retry-due', () => {
      expect(decideNextRun(input({ nextDueAt: NOW + 15 * MINUTE }))?.reason).toBe('retry-due');
    });

    it('honours a custom periodicMs; an invalid one falls back to the default', () => {
      expect(decideNextRun(input({ periodicMs: MINUTE }))?.notBefore).toBe(NOW + MINUTE);
      for (const bad of [Number.NaN, 0, -5]) {
        expect(decideNextRun(input({ periodicMs: bad }))?.notBefore).toBe(NOW + DEFAULT_PERIODIC_MS);
      }
    });
  });

  describe('never a stall while anything is pending', () => {
    const off = Number.POSITIVE_INFINITY;

    it('periodicMs: Infinity and nothing pending → null (the engine reschedules on enqueue)', () => {
      expect(decideNextRun(input({ periodicMs: off, nextDueAt: null, hasPending: false }))).toBeNull();
      expect(decideNextRun(input({ ...afterRun('ok'), periodicMs: off }))).toBeNull();
    });

    it('periodicMs: Infinity, pending but nothing sendable → now + policy.maxMs', () => {
      for (const report of [{}, afterRun('ok'), afterRun('throttled'), afterRun('deadline')]) {
        expect(
          decideNextRun(input({ ...report, periodicMs: off, nextDueAt: null, hasPending: true })),
        ).toEqual({
          name: 'sync-core',
          notBefore: NOW + HOUR,
          requiresNetwork: true,
          reason: 'retry-due',
        });
      }
    });

    it('periodicMs: Infinity with something due → nextDueAt', () => {
      expect(decideNextRun(input({ periodicMs: off, nextDueAt: NOW + 3 * MINUTE }))?.notBefore).toBe(
        NOW + 3 * MINUTE,
      );
    });
  });

  it('clamps a nextDueAt pushed ahead by a clock that jumped back (FAULTS.md 29)', () => {
    const off = Number.POSITIVE_INFINITY;
    // Stored as then + 30 s; the clock has since gone back two days.
    const stale = NOW + 2 * DAY + 30_000;
    expect(decideNextRun(input({ periodicMs: off, nextDueAt: stale, hasPending: true }))?.notBefore).toBe(
      NOW + HOUR,
    );
    expect(
      decideNextRun(input({ periodicMs: off, nextDueAt: Number.NaN, hasPending: true }))?.notBefore,
    ).toBe(NOW + HOUR);
    // A Retry-After within the ceiling is honoured, not clamped.
    expect(decideNextRun(input({ periodicMs: off, nextDueAt: NOW + 20 * HOUR }))?.notBefore).toBe(
      NOW + 20 * HOUR,
    );
    expect(
      decideNextRun(input({ periodicMs: off, nextDueAt: NOW + 20 * HOUR, retryAfterCeilingMs: 2 * HOUR }))
        ?.notBefore,
    ).toBe(NOW + HOUR);
  });
});

describe('resolvePeriodicMs', () => {
  it('defaults to 15 min and accepts any positive number or Infinity', () => {
    expect(resolvePeriodicMs(undefined)).toBe(DEFAULT_PERIODIC_MS);
    expect(resolvePeriodicMs(1)).toBe(1);
    expect(resolvePeriodicMs(HOUR)).toBe(HOUR);
    expect(resolvePeriodicMs(Number.POSITIVE_INFINITY)).toBe(Number.POSITIVE_INFINITY);
  });

  it.each<[unknown, string]>([
    [0, 'periodicMs: expected a number of ms > 0 or Infinity, got 0'],
    [-1, 'periodicMs: expected a number of ms > 0 or Infinity, got -1'],
    [Number.NaN, 'periodicMs: expected a number of ms > 0 or Infinity, got NaN'],
    [Number.NEGATIVE_INFINITY, 'periodicMs: expected a number of ms > 0 or Infinity, got -Infinity'],
    ['900000', 'periodicMs: expected a number of ms > 0 or Infinity, got string'],
    [null, 'periodicMs: expected a number of ms > 0 or Infinity, got null'],
  ])('refuses %s', (value, message) => {
    expect(() => resolvePeriodicMs(value)).toThrow(ConfigError);
    expect(() => resolvePeriodicMs(value)).toThrow(message);
  });
});

describe('connectivityDelay', () => {
  it('is uniform over [0, maxMs], 10 s by default, in whole ms', () => {
    expect(connectivityDelay(fixed(0))).toBe(0);
    expect(connectivityDelay(fixed(0.5))).toBe(5_000);
    expect(connectivityDelay(fixed(0.12345))).toBe(1_235);
    expect(connectivityDelay(fixed(1 - Number.EPSILON / 2))).toBe(10_000);
    expect(connectivityDelay(fixed(0.5), 2_000)).toBe(1_000);
    expect(connectivityDelay(fixed(0.9), 0)).toBe(0);
  });

  it('clamps a faulty random source into [0, maxMs]', () => {
    expect(connectivityDelay(fixed(Number.NaN))).toBe(0);
    expect(connectivityDelay(fixed(-1))).toBe(0);
    expect(connectivityDelay(fixed(1))).toBe(10_000);
    expect(connectivityDelay(fixed(7))).toBe(10_000);
  });

  it('draws exactly once', () => {
    const random = vi.fn(() => 0.3);
    connectivityDelay(random);
    expect(random).toHaveBeenCalledTimes(1);
  });

  it.each([-1, Number.NaN, Number.POSITIVE_INFINITY])('refuses maxMs %s', (maxMs) => {
    expect(() => connectivityDelay(fixed(0.5), maxMs)).toThrow(ConfigError);
    expect(() => connectivityDelay(fixed(0.5), maxMs)).toThrow(/connectivityDelay: expected maxMs/);
  });
});

// ---------------------------------------------------------------------------------------------
// Connectivity ports
// ---------------------------------------------------------------------------------------------

describe('alwaysOnline', () => {
  it('always says online and never reports a change', () => {
    expect(alwaysOnline.isOnline()).toBe(true);
    const listener = vi.fn();
    const unsubscribe = alwaysOnline.subscribe(listener);
    unsubscribe();
    unsubscribe();
    expect(listener).not.toHaveBeenCalled();
    expect(Object.isFrozen(alwaysOnline)).toBe(true);
  });
});

describe('createBrowserConnectivity', () => {
  function fakeWindow(onLine: boolean) {
    const navigator = { onLine };
    return Object.assign(new EventTarget(), { navigator });
  }

  it('reads navigator.onLine on every call', () => {
    const target = fakeWindow(false);
    const connectivity = createBrowserConnectivity(target);
    expect(connectivity.isOnline()).toBe(false);
    target.navigator.onLine = true;
    expect(connectivity.isOnline()).toBe(true);
  });

  it('reports the window online/offline events until unsubscribed', () => {
    const target = fakeWindow(true);
    const connectivity = createBrowserConnectivity(target);
    const seen: boolean[] = [];
    const unsubscribe = connectivity.subscribe((online) => seen.push(online));
    target.dispatchEvent(new Event('offline'));
    target.dispatchEvent(new Event('online'));
    target.dispatchEvent(new Event('something-else'));
    unsubscribe();
    unsubscribe();
    target.dispatchEvent(new Event('offline'));
    expect(seen).toEqual([false, true]);
  });

  it('keeps subscriptions independent', () => {
    const target = fakeWindow(true);
    const connectivity = createBrowserConnectivity(target);
    const a = vi.fn();
    const b = vi.fn();
    const stopA = connectivity.subscribe(a);
    connectivity.subscribe(b);
    stopA();
    target.dispatchEvent(new Event('offline'));
    expect(a).not.toHaveBeenCalled();
    expect(b).toHaveBeenCalledWith(false);
  });

  it('assumes online without navigator.onLine, and never reports without addEventListener', () => {
    const bare = createBrowserConnectivity({});
    expect(bare.isOnline()).toBe(true);
    const unsubscribe = bare.subscribe(() => {});
    expect(() => unsubscribe()).not.toThrow();
    expect(createBrowserConnectivity({ navigator: {} }).isOnline()).toBe(true);
  });

  it('defaults to globalThis (online in Node, which has no navigator.onLine)', () => {
    const connectivity = createBrowserConnectivity();
    expect(connectivity.isOnline()).toBe(true);
    connectivity.subscribe(() => {})();
  });
});

// ---------------------------------------------------------------------------------------------
// Timer scheduler with injected manual timers
// ---------------------------------------------------------------------------------------------

describe('createTimerScheduler (injected timers and clock)', () => {
  function setup(options: { connectivity?: ConnectivityAdapter; random?: () => number } = {}) {
    const clock = fakeClock();
    const timers = manualTimers(clock);
    const errors: unknown[] = [];
    const scheduler = createTimerScheduler({
      clock,
      timers,
      random: options.random ?? fixed(0.5),
      onError: (error) => errors.push(error),
      ...(options.connectivity ? { connectivity: options.connectivity } : {}),
    });
    const triggers: RunTrigger[] = [];
    const run = vi.fn(async (trigger: RunTrigger) => {
      triggers.push(trigger);
    });
    return { clock, timers, scheduler, run, triggers, errors };
  }

  it('fires run("schedule") at notBefore, never before', async () => {
    const { timers, scheduler, run, triggers } = setup();
    scheduler.schedule(request(NOW + 30_000), run);
    expect(scheduler.current()).toMatchObject({ notBefore: NOW + 30_000 });
    await timers.advance(29_999);
    expect(run).not.toHaveBeenCalled();
    await timers.advance(1);
    expect(triggers).toEqual(['schedule']);
    expect(scheduler.current()).toBeNull();
    await timers.advance(HOUR);
    expect(run).toHaveBeenCalledTimes(1);
  });

  it('never runs inside schedule(), even when already due', async () => {
    const { timers, scheduler, run } = setup();
    scheduler.schedule(request(NOW - MINUTE), run);
    await flush();
    expect(run).not.toHaveBeenCalled();
    await timers.advance(0);
    expect(run).toHaveBeenCalledTimes(1);
  });

  it('replaces the earlier request of the same name (one timer per name)', async () => {
    const { timers, scheduler } = setup();
    const first = vi.fn(async () => {});
    const second = vi.fn(async () => {});
    scheduler.schedule(request(NOW + 10_000), first);
    scheduler.schedule(request(NOW + 60_000, { reason: 'periodic' }), second);
    expect(timers.armed()).toEqual([60_000]);
    expect(scheduler.current()).toMatchObject({ notBefore: NOW + 60_000, reason: 'periodic' });
    await timers.advance(59_999);
    expect(first).not.toHaveBeenCalled();
    expect(second).not.toHaveBeenCalled();
    await timers.advance(1);
    expect(first).not.toHaveBeenCalled();
    expect(second).toHaveBeenCalledTimes(1);
  });

  it('a replacement may also be earlier', async () => {
    const { timers, scheduler, run } = setup();
    scheduler.schedule(request(NOW + HOUR), run);
    scheduler.schedule(request(NOW + 1_000), run);
    await timers.advance(1_000);
    expect(run).toHaveBeenCalledTimes(1);
    await timers.advance(2 * HOUR);
    expect(run).toHaveBeenCalledTimes(1);
  });

  it('keeps requests of different names independent', async () => {
    const { timers, scheduler } = setup();
    const a = vi.fn(async () => {});
    const b = vi.fn(async () => {});
    scheduler.schedule(request(NOW + 1_000, { name: 'a' }), a);
    scheduler.schedule(request(NOW + 2_000, { name: 'b' }), b);
    scheduler.cancel('a');
    await timers.advance(5_000);
    expect(a).not.toHaveBeenCalled();
    expect(b).toHaveBeenCalledTimes(1);
  });

  it('cancel clears the timer; cancelling an unknown name is harmless', async () => {
    const { timers, scheduler, run } = setup();
    scheduler.schedule(request(NOW + 1_000), run);
    scheduler.cancel('sync-core');
    expect(timers.armed()).toEqual([]);
    expect(scheduler.current()).toBeNull();
    expect(() => scheduler.cancel('nope')).not.toThrow();
    await timers.advance(HOUR);
    expect(run).not.toHaveBeenCalled();
  });

  it('re-arms when the timer fires before notBefore by the clock', async () => {
    const { clock, timers, scheduler, run } = setup();
    scheduler.schedule(request(NOW + 10_000), run);
    await timers.fireAllEarly(); // the clock still reads NOW
    expect(run).not.toHaveBeenCalled();
    expect(timers.armed()).toEqual([10_000]);
    clock.set(NOW + 4_000);
    await timers.fireAllEarly();
    expect(run).not.toHaveBeenCalled();
    expect(timers.armed()).toEqual([6_000]);
    await timers.advance(6_000);
    expect(run).toHaveBeenCalledTimes(1);
  });

  it('arms waits longer than the platform maximum in steps', async () => {
    const { timers, scheduler, run } = setup();
    scheduler.schedule(request(NOW + 30 * DAY), run);
    expect(timers.armed()).toEqual([MAX_TIMER_DELAY_MS]);
    await timers.advance(MAX_TIMER_DELAY_MS);
    expect(run).not.toHaveBeenCalled();
    expect(timers.armed()).toEqual([30 * DAY - MAX_TIMER_DELAY_MS]);
    await timers.advance(30 * DAY - MAX_TIMER_DELAY_MS);
    expect(run).toHaveBeenCalledTimes(1);
  });

  it('offline at fire time: waits for the online event, then the jitter, then run("connectivity")', async () => {
    const connectivity = manualConnectivity(false);
    const { timers, scheduler, run, triggers } = setup({ connectivity, random: fixed(0.5) });
    scheduler.schedule(request(NOW + 1_000), run);
    expect(connectivity.listenerCount()).toBe(0);
    await timers.advance(HOUR);
    expect(run).not.toHaveBeenCalled();
    expect(connectivity.listenerCount()).toBe(1);
    expect(scheduler.current()).not.toBeNull();
    connectivity.setOnline(false); // an unchanged state is tolerated
    connectivity.setOnline(true);
    expect(connectivity.listenerCount()).toBe(0);
    expect(timers.armed()).toEqual([5_000]); // connectivityDelay(0.5) of 10 s
    await timers.advance(4_999);
    expect(run).not.toHaveBeenCalled();
    await timers.advance(1);
    expect(triggers).toEqual(['connectivity']);
  });

  it('honours connectivityDelayMaxMs', async () => {
    const connectivity = manualConnectivity(false);
    const clock = fakeClock();
    const timers = manualTimers(clock);
    const scheduler = createTimerScheduler({
      clock,
      timers,
      connectivity,
      random: fixed(0.5),
      connectivityDelayMaxMs: 2_000,
    });
    const run = vi.fn(async () => {});
    scheduler.schedule(request(NOW), run);
    await timers.advance(0);
    connectivity.setOnline(true);
    expect(timers.armed()).toEqual([1_000]);
    await timers.advance(1_000);
    expect(run).toHaveBeenCalledTimes(1);
  });

  it('online at fire time: runs at once, without jitter and without staying subscribed', async () => {
    const connectivity = manualConnectivity(true);
    const { timers, scheduler, triggers } = setup({ connectivity });
    const run = vi.fn(async (trigger: RunTrigger) => {
      triggers.push(trigger);
    });
    scheduler.schedule(request(NOW + 1_000), run);
    await timers.advance(1_000);
    expect(triggers).toEqual(['schedule']);
    expect(connectivity.listenerCount()).toBe(0);
  });

  it('does not consult connectivity for a request that does not require the network', async () => {
    const connectivity = manualConnectivity(false);
    const { timers, scheduler, run } = setup({ connectivity });
    scheduler.schedule(request(NOW + 1_000, { requiresNetwork: false }), run);
    await timers.advance(1_000);
    expect(run).toHaveBeenCalledTimes(1);
  });

  it('does not lose an online event that arrives while an async isOnline() is pending', async () => {
    let answer!: (online: boolean) => void;
    const listeners = new Set<(online: boolean) => void>();
    const connectivity: ConnectivityAdapter = {
      isOnline: () =>
        new Promise<boolean>((resolve) => {
          answer = resolve;
        }),
      subscribe: (listener) => {
        listeners.add(listener);
        return () => listeners.delete(listener);
      },
    };
    const { timers, scheduler, run, triggers } = setup({ connectivity, random: fixed(0) });
    scheduler.schedule(request(NOW), run);
    await timers.advance(0);
    for (const listener of [...listeners]) listener(true);
    answer(false); // a stale answer must not park or double-run
    await timers.advance(0);
    expect(triggers).toEqual(['connectivity']);
    expect(listeners.size).toBe(0);
  });

  it('a port that emits its current state from subscribe() is handled and unsubscribed', async () => {
    const listeners = new Set<(online: boolean) => void>();
    const connectivity: ConnectivityAdapter = {
      isOnline: () => false,
      subscribe: (listener) => {
        listeners.add(listener);
        listener(true);
        return () => listeners.delete(listener);
      },
    };
    const { timers, scheduler, run } = setup({ connectivity, random: fixed(0) });
    scheduler.schedule(request(NOW), run);
    await timers.advance(0);
    expect(run).toHaveBeenCalledTimes(1);
    expect(listeners.size).toBe(0);
  });

  it('a port that throws or rejects counts as online (a broken port never parks sync)', async () => {
    const ports: ConnectivityAdapter[] = [
      {
        isOnline: () => {
          throw new Error('boom');
        },
        subscribe: () => () => {},
      },
      { isOnline: () => Promise.reject(new Error('boom')), subscribe: () => () => {} },
      {
        isOnline: () => false,
        subscribe: () => {
          throw new Error('boom');
        },
      },
    ];
    for (const connectivity of ports) {
      const { timers, scheduler, run } = setup({ connectivity });
      scheduler.schedule(request(NOW + 1_000), run);
      await timers.advance(1_000);
      expect(run).toHaveBeenCalledTimes(1);
    }
  });

  it('a replacement while waiting for connectivity stops the wait', async () => {
    const connectivity = manualConnectivity(false);
    const { timers, scheduler } = setup({ connectivity });
    const first = vi.fn(async () => {});
    const second = vi.fn(async () => {});
    scheduler.schedule(request(NOW), first);
    await timers.advance(0);
    expect(connectivity.listenerCount()).toBe(1);
    scheduler.schedule(request(NOW + HOUR), second);
    expect(connectivity.listenerCount()).toBe(0);
    connectivity.setOnline(true);
    await timers.advance(MINUTE);
    expect(first).not.toHaveBeenCalled();
    expect(second).not.toHaveBeenCalled();
    await timers.advance(HOUR);
    expect(second).toHaveBeenCalledTimes(1);
    expect(first).not.toHaveBeenCalled();
  });

  it('coalesces: a request due while its run is in progress starts once, after that run', async () => {
    const { timers, scheduler } = setup();
    const gates = [deferred(), deferred()];
    let active = 0;
    let maxActive = 0;
    const calls: RunTrigger[] = [];
    const run = vi.fn(async (trigger: RunTrigger) => {
      const gate = gates[calls.length] ?? deferred();
      calls.push(trigger);
      active++;
      maxActive = Math.max(maxActive, active);
      await gate.promise;
      active--;
    });
    scheduler.schedule(request(NOW), run);
    await timers.advance(0);
    expect(calls).toHaveLength(1);
    expect(scheduler.isRunning()).toBe(true);
    // Two more requests come due while the first run is in progress.
    scheduler.schedule(request(NOW), run);
    await timers.advance(0);
    scheduler.schedule(request(NOW + 1_000), run);
    await timers.advance(1_000);
    expect(calls).toHaveLength(1);
    expect(scheduler.current()).not.toBeNull();
    gates[0]!.resolve();
    await flush();
    expect(calls).toHaveLength(2);
    gates[1]!.resolve();
    await flush();
    expect(calls).toHaveLength(2);
    expect(maxActive).toBe(1);
    expect(scheduler.isRunning()).toBe(false);
    expect(scheduler.current()).toBeNull();
  });

  it('a run may schedule the next one (the engine does after every run)', async () => {
    const { timers, scheduler } = setup();
    let count = 0;
    const run = async (): Promise<void> => {
      count++;
      if (count < 3) scheduler.schedule(request(NOW + count * MINUTE), run);
    };
    scheduler.schedule(request(NOW), run);
    await timers.advance(0);
    expect(count).toBe(1);
    expect(scheduler.current()).toMatchObject({ notBefore: NOW + MINUTE });
    await timers.advance(MINUTE);
    expect(count).toBe(2);
    await timers.advance(MINUTE);
    expect(count).toBe(3);
    expect(scheduler.current()).toBeNull();
  });

  it('a cancel while a coalesced start is pending drops it', async () => {
    const { timers, scheduler } = setup();
    const gate = deferred();
    const run = vi.fn(async () => gate.promise);
    scheduler.schedule(request(NOW), run);
    await timers.advance(0);
    scheduler.schedule(request(NOW), run);
    await timers.advance(0);
    scheduler.cancel('sync-core');
    gate.resolve();
    await flush();
    expect(run).toHaveBeenCalledTimes(1);
  });

  it('catches errors from run (sync throw or rejection) and reports them to onError', async () => {
    const { timers, scheduler, errors } = setup();
    const syncError = new Error('sync');
    const asyncError = new Error('async');
    scheduler.schedule(request(NOW), () => {
      throw syncError;
    });
    await timers.advance(0);
    scheduler.schedule(request(NOW), async () => {
      throw asyncError;
    });
    await timers.advance(0);
    expect(errors).toEqual([syncError, asyncError]);
    expect(scheduler.isRunning()).toBe(false);
    // The scheduler carries on.
    const run = vi.fn(async () => {});
    scheduler.schedule(request(NOW + 1_000), run);
    await timers.advance(1_000);
    expect(run).toHaveBeenCalledTimes(1);
  });

  it('passes the failed request to onError, and survives an onError that throws', async () => {
    const clock = fakeClock();
    const timers = manualTimers(clock);
    const seen: RunRequest[] = [];
    const scheduler = createTimerScheduler({
      clock,
      timers,
      onError: (_error, failed) => {
        seen.push(failed);
        throw new Error('onError broke');
      },
    });
    scheduler.schedule(request(NOW, { reason: 'enqueue' }), async () => {
      throw new Error('run broke');
    });
    await timers.advance(0);
    expect(seen).toEqual([request(NOW, { reason: 'enqueue' })]);
    // Without onError the failure is swallowed, not unhandled.
    const quiet = createTimerScheduler({ clock, timers });
    quiet.schedule(request(NOW), async () => {
      throw new Error('ignored');
    });
    await timers.advance(0);
  });

  it('dispose cancels everything; a run in progress finishes and nothing starts afterwards', async () => {
    const connectivity = manualConnectivity(false);
    const { timers, scheduler } = setup({ connectivity });
    const gate = deferred();
    const running = vi.fn(async () => gate.promise);
    const waiting = vi.fn(async () => {});
    const later = vi.fn(async () => {});
    scheduler.schedule(request(NOW, { name: 'running', requiresNetwork: false }), running);
    await timers.advance(0);
    scheduler.schedule(request(NOW, { name: 'running', requiresNetwork: false }), running);
    scheduler.schedule(request(NOW, { name: 'waiting' }), waiting);
    scheduler.schedule(request(NOW + HOUR, { name: 'later' }), later);
    await timers.advance(0);
    expect(connectivity.listenerCount()).toBe(1);
    scheduler.dispose();
    scheduler.dispose();
    expect(connectivity.listenerCount()).toBe(0);
    expect(timers.armed()).toEqual([]);
    scheduler.schedule(request(NOW), later);
    expect(scheduler.current()).toBeNull();
    gate.resolve();
    connectivity.setOnline(true);
    await timers.advance(2 * HOUR);
    expect(running).toHaveBeenCalledTimes(1);
    expect(waiting).not.toHaveBeenCalled();
    expect(later).not.toHaveBeenCalled();
  });

  it('refuses invalid options with "expected X, got Y"', () => {
    const cases: [Parameters<typeof createTimerScheduler>[0], RegExp][] = [
      [
        { timers: 5 as unknown as Timers },
        /timers: expected an object with setTimeout and clearTimeout, got number/,
      ],
      [{ clock: {} as Clock }, /clock: expected an object with now\(\), got object/],
      [
        { connectivity: { isOnline: () => true } as unknown as ConnectivityAdapter },
        /connectivity: expected/,
      ],
      [{ random: 0.5 as unknown as () => number }, /random: expected a function/],
      [{ connectivityDelayMaxMs: -1 }, /connectivityDelayMaxMs: expected a finite number ≥ 0, got number/],
      [{ onError: 'log' as unknown as () => void }, /onError: expected a function, got string/],
      [null as unknown as Parameters<typeof createTimerScheduler>[0], /createTimerScheduler\(options\)/],
    ];
    for (const [options, message] of cases) {
      expect(() => createTimerScheduler(options)).toThrow(ConfigError);
      expect(() => createTimerScheduler(options)).toThrow(message);
    }
  });

  it('ignores malformed calls instead of throwing (the port never throws)', () => {
    const { scheduler } = setup();
    expect(() => scheduler.schedule(null as unknown as RunRequest, async () => {})).not.toThrow();
    expect(() =>
      scheduler.schedule(request(NOW), 'run' as unknown as (trigger: RunTrigger) => Promise<void>),
    ).not.toThrow();
    expect(scheduler.current()).toBeNull();
  });
});

// ---------------------------------------------------------------------------------------------
// Timer scheduler with vitest's fake timers and the default (system) timers and clock
// ---------------------------------------------------------------------------------------------

describe('createTimerScheduler (vi.useFakeTimers, default timers and clock)', () => {
  afterEach(() => {
    vi.useRealTimers();
    vi.restoreAllMocks();
  });

  it('runs at notBefore by Date.now(): systemTimers look setTimeout up at each call', async () => {
    vi.useFakeTimers({ now: NOW });
    const scheduler = createTimerScheduler();
    const run = vi.fn(async () => {});
    scheduler.schedule(request(Date.now() + MINUTE), run);
    expect(vi.getTimerCount()).toBe(1);
    await vi.advanceTimersByTimeAsync(MINUTE - 1);
    expect(run).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(1);
    expect(run).toHaveBeenCalledWith('schedule');
    scheduler.dispose();
  });

  it('replace and cancel keep exactly one timer per name', async () => {
    vi.useFakeTimers({ now: NOW });
    const scheduler = createTimerScheduler();
    const run = vi.fn(async () => {});
    scheduler.schedule(request(NOW + HOUR), run);
    scheduler.schedule(request(NOW + 2 * HOUR), run);
    scheduler.schedule(request(NOW + 3 * HOUR), run);
    expect(vi.getTimerCount()).toBe(1);
    scheduler.schedule(request(NOW + HOUR, { name: 'other' }), run);
    expect(vi.getTimerCount()).toBe(2);
    scheduler.cancel('sync-core');
    scheduler.cancel('other');
    expect(vi.getTimerCount()).toBe(0);
    await vi.advanceTimersByTimeAsync(4 * HOUR);
    expect(run).not.toHaveBeenCalled();
  });

  it('waits offline with real browser-style connectivity, then runs after the jitter', async () => {
    vi.useFakeTimers({ now: NOW });
    const target = Object.assign(new EventTarget(), { navigator: { onLine: false } });
    const scheduler = createTimerScheduler({
      connectivity: createBrowserConnectivity(target),
      random: fixed(0.25),
    });
    const run = vi.fn(async () => {});
    scheduler.schedule(request(NOW + SECOND), run);
    await vi.advanceTimersByTimeAsync(HOUR);
    expect(run).not.toHaveBeenCalled();
    target.navigator.onLine = true;
    target.dispatchEvent(new Event('online'));
    await vi.advanceTimersByTimeAsync(2_499);
    expect(run).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(1);
    expect(run).toHaveBeenCalledWith('connectivity');
  });

  it("arms unref'd Node timers: a scheduled run never keeps the process alive", () => {
    const spy = vi.spyOn(globalThis, 'setTimeout');
    const scheduler = createTimerScheduler();
    scheduler.schedule(request(Date.now() + HOUR), async () => {});
    expect(spy).toHaveBeenCalledTimes(1);
    const handle = spy.mock.results[0]?.value as NodeJS.Timeout;
    expect(typeof handle.hasRef).toBe('function');
    expect(handle.hasRef()).toBe(false);
    scheduler.dispose();
  });
});

// ---------------------------------------------------------------------------------------------
// Host scheduler
// ---------------------------------------------------------------------------------------------

describe('createHostScheduler', () => {
  it('remembers the latest request per name and never runs anything', () => {
    const scheduler = createHostScheduler();
    const run = vi.fn(async () => {});
    expect(scheduler.current()).toBeNull();
    scheduler.schedule(request(NOW - HOUR), run);
    scheduler.schedule(request(NOW + MINUTE, { reason: 'periodic' }), run);
    scheduler.schedule(request(NOW + HOUR, { name: 'other' }), run);
    expect(scheduler.current()).toEqual(request(NOW + MINUTE, { reason: 'periodic' }));
    expect(scheduler.current('other')).toMatchObject({ notBefore: NOW + HOUR });
    expect(scheduler.all().map((r) => r.name)).toEqual(['sync-core', 'other']);
    expect(Object.isFrozen(scheduler.current())).toBe(true);
    expect(run).not.toHaveBeenCalled();
  });

  it('onChange: called on every change and on cancel, not for the same request again', () => {
    const scheduler = createHostScheduler();
    const changes: [RunRequest | null, string][] = [];
    const unsubscribe = scheduler.onChange((req, name) => changes.push([req, name]));
    scheduler.schedule(request(NOW + MINUTE));
    scheduler.schedule(request(NOW + MINUTE));
    scheduler.schedule(request(NOW + MINUTE, { reason: 'periodic' }));
    scheduler.schedule(request(NOW + MINUTE, { reason: 'periodic', requiresNetwork: false }));
    scheduler.schedule(request(NOW + 2 * MINUTE, { reason: 'periodic', requiresNetwork: false }));
    scheduler.cancel('sync-core');
    scheduler.cancel('sync-core');
    scheduler.cancel('unknown');
    expect(changes.map(([req, name]) => [req?.notBefore ?? null, req?.reason ?? null, name])).toEqual([
      [NOW + MINUTE, 'retry-due', 'sync-core'],
      [NOW + MINUTE, 'periodic', 'sync-core'],
      [NOW + MINUTE, 'periodic', 'sync-core'],
      [NOW + 2 * MINUTE, 'periodic', 'sync-core'],
      [null, null, 'sync-core'],
    ]);
    unsubscribe();
    unsubscribe();
    scheduler.schedule(request(NOW));
    expect(changes).toHaveLength(5);
    expect(scheduler.current()).toMatchObject({ notBefore: NOW });
  });

  it('a throwing listener neither breaks schedule() nor the other listeners', () => {
    const scheduler = createHostScheduler();
    const good = vi.fn();
    scheduler.onChange(() => {
      throw new Error('native module missing');
    });
    scheduler.onChange(good);
    expect(() => scheduler.schedule(request(NOW))).not.toThrow();
    expect(good).toHaveBeenCalledTimes(1);
  });

  it('the same listener subscribed twice is two subscriptions', () => {
    const scheduler = createHostScheduler();
    const listener = vi.fn();
    const first = scheduler.onChange(listener);
    scheduler.onChange(listener);
    first();
    scheduler.schedule(request(NOW));
    expect(listener).toHaveBeenCalledTimes(1);
  });

  it('ignores malformed requests', () => {
    const scheduler = createHostScheduler();
    expect(() => scheduler.schedule(null as unknown as RunRequest)).not.toThrow();
    expect(scheduler.all()).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------
// Manual scheduler
// ---------------------------------------------------------------------------------------------

describe('createManualScheduler', () => {
  it('records requests; due() and runDue() follow the clock', async () => {
    const clock = fakeClock();
    const scheduler = createManualScheduler(clock);
    const order: string[] = [];
    const run = (label: string) =>
      vi.fn(async (trigger: RunTrigger) => {
        order.push(`${label}:${trigger}`);
      });
    const a = run('a');
    const b = run('b');
    const c = run('c');
    scheduler.schedule(request(NOW + MINUTE, { name: 'a' }), a);
    scheduler.schedule(request(NOW - MINUTE, { name: 'b' }), b);
    scheduler.schedule(request(NOW + HOUR, { name: 'c' }), c);
    expect(scheduler.pending().map((r) => r.name)).toEqual(['b', 'a', 'c']);
    expect(scheduler.due().map((r) => r.name)).toEqual(['b']);
    expect(await scheduler.runDue()).toBe(1);
    expect(order).toEqual(['b:schedule']);
    clock.set(NOW + MINUTE);
    expect(scheduler.due().map((r) => r.name)).toEqual(['a']);
    expect(await scheduler.runDue('background')).toBe(1);
    expect(order).toEqual(['b:schedule', 'a:background']);
    expect(scheduler.pending().map((r) => r.name)).toEqual(['c']);
    expect(await scheduler.runDue()).toBe(0);
    expect(scheduler.current('c')).toMatchObject({ notBefore: NOW + HOUR });
    expect(scheduler.current()).toBeNull();
  });

  it('awaits each run; a run may schedule the next, which is recorded, not run', async () => {
    const clock = fakeClock();
    const scheduler = createManualScheduler(clock);
    const gate = deferred();
    let finished = false;
    const run = async (): Promise<void> => {
      scheduler.schedule(request(clock.now()), run);
      await gate.promise;
      finished = true;
    };
    scheduler.schedule(request(NOW), run);
    const done = scheduler.runDue();
    await flush();
    expect(finished).toBe(false);
    gate.resolve();
    expect(await done).toBe(1);
    expect(finished).toBe(true);
    expect(scheduler.due()).toHaveLength(1);
  });

  it('skips a request that an earlier run of the same call replaced or cancelled', async () => {
    const clock = fakeClock();
    const scheduler = createManualScheduler(clock);
    const b = vi.fn(async () => {});
    const c = vi.fn(async () => {});
    scheduler.schedule(request(NOW - 2, { name: 'a' }), async () => {
      scheduler.cancel('b');
      scheduler.schedule(request(NOW + MINUTE, { name: 'c' }), c);
    });
    scheduler.schedule(request(NOW - 1, { name: 'b' }), b);
    scheduler.schedule(request(NOW, { name: 'c' }), c);
    expect(await scheduler.runDue()).toBe(1);
    expect(b).not.toHaveBeenCalled();
    expect(c).not.toHaveBeenCalled();
    expect(scheduler.pending()).toEqual([request(NOW + MINUTE, { name: 'c' })]);
  });

  it('rejects with the error of a failing run; later requests stay recorded', async () => {
    const clock = fakeClock();
    const scheduler = createManualScheduler(clock);
    const later = vi.fn(async () => {});
    scheduler.schedule(request(NOW - 1, { name: 'a' }), async () => {
      throw new Error('run failed');
    });
    scheduler.schedule(request(NOW, { name: 'b' }), later);
    await expect(scheduler.runDue()).rejects.toThrow('run failed');
    expect(later).not.toHaveBeenCalled();
    expect(scheduler.pending().map((r) => r.name)).toEqual(['b']);
  });

  it('history() keeps every request, cancel() forgets the pending one', () => {
    const scheduler = createManualScheduler(fakeClock());
    const run = async () => {};
    scheduler.schedule(request(NOW), run);
    scheduler.schedule(request(NOW + 1), run);
    scheduler.cancel('sync-core');
    scheduler.cancel('unknown');
    expect(scheduler.pending()).toEqual([]);
    expect(scheduler.history()).toEqual([request(NOW), request(NOW + 1)]);
  });

  it('refuses a missing clock', () => {
    expect(() => createManualScheduler(undefined as unknown as Clock)).toThrow(ConfigError);
    expect(() => createManualScheduler({} as Clock)).toThrow(/createManualScheduler\(clock\)/);
  });
});
