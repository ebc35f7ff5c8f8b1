/**
 * The job scheduler's decisions (DESIGN.md section 4, step 5: "ask the scheduler for the next
 * run"): given how the last run ended and what the queue holds, when should the next one start?
 *
 * Everything here is pure: the clock reading and the random source are parameters, so every rule
 * can be tested with fixed numbers and a property test can check the invariants over any input.
 *
 * @packageDocumentation
 */

import { type BackoffPolicy, backoffDelay } from '../backoff/backoff-policy.js';
import { clampScheduledTime, runBackoffDelay } from '../backoff/schedule.js';
import type { RandomSource } from '../contracts/clock.js';
import type { RunRequest, RunRequestReason } from '../contracts/scheduler-adapter.js';
import type { RunOutcome, RunReport } from '../engine/sync-run.js';
import { ConfigError, describeType } from '../errors.js';

/**
 * The default interval of periodic runs: 15 minutes, in ms — the floor both mobile platforms put
 * on periodic background work (WorkManager's minimum periodic interval; iOS background refresh
 * rarely comes sooner), so asking for less buys nothing there.
 *
 * @example
 * ```ts
 * import { DEFAULT_PERIODIC_MS } from 'sync-core';
 * DEFAULT_PERIODIC_MS; // 900_000
 * ```
 */
export const DEFAULT_PERIODIC_MS = 15 * 60 * 1000;

/**
 * The default {@link RunRequest.name}: what a host registers the engine's job under.
 *
 * @example
 * ```ts
 * import { DEFAULT_RUN_REQUEST_NAME } from 'sync-core';
 * DEFAULT_RUN_REQUEST_NAME; // 'sync-core'
 * ```
 */
export const DEFAULT_RUN_REQUEST_NAME = 'sync-core';

/** Shortest delay before retrying after a `busy` or `lease-lost` run, in ms. */
export const BUSY_RETRY_MIN_MS = 2_000;
/** Longest delay before retrying after a `busy` or `lease-lost` run, in ms. */
export const BUSY_RETRY_MAX_MS = 5_000;

/**
 * The default upper bound of {@link connectivityDelay}: 10 s. Long enough to spread thousands of
 * devices that regain the network together, short enough that a user does not notice.
 */
export const DEFAULT_CONNECTIVITY_DELAY_MAX_MS = 10_000;

/** Outcomes after which sync is paused: no run is scheduled until the app calls `start()` again. */
const PAUSED_OUTCOMES: ReadonlySet<RunOutcome> = new Set<RunOutcome>(['auth-required', 'no-scope']);
/** Outcomes where another run holds (or took) the lease: try again shortly. */
const CONTENDED_OUTCOMES: ReadonlySet<RunOutcome> = new Set<RunOutcome>(['busy', 'lease-lost']);
/** Outcomes where the server or storage is failing: never come back sooner than a first backoff. */
const FAILING_OUTCOMES: ReadonlySet<RunOutcome> = new Set<RunOutcome>(['throttled', 'server-error', 'error']);

/**
 * What {@link decideNextRun} decides from.
 *
 * @example
 * ```ts
 * import { type NextRunInput, resolveBackoffPolicy } from 'sync-core';
 * const input: NextRunInput = {
 *   now: clock.now(),
 *   report, // the RunReport of the run that just ended
 *   nextDueAt: report.nextDueAt,
 *   hasPending: stats.pending + stats.inflight > 0,
 *   consecutiveOfflineRuns: 0,
 *   online: true,
 *   periodicMs: 900_000,
 *   policy: resolveBackoffPolicy(),
 *   random: Math.random,
 * };
 * ```
 */
