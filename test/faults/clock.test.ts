/**
 * Clock faults (FAULTS.md 28, 29 and the skewed-clock part of 16; DESIGN.md invariants 2, 4, 6)
 * with the testing kit's fake clock and fake timers, its model server and faulty network, over a
 * REAL better-sqlite3 database file:
 *
 * - the wall clock jumps a year ahead: no mass expiry, no burst of retries, leases and claims of a
 *   dead run are taken over without counting attempts, one `stuck` notice per mutation;
 * - the wall clock jumps a day back: schedules clamped to the policy's maximum, a lease and claims
 *   stamped "in the future" treated as expired, `nextRunRequest()` never parked;
 * - Retry-After measured against a server `Date` a day away from the device clock;
 * - invariant 4 as a fast-check property across retryable failures and clock jumps.
 *
 * Tests marked `it.fails` are bugs found by this suite: the test states the expected behaviour and
 * the comment above it names the bug (file and line).
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import {
  type BackoffOptions,
  backoffBounds,
  createSyncEngine,
  DEFAULT_RETRY_AFTER_CEILING_MS,
  type EnqueuedMutation,
  type Mutation,
  type MutationInput,
  type NetworkAdapter,
  type Notice,
  type PushRequest,
  type PushResponse,
  parseRetryAfter,
  type RunReport,
  resolveBackoffPolicy,
  type Scope,
  type SyncEngine,
  type SyncEngineOptions,
} from 'sync-core';
import { createBetterSqlite3Storage } from 'sync-core/better-sqlite3';
import {
  arbClockJump,
  createFakeClock,
  createFakeTimers,
  createFaultyNetwork,
  createModelServer,
  createSeededRandom,
  type FakeClock,
  type FakeTimers,
  type Fault,
  type FaultyNetwork,
  type ModelServer,
} from 'sync-core/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/storage-factories.js';

const SCOPE: Scope = Object.freeze({ userId: 'u1', orgId: 'o1' });
const SECOND = 1_000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const YEAR = 365 * DAY;
const MAX_MS = HOUR; // the default policy's cap (DESIGN.md section 5)
const LEASE_TTL_MS = 60_000;
const BATCH = 10;

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function tempFile(): string {
  const dir = tempDir('sync-core-clock-');
  cleanups.push(dir.remove);
  return join(dir.dir, 'queue.db');
}

/** One "device": a shared fake clock and timers, one database file, one model server. */
interface Device {
  readonly file: string;
  readonly clock: FakeClock;
  readonly timers: FakeTimers;
  readonly server: ModelServer;
}

function device(start?: number): Device {
  const clock = createFakeClock(start);
  return { file: tempFile(), clock, timers: createFakeTimers(clock), server: createModelServer() };
}

/** An engine (a "process") over the device's file; each has its own connection. */
async function engineOn(
  dev: Device,
  network: NetworkAdapter,
  extra: Partial<SyncEngineOptions> = {},
  seed = 11,
): Promise<SyncEngine> {
  const engine = createSyncEngine({
    storage: createBetterSqlite3Storage(new Database(dev.file), { synchronous: 'NORMAL' }),
    entities: { activity: {}, contact: {} },
    clock: dev.clock,
    timers: dev.timers,
    random: createSeededRandom(seed),
    network,
    leaseTtlMs: LEASE_TTL_MS,
    batch: { maxCount: BATCH },
    ...extra,
  });
  cleanups.push(() => engine.close().catch(() => undefined));
  await engine.open();
  await engine.start(SCOPE);
  return engine;
}

function faultyNetwork(dev: Device, schedule?: (request: PushRequest) => Fault | undefined): FaultyNetwork {
  return createFaultyNetwork(dev.server, {
    random: createSeededRandom(5),
    ...(schedule ? { schedule: (request) => schedule(request) } : {}),
  });
}

/**
 * A network whose requests never come back until the run is aborted: the engine using it is a
 * process that died (or hangs) mid-request, holding the lease and its claims.
 */
function hangingNetwork(): { network: NetworkAdapter; requests: PushRequest[] } {
  const requests: PushRequest[] = [];
  return {
    requests,
    network: {
      push(request) {
        requests.push(request);
        return new Promise<PushResponse>((resolve) => {
          const done = () =>
            resolve({ type: 'failure', failure: { class: 'aborted', code: 'aborted', message: 'aborted' } });
          if (request.signal.aborted) done();
          else request.signal.addEventListener('abort', done, { once: true });
        });
      },
    },
  };
}

/** Let the event loop turn until `condition` holds (a background run reaching its request). */
async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !condition(); i++) await new Promise((r) => setTimeout(r, 5));
  expect(condition()).toBe(true);
}

