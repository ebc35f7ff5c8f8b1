/**
 * Drive an engine on a fake clock the way the OS would: run, sleep until the next due time, run
 * again — until nothing sendable remains.
 *
 * @packageDocumentation
 */

import type { RunOptions, RunReport } from '../engine/sync-run.js';
import { ConfigError } from '../errors.js';
import type { FakeClock } from './fake-clock.js';

/**
 * Options of {@link runUntilIdle}.
 *
 * @example
 * ```ts
 * import { runUntilIdle, type RunUntilIdleOptions } from 'sync-core/testing';
 * const options: RunUntilIdleOptions = { maxRuns: 20, runOptions: (i) => ({ trigger: `attempt-${i}` }) };
 * await runUntilIdle(engine, clock, options);
 * ```
 */
export interface RunUntilIdleOptions {
  /** Most runs before giving up (the result then says `isIdle: false`). @default 100 */
  readonly maxRuns?: number;
  /** Options of every `runOnce` call, or a function of the run's index (0-based). @default {} */
  readonly runOptions?: RunOptions | ((index: number) => RunOptions);
  /**
   * Called after each run, before the clock advances: where the test plays the app (sign in again
   * after `auth-required`, discard dead letters…).
   */
  readonly onReport?: (report: RunReport, index: number) => void | Promise<void>;
}

/**
 * What {@link runUntilIdle} did.
 *
 * @example
 * ```ts
 * import { runUntilIdle, type RunUntilIdleResult } from 'sync-core/testing';
 * const { reports, isIdle }: RunUntilIdleResult = await runUntilIdle(engine, clock);
 * ```
 */
export interface RunUntilIdleResult {
  /** Every run's report, in order. */
  readonly reports: readonly RunReport[];
  /**
   * The last report's `nextDueAt` was `null`: nothing sendable remains (dead letters and
   * conflicts may, waiting for the app). `false` when `maxRuns` ran out first.
   */
  readonly isIdle: boolean;
}

/**
 * Call `engine.runOnce()` until it reports nothing sendable left (`nextDueAt === null`), advancing
 * the fake clock to each run's `nextDueAt` in between (backoff and Retry-After pass in no time).
 *
 * @param engine - A sync engine, or anything with its `runOnce`.
 * @param clock - The fake clock the engine was created with.
 * @throws ConfigError when `maxRuns` is not a positive integer.
 *
 * @example
 * ```ts
 * import { runUntilIdle } from 'sync-core/testing';
 * // engine = createSyncEngine({ …, clock, timers: createFakeTimers(clock) })
 * const { reports, isIdle } = await runUntilIdle(engine, clock, {
 *   onReport: async (report) => {
 *     if (report.outcome === 'auth-required') await engine.start({ userId: 'u1' });
 *   },
 * });
 * ```
 */
export async function runUntilIdle(
  engine: { runOnce(options?: RunOptions): Promise<RunReport> },
  clock: FakeClock,
  options: RunUntilIdleOptions = {},
): Promise<RunUntilIdleResult> {
  const maxRuns = options.maxRuns ?? 100;
  if (!Number.isSafeInteger(maxRuns) || maxRuns < 1) {
    throw new ConfigError(
      `runUntilIdle(options).maxRuns: expected a positive integer, got ${String(maxRuns)}`,
    );
  }
  const reports: RunReport[] = [];
  for (let index = 0; index < maxRuns; index++) {
    const runOptions =
      typeof options.runOptions === 'function' ? options.runOptions(index) : options.runOptions;
    const report = await engine.runOnce(runOptions ?? {});
    reports.push(report);
    await options.onReport?.(report, index);
    if (report.nextDueAt === null) return { reports, isIdle: true };
    clock.advance(Math.max(0, report.nextDueAt - clock.now()));
  }
  return { reports, isIdle: false };
}
