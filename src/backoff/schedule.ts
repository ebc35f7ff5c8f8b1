/**
 * When to try again: combining the backoff policy with the server's `Retry-After`, and keeping
 * scheduled times sane when the wall clock jumps (FAULTS.md 28, 29).
 *
 * @packageDocumentation
 */

import type { RandomSource } from '../contracts/clock.js';
import { ConfigError, describeType } from '../errors.js';
import { type BackoffPolicy, backoffDelay } from './backoff-policy.js';

/**
 * The longest `Retry-After` honoured by default: 24 h, in ms. The server knows best, so a
 * `Retry-After` above the policy's `maxMs` is honoured — but only up to this ceiling, so that a
 * hostile or buggy header (`Retry-After: 99999999`) cannot park the queue for years. The `stuck`
 * notice (after `stuckAfter`, default also 24 h) makes a server that keeps asking visible.
 *
 * @example
 * ```ts
 * import { DEFAULT_RETRY_AFTER_CEILING_MS, nextAttemptDelay, resolveBackoffPolicy } from 'sync-core';
 * const policy = resolveBackoffPolicy();
 * nextAttemptDelay(policy, { attempt: 1, random, retryAfterMs: 1e12 }) === DEFAULT_RETRY_AFTER_CEILING_MS; // true
 * ```
 */
export const DEFAULT_RETRY_AFTER_CEILING_MS = 24 * 60 * 60 * 1000;

/**
 * Arguments of {@link nextAttemptDelay}.
 *
 * @example
 * ```ts
 * import { type NextAttemptDelayInput, nextAttemptDelay, resolveBackoffPolicy } from 'sync-core';
 * const input: NextAttemptDelayInput = { attempt: 3, random: Math.random, retryAfterMs: 180_000 };
 * nextAttemptDelay(resolveBackoffPolicy(), input); // 180_000: Retry-After outlasts the 60–120 s backoff
 * ```
 */
export interface NextAttemptDelayInput {
  /** The mutation's attempt count, including the failure just recorded (≥ 1). */
  attempt: number;
  /** Uniform source over `[0, 1)` for jitter: the engine's injected `random`. */
  random: RandomSource;
  /** The server's `Retry-After`, in ms (from `parseRetryAfter` or a per-item `retryAfterMs`). */
  retryAfterMs?: number | undefined;
  /**
   * The longest `Retry-After` honoured, in ms. An integer ≥ 0.
   * @default DEFAULT_RETRY_AFTER_CEILING_MS (24 h)
   */
  retryAfterCeilingMs?: number | undefined;
}

/**
 * Arguments of {@link clampScheduledTime}.
 *
 * @example
 * ```ts
 * import { type ClampScheduledTimeInput, clampScheduledTime, resolveBackoffPolicy } from 'sync-core';
 * const input: ClampScheduledTimeInput = { scheduledAt: row.nextAttemptAt, now: clock.now() };
 * const due = clampScheduledTime(resolveBackoffPolicy(), input);
 * ```
 */
export interface ClampScheduledTimeInput {
  /** The stored next attempt (or next run) time, in ms since the epoch. */
  scheduledAt: number;
  /** The wall clock now, in ms since the epoch. */
  now: number;
  /**
   * The `Retry-After` ceiling the delay was computed with. An integer ≥ 0.
   * @default DEFAULT_RETRY_AFTER_CEILING_MS (24 h)
   */
  retryAfterCeilingMs?: number | undefined;
}

function resolveCeiling(value: number | undefined): number {
  if (value === undefined) return DEFAULT_RETRY_AFTER_CEILING_MS;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
    throw new ConfigError(
      `retryAfterCeilingMs: expected an integer ≥ 0, got ${typeof value === 'number' ? String(value) : describeType(value)}`,
    );
  }
  return value;
}

/**
 * The delay before a mutation's next attempt after a counted failure, in whole ms:
 * `max(backoffDelay(policy, attempt, random), min(retryAfterMs, ceiling))`.
 *
 * Never earlier than the server's `Retry-After` (DESIGN.md invariant 4), up to the ceiling
 * ({@link DEFAULT_RETRY_AFTER_CEILING_MS}, 24 h, unless `retryAfterCeilingMs` says otherwise): a
 * `Retry-After` above `policy.maxMs` is honoured. A missing, negative or NaN `retryAfterMs` is
 * ignored; `Infinity` means the ceiling. A fractional one is rounded up.
 *
 * @throws {@link ConfigError} when `retryAfterCeilingMs` is not an integer ≥ 0.
 *
 * @example
 * ```ts
 * import { nextAttemptDelay, parseRetryAfter, resolveBackoffPolicy } from 'sync-core';
 * const policy = resolveBackoffPolicy();
 * const retryAfterMs = parseRetryAfter(response.headers.get('retry-after'), { now: clock.now() });
 * const delay = nextAttemptDelay(policy, { attempt: 1, random, retryAfterMs }); // ≥ 120_000 for '120'
 * ```
 */
