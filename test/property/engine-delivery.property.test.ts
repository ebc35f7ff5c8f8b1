/**
 * DESIGN.md invariants 1–3 end to end, through the public `sync-core/testing` kit: a real engine
 * (better-sqlite3 :memory:) sends through a fault-injecting network to the in-memory model server,
 * while the app enqueues in bursts, the wall clock jumps (FAULTS.md 28/29), runs are cut by
 * deadlines mid-request, and the app discards what the server rejected or conflicted. Runs repeat
 * until the queue is drained; then the delivery checker must find, in Jepsen's terms,
 * lost = unexpected = duplicated = outOfOrder = ∅.
 *
 * Budget: 300 cases in CI (a few seconds); `SYNC_CORE_LONG=1` runs 10× as many.
 */
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { createSyncEngine, type EnqueuedMutation, type RunReport, type SyncEngine } from 'sync-core';
import { createBetterSqlite3Storage } from 'sync-core/better-sqlite3';
import {
  arbClockJump,
  arbFaultSchedule,
  arbMutationInput,
  arbScope,
  checkDelivery,
  createFakeClock,
  createFakeTimers,
  createFaultyNetwork,
  createModelServer,
  createSeededRandom,
  describeDelivery,
} from 'sync-core/testing';
import { describe, expect, it } from 'vitest';

const LONG = process.env.SYNC_CORE_LONG !== undefined && process.env.SYNC_CORE_LONG !== '';
const NUM_RUNS = LONG ? 3_000 : 300;
const TEST_TIMEOUT_MS = LONG ? 600_000 : 60_000;
/** Runs allowed to drain once the app stops enqueueing; more means sync got stuck (liveness). */
const MAX_DRAIN_RUNS = 60;

const ENTITIES = ['activity', 'contact'] as const;

/** One burst of app activity, then a few runs. */
const arbPhase = fc.record({
  enqueues: fc.array(arbMutationInput(fc, { entities: [...ENTITIES], ids: ['r1', 'r2', 'r3'] }), {
    maxLength: 6,
  }),
  jump: fc.option(arbClockJump(fc), { nil: undefined }),
  advanceMs: fc.integer({ min: 0, max: 120_000 }),
  runs: fc.integer({ min: 0, max: 2 }),
  /** A background job's budget: cut runs short, sometimes mid-request. */
  deadlineMs: fc.option(fc.integer({ min: 0, max: 8_000 }), { nil: undefined }),
});

const arbScenario = fc.record({
  scope: arbScope(fc),
  phases: fc.array(arbPhase, { minLength: 1, maxLength: 5 }),
  schedule: arbFaultSchedule(fc, { maxLength: 15 }),
  latencyMs: fc.constantFrom(0, 0, 500, 3_000),
  seed: fc.integer(),
  assignIds: fc.boolean(),
  coalesce: fc.boolean(),
  /** Small batches make several rounds per run, and a record's next mutation wait for a later one. */
  batch: fc.record({ maxCount: fc.constantFrom(1, 3, 100), concurrency: fc.constantFrom(1, 4) }),
});

describe('engine delivery through faults (DESIGN.md invariants 1–3)', () => {
  it(
    'No loss, effectively once, per-record order: whatever the faults, clock jumps and deadlines, once drained lost = unexpected = duplicated = outOfOrder = ∅',
    async () => {
      await fc.assert(
        fc.asyncProperty(arbScenario, async (scenario) => {
          const clock = createFakeClock();
          const timers = createFakeTimers(clock);
          const server = createModelServer(scenario.assignIds ? { assignIds: ['activity'] } : {});
          const network = createFaultyNetwork(server, {
            schedule: scenario.schedule,
            clock,
            latencyMs: scenario.latencyMs,
            random: createSeededRandom(scenario.seed),
          });
          const engine: SyncEngine = createSyncEngine({
            storage: createBetterSqlite3Storage(new Database(':memory:')),
            entities: { activity: {}, contact: { coalesce: scenario.coalesce } },
            network,
            clock,
            timers,
            random: createSeededRandom(scenario.seed),
            batch: scenario.batch,
          });
          await engine.open();
          const enqueued: EnqueuedMutation[] = [];
          const discarded: string[] = [];
          const outcomes: string[] = [];
          try {
            await engine.start(scenario.scope);

            /** One run as the app's background job makes it, then the app's follow-up. */
            const run = async (deadlineMs?: number): Promise<RunReport> => {
              const report = await engine.runOnce(
                deadlineMs === undefined ? {} : { deadline: clock.now() + deadlineMs },
              );
              outcomes.push(report.outcome);
              // Signing in again is how the app resumes after auth-required.
              if (report.outcome === 'auth-required') await engine.start(scenario.scope);
              // The user gives up on what the server refused or conflicted: discarded on purpose.
              const stuck = await engine.queue.list({
                state: ['failed', 'conflict'],
                scope: 'all',
                limit: 1000,
              });
              discarded.push(...(await engine.queue.discard(stuck.map((m) => m.id))));
              return report;
            };

            for (const phase of scenario.phases) {
              for (const input of phase.enqueues) enqueued.push(await engine.enqueue(input));
              if (phase.jump !== undefined) clock.jump(phase.jump);
              clock.advance(phase.advanceMs);
              for (let i = 0; i < phase.runs; i++) await run(phase.deadlineMs);
            }

            let drained = false;
            for (let i = 0; i < MAX_DRAIN_RUNS && !drained; i++) {
              const report = await run();
              if ((await engine.queue.stats({ scope: 'all' })).total === 0) drained = true;
              else if (report.nextDueAt !== null) clock.advance(Math.max(0, report.nextDueAt - clock.now()));
            }
            const queued = await engine.queue.list({ scope: 'all', limit: 1000 });
            expect(
              drained,
              `not drained after ${MAX_DRAIN_RUNS} runs; outcomes ${outcomes.join(' ')}; still queued ${JSON.stringify(queued.map((m) => [m.op, m.entity, m.entityId, m.state, m.attempts, m.nextAttemptAt - clock.now()]))}`,
            ).toBe(true);

            const result = checkDelivery({ enqueued, applied: server.log(), queued, discarded });
            expect(result.ok, `${describeDelivery(result)}\nrun outcomes: ${outcomes.join(' ')}`).toBe(true);
          } finally {
            await engine.close();
          }
        }),
        {
          numRuns: NUM_RUNS,
          // Replay a counterexample: SYNC_CORE_SEED=<seed> SYNC_CORE_PATH=<path> from fast-check's report.
          ...(process.env.SYNC_CORE_SEED === undefined
            ? {}
            : { seed: Number(process.env.SYNC_CORE_SEED), path: process.env.SYNC_CORE_PATH }),
        },
      );
    },
    TEST_TIMEOUT_MS,
  );
});