export interface NextRunInput {
  /** The engine's clock now, in ms since the epoch. */
  readonly now: number;
  /**
   * The run that just ended, if the decision follows one (only `outcome` is read). Omit it when
   * scheduling for another reason (`start()`, after an enqueue).
   */
  readonly report?: Pick<RunReport, 'outcome'> | undefined;
  /**
   * When the earliest remaining mutation becomes sendable (ms since epoch), or `null` when none is
   * sendable: `RunReport.nextDueAt`, or a fresh read of the queue. A time in the past means due now.
   */
  readonly nextDueAt: number | null;
  /**
   * Whether anything is still pending or in flight in the active scope (including mutations that
   * are not sendable yet, e.g. behind another process's claim). While this is `true` and sync is
   * not paused, a next run is always scheduled.
   */
  readonly hasPending: boolean;
  /**
   * How many runs in a row ended `offline`, including the one in `report` when it did. Drives the
   * run-level backoff; `0` after any other outcome. A value below 1 after an `offline` run counts
   * as 1.
   */
  readonly consecutiveOfflineRuns: number;
  /** What the connectivity port says now (`alwaysOnline` says `true`). */
  readonly online: boolean;
  /**
   * Interval of periodic runs in ms, a number > 0, or `Infinity` for none (an app without pull
   * handlers that only wants runs while something is queued). An invalid value (NaN, ≤ 0) falls
   * back to {@link DEFAULT_PERIODIC_MS}; validate options with {@link resolvePeriodicMs}.
   */
  readonly periodicMs: number;
  /** The engine's backoff policy (DESIGN.md section 5). */
  readonly policy: BackoffPolicy;
  /** Uniform source over `[0, 1)` for jitter: the engine's injected `random`. */
  readonly random: RandomSource;
  /**
   * Sync is paused (credentials were refused and the app has not signed in again, or no scope is
   * active) even if `report` does not say so, e.g. right after a restart. @default false
   */
  readonly paused?: boolean | undefined;
  /** The request's name. @default DEFAULT_RUN_REQUEST_NAME ('sync-core') */
  readonly name?: string | undefined;
  /**
   * The engine's `Retry-After` ceiling, used to clamp a `nextDueAt` pushed absurdly far ahead by a
   * clock that jumped back (see `clampScheduledTime`). @default DEFAULT_RETRY_AFTER_CEILING_MS (24 h)
   */
  readonly retryAfterCeilingMs?: number | undefined;
}

/** The largest double below 1: where an out-of-range random value is clamped to. */
const BELOW_ONE = 1 - Number.EPSILON / 2;

function clampUnit(value: number): number {
  if (!(value >= 0)) return 0;
  return value < 1 ? value : BELOW_ONE;
}

function describeValue(value: unknown): string {
  return typeof value === 'number' ? String(value) : describeType(value);
}

/**
 * Validate the engine's `periodicMs` option: a number of ms > 0, or `Infinity` for no periodic
 * runs; `undefined` gives {@link DEFAULT_PERIODIC_MS}.
 *
 * Values below the platforms' 15-minute floor are accepted (Electron and tests may want them); on
 * mobile the OS simply runs less often.
 *
 * @throws {@link ConfigError} (`INVALID_OPTION`): "periodicMs: expected a number of ms > 0 or
 * Infinity, got -1".
 *
 * @example
 * ```ts
 * import { resolvePeriodicMs } from 'sync-core';
 * resolvePeriodicMs(undefined); // 900_000
 * resolvePeriodicMs(Number.POSITIVE_INFINITY); // Infinity: only run while something is queued
 * ```
 */
export function resolvePeriodicMs(value: unknown): number {
  if (value === undefined) return DEFAULT_PERIODIC_MS;
  if (typeof value !== 'number' || Number.isNaN(value) || value <= 0) {
    throw new ConfigError(`periodicMs: expected a number of ms > 0 or Infinity, got ${describeValue(value)}`);
  }
  return value;
}

/**
 * A short jittered delay before the run that follows the device coming back online, in whole ms,
 * uniform over `[0, maxMs]`.
 *
 * After an outage (a city-wide mobile network failure, a server maintenance window), thousands of
 * devices regain connectivity within the same second; starting all their runs at once is a
 * self-inflicted load spike on a server that has just come back. A few seconds of spread removes
 * it at no cost the user notices.
 *
 * Calls `random` once; a value outside `[0, 1)` (NaN, negative, 1 or more) is clamped into it.
 *
 * @param random - Uniform source over `[0, 1)`: the engine's injected `random`.
 * @param maxMs - The longest delay, a finite number ≥ 0. @default 10_000
 * @throws {@link ConfigError} when `maxMs` is not a finite number ≥ 0.
 *
 * @example
 * ```ts
 * import { connectivityDelay } from 'sync-core';
 * connectivityDelay(() => 0.5); // 5_000
 * connectivityDelay(() => 0.5, 2_000); // 1_000
 * ```
 */
