/**
 * The exponential backoff policy of DESIGN.md section 5: how long to wait after the k-th retryable
 * failure of a mutation (and, run-level, after the k-th run in a row that ended offline).
 *
 * Everything here is pure: randomness is a parameter, never `Math.random()`, so a property test can
 * check every delay against its bounds (DESIGN.md invariant 4).
 *
 * @packageDocumentation
 */

import type { RandomSource } from '../contracts/clock.js';
import { ConfigError, describeType } from '../errors.js';

/**
 * How a delay is spread around the un-jittered delay `d` of its attempt, so that many devices that
 * failed together (a server outage) do not all retry at the same instant.
 *
 * - `'equal'`: uniformly over `[d/2, d]`. Keeps at least half the backoff and still spreads the herd.
 * - `'full'`: uniformly over `[0, d]`. Spreads best, but a retry may come almost immediately.
 * - `'none'`: exactly `d`. Deterministic; useful in tests and for a single client.
 *
 * @example
 * ```ts
 * import { type JitterMode, resolveBackoffPolicy } from 'sync-core';
 * const jitter: JitterMode = 'full';
 * const policy = resolveBackoffPolicy({ jitter });
 * ```
 */
export type JitterMode = 'equal' | 'full' | 'none';

/**
 * Options of the backoff policy. Every field is optional; invalid values throw a
 * {@link ConfigError} ("backoff.initialMs: expected a finite number > 0, got -1").
 *
 * @example
 * ```ts
 * import { resolveBackoffPolicy } from 'sync-core';
 * // 5 s, 10 s, 20 s … capped at 10 min, spread over [0, d], dead-lettered after 20 attempts.
 * const policy = resolveBackoffPolicy({ initialMs: 5_000, maxMs: 600_000, jitter: 'full', maxAttempts: 20 });
 * ```
 */
export interface BackoffOptions {
  /**
   * The un-jittered delay after the first retryable failure, in ms. A finite number > 0.
   * @default 30_000 (30 s)
   */
  initialMs?: number;
  /**
   * The cap of the un-jittered delay, in ms. A finite number ≥ `initialMs`. A server's
   * `Retry-After` may ask for longer and is honoured (up to a ceiling; see `nextAttemptDelay`).
   * @default 3_600_000 (1 h), or `initialMs` when that is larger
   */
  maxMs?: number;
  /**
   * Factor between the delays of consecutive attempts. A finite number ≥ 1 (`1`: constant delay).
   * @default 2
   */
  multiplier?: number;
  /**
   * How the delay is randomised; see {@link JitterMode}.
   * @default 'equal'
   */
  jitter?: JitterMode;
  /**
   * Attempts after which a mutation is dead-lettered as `exhausted` (DESIGN.md section 5). An
   * integer ≥ 1, or `Infinity` for no limit: transient failures then retry forever and a `stuck`
   * notice tells the user instead.
   * @default Infinity (no limit)
   */
  maxAttempts?: number;
}

/**
 * A validated backoff policy: every {@link BackoffOptions} field resolved to its value. Make one
 * with {@link resolveBackoffPolicy}; the object is frozen.
 *
 * @example
 * ```ts
 * import { type BackoffPolicy, resolveBackoffPolicy } from 'sync-core';
 * const policy: BackoffPolicy = resolveBackoffPolicy({ maxAttempts: 10 });
 * policy.maxMs; // 3_600_000
 * ```
 */
export interface BackoffPolicy {
  /** The un-jittered delay after the first retryable failure, in ms (> 0). */
  readonly initialMs: number;
  /** The cap of the un-jittered delay, in ms (≥ `initialMs`). */
  readonly maxMs: number;
  /** Factor between consecutive un-jittered delays (≥ 1). */
  readonly multiplier: number;
  /** How delays are randomised. */
  readonly jitter: JitterMode;
  /** Attempts before a mutation is dead-lettered; `Infinity` means no limit. */
  readonly maxAttempts: number;
}

/**
 * The interval, in whole ms, that a jittered delay is guaranteed to fall in; see
 * {@link backoffBounds}.
 *
 * @example
 * ```ts
 * import { type BackoffBounds, backoffBounds, resolveBackoffPolicy } from 'sync-core';
 * const bounds: BackoffBounds = backoffBounds(resolveBackoffPolicy(), 1); // { minMs: 15_000, maxMs: 30_000 }
 * ```
 */
