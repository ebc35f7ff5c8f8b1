/**
 * Time and randomness, injected.
 *
 * The core never reads `Date.now()` or `Math.random()` itself. Every decision that depends on
 * time (due mutations, claim expiry, backoff) or chance (jitter, ids) goes through these two
 * providers, passed per engine rather than held in module singletons: a property test can then
 * replay a whole run deterministically, jump the wall clock a year ahead or a day back, and two
 * engines in one process never share state.
 *
 * @packageDocumentation
 */

/**
 * A wall clock.
 *
 * `now()` returns milliseconds since the Unix epoch. It may jump in either direction (the user
 * changes the device clock, NTP corrects it); the core clamps what it schedules so a jump can
 * neither park the queue nor cause a retry burst.
 */
export interface Clock {
  now(): number;
}

/**
 * A source of uniformly distributed numbers in `[0, 1)`, like `Math.random`.
 *
 * Used for backoff jitter and for the random part of mutation ids and idempotency keys, so the
 * default draws from `crypto.getRandomValues` where available: keys must not collide across
 * devices.
 */
export type RandomSource = () => number;

/** The system clock: `Date.now()`. The default {@link Clock}. */
export const systemClock: Clock = Object.freeze({ now: () => Date.now() });

/**
 * The default {@link RandomSource}: `crypto.getRandomValues` when the platform has Web Crypto
 * (Node ≥ 19, browsers, React Native with a polyfill), else `Math.random`.
 */
export function defaultRandom(): RandomSource {
  const cryptoObject = (globalThis as { crypto?: { getRandomValues?: (array: Uint32Array) => Uint32Array } })
    .crypto;
  if (typeof cryptoObject?.getRandomValues === 'function') {
    const getRandomValues = cryptoObject.getRandomValues.bind(cryptoObject);
    // Draw in blocks: one call per 4,096 numbers (16 KiB, under getRandomValues' 64 KiB limit)
    // keeps id generation cheap — each queued mutation takes 26 numbers for its id and key.
    const block = new Uint32Array(4096);
    let index = block.length;
    return () => {
      if (index >= block.length) {
        getRandomValues(block);
        index = 0;
      }
      return block[index++]! / 4_294_967_296;
    };
  }
  return Math.random;
}

/** An opaque timer handle returned by {@link Timers.setTimeout}. */
export type TimerHandle = unknown;

/**
 * One-shot timers, injected like the clock: the core arms them for run deadlines, and the
 * in-process scheduler for the next run. Tests pass fake timers; apps rarely need to.
 */
export interface Timers {
  setTimeout(callback: () => void, delayMs: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

/**
 * The platform's timers. They are looked up on `globalThis` at each call (not captured at import),
 * so test frameworks that install fake timers afterwards still take effect. On Node the timer is
 * `unref`'d: a pending deadline or retry never keeps a process alive by itself.
 */
export const systemTimers: Timers = Object.freeze({
  setTimeout(callback: () => void, delayMs: number): TimerHandle {
    const handle = globalThis.setTimeout(callback, Math.max(0, delayMs));
    (handle as { unref?: () => void }).unref?.();
    return handle;
  },
  clearTimeout(handle: TimerHandle): void {
    globalThis.clearTimeout(handle as ReturnType<typeof globalThis.setTimeout>);
  },
});