export function connectivityDelay(
  random: RandomSource,
  maxMs: number = DEFAULT_CONNECTIVITY_DELAY_MAX_MS,
): number {
  if (typeof maxMs !== 'number' || !Number.isFinite(maxMs) || maxMs < 0) {
    throw new ConfigError(
      `connectivityDelay: expected maxMs to be a finite number ≥ 0, got ${describeValue(maxMs)}`,
    );
  }
  return Math.min(Math.ceil(clampUnit(random()) * maxMs), Math.ceil(maxMs));
}

/**
 * The delay before trying again after a `busy` or `lease-lost` run, in whole ms, uniform over
 * `[BUSY_RETRY_MIN_MS, BUSY_RETRY_MAX_MS]` (2–5 s). Jittered so that two processes sharing a
 * database do not keep colliding on the lease.
 */
function busyRetryDelay(random: RandomSource): number {
  return Math.ceil(BUSY_RETRY_MIN_MS + clampUnit(random()) * (BUSY_RETRY_MAX_MS - BUSY_RETRY_MIN_MS));
}

interface Candidate {
  readonly at: number;
  readonly reason: RunRequestReason;
}

/** The earliest finite candidate; on a tie the first listed wins (its reason is more specific). */
function earliest(candidates: readonly (Candidate | null)[]): Candidate | null {
  let best: Candidate | null = null;
  for (const candidate of candidates) {
    if (candidate === null || !Number.isFinite(candidate.at)) continue;
    if (best === null || candidate.at < best.at) best = candidate;
  }
  return best;
}

/**
 * Decide the next run: the {@link RunRequest} to hand the scheduler, or `null` for none.
 *
 * The rules, in the order they are applied (the first that matches decides):
 *
 * 1. **Paused → `null`.** After `auth-required` (credentials refused after one refresh) or
 *    `no-scope` (no user signed in), or when `paused` is set: nothing is scheduled until the app
 *    calls `start()` again — retrying with refused credentials only collects more 401s.
 * 2. **Contended → 2–5 s.** After `busy` or `lease-lost`, another run holds the lease (another
 *    process, or an overlapping trigger): try again at `now` + 2–5 s (jittered), reason
 *    `'retry-due'`. That run may drain everything; ours then finds nothing to do, cheaply.
 * 3. **Offline.** After an `offline` run:
 *    - if the connectivity port says **offline**, wait for the network: `notBefore = now`, reason
 *      `'connectivity'`, `requiresNetwork: true`. A scheduler holds such a run until the device is
 *      online (the timer scheduler waits for the port's online event plus {@link connectivityDelay};
 *      WorkManager and `BGProcessingTaskRequest` hold it with their network constraint), so it
 *      starts as soon as the network returns instead of a backoff interval later;
 *    - if the port says **online** (captive portal, DNS failure, server unreachable, or the
 *      `alwaysOnline` default), back off run-level: `notBefore = now + runBackoffDelay(policy,
 *      consecutiveOfflineRuns, random)` — 15–30 s, 30–60 s … up to the policy's cap with the
 *      defaults — reason `'offline-backoff'`. Offline runs never count as mutation attempts
 *      (DESIGN.md section 5); this is how they are spaced instead.
 * 4. **Failing server or storage.** After `throttled`, `server-error` or `error`: the earliest of
 *    - `nextDueAt`, but never earlier than `now` + one first-attempt backoff
 *      (`backoffDelay(policy, 1, random)`, 15–30 s by default), reason `'retry-due'`. The failing
 *      batch's mutations carry their recorded backoff and `Retry-After`; the floor covers the
 *      mutations the run released unsent (due immediately), which would otherwise send the next
 *      run straight back into a server that just said "slow down" — or into a failing disk;
 *    - `now + periodicMs`, reason `'periodic'`.
 * 5. **Otherwise** (`ok`, `deadline`, `aborted`, or no report): the earliest of `nextDueAt`
 *    (reason `'retry-due'`; a time in the past means now — work left by a `deadline` run continues
 *    at once) and `now + periodicMs` (reason `'periodic'`: the periodic refresh, 15 min by default).
 *
 * Whatever the rule, and always:
 *
 * - **Never earlier than `now`**: `notBefore ≥ now`.
 * - **Never a stall while work is pending**: when `hasPending` is true and sync is not paused, the
 *   result is never `null` — even with `periodicMs: Infinity` and nothing sendable (every pending
 *   mutation behind another process's claim, say): the fallback is `now + policy.maxMs` (in whole ms), reason
 *   `'retry-due'`. Sync never waits for the next local write to wake up.
 * - `null` otherwise only when nothing is pending and periodic runs are off (`periodicMs: Infinity`).
 * - **Clock jumps are clamped**: a `nextDueAt` further ahead than any delay the policy (or the
 *   `Retry-After` ceiling) can produce — the clock went back after it was stored — counts as
 *   `now + policy.maxMs` (`clampScheduledTime`).
 * - `requiresNetwork` is always `true`: every run talks to the server.
 *
 * @returns The next request, or `null` when no run should be scheduled.
 *
 * @example
 * ```ts
 * import { decideNextRun, resolveBackoffPolicy } from 'sync-core';
 * const request = decideNextRun({
 *   now: clock.now(),
 *   report,
 *   nextDueAt: report.nextDueAt,
 *   hasPending: true,
 *   consecutiveOfflineRuns: report.outcome === 'offline' ? offlineRuns : 0,
 *   online: await connectivity.isOnline(),
 *   periodicMs: 900_000,
 *   policy: resolveBackoffPolicy(),
 *   random,
 * });
 * if (request) await scheduler.schedule(request, (trigger) => engine.runOnce({ trigger }).then(() => {}));
 * ```
 */