function inputs(n: number, entity = 'activity', from = 0): MutationInput[] {
  return Array.from({ length: n }, (_, i) => ({
    entity,
    op: 'create',
    entityId: `${entity}-${from + i}`,
    data: { i: from + i },
  }));
}

async function everything(engine: SyncEngine): Promise<Mutation[]> {
  return engine.queue.list({ scope: 'all', limit: 1000 });
}

function pushesOf(network: FaultyNetwork, fromCall = 0): PushRequest[] {
  return network
    .requests()
    .filter((r) => r.type === 'push')
    .slice(fromCall)
    .map((r) => r.request as PushRequest);
}

function noticesOf(notices: readonly Notice[], kind: Notice['kind']): Notice[] {
  return notices.filter((n) => n.kind === kind);
}

// ---------------------------------------------------------------------------------------------
// A queue in a realistic state: some mutations deep in backoff, some never sent, some claimed by
// a process that died mid-request (its lease and claims still "live").
// ---------------------------------------------------------------------------------------------

interface Seeded {
  readonly dev: Device;
  readonly engine: SyncEngine;
  readonly network: FaultyNetwork;
  readonly enqueued: readonly EnqueuedMutation[];
  /** The 10 mutations the dead process had claimed. */
  readonly claimedByDead: readonly string[];
  /** The 10 mutations with 3 counted attempts. */
  readonly backedOff: readonly string[];
  /** Whether the server currently fails every push with a 500. */
  failing: { value: boolean };
}

async function seedQueue(options: { maxAttempts?: number } = {}): Promise<Seeded> {
  const dev = device();
  const failing = { value: false };
  const network = faultyNetwork(dev, () => (failing.value ? { kind: 'status', status: 500 } : undefined));
  const backoff: BackoffOptions = { maxAttempts: options.maxAttempts ?? 5 };
  const engine = await engineOn(dev, network, { backoff });
  const enqueued = await engine.enqueueMany(inputs(30));
  // Three runs against a failing server: the first batch (seq order) collects three attempts.
  failing.value = true;
  for (let i = 0; i < 3; i++) {
    const report = await engine.runOnce();
    expect(report.outcome).toBe('server-error');
    dev.clock.advance(10 * MINUTE); // > the third backoff (2 min max)
  }
  failing.value = false;
  const backedOff = enqueued.slice(0, BATCH).map((m) => m.id);
  for (const m of await everything(engine)) {
    expect(m.attempts).toBe(backedOff.includes(m.id) ? 3 : 0);
  }
  // One more failure for the first batch, so its schedule lies in the future (4th backoff: 2–4 min).
  failing.value = true;
  await engine.runOnce();
  failing.value = false;
  // Another process starts a run, claims the next 10 due mutations and dies mid-request.
  const dead = hangingNetwork();
  const other = await engineOn(dev, dead.network, {}, 99);
  void other.runOnce({ trigger: 'background' });
  await until(() => dead.requests.length === 1);
  const claimedByDead = dead.requests[0]!.mutations.map((m) => m.id);
  expect(claimedByDead).toEqual(enqueued.slice(BATCH, 2 * BATCH).map((m) => m.id));
  expect((await engine.queue.stats()).inflight).toBe(BATCH);
  return { dev, engine, network, enqueued, claimedByDead, backedOff, failing };
}

interface NextRun {
  readonly report: RunReport;
  readonly pushes: PushRequest[];
  readonly retries: { id: string; attempt: number; delay: number }[];
  readonly failedEvents: string[];
}

async function nextRun(seeded: Seeded): Promise<NextRun> {
  const before = seeded.network.requests().length;
  const retries: NextRun['retries'] = [];
  const failedEvents: string[] = [];
  const onRetry = (e: { id: string; attempt: number; nextAttemptAt: number }) =>
    retries.push({ id: e.id, attempt: e.attempt, delay: e.nextAttemptAt - seeded.dev.clock.now() });
  const onFailed = (e: { id: string; code: string }) => failedEvents.push(`${e.id}:${e.code}`);
  seeded.engine.on('retry:scheduled', onRetry);
  seeded.engine.on('mutation:failed', onFailed);
  try {
    const report = await seeded.engine.runOnce({ trigger: 'background' });
    return { report, pushes: pushesOf(seeded.network, before), retries, failedEvents };
  } finally {
    seeded.engine.off('retry:scheduled', onRetry);
    seeded.engine.off('mutation:failed', onFailed);
  }
}

function sentIds(pushes: readonly PushRequest[]): string[] {
  return pushes.flatMap((p) => p.mutations.map((m) => m.id));
}

// ---------------------------------------------------------------------------------------------
// FAULTS.md 28: a year ahead
// ---------------------------------------------------------------------------------------------