export interface BackoffBounds {
  /** Shortest possible delay, in ms. */
  readonly minMs: number;
  /** Longest possible delay, in ms. */
  readonly maxMs: number;
}

const JITTER_MODES: readonly JitterMode[] = ['equal', 'full', 'none'];

/** The largest double below 1: where an out-of-range random value is clamped to. */
const BELOW_ONE = 1 - Number.EPSILON / 2;

function describeValue(value: unknown): string {
  // Numbers are safe to echo (no payloads, no credentials) and far more useful than "number".
  if (typeof value === 'number') return String(value);
  if (typeof value === 'string') return `"${value.slice(0, 32)}"`;
  return describeType(value);
}

function invalid(name: string, expected: string, got: unknown): never {
  throw new ConfigError(`backoff.${name}: expected ${expected}, got ${describeValue(got)}`);
}

function isFiniteNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

/**
 * Validate {@link BackoffOptions} and fill in the defaults of DESIGN.md section 5 (30 s initial,
 * doubling, 1 h cap, equal jitter, no attempt limit).
 *
 * @param options - The options; `undefined` fields take their defaults.
 * @returns A frozen {@link BackoffPolicy}.
 * @throws {@link ConfigError} (`INVALID_OPTION`) naming the first invalid field, e.g.
 * "backoff.maxMs: expected a finite number ≥ initialMs (30000), got 1000".
 *
 * @example
 * ```ts
 * import { resolveBackoffPolicy } from 'sync-core';
 * const policy = resolveBackoffPolicy(); // { initialMs: 30_000, maxMs: 3_600_000, multiplier: 2, … }
 * ```
 */
export function resolveBackoffPolicy(options: BackoffOptions = {}): BackoffPolicy {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new ConfigError(`backoff: expected an object, got ${describeType(options)}`);
  }
  const initialMs = options.initialMs ?? 30_000;
  if (!isFiniteNumber(initialMs) || initialMs <= 0) invalid('initialMs', 'a finite number > 0', initialMs);

  const maxMs = options.maxMs ?? Math.max(3_600_000, initialMs);
  if (!isFiniteNumber(maxMs) || maxMs < initialMs) {
    invalid('maxMs', `a finite number ≥ initialMs (${initialMs})`, maxMs);
  }

  const multiplier = options.multiplier ?? 2;
  if (!isFiniteNumber(multiplier) || multiplier < 1) invalid('multiplier', 'a finite number ≥ 1', multiplier);

  const jitter = options.jitter ?? 'equal';
  if (!JITTER_MODES.includes(jitter)) invalid('jitter', "'equal', 'full' or 'none'", jitter);

  const maxAttempts = options.maxAttempts ?? Number.POSITIVE_INFINITY;
  if (
    typeof maxAttempts !== 'number' ||
    !(maxAttempts === Number.POSITIVE_INFINITY || Number.isInteger(maxAttempts)) ||
    maxAttempts < 1
  ) {
    invalid('maxAttempts', 'an integer ≥ 1 or Infinity', maxAttempts);
  }

  return Object.freeze({ initialMs, maxMs, multiplier, jitter, maxAttempts });
}

/**
 * The attempt number the formulas use: an integer ≥ 1. A caller's 0, negative or NaN means "no
 * failure recorded yet" and is treated as the first; a fraction is rounded down.
 */
function normalizeAttempt(attempt: number): number {
  if (!(attempt >= 1)) return 1;
  return Math.floor(attempt);
}

/**
 * The un-jittered delay after the k-th retryable failure (k = `attempt`):
 * `min(maxMs, initialMs · multiplier^(k−1))` — with the defaults 30 s, 60 s, 2 min, 4 min … 1 h.
 *
 * Never overflows: for a huge `attempt` (10 000, or `Infinity`) the power is `Infinity` and the
 * result is `maxMs`, never `Infinity` or `NaN`. An `attempt` below 1 (or NaN) is treated as 1 and a
 * fractional one is rounded down. The result is monotone non-decreasing in `attempt`.
 *
 * @param policy - A policy from {@link resolveBackoffPolicy}.
 * @param attempt - How many retryable failures have been counted so far, including this one (≥ 1).
 * @returns The delay in ms, in `[initialMs, maxMs]` (not rounded).
 *
 * @example
 * ```ts
 * import { backoffBaseDelay, resolveBackoffPolicy } from 'sync-core';
 * const policy = resolveBackoffPolicy();
 * backoffBaseDelay(policy, 3); // 120_000
 * backoffBaseDelay(policy, 10_000); // 3_600_000
 * ```
 */