export function decideNextRun(input: NextRunInput): RunRequest | null {
  const { now, policy, random } = input;
  const name = input.name ?? DEFAULT_RUN_REQUEST_NAME;
  const outcome = input.report?.outcome;
  const request = (at: number, reason: RunRequestReason): RunRequest =>
    Object.freeze({ name, notBefore: Math.max(now, at), requiresNetwork: true, reason });

  // Rule 1: paused.
  if (input.paused === true || (outcome !== undefined && PAUSED_OUTCOMES.has(outcome))) return null;

  // Rule 2: another run holds the lease.
  if (outcome !== undefined && CONTENDED_OUTCOMES.has(outcome)) {
    return request(now + busyRetryDelay(random), 'retry-due');
  }

  // Rule 3: the run could not reach the server.
  if (outcome === 'offline') {
    if (!input.online) return request(now, 'connectivity');
    const offlineRuns = Math.max(1, input.consecutiveOfflineRuns || 0);
    return request(now + runBackoffDelay(policy, offlineRuns, random), 'offline-backoff');
  }

  const periodicMs = input.periodicMs > 0 ? input.periodicMs : DEFAULT_PERIODIC_MS;
  const periodic: Candidate = { at: now + periodicMs, reason: 'periodic' };
  const dueAt =
    input.nextDueAt === null
      ? null
      : clampScheduledTime(policy, {
          scheduledAt: input.nextDueAt,
          now,
          retryAfterCeilingMs: input.retryAfterCeilingMs,
        });

  let chosen: Candidate | null;
  if (outcome !== undefined && FAILING_OUTCOMES.has(outcome)) {
    // Rule 4: throttled, server error, storage error.
    const floor = now + backoffDelay(policy, 1, random);
    chosen = earliest([
      dueAt === null ? null : { at: Math.max(dueAt, floor), reason: 'retry-due' },
      periodic,
    ]);
  } else {
    // Rule 5: the normal case.
    chosen = earliest([dueAt === null ? null : { at: dueAt, reason: 'retry-due' }, periodic]);
  }

  if (chosen !== null) return request(chosen.at, chosen.reason);
  // Only reachable with periodicMs: Infinity and nothing sendable.
  // Whole ms, like every delay the policy produces.
  return input.hasPending ? request(now + Math.ceil(policy.maxMs), 'retry-due') : null;
}