describe('FAULTS 28: the wall clock jumps a year ahead', () => {
  it('healthy server: the next run is a normal drain — same requests as a normal due run, recovered claims not counted, nothing dead-lettered', async () => {
    const runs: Record<'normal' | 'year', NextRun & { attemptsAtSend: Map<string, number> }> = {} as never;
    for (const mode of ['normal', 'year'] as const) {
      const seeded = await seedQueue({ maxAttempts: 5 });
      // Attempts as stored while each mutation is on the wire (inflight rows, read by another connection).
      const attemptsAtSend = new Map<string, number>();
      const spy = new Database(seeded.dev.file, { readonly: true });
      cleanups.push(() => {
        spy.close();
      });
      seeded.engine.on('batch:sent', () => {
        for (const row of spy
          .prepare("SELECT id, attempts FROM sync_mutations WHERE state = 'inflight'")
          .all() as { id: string; attempts: number }[]) {
          if (!attemptsAtSend.has(row.id)) attemptsAtSend.set(row.id, row.attempts);
        }
      });
      if (mode === 'year') seeded.dev.clock.jump(YEAR);
      else seeded.dev.clock.advance(HOUR); // everything due, the dead run's lease and claims expired
      const run = await nextRun(seeded);
      runs[mode] = { ...run, attemptsAtSend };

      expect(run.report.outcome).toBe('ok');
      expect(run.report.counts).toMatchObject({ pushed: 30, recovered: BATCH, failed: 0, retried: 0 });
      // Requests bounded by the batch limits: 3 rounds of ≤ 10, each mutation sent once.
      expect(run.pushes.map((p) => p.mutations.length)).toEqual([BATCH, BATCH, BATCH]);
      expect(new Set(sentIds(run.pushes)).size).toBe(30);
      // Nothing dead-lettered, no `exhausted` (the backed-off ones had 4 of 5 attempts).
      expect(run.failedEvents).toEqual([]);
      expect(await engineFailedCount(seeded.engine)).toBe(0);
      // The dead run's claims were recovered without counting an attempt.
      for (const id of seeded.claimedByDead) expect(attemptsAtSend.get(id)).toBe(0);
      for (const id of seeded.backedOff) expect(attemptsAtSend.get(id)).toBe(4);
      expect((await seeded.engine.queue.stats()).total).toBe(0);
      const keys = seeded.dev.server.log().map((e) => e.key);
      expect(new Set(keys).size).toBe(30);
      expect(seeded.dev.server.stats().duplicates).toBe(0);
    }
    // A year ahead sends exactly what a normal due run sends.
    expect(runs.year.pushes.map((p) => p.mutations.map((m) => m.entityId))).toEqual(
      runs.normal.pushes.map((p) => p.mutations.map((m) => m.entityId)),
    );
  });

  it('failing server: no burst of retries — one batch per run like a normal due run, backoff from the new now, no mass expiry, exactly one stuck notice per mutation', async () => {
    const results: Record<'normal' | 'year', { first: NextRun; notices: Notice[] }> = {} as never;
    for (const mode of ['normal', 'year'] as const) {
      const seeded = await seedQueue({ maxAttempts: 6 });
      if (mode === 'year') seeded.dev.clock.jump(YEAR);
      else seeded.dev.clock.advance(HOUR);
      seeded.failing.value = true;
      const first = await nextRun(seeded);
      // One request (the server failed it, the run stopped), each mutation in it once.
      expect(first.report.outcome).toBe('server-error');
      expect(first.pushes).toHaveLength(1);
      expect(first.pushes[0]!.mutations).toHaveLength(BATCH);
      // The first batch (seq order): the backed-off ones, now at attempt 5 of 6 — not exhausted.
      expect(sentIds(first.pushes)).toEqual([...seeded.backedOff]);
      expect(first.failedEvents).toEqual([]);
      // Backoff restarts from the (new) now, within the bounds of attempt 5.
      const bounds = backoffBounds(resolveBackoffPolicy(), 5);
      for (const r of first.retries) {
        expect(r.attempt).toBe(5);
        expect(r.delay).toBeGreaterThanOrEqual(bounds.minMs);
        expect(r.delay).toBeLessThanOrEqual(bounds.maxMs);
      }
      expect(first.retries).toHaveLength(BATCH);
      // Recovered claims are pending again with no attempt counted.
      const rows = await everything(seeded.engine);
      for (const m of rows) {
        if (seeded.claimedByDead.includes(m.id)) expect(m).toMatchObject({ state: 'pending', attempts: 0 });
      }
      expect(first.report.counts.recovered).toBe(BATCH);

      // A few more runs, each when something is due: still one batch per run, never a flood.
      for (let i = 0; i < 4; i++) {
        seeded.dev.clock.advance(Math.max(0, (first.report.nextDueAt ?? 0) - seeded.dev.clock.now()) + HOUR);
        const again = await nextRun(seeded);
        expect(again.report.outcome).toBe('server-error');
        expect(again.pushes).toHaveLength(1);
        expect(new Set(sentIds(again.pushes)).size).toBe(again.pushes[0]!.mutations.length);
      }
      expect(await engineFailedCount(seeded.engine)).toBe(
        (await everything(seeded.engine)).filter((m) => m.attempts >= 6).length,
      );
      results[mode] = { first, notices: await seeded.engine.status.unseenNotices() };
    }
    expect(sentIds(results.year.first.pushes)).toEqual(sentIds(results.normal.first.pushes));
    // Stuck notices: a normal hour raises none; a year raises exactly one per unconfirmed
    // mutation — after five runs, not five each.
    expect(noticesOf(results.normal.notices, 'stuck')).toHaveLength(0);
    const stuck = noticesOf(results.year.notices, 'stuck') as (Notice & { mutationId: string })[];
    expect(stuck).toHaveLength(30);
    expect(new Set(stuck.map((n) => n.mutationId)).size).toBe(30);
  });
});

