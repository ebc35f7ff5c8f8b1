/**
 * The in-process scheduler: runs the engine from a timer, for Node, Electron and any long-lived
 * JavaScript process (a foreground browser tab too, though a service worker's `sync` event is
 * better there).
 *
 * @packageDocumentation
 */

import { invalidOption } from '../config.js';
import {
  type Clock,
  defaultRandom,
  type RandomSource,
  systemClock,
  systemTimers,
  type TimerHandle,
  type Timers,
} from '../contracts/clock.js';
import {
  alwaysOnline,
  type ConnectivityAdapter,
  type RunRequest,
  type SchedulerAdapter,
} from '../contracts/scheduler-adapter.js';
import type { RunTrigger } from '../engine/sync-run.js';
import {
  connectivityDelay,
  DEFAULT_CONNECTIVITY_DELAY_MAX_MS,
  DEFAULT_RUN_REQUEST_NAME,
} from './job-scheduler.js';

/**
 * The longest delay a platform timer accepts: 2³¹ − 1 ms (about 24.8 days). Node and browsers
 * treat anything longer as 1 ms — a far-future request would fire at once — so longer waits are
 * armed in steps of at most this.
 */
export const MAX_TIMER_DELAY_MS = 2_147_483_647;

/**
 * Options of {@link createTimerScheduler}. Every field is optional; an invalid one throws a
 * `ConfigError` ("timers: expected an object with setTimeout and clearTimeout, got number").
 *
 * @example
 * ```ts
 * import { createBrowserConnectivity, createTimerScheduler } from 'sync-core';
 * const scheduler = createTimerScheduler({ connectivity: createBrowserConnectivity(), connectivityDelayMaxMs: 5_000 });
 * ```
 */
export interface TimerSchedulerOptions {
  /**
   * The timers to arm. Injected rather than global so that tests (and two schedulers in one
   * process) control their own time.
   * @default systemTimers (looked up on `globalThis` at each call, so fake timers installed later
   * still apply; `unref`'d on Node, so a scheduled run never keeps the process alive)
   */
  readonly timers?: Timers;
  /**
   * The clock `notBefore` is judged by; use the engine's clock. A timer that fires before
   * `notBefore` by this clock (timers may fire a millisecond early; a fake clock may lag fake
   * timers) is re-armed for the remainder: a run never starts early.
   * @default systemClock
   */
  readonly clock?: Clock;
  /**
   * Consulted when a request that `requiresNetwork` comes due: while it says offline, the run waits
   * for its online event, then a jittered {@link connectivityDelay}, and starts with the trigger
   * `'connectivity'`.
   * @default alwaysOnline (runs start when due; an offline outcome backs off instead)
   */
  readonly connectivity?: ConnectivityAdapter;
  /**
   * Random source for the connectivity jitter; use the engine's.
   * @default defaultRandom() (Web Crypto, else `Math.random`)
   */
  readonly random?: RandomSource;
  /**
   * The longest jitter after the device comes back online, in ms: a finite number ≥ 0.
   * @default 10_000
   */
  readonly connectivityDelayMaxMs?: number;
  /**
   * Called with whatever a run callback threw or rejected with (the run is otherwise forgotten:
   * never an unhandled rejection). A throwing `onError` is ignored too.
   * @default ignore (the engine reports run failures through its own events)
   */
  readonly onError?: (error: unknown, request: RunRequest) => void;
}

/**
 * A {@link SchedulerAdapter} that runs the engine from timers in this process; see
 * {@link createTimerScheduler}.
 */
export interface TimerScheduler extends SchedulerAdapter {
  /** Arm `request` (replacing any earlier one of its name). Never throws. */
  schedule(request: RunRequest, run: (trigger: RunTrigger) => Promise<void>): void;
  /** Drop the pending request of `name`; a run in progress finishes undisturbed. Never throws. */
  cancel(name: string): void;
  /**
   * The request of `name` that has not started yet (armed, waiting for connectivity, or due and
   * waiting for the previous run to finish), or `null`.
   * @param name - @default DEFAULT_RUN_REQUEST_NAME ('sync-core')
   */
  current(name?: string): RunRequest | null;
  /** Whether a run of `name` started by this scheduler is in progress. @param name - @default 'sync-core' */
  isRunning(name?: string): boolean;
  /**
   * Cancel every request and stop listening for connectivity; later `schedule` calls are ignored.
   * Runs in progress finish; none is started afterwards. Idempotent.
   */
  dispose(): void;
}

type RunCallback = (trigger: RunTrigger) => Promise<void>;

/** Everything the scheduler knows about one name. */
interface Job {
  /** The request not yet started, or null. */
  request: RunRequest | null;
  /** The run callback of the latest `schedule` call. */
  run: RunCallback;
  /** Incremented on every replace/cancel: callbacks of an older generation do nothing. */
  generation: number;
  timer: TimerHandle | undefined;
  unsubscribe: (() => void) | undefined;
  running: boolean;
  /** A due request came while running: start again with this trigger once the run ends. */
  rerun: RunTrigger | undefined;
}