export function backoffBaseDelay(policy: BackoffPolicy, attempt: number): number {
  const k = normalizeAttempt(attempt);
  if (policy.multiplier === 1) return policy.initialMs;
  const raw = policy.initialMs * policy.multiplier ** (k - 1);
  // For a huge k the power is Infinity (never NaN: multiplier > 1 here), and the min gives maxMs.
  return Math.min(raw, policy.maxMs);
}

/** The real interval [lo, hi] of the jittered delay, before rounding. */
function jitterInterval(policy: BackoffPolicy, attempt: number): [number, number] {
  const d = backoffBaseDelay(policy, attempt);
  switch (policy.jitter) {
    case 'equal':
      return [d / 2, d];
    case 'full':
      return [0, d];
    case 'none':
      return [d, d];
  }
}

/**
 * The interval a jittered delay for `attempt` is guaranteed to fall in, for base delay
 * `d = backoffBaseDelay(policy, attempt)`: `equal` → `[d/2, d]`, `full` → `[0, d]`, `none` →
 * `[d, d]`. Bounds are whole ms, rounded up like the delays themselves (with the default, integer
 * policy they are exact: `[15_000, 30_000]` for the first attempt).
 *
 * @param policy - A policy from {@link resolveBackoffPolicy}.
 * @param attempt - The attempt number (≥ 1; see {@link backoffBaseDelay}).
 *
 * @example
 * ```ts
 * import { backoffBounds, resolveBackoffPolicy } from 'sync-core';
 * backoffBounds(resolveBackoffPolicy(), 2); // { minMs: 30_000, maxMs: 60_000 }
 * ```
 */
export function backoffBounds(policy: BackoffPolicy, attempt: number): BackoffBounds {
  const [lo, hi] = jitterInterval(policy, attempt);
  return { minMs: Math.ceil(lo), maxMs: Math.ceil(hi) };
}

/**
 * Clamp a random draw into `[0, 1)`: a faulty source returning NaN, a negative number, 1 or more
 * must not push a delay outside its bounds.
 */
function clampUnit(value: number): number {
  if (!(value >= 0)) return 0;
  return value < 1 ? value : BELOW_ONE;
}

/**
 * The jittered delay after the k-th retryable failure, in whole ms: a uniform draw over the
 * interval of {@link backoffBounds}, rounded up (so never shorter than the exact draw).
 *
 * Calls `random` once (also for `jitter: 'none'`, so a seeded sequence does not shift with the
 * mode). A `random` returning a value outside `[0, 1)` — NaN, negative, 1 or more — is clamped into
 * it, so the result always lies within {@link backoffBounds} (DESIGN.md invariant 4).
 *
 * @param policy - A policy from {@link resolveBackoffPolicy}.
 * @param attempt - The attempt number (≥ 1; see {@link backoffBaseDelay}).
 * @param random - Uniform source over `[0, 1)`: the engine's injected `random`.
 * @returns An integer number of ms within `backoffBounds(policy, attempt)`.
 *
 * @example
 * ```ts
 * import { backoffDelay, resolveBackoffPolicy } from 'sync-core';
 * const policy = resolveBackoffPolicy();
 * backoffDelay(policy, 1, () => 0.5); // 22_500: halfway through [15 s, 30 s]
 * ```
 */
export function backoffDelay(policy: BackoffPolicy, attempt: number, random: RandomSource): number {
  const r = clampUnit(random());
  const [lo, hi] = jitterInterval(policy, attempt);
  // lo + r·(hi − lo) ≤ hi holds in floating point too (r < 1, and hi − lo is exact for d/2 and 0);
  // the min only guards the argument.
  return Math.min(Math.ceil(lo + r * (hi - lo)), Math.ceil(hi));
}