async function engineFailedCount(engine: SyncEngine): Promise<number> {
  return (await engine.queue.stats({ scope: 'all' })).failed;
}

// ---------------------------------------------------------------------------------------------
// FAULTS.md 29: a day back
// ---------------------------------------------------------------------------------------------

describe('FAULTS 29: the wall clock jumps a day back', () => {
  it('retries scheduled before the jump are clamped to ≤ now + maxMs at the next run; nextRunRequest is not parked', async () => {
    const dev = device();
    const failing = { value: true };
    const network = faultyNetwork(dev, () => (failing.value ? { kind: 'status', status: 500 } : undefined));
    // periodicMs: Infinity, so nextRunRequest() is decided by the queue alone (no 15-min fallback).
    const engine = await engineOn(dev, network, { periodicMs: Number.POSITIVE_INFINITY });
    await engine.enqueueMany(inputs(BATCH));
    // Four failures: every mutation has a schedule 2–4 min in the future.
    for (let i = 0; i < 4; i++) {
      await engine.runOnce();
      dev.clock.advance(10 * MINUTE);
    }
    await engine.runOnce();
    for (const m of await everything(engine)) {
      expect(m.attempts).toBe(5);
      expect(m.nextAttemptAt).toBeGreaterThan(dev.clock.now());
    }

    dev.clock.jump(-DAY);
    failing.value = false;
    const runStart = dev.clock.now();
    const report = await engine.runOnce();
    expect(report.outcome).toBe('ok');
    for (const m of await everything(engine)) {
      expect(m.state).toBe('pending');
      expect(m.nextAttemptAt - runStart).toBeLessThanOrEqual(MAX_MS);
      expect(m.attempts).toBe(5);
    }
    const request = await engine.nextRunRequest();
    expect(request).not.toBeNull();
    expect(request!.notBefore - dev.clock.now()).toBeLessThanOrEqual(MAX_MS);
    // And they do go out within the cap, once each.
    dev.clock.advance(MAX_MS);
    const drained = await engine.runOnce();
    expect(drained.counts.pushed).toBe(BATCH);
    expect(new Set(dev.server.log().map((e) => e.key)).size).toBe(BATCH);
  });

  // Was a bug (fixed; src/engine/sync-run.ts:278-281, execute → src/queue/mutation-queue.ts:496-503,
  // clampFutureSchedules; the same threshold in src/backoff/schedule.ts clampScheduledTime, which
  // src/scheduler/job-scheduler.ts:317 decideNextRun uses for nextRunRequest()): a schedule is
  // clamped only when it lies more than max(policy.maxMs, retryAfterCeilingMs) = 24 h ahead. After
  // a jump of a day (or anything up to 24 h) back, a mutation that was DUE (never sent:
  // nextAttemptAt = its enqueue time, or a retry that had come due) now lies up to 24 h "ahead":
  // not clamped, not claimed, stranded for a day. FAULTS.md 29 asks for the policy's maximum
  // (1 h). Only schedules still in the future at the jump exceed 24 h and get clamped.
  it('mutations that were due when the clock jumped a day back are not stranded for a day', async () => {
    const dev = device();
    const network = faultyNetwork(dev);
    const engine = await engineOn(dev, network, { periodicMs: Number.POSITIVE_INFINITY });
    await engine.enqueueMany(inputs(5));
    dev.clock.advance(SECOND); // the app's writes are a second old when the clock is corrected
    dev.clock.jump(-DAY);
    const runStart = dev.clock.now();
    const report = await engine.runOnce();
    const rows = await everything(engine);
    const request = await engine.nextRunRequest();
    // Expected: sent now, or at least due within the policy's maximum.
    for (const m of rows) expect(m.nextAttemptAt - runStart).toBeLessThanOrEqual(MAX_MS);
    // Everything was sent, so with periodic runs off nothing more is requested; if anything were
    // left it would be due within the policy's maximum.
    if (request !== null) expect(request.notBefore - dev.clock.now()).toBeLessThanOrEqual(MAX_MS);
    expect(report.counts.pushed).toBe(5);
  });

  it('a lease and claims stamped "in the future" by a dead run are re-based on the new clock: taken over one TTL later (not a day), recovered without an attempt', async () => {
    const dev = device();
    const network = faultyNetwork(dev);
    const engine = await engineOn(dev, network);
    const enqueued = await engine.enqueueMany(inputs(BATCH));
    dev.clock.advance(2 * DAY); // the queue has been waiting a while
    const dead = hangingNetwork();
    const other = await engineOn(dev, dead.network, {}, 99);
    void other.runOnce();
    await until(() => dead.requests.length === 1);
    expect((await engine.queue.stats()).inflight).toBe(BATCH);

    dev.clock.jump(-DAY); // the lease (TTL 60 s) and claims now look renewed a day in the future
    // Re-based on the new clock with the time they had left: the holder might still be alive with
    // requests in flight, so the lease is respected for one more TTL, not a day, not zero.
    expect((await engine.runOnce()).outcome).toBe('busy');
    dev.clock.advance(61 * SECOND);
    const first = await engine.runOnce();
    expect(first.outcome).not.toBe('busy');
    expect(first.counts.recovered).toBe(BATCH);
    // Enqueued two days before the original time: still due after a day back, so they drain now.
    expect(first.counts.pushed).toBe(BATCH);
    const second = await engine.runOnce();
    expect(second.outcome).toBe('ok');
    expect(
      dev.server
        .log()
        .map((e) => e.key)
        .sort(),
    ).toEqual(enqueued.map((m) => m.key).sort());
    expect(dev.server.stats().duplicates).toBe(0);
    // The dead run's request never reached the server: sent once each, by the live run.
    expect(pushesOf(network).flatMap((p) => p.mutations.map((m) => m.id))).toHaveLength(BATCH);
  });

  // Was a bug (fixed; design, src/engine/lease.ts:38 acquire and src/queue/mutation-queue.ts:478-486
  // recoverExpired, `updated_at > now`): "renewed in the
  // future" is read as "expired" at once. When the clock goes back while a LIVE run is mid-request,
  // another process takes its lease and recovers its in-flight claims; mutations that are still due
  // after the jump (enqueued more than the jump ago) are sent again while the first request is on
  // the wire — the same mutation in flight twice (DESIGN.md invariants 2 and 6). The server's
  // idempotency keeps it to one effect, but single flight is lost. (Safer: treat a future stamp
  // as expiring `ttl` after it is first seen, i.e. re-stamp it, instead of as already expired.)
  it('an hour back while a run is in flight: another process does not resend its claims meanwhile', async () => {
    const dev = device();
    let inFlight = false;
    let secondReport: RunReport | undefined;
    let b: SyncEngine | undefined;
    const first = faultyNetwork(dev);
    const live: NetworkAdapter = {
      ...first,
      async push(request) {
        inFlight = true;
        dev.clock.jump(-HOUR); // NTP corrects the clock while the request is on the wire…
        secondReport = await b!.runOnce(); // …and a background job in another process runs
        inFlight = false;
        return first.push(request);
      },
    };
    const secondNetwork = faultyNetwork(dev);
    const a = await engineOn(dev, live);
    b = await engineOn(dev, secondNetwork, {}, 99);
    await a.enqueueMany(inputs(3));
    dev.clock.advance(2 * HOUR);
    await a.runOnce();
    expect(inFlight).toBe(false);
    expect(secondReport?.outcome).toBe('busy');
    expect(pushesOf(secondNetwork)).toHaveLength(0);
  });
});