export function nextAttemptDelay(policy: BackoffPolicy, input: NextAttemptDelayInput): number {
  const ceiling = resolveCeiling(input.retryAfterCeilingMs);
  const backoff = backoffDelay(policy, input.attempt, input.random);
  const retryAfter = input.retryAfterMs;
  // `!(x > 0)` drops undefined, NaN, 0 and negatives in one test.
  if (retryAfter === undefined || !(retryAfter > 0)) return backoff;
  return Math.max(backoff, Math.min(Math.ceil(retryAfter), ceiling));
}

/**
 * Whether a mutation with this many counted attempts has used up `policy.maxAttempts` and is to be
 * dead-lettered as `exhausted`. Always `false` with the default `maxAttempts: Infinity`.
 *
 * @example
 * ```ts
 * import { isExhausted, resolveBackoffPolicy } from 'sync-core';
 * isExhausted(resolveBackoffPolicy({ maxAttempts: 5 }), 5); // true
 * ```
 */
export function isExhausted(policy: BackoffPolicy, attempts: number): boolean {
  return attempts >= policy.maxAttempts;
}

/**
 * Guard a stored schedule against the wall clock jumping backwards (FAULTS.md 29).
 *
 * A next-attempt time was stored as `then + delay`. If the clock now reads a day earlier than
 * `then`, `scheduledAt − now` is a day longer than any delay this policy could have produced, and
 * the mutation would sit out a day it never asked for. So when `scheduledAt − now` exceeds the
 * largest possible delay — `max(policy.maxMs, retryAfterCeilingMs)` — the result is
 * `now + policy.maxMs`; otherwise `scheduledAt` unchanged. A non-finite or NaN `scheduledAt` is
 * clamped the same way.
 *
 * A clock jumping **ahead** (FAULTS.md 28) needs no guard here: it merely makes scheduled work due
 * early. That is not a burst: each run claims at most its batch limits, failures back off again
 * from the new "now", and claim expiry is separate from this schedule.
 *
 * @returns A time in ms since the epoch, never later than `now` + the largest possible delay.
 * @throws {@link ConfigError} when `retryAfterCeilingMs` is not an integer ≥ 0.
 *
 * @example
 * ```ts
 * import { clampScheduledTime, resolveBackoffPolicy } from 'sync-core';
 * const policy = resolveBackoffPolicy();
 * const day = 86_400_000;
 * // Scheduled 30 s after a "now" that the clock has since moved a day back from:
 * clampScheduledTime(policy, { scheduledAt: now + day + 30_000, now }); // now + 3_600_000
 * ```
 */
export function clampScheduledTime(policy: BackoffPolicy, input: ClampScheduledTimeInput): number {
  const ceiling = resolveCeiling(input.retryAfterCeilingMs);
  // Delays are rounded up to whole ms, so the policy's longest is ceil(maxMs).
  const largest = Math.max(Math.ceil(policy.maxMs), ceiling);
  const { scheduledAt, now } = input;
  // Written as `!(≤)` so that NaN and Infinity are clamped too.
  if (!(scheduledAt - now <= largest)) return now + policy.maxMs;
  return scheduledAt;
}

/**
 * The delay before the next run after `consecutiveOfflineRuns` runs in a row ended offline: the
 * same policy and math as {@link backoffDelay}, run-level (DESIGN.md section 5), with the number
 * of offline runs as the attempt number. Offline failures never count as a mutation's attempts;
 * this is how they are spaced instead. A connectivity change should start a run regardless.
 *
 * `0` (or less, or NaN) offline runs gives `0` without drawing from `random`: nothing to back off
 * from.
 *
 * @example
 * ```ts
 * import { resolveBackoffPolicy, runBackoffDelay } from 'sync-core';
 * runBackoffDelay(resolveBackoffPolicy({ jitter: 'none' }), 3, Math.random); // 120_000
 * ```
 */
export function runBackoffDelay(
  policy: BackoffPolicy,
  consecutiveOfflineRuns: number,
  random: RandomSource,
): number {
  if (!(consecutiveOfflineRuns >= 1)) return 0;
  return backoffDelay(policy, consecutiveOfflineRuns, random);
}