function isObject(value: unknown): boolean {
  return typeof value === 'object' && value !== null;
}

/** Whether `value` is an object whose members `names` are all functions (no type narrowing). */
function hasMethods(value: unknown, ...names: string[]): boolean {
  if (!isObject(value)) return false;
  const record = value as Record<string, unknown>;
  return names.every((name) => typeof record[name] === 'function');
}

/**
 * Create the in-process {@link SchedulerAdapter} for Node and Electron.
 *
 * - **One timer per name**: `schedule` clears the name's timer (and any wait for connectivity) and
 *   arms a new one for `notBefore`; `cancel` clears it. Requests of other names are independent.
 * - **Never early**: when the timer fires before `notBefore` by the injected clock, it is re-armed
 *   for the rest; waits longer than {@link MAX_TIMER_DELAY_MS} are armed in steps.
 * - **Fires `run('schedule')`**, asynchronously: never from inside `schedule` itself, so a run
 *   callback may call `schedule` again without recursion.
 * - **Connectivity**: when the request `requiresNetwork` and the connectivity port says offline at
 *   fire time, the run waits for the port's online event, then a jittered
 *   {@link connectivityDelay} (≤ `connectivityDelayMaxMs`), and starts with `run('connectivity')`.
 *   The scheduler listens before it asks, so an online event between the two is not lost. A port
 *   that throws or rejects counts as online: a broken port must never park sync.
 * - **One run at a time per name (coalescing)**: when a request comes due while the previous run
 *   of its name is still in progress, it starts once that run ends — once, however many requests
 *   came due meanwhile. A later `schedule` or `cancel` supersedes that pending start.
 * - **Errors are caught**: a run callback that throws or rejects is reported to `onError`, never
 *   left as an unhandled rejection, and the scheduler carries on.
 * - `dispose()` cancels everything.
 *
 * @throws `ConfigError` when an option is invalid.
 *
 * @example
 * ```ts
 * import { createSyncEngine, createTimerScheduler } from 'sync-core';
 * const scheduler = createTimerScheduler();
 * const engine = createSyncEngine({ storage, network, entities, scheduler });
 * await engine.open();
 * await engine.start({ userId: 'u1' }); // the engine schedules its runs from now on
 * // on quit:
 * await engine.close();
 * scheduler.dispose();
 * ```
 */
