/**
 * Fake timers driven by a {@link FakeClock}: the core arms timers for run deadlines (and the
 * in-process scheduler for the next run); with these, a test decides when they fire.
 *
 * @packageDocumentation
 */

import type { TimerHandle, Timers } from '../contracts/clock.js';
import { ConfigError } from '../errors.js';
import { attachAdvanceHook, type FakeClock } from './fake-clock.js';

/**
 * A timer that has not fired yet, as {@link FakeTimers.pending} reports it.
 *
 * @example
 * ```ts
 * import { createFakeClock, createFakeTimers, type PendingTimer } from 'sync-core/testing';
 * const timers = createFakeTimers(createFakeClock());
 * timers.setTimeout(() => {}, 100);
 * const [next]: readonly PendingTimer[] = timers.pending(); // { handle: 1, dueAt: 100, dueInMs: 100 }
 * ```
 */
export interface PendingTimer {
  /** The handle `setTimeout` returned. */
  readonly handle: number;
  /** When it fires, in the clock's elapsed time ({@link FakeClock.elapsed}). */
  readonly dueAt: number;
  /** Milliseconds of `advance` still needed before it fires (0 when due now). */
  readonly dueInMs: number;
}

/**
 * {@link Timers} that fire only when their {@link FakeClock} advances past them. Create them with
 * {@link createFakeTimers}.
 *
 * @example
 * ```ts
 * import { createFakeClock, createFakeTimers } from 'sync-core/testing';
 * const clock = createFakeClock();
 * const timers = createFakeTimers(clock);
 * timers.setTimeout(() => console.log('deadline'), 25_000);
 * timers.pending(); // [{ handle: 1, dueAt: 25000, dueInMs: 25000 }]
 * timers.runAll(); // logs 'deadline'; the clock is now 25 s later
 * ```
 */
export interface FakeTimers extends Timers {
  /** Arm a one-shot timer `delayMs` ms of elapsed time from now (negative or NaN: 0). */
  setTimeout(callback: () => void, delayMs: number): TimerHandle;
  /** Disarm a timer; unknown or already fired handles are ignored, as with the platform's. */
  clearTimeout(handle: TimerHandle): void;
  /** Timers not fired yet, soonest first (ties in the order they were armed). */
  pending(): readonly PendingTimer[];
  /**
   * Fire every pending timer in due order, advancing the clock to each one's due time, including
   * timers armed by the callbacks. Returns how many fired.
   *
   * @throws ConfigError after `limit` timers, when callbacks keep arming new ones.
   */
  runAll(limit?: number): number;
}

/** A callback re-arming a 0 ms timer would otherwise make one `advance` loop forever. */
const MAX_TIMERS_PER_ADVANCE = 10_000;

interface Entry {
  readonly handle: number;
  readonly dueAt: number;
  readonly callback: () => void;
}

/**
 * Create fake timers on a fake clock: `clock.advance(ms)` fires those that fall due, in order.
 *
 * A callback that throws propagates out of `advance` (or `runAll`), so a test sees it at once;
 * timers due later stay pending.
 *
 * @param clock - A clock made by {@link createFakeClock}. One set of timers per clock.
 * @throws ConfigError when `clock` was not made by `createFakeClock`, or already has timers.
 *
 * @example
 * ```ts
 * import { createFakeClock, createFakeTimers } from 'sync-core/testing';
 * import { createSyncEngine } from 'sync-core';
 * const clock = createFakeClock();
 * const timers = createFakeTimers(clock);
 * // createSyncEngine({ storage, entities, network, clock, timers }): a run's deadline timer now
 * // fires when the test (or a faulty network's latency) advances the clock.
 * ```
 */
export function createFakeTimers(clock: FakeClock): FakeTimers {
  const entries = new Map<number, Entry>();
  let nextHandle = 1;
  let firedTotal = 0;

  const soonest = (): Entry | undefined => {
    let best: Entry | undefined;
    for (const entry of entries.values()) {
      if (best === undefined || entry.dueAt < best.dueAt) best = entry;
    }
    return best;
  };

  const internals = attachAdvanceHook(clock, (driver, target) => {
    let firedNow = 0;
    for (let entry = soonest(); entry !== undefined && entry.dueAt <= target; entry = soonest()) {
      if (++firedNow > MAX_TIMERS_PER_ADVANCE) {
        throw new ConfigError(
          `clock.advance(): more than ${MAX_TIMERS_PER_ADVANCE} timers fired; a callback keeps arming new ones`,
        );
      }
      entries.delete(entry.handle);
      driver.moveTo(entry.dueAt);
      firedTotal++;
      entry.callback();
    }
  });

  return {
    setTimeout(callback, delayMs) {
      if (typeof callback !== 'function') {
        throw new ConfigError(`timers.setTimeout(callback): expected a function, got ${typeof callback}`);
      }
      const delay = typeof delayMs === 'number' && delayMs > 0 ? delayMs : 0;
      const handle = nextHandle++;
      entries.set(handle, { handle, dueAt: internals.elapsed() + delay, callback });
      return handle;
    },
    clearTimeout(handle) {
      if (typeof handle === 'number') entries.delete(handle);
    },
    pending() {
      const now = internals.elapsed();
      return [...entries.values()]
        .sort((a, b) => a.dueAt - b.dueAt || a.handle - b.handle)
        .map((entry) => ({
          handle: entry.handle,
          dueAt: entry.dueAt,
          dueInMs: Math.max(0, entry.dueAt - now),
        }));
    },
    runAll(limit = 1_000) {
      const before = firedTotal;
      for (let entry = soonest(); entry !== undefined; entry = soonest()) {
        if (firedTotal - before >= limit) {
          throw new ConfigError(
            `timers.runAll(): more than ${limit} timers fired; a callback keeps arming new ones`,
          );
        }
        clock.advance(Math.max(0, entry.dueAt - internals.elapsed()));
      }
      return firedTotal - before;
    },
  };
}
