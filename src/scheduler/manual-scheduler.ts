/**
 * The manual scheduler: records requests and runs them only when told to. For unit tests, the
 * testing kit, and demos that step time by hand — no timers, no sleeps, no flakiness.
 *
 * @packageDocumentation
 */

import { invalidOption } from '../config.js';
import type { Clock } from '../contracts/clock.js';
import type { RunRequest, SchedulerAdapter } from '../contracts/scheduler-adapter.js';
import type { RunTrigger } from '../engine/sync-run.js';
import { DEFAULT_RUN_REQUEST_NAME } from './job-scheduler.js';

/**
 * A {@link SchedulerAdapter} driven by hand; see {@link createManualScheduler}.
 */
export interface ManualScheduler extends SchedulerAdapter {
  /** Record `request` with its `run`, replacing any earlier request of its name. Never throws. */
  schedule(request: RunRequest, run: (trigger: RunTrigger) => Promise<void>): void;
  /** Forget the request of `name`. Never throws. */
  cancel(name: string): void;
  /** Every recorded request not yet run, earliest `notBefore` first. */
  pending(): readonly RunRequest[];
  /** The recorded requests whose `notBefore` ≤ `clock.now()`, earliest first. */
  due(): readonly RunRequest[];
  /** The recorded request of `name`, or `null`. @param name - @default 'sync-core' */
  current(name?: string): RunRequest | null;
  /** Every request ever passed to `schedule`, in call order (replaced and cancelled ones too). */
  history(): readonly RunRequest[];
  /**
   * Run every request that is due now, one after the other, earliest first, awaiting each `run`.
   *
   * Each request is removed before its `run` is called, so a run may schedule the next one (which
   * is recorded, not run, by this call: call `runDue` again, typically after advancing the clock).
   * A request replaced or cancelled by an earlier run of the same call is skipped.
   *
   * @param trigger - Passed to each `run`. @default 'schedule'
   * @returns How many runs were started.
   * @throws Rejects with the first error a `run` throws; the requests after it stay recorded.
   */
  runDue(trigger?: RunTrigger): Promise<number>;
}

interface Entry {
  readonly request: RunRequest;
  readonly run: (trigger: RunTrigger) => Promise<void>;
}

/**
 * Create a {@link ManualScheduler}: requests are recorded and come due by `clock`; nothing runs
 * until `runDue()` is called.
 *
 * @param clock - The clock `notBefore` is judged by: the same (fake) clock the engine uses.
 * @throws `ConfigError` when `clock` has no `now()`.
 *
 * @example
 * ```ts
 * import { createManualScheduler, createSyncEngine } from 'sync-core';
 * const scheduler = createManualScheduler(clock);
 * const engine = createSyncEngine({ storage, network, entities, clock, scheduler });
 * // …
 * clock.advance(30_000);
 * await scheduler.runDue(); // runs the engine if its retry came due
 * ```
 */
export function createManualScheduler(clock: Clock): ManualScheduler {
  if (typeof clock !== 'object' || clock === null || typeof clock.now !== 'function') {
    invalidOption('createManualScheduler(clock)', 'a Clock (an object with now())', clock);
  }
  const entries = new Map<string, Entry>();
  const recorded: RunRequest[] = [];

  const sorted = (): Entry[] =>
    [...entries.values()].sort((a, b) => a.request.notBefore - b.request.notBefore);

  return Object.freeze({
    schedule(request: RunRequest, run: (trigger: RunTrigger) => Promise<void>): void {
      if (typeof request !== 'object' || request === null || typeof run !== 'function') return;
      const stored: RunRequest = Object.freeze({ ...request });
      recorded.push(stored);
      entries.set(stored.name, { request: stored, run });
    },

    cancel(name: string): void {
      entries.delete(name);
    },

    pending(): readonly RunRequest[] {
      return sorted().map((entry) => entry.request);
    },

    due(): readonly RunRequest[] {
      const now = clock.now();
      return sorted()
        .filter((entry) => entry.request.notBefore <= now)
        .map((entry) => entry.request);
    },

    current(name: string = DEFAULT_RUN_REQUEST_NAME): RunRequest | null {
      return entries.get(name)?.request ?? null;
    },

    history(): readonly RunRequest[] {
      return [...recorded];
    },

    async runDue(trigger: RunTrigger = 'schedule'): Promise<number> {
      const now = clock.now();
      const due = sorted().filter((entry) => entry.request.notBefore <= now);
      let started = 0;
      for (const entry of due) {
        // An earlier run of this call may have replaced or cancelled it.
        if (entries.get(entry.request.name) !== entry) continue;
        entries.delete(entry.request.name);
        started++;
        await entry.run(trigger);
      }
      return started;
    },
  });
}