export function createTimerScheduler(options: TimerSchedulerOptions = {}): TimerScheduler {
  if (!isObject(options)) invalidOption('createTimerScheduler(options)', 'an object', options);
  const { timers = systemTimers, clock = systemClock, connectivity = alwaysOnline } = options;
  if (!hasMethods(timers, 'setTimeout', 'clearTimeout')) {
    invalidOption('timers', 'an object with setTimeout and clearTimeout', timers);
  }
  if (!hasMethods(clock, 'now')) {
    invalidOption('clock', 'an object with now()', clock);
  }
  if (!hasMethods(connectivity, 'isOnline', 'subscribe')) {
    invalidOption('connectivity', 'a ConnectivityAdapter (isOnline, subscribe)', connectivity);
  }
  if (options.random !== undefined && typeof options.random !== 'function') {
    invalidOption('random', 'a function returning a number in [0, 1)', options.random);
  }
  const maxJitter = options.connectivityDelayMaxMs ?? DEFAULT_CONNECTIVITY_DELAY_MAX_MS;
  if (typeof maxJitter !== 'number' || !Number.isFinite(maxJitter) || maxJitter < 0) {
    invalidOption('connectivityDelayMaxMs', 'a finite number ≥ 0', maxJitter);
  }
  if (options.onError !== undefined && typeof options.onError !== 'function') {
    invalidOption('onError', 'a function', options.onError);
  }
  const random = options.random ?? defaultRandom();
  const onError = options.onError;

  const jobs = new Map<string, Job>();
  let disposed = false;

  const report = (error: unknown, request: RunRequest): void => {
    try {
      onError?.(error, request);
    } catch {
      // onError is the last line: nothing left to report a failure of it to.
    }
  };

  /** Stop whatever is armed for `job` and invalidate its callbacks in flight. */
  const disarm = (job: Job): void => {
    job.generation++;
    if (job.timer !== undefined) {
      const handle = job.timer;
      job.timer = undefined;
      try {
        timers.clearTimeout(handle);
      } catch {
        // The generation bump already makes the old callback a no-op.
      }
    }
    if (job.unsubscribe !== undefined) {
      const unsubscribe = job.unsubscribe;
      job.unsubscribe = undefined;
      try {
        unsubscribe();
      } catch {
        // Same: a late event finds a newer generation and does nothing.
      }
    }
    job.rerun = undefined;
  };

  const forgetIfIdle = (name: string, job: Job): void => {
    if (job.request === null && !job.running && jobs.get(name) === job) jobs.delete(name);
  };

  const setTimer = (job: Job, delayMs: number, callback: () => void): void => {
    const generation = job.generation;
    const delay = Math.min(Math.max(0, delayMs), MAX_TIMER_DELAY_MS);
    try {
      job.timer = timers.setTimeout(() => {
        if (generation !== job.generation) return;
        job.timer = undefined;
        callback();
      }, delay);
    } catch (error) {
      // Injected timers that throw: the port promises never to throw, so report and drop.
      job.timer = undefined;
      if (job.request !== null) report(error, job.request);
    }
  };

  const startRun = (name: string, job: Job, trigger: RunTrigger): void => {
    const request = job.request;
    if (request === null) return;
    if (job.running) {
      // Coalesce: one more run after the current one, however many requests come due meanwhile.
      job.rerun = trigger;
      return;
    }
    job.request = null;
    job.running = true;
    const run = job.run;
    const finish = (): void => {
      job.running = false;
      const rerun = job.rerun;
      job.rerun = undefined;
      if (rerun !== undefined && !disposed && job.request !== null) startRun(name, job, rerun);
      else forgetIfIdle(name, job);
    };
    let pending: Promise<void>;
    try {
      pending = Promise.resolve(run(trigger));
    } catch (error) {
      pending = Promise.reject(error);
    }
    pending.then(undefined, (error: unknown) => report(error, request)).then(finish);
  };

  const whenOnline = (name: string, job: Job): void => {
    const generation = job.generation;
    let settled = false;
    let unsubscribe: (() => void) | undefined;
    const stopListening = (): void => {
      if (job.unsubscribe === unsubscribe) job.unsubscribe = undefined;
      try {
        unsubscribe?.();
      } catch {
        // Ignored: the listener checks `settled` anyway.
      }
    };
    const proceed = (trigger: RunTrigger, jitter: boolean): void => {
      if (settled || generation !== job.generation) return;
      settled = true;
      stopListening();
      if (jitter) setTimer(job, connectivityDelay(random, maxJitter), () => startRun(name, job, trigger));
      else startRun(name, job, trigger);
    };
    // Listen before asking, so that an online event between the answer and the subscription is
    // not lost.
    try {
      unsubscribe = connectivity.subscribe((online) => {
        if (online) proceed('connectivity', true);
      });
    } catch {
      // A port that cannot subscribe cannot tell us when it is back: run now rather than park.
      proceed('schedule', false);
      return;
    }
    // A port may call the listener synchronously from `subscribe` (its current state).
    if (settled) {
      stopListening();
      return;
    }
    job.unsubscribe = unsubscribe;
    const answer = (online: boolean): void => {
      // Still offline: keep waiting for the event.
      if (online !== false) proceed('schedule', false);
    };
    let online: boolean | Promise<boolean>;
    try {
      online = connectivity.isOnline();
    } catch {
      online = true;
    }
    if (typeof online === 'boolean') answer(online);
    else Promise.resolve(online).then(answer, () => answer(true));
  };

  const onDue = (name: string, job: Job): void => {
    const request = job.request;
    if (request === null) return;
    const remaining = request.notBefore - clock.now();
    if (remaining > 0) {
      setTimer(job, remaining, () => onDue(name, job));
      return;
    }
    if (request.requiresNetwork && connectivity !== alwaysOnline) whenOnline(name, job);
    else startRun(name, job, 'schedule');
  };

  return Object.freeze({
    schedule(request: RunRequest, run: RunCallback): void {
      if (disposed || !isObject(request) || typeof run !== 'function') return;
      const name = typeof request.name === 'string' ? request.name : DEFAULT_RUN_REQUEST_NAME;
      const notBefore = Number.isNaN(request.notBefore) ? clock.now() : request.notBefore;
      const stored: RunRequest = Object.freeze({
        name,
        notBefore,
        requiresNetwork: request.requiresNetwork !== false,
        reason: request.reason,
      });
      let job = jobs.get(name);
      if (job === undefined) {
        job = {
          request: null,
          run,
          generation: 0,
          timer: undefined,
          unsubscribe: undefined,
          running: false,
          rerun: undefined,
        };
        jobs.set(name, job);
      }
      disarm(job);
      job.request = stored;
      job.run = run;
      const armed = job;
      // Armed through a timer even when due now: the run never starts inside `schedule`.
      setTimer(armed, notBefore - clock.now(), () => onDue(name, armed));
    },

    cancel(name: string): void {
      const job = jobs.get(name);
      if (job === undefined) return;
      disarm(job);
      job.request = null;
      forgetIfIdle(name, job);
    },

    current(name: string = DEFAULT_RUN_REQUEST_NAME): RunRequest | null {
      return jobs.get(name)?.request ?? null;
    },

    isRunning(name: string = DEFAULT_RUN_REQUEST_NAME): boolean {
      return jobs.get(name)?.running === true;
    },

    dispose(): void {
      if (disposed) return;
      disposed = true;
      for (const [name, job] of [...jobs]) {
        disarm(job);
        job.request = null;
        forgetIfIdle(name, job);
      }
    },
  });
}
