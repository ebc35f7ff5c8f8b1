import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type BackoffOptions,
  backoffBounds,
  DEFAULT_RETRY_AFTER_CEILING_MS,
  resolveBackoffPolicy,
} from '../../src/backoff/index.js';
import type { TimerHandle, Timers } from '../../src/contracts/clock.js';
import type { RunOutcome, RunTrigger } from '../../src/engine/sync-run.js';
import {
  BUSY_RETRY_MAX_MS,
  type ConnectivityAdapter,
  createTimerScheduler,
  DEFAULT_CONNECTIVITY_DELAY_MAX_MS,
  DEFAULT_PERIODIC_MS,
  decideNextRun,
  type NextRunInput,
} from '../../src/scheduler/index.js';

const NUM_RUNS = 300;
const DAY = 86_400_000;

const OUTCOMES: readonly RunOutcome[] = [
  'ok',
  'offline',
  'throttled',
  'server-error',
  'deadline',
  'aborted',
  'auth-required',
  'busy',
  'lease-lost',
  'no-scope',
  'error',
];

const backoffOptions: fc.Arbitrary<BackoffOptions> = fc
  .record({
    initialMs: fc.oneof(
      fc.integer({ min: 1, max: 600_000 }),
      fc.double({ min: 0.001, max: 1e6, noNaN: true }),
    ),
    extraMs: fc.oneof(
      fc.constant(0),
      fc.integer({ min: 0, max: DAY }),
      fc.double({ min: 0, max: 1e10, noNaN: true }),
    ),
    multiplier: fc.oneof(fc.constant(1), fc.constant(2), fc.double({ min: 1, max: 10, noNaN: true })),
    jitter: fc.constantFrom('equal' as const, 'full' as const, 'none' as const),
  })
  .map(({ initialMs, extraMs, multiplier, jitter }) => ({
    initialMs,
    maxMs: initialMs + extraMs,
    multiplier,
    jitter,
  }));

/** Random draws, including the values a faulty source might produce. */
const draw = fc.oneof(
  fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
  fc.constantFrom(0, 1, 1.5, -0.1, Number.NaN, Number.POSITIVE_INFINITY, 1 - Number.EPSILON / 2),
);

/** A random source replaying a generated sequence, cycling. */
const randomSource = fc.array(draw, { minLength: 1, maxLength: 8 }).map((values) => {
  let i = 0;
  return () => values[i++ % values.length]!;
});

const scenario = fc
  .record({
    now: fc.integer({ min: 0, max: 4_102_444_800_000 }),
    outcome: fc.option(fc.constantFrom(...OUTCOMES), { nil: undefined }),
    dueOffset: fc.option(
      fc.oneof(
        fc.integer({ min: -10 * DAY, max: 10 * DAY }),
        fc.integer({ min: -60_000, max: 60_000 }),
        fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 1e15),
      ),
      { nil: null },
    ),
    hasPending: fc.boolean(),
    consecutiveOfflineRuns: fc.integer({ min: -2, max: 200 }),
    online: fc.boolean(),
    periodicMs: fc.oneof(
      fc.constant(DEFAULT_PERIODIC_MS),
      fc.integer({ min: 1, max: 7 * DAY }),
      fc.double({ min: 0.001, max: 1e9, noNaN: true }),
      fc.constant(Number.POSITIVE_INFINITY),
      fc.constantFrom(0, -1, Number.NaN),
    ),
    policy: backoffOptions.map((options) => resolveBackoffPolicy(options)),
    random: randomSource,
    paused: fc.boolean(),
  })
  .map(
    (s): NextRunInput => ({
      now: s.now,
      ...(s.outcome === undefined ? {} : { report: { outcome: s.outcome } }),
      nextDueAt: s.dueOffset === null ? null : s.now + s.dueOffset,
      hasPending: s.hasPending,
      consecutiveOfflineRuns: s.consecutiveOfflineRuns,
      online: s.online,
      periodicMs: s.periodicMs,
      policy: s.policy,
      random: s.random,
      paused: s.paused,
    }),
  );

function isPaused(input: NextRunInput): boolean {
  const outcome = input.report?.outcome;
  return input.paused === true || outcome === 'auth-required' || outcome === 'no-scope';
}

function effectivePeriodic(input: NextRunInput): number {
  return input.periodicMs > 0 ? input.periodicMs : DEFAULT_PERIODIC_MS;
}