// ---------------------------------------------------------------------------------------------
// FAULTS.md 16: Retry-After against a skewed device clock
// ---------------------------------------------------------------------------------------------

describe('FAULTS 16: an HTTP-date Retry-After with a device clock a day off the server', () => {
  for (const skew of [DAY, -DAY]) {
    it(`server clock ${skew > 0 ? 'a day ahead of' : 'a day behind'} the device: the next attempt is 120 s later on the device clock`, async () => {
      const dev = device();
      const network = faultyNetwork(dev);
      // concurrency 1: the contact group waits for the activity group's answer and is not sent.
      const engine = await engineOn(dev, network, { batch: { maxCount: BATCH, concurrency: 1 } });
      const sentOnes = await engine.enqueueMany(inputs(2, 'activity'));
      const [unsent] = await engine.enqueueMany(inputs(1, 'contact'));
      // What the fetch adapter computes from the response headers (Date + Retry-After: HTTP-date).
      const serverNow = dev.clock.now() + skew;
      const headers = {
        date: new Date(serverNow).toUTCString(),
        retryAfter: new Date(serverNow + 120 * SECOND).toUTCString(),
      };
      const retryAfterMs = parseRetryAfter(headers.retryAfter, {
        now: dev.clock.now(),
        serverDate: headers.date,
      });
      expect(retryAfterMs).toBe(120_000);
      // Against the device clock alone it would be a day off (or nothing at all).
      expect(parseRetryAfter(headers.retryAfter, { now: dev.clock.now() })).toBe(
        skew > 0 ? DAY + 120_000 : 0,
      );
      network.faults.next({ kind: 'status', status: 503, retryAfterMs });

      const report = await engine.runOnce();
      expect(report.outcome).toBe('throttled');
      expect(pushesOf(network)).toHaveLength(1);
      const now = dev.clock.now();
      // Sent: the backoff of attempt 1 (15–30 s) is shorter, so exactly the Retry-After.
      for (const m of sentOnes) {
        const row = (await engine.queue.get(m.id))!;
        expect(row.attempts).toBe(1);
        expect(row.nextAttemptAt - now).toBe(120_000);
      }
      // Not sent (released when the run stopped): not before the Retry-After either, no attempt.
      const released = (await engine.queue.get(unsent!.id))!;
      expect(released.attempts).toBe(0);
      expect(released.nextAttemptAt - now).toBe(120_000);
      expect(report.nextDueAt! - now).toBe(120_000);
      expect((await engine.nextRunRequest())!.notBefore - now).toBeGreaterThanOrEqual(120_000);

      dev.clock.advance(119 * SECOND);
      const early = await engine.runOnce();
      expect(early.counts.batches).toBe(0);
      dev.clock.advance(SECOND);
      const onTime = await engine.runOnce();
      expect(onTime.counts.pushed).toBe(3);
      expect(dev.server.log()).toHaveLength(3);
    });
  }

  // Was a bug (fixed; src/engine/create-sync-engine.ts:714, #decide reads `this.#queue.nextDueAt(scope)` afresh):
  // a 429/503 Retry-After is kept only in the run (src/engine/sync-run.ts:597 `#notBefore`, hence
  // `report.nextDueAt`), on the failed batch and on groups released unsent. Due mutations beyond
  // the batch limit were never claimed and keep their old schedule, so the engine's next-run
  // decision (nextRunRequest, the scheduler) ignores the Retry-After and asks for a run after one
  // first backoff (15–30 s). That run sends the next batch to a server that said "not for 120 s"
  // (FAULTS.md 16, DESIGN.md invariant 4).
  it('a 503 with Retry-After: the next run is not requested, nor anything sent, before it — even for mutations beyond the batch', async () => {
    const dev = device();
    const network = faultyNetwork(dev);
    const engine = await engineOn(dev, network);
    await engine.enqueueMany(inputs(BATCH + 5));
    network.faults.next({ kind: 'status', status: 503, retryAfterMs: 120_000 });
    const report = await engine.runOnce();
    expect(report.outcome).toBe('throttled');
    expect(report.nextDueAt! - dev.clock.now()).toBeGreaterThanOrEqual(120_000); // holds
    const request = (await engine.nextRunRequest())!;
    const sentBefore = pushesOf(network).length;
    expect(request.notBefore - report.finishedAt).toBeGreaterThanOrEqual(120_000);
    // A run started early anyway (a host, a reconnection) sends nothing before the Retry-After…
    dev.clock.advance(request.notBefore - dev.clock.now() - 1_000);
    expect((await engine.runOnce()).outcome).toBe('throttled');
    expect(pushesOf(network).length).toBe(sentBefore);
    // …and everything, including the mutations the first run never reached, goes out after it.
    dev.clock.advance(1_000);
    expect((await engine.runOnce()).outcome).toBe('ok');
    expect(await everything(engine)).toEqual([]);
  });

  it('a per-item retry with retryAfterMs from a skewed server Date is honoured on the device clock', async () => {
    const dev = device();
    const network = faultyNetwork(dev);
    const engine = await engineOn(dev, network);
    const [m] = await engine.enqueueMany(inputs(1));
    const serverNow = dev.clock.now() + DAY;
    const retryAfterMs = parseRetryAfter(new Date(serverNow + 5 * MINUTE).toUTCString(), {
      now: dev.clock.now(),
      serverDate: new Date(serverNow).toUTCString(),
    });
    network.faults.next({ kind: 'partial', retryIds: [m!.id], retryAfterMs });
    await engine.runOnce();
    expect((await engine.queue.get(m!.id))!.nextAttemptAt - dev.clock.now()).toBe(5 * MINUTE);
  });
});

