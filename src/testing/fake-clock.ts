/**
 * A fake wall clock for deterministic tests: time moves only when the test says so.
 *
 * It keeps two times, as a device does. The **wall clock** (`now()`) is what the core reads for
 * due times, claim expiry and backoff; the user or NTP may move it in either direction (FAULTS.md
 * 28 and 29), which `set` and `jump` simulate. **Elapsed time** only moves forward, with
 * `advance`: it is what timers measure, so a wall-clock jump never fires nor delays a timer, as
 * with real `setTimeout`.
 *
 * @packageDocumentation
 */

import type { Clock } from '../contracts/clock.js';
import { ConfigError } from '../errors.js';

/**
 * 2026-11-25T08:00:00.000Z: the default start of a {@link FakeClock}.
 *
 * @example
 * ```ts
 * import { createFakeClock, FAKE_CLOCK_START } from 'sync-core/testing';
 * createFakeClock().now() === FAKE_CLOCK_START; // true
 * ```
 */
export const FAKE_CLOCK_START = Date.UTC(2026, 10, 25, 8, 0, 0);

/**
 * A {@link Clock} that moves only when told. Create it with {@link createFakeClock}.
 *
 * @example
 * ```ts
 * import { createFakeClock } from 'sync-core/testing';
 * const clock = createFakeClock(0);
 * clock.advance(1_000); // time passes: due timers fire
 * clock.jump(-86_400_000); // the user set the device clock a day back
 * clock.now(); // -86_399_000
 * ```
 */
export interface FakeClock extends Clock {
  /** The wall clock, in ms since the epoch. */
  now(): number;
  /**
   * Milliseconds that have passed since the clock was created: the sum of every `advance`, never
   * changed by `set` or `jump`. Timers measure this.
   */
  elapsed(): number;
  /**
   * Let `ms` milliseconds pass: the wall clock and elapsed time both move forward, and timers of
   * {@link createFakeTimers} that fall due fire in due order, each with the clock set to its due
   * time (a callback that arms a timer due within the window sees it fire too).
   *
   * @throws ConfigError when `ms` is not a finite number ≥ 0 (time never runs backwards; use `jump`).
   */
  advance(ms: number): void;
  /**
   * Set the wall clock to `ms` since the epoch, in either direction, like a user changing the
   * device clock. Elapsed time and timers are unaffected.
   *
   * @throws ConfigError when `ms` is not finite.
   */
  set(ms: number): void;
  /**
   * Move the wall clock by `deltaMs`, forward (positive) or back (negative), like an NTP correction
   * or a user changing the device clock (FAULTS.md 28: a year ahead; 29: a day back). Elapsed time
   * and timers are unaffected.
   *
   * @throws ConfigError when `deltaMs` is not finite.
   */
  jump(deltaMs: number): void;
}

/**
 * What {@link createFakeTimers} attaches to a clock: called by `advance` with the elapsed time to
 * reach; it fires due timers (moving the clock to each one's due time) and returns.
 * @internal
 */
export type AdvanceHook = (clock: FakeClockInternals, targetElapsed: number) => void;

/** The parts of a fake clock the timers module drives. @internal */
export interface FakeClockInternals {
  /** Move both times forward to `elapsed` (no-op when already there). */
  moveTo(elapsed: number): void;
  elapsed(): number;
}

// Per-instance registry rather than a property on the clock: the public object stays a plain
// Clock, and two clocks in one process never share timers.
const hooks = new WeakMap<FakeClock, { internals: FakeClockInternals; hook: AdvanceHook | undefined }>();

/**
 * Attach the timers' advance hook to a clock made by {@link createFakeClock}.
 * @internal
 * @throws ConfigError for any other clock, or when the clock already has timers.
 */
export function attachAdvanceHook(clock: FakeClock, hook: AdvanceHook): FakeClockInternals {
  const entry = hooks.get(clock);
  if (entry === undefined) {
    throw new ConfigError('createFakeTimers(clock): expected a clock made by createFakeClock(), got another');
  }
  if (entry.hook !== undefined) {
    throw new ConfigError('createFakeTimers(clock): this clock already has fake timers; share them instead');
  }
  entry.hook = hook;
  return entry.internals;
}

function finite(what: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new ConfigError(
      `${what}: expected a finite number, got ${typeof value === 'number' ? String(value) : typeof value}`,
    );
  }
  return value;
}

/**
 * Create a fake clock.
 *
 * @param start - The initial wall-clock time in ms since the epoch. @default {@link FAKE_CLOCK_START}
 * @returns A {@link FakeClock}; pass it as `clock` to `createSyncEngine`, and to
 *   {@link createFakeTimers} for timers that fire as it advances.
 * @throws ConfigError when `start` is not finite.
 *
 * @example
 * ```ts
 * import { createFakeClock, createFakeTimers } from 'sync-core/testing';
 * const clock = createFakeClock();
 * const timers = createFakeTimers(clock);
 * let fired = false;
 * timers.setTimeout(() => { fired = true; }, 500);
 * clock.advance(499); // fired === false
 * clock.advance(1); // fired === true
 * ```
 */
export function createFakeClock(start: number = FAKE_CLOCK_START): FakeClock {
  let wall = finite('createFakeClock(start)', start);
  let elapsed = 0;
  const internals: FakeClockInternals = {
    moveTo(target) {
      if (target <= elapsed) return;
      wall += target - elapsed;
      elapsed = target;
    },
    elapsed: () => elapsed,
  };
  const clock: FakeClock = {
    now: () => wall,
    elapsed: () => elapsed,
    advance(ms) {
      if (finite('clock.advance(ms)', ms) < 0) {
        throw new ConfigError(
          `clock.advance(ms): expected ms ≥ 0, got ${ms} (use jump() to move the wall clock back)`,
        );
      }
      const target = elapsed + ms;
      hooks.get(clock)?.hook?.(internals, target);
      internals.moveTo(target);
    },
    set(ms) {
      wall = finite('clock.set(ms)', ms);
    },
    jump(deltaMs) {
      wall += finite('clock.jump(deltaMs)', deltaMs);
    },
  };
  hooks.set(clock, { internals, hook: undefined });
  return clock;
}