describe('job scheduler decisions (DESIGN.md sections 4, 5 and invariant 4)', () => {
  it('the next run is always scheduled while anything is pending and sync is not paused', () => {
    fc.assert(
      fc.property(scenario, (input) => {
        const next = decideNextRun(input);
        if (input.hasPending && !isPaused(input)) expect(next).not.toBeNull();
        // And the only other way to get none: nothing pending and periodic runs switched off.
        if (next === null) {
          expect(isPaused(input) || (!input.hasPending && effectivePeriodic(input) === Infinity)).toBe(true);
        }
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it('the next run is never earlier than now, always needs the network, and has a finite time', () => {
    fc.assert(
      fc.property(scenario, (input) => {
        const next = decideNextRun(input);
        if (next === null) return;
        expect(Number.isFinite(next.notBefore)).toBe(true);
        expect(next.notBefore).toBeGreaterThanOrEqual(input.now);
        expect(next.requiresNetwork).toBe(true);
        expect(next.name).toBe('sync-core');
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it('offline backoff is within the policy bounds for the consecutive-offline count', () => {
    fc.assert(
      fc.property(scenario, (generated) => {
        const input: NextRunInput = {
          ...generated,
          report: { outcome: 'offline' },
          online: true,
          paused: false,
        };
        const next = decideNextRun(input);
        const { minMs, maxMs } = backoffBounds(input.policy, Math.max(1, input.consecutiveOfflineRuns));
        expect(next?.reason).toBe('offline-backoff');
        const delay = next!.notBefore - input.now;
        expect(delay).toBeGreaterThanOrEqual(minMs);
        expect(delay).toBeLessThanOrEqual(maxMs);
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it('after the server says slow down (or storage fails), never sooner than a first backoff or the periodic run', () => {
    fc.assert(
      fc.property(
        scenario,
        fc.constantFrom<RunOutcome>('throttled', 'server-error', 'error'),
        (generated, outcome) => {
          const input: NextRunInput = { ...generated, report: { outcome }, paused: false };
          const next = decideNextRun(input);
          if (next === null) return;
          const { minMs } = backoffBounds(input.policy, 1);
          // Compared as absolute times: `now + 0.001 − now` is not 0.001 in floating point.
          expect(next.notBefore).toBeGreaterThanOrEqual(
            input.now + Math.min(minMs, effectivePeriodic(input)),
          );
        },
      ),
      { numRuns: NUM_RUNS },
    );
  });

  it('the next run never parks the queue longer than the largest delay anything can ask for', () => {
    fc.assert(
      fc.property(scenario, (input) => {
        const next = decideNextRun(input);
        if (next === null) return;
        const periodic = effectivePeriodic(input);
        const largest = Math.max(
          Number.isFinite(periodic) ? periodic : 0,
          Math.ceil(input.policy.maxMs),
          DEFAULT_RETRY_AFTER_CEILING_MS,
          BUSY_RETRY_MAX_MS,
        );
        expect(next.notBefore).toBeLessThanOrEqual(input.now + largest);
      }),
      { numRuns: NUM_RUNS },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// The timer scheduler against a model: random schedule/cancel/advance/connectivity/finish steps.
// ---------------------------------------------------------------------------------------------

type Step =
  | { kind: 'schedule'; name: string; offset: number; requiresNetwork: boolean }
  | { kind: 'cancel'; name: string }
  | { kind: 'advance'; ms: number }
  | { kind: 'online'; online: boolean }
  | { kind: 'finish' };

const names = fc.constantFrom('a', 'b');
const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({
    kind: fc.constant('schedule' as const),
    name: names,
    offset: fc.oneof(fc.integer({ min: -5_000, max: 120_000 }), fc.constant(0)),
    requiresNetwork: fc.boolean(),
  }),
  fc.record({ kind: fc.constant('cancel' as const), name: names }),
  fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 150_000 }) }),
  fc.record({ kind: fc.constant('online' as const), online: fc.boolean() }),
  fc.record({ kind: fc.constant('finish' as const) }),
);

async function flush(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}

describe('timer scheduler', () => {
  it('a scheduled request runs once, never early, never two at a time per name, unless replaced or cancelled', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(step, { maxLength: 40 }),
        randomSource,
        fc.boolean(),
        async (steps, random, early) => {
          let time = 1_000_000;
          const clock = { now: () => time };
          const active = new Map<number, { at: number; callback: () => void }>();
          let nextId = 1;
          const timers: Timers = {
            setTimeout: (callback, delayMs) => {
              const id = nextId++;
              // Platform timers may fire a millisecond early (start time rounding): model that too.
              active.set(id, { at: time + (early && delayMs >= 2 ? delayMs - 1 : delayMs), callback });
              return id;
            },
            clearTimeout: (handle: TimerHandle) => {
              active.delete(handle as number);
            },
          };
          const advance = async (ms: number) => {
            const until = time + ms;
            for (;;) {
              const due = [...active.entries()]
                .filter(([, t]) => t.at <= until)
                .sort((x, y) => x[1].at - y[1].at);
              const first = due[0];
              if (first === undefined) break;
              active.delete(first[0]);
              time = Math.max(time, first[1].at);
              first[1].callback();
              await flush();
            }
            time = until;
            await flush();
          };
          let online = true;
          const listeners = new Set<(online: boolean) => void>();
          const connectivity: ConnectivityAdapter = {
            isOnline: () => online,
            subscribe: (listener) => {
              listeners.add(listener);
              return () => listeners.delete(listener);
            },
          };
          const scheduler = createTimerScheduler({ clock, timers, connectivity, random });

          // The model: the live (scheduled, not started, not replaced or cancelled) request per name.
          interface Issued {
            readonly id: number;
            readonly name: string;
            readonly notBefore: number;
            starts: number;
          }
          const live = new Map<string, Issued>();
          const running = new Map<string, number>();
          const gates: (() => void)[] = [];
          let autoFinish = false;
          let issuedId = 0;

          // Recorded, not thrown: the scheduler catches whatever a run throws.
          const violations: string[] = [];
          const makeRun = (issued: Issued) => async (_trigger: RunTrigger) => {
            issued.starts++;
            if (issued.starts !== 1) violations.push(`request ${issued.id} started ${issued.starts} times`);
            if (time < issued.notBefore)
              violations.push(`request ${issued.id} started ${issued.notBefore - time} ms early`);
            if (live.get(issued.name) === issued) live.delete(issued.name);
            else violations.push(`request ${issued.id} started after it was replaced or cancelled`);
            const now = (running.get(issued.name) ?? 0) + 1;
            if (now !== 1) violations.push(`${now} runs of ${issued.name} at once`);
            running.set(issued.name, now);
            if (!autoFinish) await new Promise<void>((resolve) => gates.push(resolve));
            running.set(issued.name, (running.get(issued.name) ?? 1) - 1);
          };

          for (const s of steps) {
            switch (s.kind) {
              case 'schedule': {
                const issued: Issued = {
                  id: ++issuedId,
                  name: s.name,
                  notBefore: time + s.offset,
                  starts: 0,
                };
                live.set(s.name, issued);
                scheduler.schedule(
                  {
                    name: s.name,
                    notBefore: issued.notBefore,
                    requiresNetwork: s.requiresNetwork,
                    reason: 'retry-due',
                  },
                  makeRun(issued),
                );
                break;
              }
              case 'cancel':
                live.delete(s.name);
                scheduler.cancel(s.name);
                break;
              case 'advance':
                await advance(s.ms);
                break;
              case 'online':
                online = s.online;
                for (const listener of [...listeners]) listener(s.online);
                await flush();
                break;
              case 'finish':
                for (const resolve of gates.splice(0)) resolve();
                await flush();
                break;
            }
            // One timer per name, never more: a replaced request's timer is cleared, not left behind.
            if (active.size > 2) violations.push(`${active.size} timers armed for 2 names`);
          }

          // Liveness: back online, runs finish on their own, time moves on — every live request runs.
          autoFinish = true;
          online = true;
          for (const listener of [...listeners]) listener(true);
          for (let i = 0; i < 5; i++) {
            for (const resolve of gates.splice(0)) resolve();
            await advance(200_000 + DEFAULT_CONNECTIVITY_DELAY_MAX_MS);
          }
          expect(violations).toEqual([]);
          expect([...live.values()]).toEqual([]);
          expect(scheduler.isRunning('a') || scheduler.isRunning('b')).toBe(false);
          expect(listeners.size).toBe(0);
          scheduler.dispose();
        },
      ),
      { numRuns: 150 },
    );
  });
});