// ---------------------------------------------------------------------------------------------
// DESIGN.md invariant 4 as a property, across clock jumps
// ---------------------------------------------------------------------------------------------

type StepFault =
  | { kind: 'none' }
  | { kind: 'offline' }
  | { kind: 'status'; status: number; retryAfterMs?: number }
  | { kind: 'timeout-after-commit' }
  | { kind: 'reset-before' }
  | { kind: 'partial'; retryAfterMs: number };

const arbStepFault: fc.Arbitrary<StepFault> = fc.oneof(
  fc.constant<StepFault>({ kind: 'none' }),
  fc.constant<StepFault>({ kind: 'offline' }),
  fc.constant<StepFault>({ kind: 'timeout-after-commit' }),
  fc.constant<StepFault>({ kind: 'reset-before' }),
  fc.record({
    kind: fc.constant('status' as const),
    status: fc.constantFrom(408, 429, 500, 502, 503, 504),
    retryAfterMs: fc.option(fc.integer({ min: 0, max: 2 * DAY }), { nil: undefined }),
  }) as fc.Arbitrary<StepFault>,
  fc.record({ kind: fc.constant('partial' as const), retryAfterMs: fc.integer({ min: 0, max: 3 * HOUR }) }),
);

function toFault(step: StepFault): Fault | undefined {
  switch (step.kind) {
    case 'none':
      return undefined;
    case 'partial':
      return { kind: 'partial', pattern: ['retry', 'apply', 'retry'], retryAfterMs: step.retryAfterMs };
    case 'status':
      return step.retryAfterMs === undefined
        ? { kind: 'status', status: step.status }
        : { kind: 'status', status: step.status, retryAfterMs: step.retryAfterMs };
    default:
      return { kind: step.kind };
  }
}

/** The Retry-After (ms) the network reported for mutation `id` in `response`, if any. */
function retryAfterIn(response: PushResponse, id: string): number | undefined {
  if (response.type === 'failure') return response.failure.retryAfterMs;
  const item = response.results.find((r) => r.id === id);
  if (item?.status === 'retry') return item.retryAfterMs;
  if (item?.status === 'failed') return item.failure.retryAfterMs;
  return undefined;
}

/** Whether the response counts an attempt for mutation `id` (DESIGN.md section 5). */
function countsAttempt(response: PushResponse, id: string): boolean {
  if (response.type === 'failure') return ['retryable', 'ambiguous'].includes(response.failure.class);
  const item = response.results.find((r) => r.id === id);
  if (item === undefined) return true; // missing: ambiguous
  return item.status === 'retry';
}

describe('DESIGN.md invariant 4 — bounded backoff across clock jumps', () => {
  it('Bounded backoff: for any retryable failures and clock jumps, every recorded delay is within its attempt’s bounds (never before Retry-After), every other schedule change is a release or the clamp, and offline never counts an attempt', async () => {
    const arbPolicy = fc
      .record({
        initialMs: fc.integer({ min: SECOND, max: MINUTE }),
        factor: fc.integer({ min: 1, max: 120 }),
        multiplier: fc.constantFrom(1, 1.5, 2, 3),
        jitter: fc.constantFrom('equal' as const, 'full' as const, 'none' as const),
      })
      .map(({ initialMs, factor, multiplier, jitter }) => ({
        initialMs,
        maxMs: initialMs * factor,
        multiplier,
        jitter,
      }));
    const arbStep = fc.record({
      jump: fc.option(arbClockJump(fc), { nil: undefined, freq: 2 }),
      advanceMs: fc.integer({ min: 0, max: 2 * HOUR }),
      fault: arbStepFault,
      enqueue: fc.integer({ min: 0, max: 3 }),
    });
    let cases = 0;
    await fc.assert(
      fc.asyncProperty(
        arbPolicy,
        fc.integer({ min: HOUR, max: 2 * DAY }),
        fc.array(arbStep, { minLength: 1, maxLength: 10 }),
        fc.integer({ min: 1, max: 1_000_000 }),
        async (backoff, retryAfterCeilingMs, steps, seed) => {
          cases++;
          const dev = device();
          let current: StepFault = { kind: 'none' };
          const network = createFaultyNetwork(dev.server, {
            random: createSeededRandom(seed),
            schedule: () => toFault(current),
          });
          const policy = resolveBackoffPolicy(backoff);
          const engine = await engineOn(dev, network, { backoff: { ...backoff, retryAfterCeilingMs } }, seed);
          let next = 0;
          const enqueue = async (n: number) => {
            await engine.enqueueMany(inputs(n, 'activity', next));
            next += n;
          };
          await enqueue(6);
          const counted = new Map<string, number>();
          const violations: string[] = [];
          engine.on('retry:scheduled', (e) => {
            const delay = e.nextAttemptAt - dev.clock.now();
            const last = network
              .requests()
              .filter((r) => r.type === 'push')
              .reverse()
              .find((r) => r.request.mutations.some((m) => m.id === e.id));
            const ra = last ? retryAfterIn(last.response as PushResponse, e.id) : undefined;
            const raEff = ra !== undefined && ra > 0 ? Math.min(Math.ceil(ra), retryAfterCeilingMs) : 0;
            const bounds = backoffBounds(policy, e.attempt);
            const lo = Math.max(bounds.minMs, raEff);
            const hi = Math.max(bounds.maxMs, raEff);
            if (!(delay >= lo && delay <= hi)) {
              violations.push(
                `attempt ${e.attempt}: delay ${delay} outside [${lo}, ${hi}] (Retry-After ${ra})`,
              );
            }
          });

          for (const step of steps) {
            if (step.jump !== undefined) dev.clock.jump(step.jump);
            dev.clock.advance(step.advanceMs);
            if (step.enqueue > 0) await enqueue(step.enqueue);
            current = step.fault;
            const before = new Map((await everything(engine)).map((m) => [m.id, m.nextAttemptAt]));
            const requestsBefore = network.requests().length;
            const retried = new Set<string>();
            const onRetry = (e: { id: string }) => retried.add(e.id);
            engine.on('retry:scheduled', onRetry);
            const runStart = dev.clock.now();
            const report = await engine.runOnce();
            engine.off('retry:scheduled', onRetry);
            expect(dev.clock.now()).toBe(runStart); // no latency: every decision is made at runStart
            const runRequests = network.requests().slice(requestsBefore);
            // No burst: a mutation is sent at most once per run.
            const sent = runRequests.flatMap((r) =>
              r.type === 'push' ? r.request.mutations.map((m) => m.id) : [],
            );
            expect(new Set(sent).size).toBe(sent.length);
            for (const r of runRequests) {
              if (r.type !== 'push') continue;
              for (const m of r.request.mutations) {
                if (countsAttempt(r.response as PushResponse, m.id))
                  counted.set(m.id, (counted.get(m.id) ?? 0) + 1);
              }
            }
            // Every schedule this run changed without recording a retry is a release (unchanged, or
            // raised to a throttling Retry-After), the clamp to now + maxMs of schedules further
            // ahead than any delay could be, or a re-base after the clock went back.
            const largest = Math.max(Math.ceil(policy.maxMs), retryAfterCeilingMs);
            for (const m of await everything(engine)) {
              const old = before.get(m.id);
              if (old === undefined || retried.has(m.id) || m.nextAttemptAt === old) continue;
              const clamped = m.nextAttemptAt === runStart + policy.maxMs && old - runStart > largest;
              const raisedToRetryAfter =
                report.outcome === 'throttled' &&
                m.nextAttemptAt > old &&
                m.nextAttemptAt - runStart <= retryAfterCeilingMs;
              // After the clock went back, a schedule is re-based on the new clock: moved earlier,
              // keeping (at most the ceiling of) the delay it was recorded with.
              const rebased = m.nextAttemptAt < old && m.nextAttemptAt - runStart <= largest;
              if (!clamped && !raisedToRetryAfter && !rebased) {
                violations.push(
                  `schedule ${old - runStart} → ${m.nextAttemptAt - runStart} (${report.outcome})`,
                );
              }
            }
          }
          // Offline (and unsent, released) never counted: attempts = the counted failures seen.
          for (const m of await everything(engine)) {
            if ((counted.get(m.id) ?? 0) !== m.attempts) {
              violations.push(
                `${m.entityId}: attempts ${m.attempts}, counted failures ${counted.get(m.id) ?? 0}`,
              );
            }
          }
          await engine.close();
          expect(violations).toEqual([]);
        },
      ),
      { numRuns: 40, seed: 20261125, endOnFailure: true },
    );
    expect(cases).toBeGreaterThanOrEqual(40);
  }, 120_000);
});

// The defaults the tests above rely on (DESIGN.md section 5), checked once so a change is loud.
it('policy defaults this file relies on: 1 h cap, 24 h Retry-After ceiling', () => {
  expect(resolveBackoffPolicy().maxMs).toBe(MAX_MS);
  expect(DEFAULT_RETRY_AFTER_CEILING_MS).toBe(DAY);
});
