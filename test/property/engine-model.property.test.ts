/**
 * Model-based test of the WHOLE engine (DESIGN.md section 7, invariants 1–6, and 8 for server-wins)
 * with `fc.asyncModelRun`.
 *
 * The real system: `createSyncEngine` over better-sqlite3 on a temporary FILE, in front of the
 * `sync-core/testing` model server and faulty network, on a fake clock with fake timers. A second
 * engine on the same file plays another process (a background job) that only ever tries to run
 * while the first one is running. The network the engines see is a thin adapter in front of the
 * faulty network that watches every request at the moment it is handed to the network, and can
 * crash the process right there ("kill -9": the engine object and its `Database` are abandoned,
 * `db.close()` is called on the raw handle without `engine.close()`, so an open transaction rolls
 * back), then a fresh engine is opened on the same file.
 *
 * Commands: Enqueue (plain, in `engine.transaction` with an app-table write, in a transaction that
 * throws, in a transaction the process dies in), Run (optional deadline; optionally interrupted at
 * the n-th request: crash before the request, crash after the server processed it, switch user,
 * sign out, or a concurrent `runOnce` from this and from another process), CrashAndRestart,
 * ServerFault (every fault kind of the kit, for pushes or pulls), ServerChange (another client
 * writes: conflicts), ClockJump (±), AdvanceClock, LogoutLogin (same user, or user B and back;
 * with or without purge), ResolveConflict (keep local / keep server / merged), RetryOrDiscard.
 * Each case also draws its configuration: one org or two partitions, coalescing, a conflict
 * strategy, server-assigned ids, batch size and concurrency, request latency (deadlines cut
 * requests mid-flight), an attempt limit, a pull handler, and a flaky network that fails a share of
 * the unscheduled requests with everyday faults.
 *
 * The model: every acknowledged mutation (id, keys, scope, entity, record, op) in enqueue order
 * and its fate (live, confirmed, discarded, dropped by server-wins or keep-server, purged,
 * cancelled by coalescing), its attempt count and the earliest time it may be sent again, driven
 * by what the app did and by what the engine announced (events are emitted only after the outcome
 * committed). After EVERY command, as far as observable:
 *
 * 1. no loss: the queue (`queue.list({ scope: 'all' })`) holds exactly the live mutations; every
 *    confirmed one is in the server's log; `checkDelivery` finds lost = unexpected = ∅;
 * 2. effectively once: no mutation applied twice (by id: keys change by design on a rebase, a
 *    conflict resolution and a retry after a rejection — and only after the server definitively
 *    did not apply the old key); never two requests in flight with one mutation, key or record;
 *    never a merge into a mutation already handed to the network;
 * 3. per-record order: a mutation is never sent while an earlier one of its record is unsettled,
 *    and the server applied each record's mutations in enqueue order;
 * 4. bounded backoff: every scheduled retry is within the policy's bounds for its attempt number
 *    (from when its answer arrived to when the retry was announced) and never before the server's
 *    Retry-After; no mutation is sent before it is due; attempts change exactly as the outcomes
 *    say (offline, 401 and cut-off requests never count);
 * 5. scope isolation: every request (push, pull, credential refresh) is for the signed-in user and
 *    carries only that user's mutations, also when the user signs out or switches mid-run;
 * 6. single flight: `run:started`/`run:finished` never overlap on the database; a concurrent
 *    `runOnce` (same engine, or another process) is refused; a crashed run's lease holds until it
 *    expires, then the next run takes over;
 * 8. truthful status, for server-wins: every mutation the engine announced dropped has exactly one
 *    `overwritten` notice (until its user is purged), and no such notice names a queued mutation.
 *
 * At the end the queue is drained on a healthy network, for both users, and must empty
 * (liveness: head-of-line blocking is never global) with `checkDelivery` ok.
 *
 * Budget: 2 × 100 cases in CI (about 10 s of CPU); `SYNC_CORE_LONG=1` runs 2 × 5,000 (10,000
 * cases). `SYNC_CORE_RUNS=<n>` sets the cases per property. To replay a counterexample, pass what
 * the failure report prints: `SYNC_CORE_SEED`, `SYNC_CORE_PATH` and `SYNC_CORE_REPLAY_PATH` (the
 * commands' `replayPath`). The engine bugs found are at the end of this file (B1–B3).
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import {
  createSyncEngine,
  type EnqueuedMutation,
  type EntityOptions,
  type JsonObject,
  type Mutation,
  type MutationInput,
  type NetworkAdapter,
  type PullRequest,
  type PullResponse,
  type PushRequest,
  type PushResponse,
  type RunReport,
  type Scope,
  StateError,
  StorageError,
  type SyncEngine,
  type TransportFailure,
} from 'sync-core';
import { createBetterSqlite3Storage } from 'sync-core/better-sqlite3';
import {
  type AcknowledgedMutation,
  arbClockJump,
  arbFault,
  checkDelivery,
  createFakeClock,
  createFakeTimers,
  createFaultyNetwork,
  createModelServer,
  createSeededRandom,
  describeDelivery,
  type FakeClock,
  type FakeTimers,
  type Fault,
  type FaultyNetwork,
  type ModelServer,
} from 'sync-core/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/storage-factories.js';

const LONG = process.env.SYNC_CORE_LONG !== undefined && process.env.SYNC_CORE_LONG !== '';
const SEED = process.env.SYNC_CORE_SEED === undefined ? undefined : Number(process.env.SYNC_CORE_SEED);
/** Replay a counterexample: its `seed`, `path` and the commands' `replayPath` from the failure report. */
const PATH = process.env.SYNC_CORE_PATH;
const REPLAY_PATH = process.env.SYNC_CORE_REPLAY_PATH;
const NUM_RUNS =
  process.env.SYNC_CORE_RUNS === undefined ? (LONG ? 5_000 : 100) : Number(process.env.SYNC_CORE_RUNS);
const MAX_COMMANDS = 40;
const TEST_TIMEOUT_MS = LONG ? 3_600_000 : 120_000;
/** Runs allowed per user to drain on a healthy network; more means a record is stuck for good. */
const MAX_DRAIN_RUNS = 60;

const LEASE_TTL_MS = 60_000;
const INITIAL_MS = 30_000;
const MAX_MS = 3_600_000;
const RETRY_AFTER_CEILING_MS = 86_400_000;
const DAY = 86_400_000;

const ENTITIES = ['activity', 'contact'] as const;
const RECORD_IDS = ['r1', 'r2', 'r3'] as const;
/** User-only scopes (two server partitions), or two users of one org (one shared partition). */
const SCOPE_PAIRS: readonly (readonly [Scope, Scope])[] = [
  [{ userId: 'u1' }, { userId: 'u2' }],
  [
    { userId: 'u1', orgId: 'o1' },
    { userId: 'u2', orgId: 'o1' },
  ],
];

/** The policy's bounds for the delay after the k-th counted failure (equal jitter), written apart from src/backoff. */
function backoffBounds(attempt: number): { lo: number; hi: number } {
  const k = Math.max(1, Math.floor(attempt));
  const d = Math.min(MAX_MS, INITIAL_MS * 2 ** (k - 1));
  return { lo: Math.ceil(d / 2), hi: Math.ceil(d) };
}

/** A scope as the engine spells it in its tables (src/queue/scope.ts), to read `sync_meta` directly. */
function scopeKey(scope: Scope): string {
  return JSON.stringify([scope.userId, scope.orgId ?? null]);
}

function who(scope: Scope | undefined): string {
  if (scope === undefined) return 'nobody';
  return scope.orgId === undefined ? scope.userId : `${scope.userId}@${scope.orgId}`;
}

// ---------------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------------

interface CaseConfig {
  readonly scopes: readonly [Scope, Scope];
  readonly coalesce: boolean;
  readonly contactConflict: 'server-wins' | 'client-wins' | 'merge';
  readonly assignIds: boolean;
  readonly batch: { readonly maxCount: number; readonly concurrency: number };
  readonly latencyMs: number;
  readonly maxAttempts: number;
  readonly pull: boolean;
  /** Share of requests that meet a background fault when none was scheduled (a flaky network). */
  readonly faultRate: number;
  readonly seed: number;
}

/** The flaky network's everyday faults (the scheduled ones add 401, 408, 422, 429 and the rest). */
const BACKGROUND_FAULTS: readonly Fault[] = [
  { kind: 'reset-before' },
  { kind: 'reset-after' },
  { kind: 'timeout-after-commit' },
  { kind: 'malformed' },
  { kind: 'offline' },
  { kind: 'status', status: 500 },
  { kind: 'status', status: 503, retryAfterMs: 20_000 },
  { kind: 'partial', pattern: ['apply', 'retry'], retryAfterMs: 5_000 },
];

type Fate = 'live' | 'confirmed' | 'discarded' | 'dropped' | 'purged' | 'cancelled';

/** What the last answer about a mutation was. */
type AnswerClass = 'applied' | 'conflict' | 'rejected' | 'retry' | TransportFailure['class'];

interface SendInfo {
  /** Which Run command (or drain run) it belongs to. */
  readonly runKey: number;
  /** The wall clock when the answer came back (after the request's latency). */
  readonly tResp: number;
  readonly answer: AnswerClass;
  readonly retryAfterMs: number | undefined;
}

/**
 * What the model knows of a stored schedule (a mutation's next attempt, or the run-level
 * Retry-After stop): the engine's value lies in [lo, hi]. See {@link relax} for a wall clock that
 * went back.
 */
interface Schedule {
  lo: number;
  hi: number;
}

/**
 * The engine may have re-based or clamped the schedule at `now` (at the start of a run, and when it
 * decides the next run): a row last updated after `now` (the wall clock went back) is due again
 * after the time it had left at that update (FAULTS.md 29); one implausibly far ahead is pulled in
 * to now + the policy's cap. The model only knows that every update happened at or before
 * `latestWall`, the latest wall-clock time so far, so it keeps a bound that holds whatever the
 * engine did: at least `lo - latestWall` was left.
 */
function relax(s: Schedule, now: number, latestWall: number): void {
  if (latestWall > now) {
    s.lo = Math.min(s.lo, now + Math.min(RETRY_AFTER_CEILING_MS, Math.max(0, s.lo - latestWall)));
  }
  if (s.hi > now + RETRY_AFTER_CEILING_MS) s.lo = Math.min(s.lo, now + MAX_MS);
}

interface Tracked {
  readonly id: string;
  readonly ordinal: number;
  readonly scope: Scope;
  readonly scopeKey: string;
  readonly entity: string;
  readonly clientEntityId: string;
  /** (scope, entity, client id): the record whose order invariant 3 is about. */
  readonly record: string;
  op: string;
  /** Every idempotency key it has had, first the one `enqueue` returned. */
  readonly keys: string[];
  attempts: number;
  fate: Fate;
  /** Handed to the network at least once (a merge into it would change a sent key's content). */
  handedOver: boolean;
  /** The server definitively did not apply its current key (conflict, rejection): a new key is allowed. */
  rekeyAllowed: boolean;
  /** The key of its last request. */
  lastSentKey: string | undefined;
  /**
   * Keys whose definitive refusal the engine recorded: resending one could only be answered with
   * the stored refusal (the server replays a key's first answer), so they are never sent again.
   */
  readonly refusedKeys: Set<string>;
  exhausted: boolean;
  /** Earliest wall-clock time it may be sent again, as far as the model knows. */
  floor: Schedule | undefined;
  lastSend: SendInfo | undefined;
}

interface Stats {
  cases: number;
  commands: number;
  runs: number;
  requests: number;
  crashesIdle: number;
  crashesMidRun: number;
  crashesInTransaction: number;
  userSwitches: number;
  purges: number;
  conflictsResolved: number;
  faultsInjected: number;
  faultsDowngraded: number;
  acknowledged: number;
  delivered: number;
  lost: number;
  duplicated: number;
  outOfOrder: number;
  busyRefusals: number;
  exhaustedRetried: number;
  rebases: number;
  /** Second creates of a client id the server had already given its own id (B3's path). */
  recreates: number;
}

const STATS: Record<string, Stats> = {};

function statsFor(name: string): Stats {
  STATS[name] ??= {
    cases: 0,
    commands: 0,
    runs: 0,
    requests: 0,
    crashesIdle: 0,
    crashesMidRun: 0,
    crashesInTransaction: 0,
    userSwitches: 0,
    purges: 0,
    conflictsResolved: 0,
    faultsInjected: 0,
    faultsDowngraded: 0,
    acknowledged: 0,
    delivered: 0,
    lost: 0,
    duplicated: 0,
    outOfOrder: 0,
    busyRefusals: 0,
    exhaustedRetried: 0,
    rebases: 0,
    recreates: 0,
  };
  return STATS[name]!;
}

interface EngineModel {
  readonly config: CaseConfig;
  /** Index into `config.scopes` of the signed-in user. */
  active: 0 | 1;
  readonly mutations: Map<string, Tracked>;
  /** Every (id, key) acknowledged or learnt, for `checkDelivery`. */
  readonly acked: AcknowledgedMutation[];
  readonly keyToId: Map<string, string>;
  /** Ids handed out inside transactions that rolled back: never to be seen again. */
  readonly ghosts: Set<string>;
  /**
   * Mutations the engine announced dropped by server-wins, whose user was not purged since: each
   * must have its `overwritten` notice (invariant 8; the model never acknowledges notices).
   */
  readonly overwritten: Set<string>;
  /** Rows of the app's own table written by committed transactions. */
  appRows: number;
  /** Records the app has created (or tried to). */
  readonly created: Set<string>;
  /** Largest Retry-After injected so far (for the upper bound of a stored schedule). */
  maxRetryAfterMs: number;
  /** How far the wall clock was set back in total. */
  clockSetBackMs: number;
  /** Violations seen where throwing is impossible (inside the network adapter, event listeners). */
  readonly violations: string[];
  readonly stats: Stats;
}

function describeTracked(t: Tracked): string {
  return `${t.id.slice(-8)} ${t.op} ${t.entity}/${t.clientEntityId} (${who(t.scope)}) #${t.ordinal}`;
}

// ---------------------------------------------------------------------------------------------
// The real system
// ---------------------------------------------------------------------------------------------

interface Proc {
  readonly n: number;
  readonly role: 'main' | 'probe';
  readonly db: Database.Database;
  engine: SyncEngine;
  alive: boolean;
}

type Interruption = 'crash-enter' | 'crash-after-send' | 'switch-user' | 'logout' | 'probe';

const DEAD_PUSH: PushResponse = Object.freeze({
  type: 'failure' as const,
  failure: { class: 'offline' as const, code: 'process-dead', message: 'the process is gone' },
});
const DEAD_PULL: PullResponse = DEAD_PUSH as PullResponse;

function answerOf(response: PushResponse, id: string): { answer: AnswerClass; retryAfterMs?: number } {
  if (response.type === 'failure') {
    return { answer: response.failure.class, retryAfterMs: response.failure.retryAfterMs };
  }
  const result = response.results.find((r) => r.id === id);
  if (result === undefined) return { answer: 'ambiguous' };
  switch (result.status) {
    case 'applied':
    case 'duplicate':
      return { answer: 'applied' };
    case 'conflict':
      return { answer: 'conflict' };
    case 'rejected':
      return { answer: 'rejected' };
    case 'retry':
      return { answer: 'retry', retryAfterMs: result.retryAfterMs };
    case 'failed':
      return { answer: result.failure.class, retryAfterMs: result.failure.retryAfterMs };
  }
}

/** An answer that says the server did not, and will never, apply this key. */
function definitive(answer: AnswerClass): boolean {
  return answer === 'conflict' || answer === 'rejected' || answer === 'gone';
}

class EngineUnderTest {
  readonly clock: FakeClock;
  readonly timers: FakeTimers;
  readonly server: ModelServer;
  readonly network: FaultyNetwork;
  /** One random source for the life of the database: a restarted engine must not replay ids. */
  readonly random: () => number;
  readonly entities: Readonly<Record<string, EntityOptions>>;
  readonly file: string;
  main!: Proc;
  probe!: Proc;
  clientId = '';
  #procs = 0;
  readonly pushFaults: Fault[] = [];
  /** The background fault rate; the drain sets it to 0. */
  faultRate: number;
  readonly #flaky: () => number;
  readonly pullFaults: Fault[] = [];
  refreshFailures = 0;
  /** Interrupt the current run when its n-th request enters the network. */
  interrupt: { at: number; what: Interruption } | undefined;
  wireEntries = 0;
  runKey = 0;
  /** Promises of engine calls a request hook started (start/stop): awaited after the run. */
  readonly sideEffects: Promise<unknown>[] = [];
  signedOutMidRun = false;
  /** The run in progress on the database, from the events of live processes. */
  running: { proc: number; runId: string } | undefined;
  readonly inflightIds = new Set<string>();
  readonly inflightKeys = new Set<string>();
  readonly inflightRecords = new Set<string>();
  /** Mutation events since the current Run command started, to compare with its report's counts. */
  events = { pushed: 0, retried: 0, failed: 0, conflicted: 0, resolved: 0 };
  /** Floor from a 429/503 Retry-After answer in the current run: the report's nextDueAt must respect it. */
  throttleFloor = 0;
  /** The run-level Retry-After stop in force (until a sign-in clears it). */
  notBefore: Schedule | undefined;
  #latestWall = 0;

  constructor(
    readonly model: EngineModel,
    dir: string,
  ) {
    const config = model.config;
    this.file = join(dir, 'engine.db');
    this.clock = createFakeClock();
    this.timers = createFakeTimers(this.clock);
    this.server = createModelServer(config.assignIds ? { assignIds: ['activity'] } : {});
    this.random = createSeededRandom(config.seed);
    this.faultRate = config.faultRate;
    this.#flaky = createSeededRandom(config.seed ^ 0xf1a5);
    this.network = createFaultyNetwork(this.server, {
      schedule: (request) => this.#nextPushFault(request),
      pullSchedule: () => this.pullFaults.shift(),
      refresh: () => {
        if (this.refreshFailures === 0) return true;
        this.refreshFailures--;
        return false;
      },
      clock: this.clock,
      latencyMs: config.latencyMs,
      random: createSeededRandom(config.seed ^ 0x5eed),
    });
    const merge = (local: unknown, server: unknown) =>
      server === null || typeof server !== 'object' || typeof local !== 'object' || local === null
        ? undefined
        : ({ ...(server as JsonObject), ...(local as JsonObject), merged: true } as JsonObject);
    this.entities = {
      activity: { coalesce: config.coalesce, conflict: 'manual' },
      contact: {
        conflict: config.contactConflict === 'merge' ? merge : config.contactConflict,
        ...(config.pull
          ? {
              pull: async (tx, page) => {
                const active = this.main.engine.activeScope;
                if (active === undefined || scopeKey(active) !== scopeKey(page.scope)) {
                  this.violation(
                    `invariant 5: pull handler got ${who(page.scope)}'s page while ${who(active)} is signed in`,
                  );
                }
                for (const change of page.changes) {
                  await tx.run('INSERT OR REPLACE INTO pulled (scope, entity_id, version) VALUES (?, ?, ?)', [
                    scopeKey(page.scope),
                    change.entityId,
                    change.version,
                  ]);
                }
              },
            }
          : {}),
      },
    };
  }

  relaxSchedules(now: number): void {
    const latest = this.latestWall();
    for (const t of this.model.mutations.values()) if (t.floor !== undefined) relax(t.floor, now, latest);
    if (this.notBefore !== undefined) relax(this.notBefore, now, latest);
  }

  /** The latest wall-clock time so far: no row was ever updated later. */
  latestWall(): number {
    this.#latestWall = Math.max(this.#latestWall, this.clock.now());
    return this.#latestWall;
  }

  /** `engine.start(scope)`: a sign-in also lifts a Retry-After stop and an auth pause. */
  async signIn(engine: SyncEngine, scope: Scope): Promise<void> {
    await engine.start(scope);
    this.notBefore = undefined;
  }

  violation(message: string): void {
    if (this.model.violations.length < 20) this.model.violations.push(message);
  }

  get activeScope(): Scope {
    return this.model.config.scopes[this.model.active];
  }

  // --- processes -------------------------------------------------------------------------------

  async setUp(): Promise<void> {
    const db = new Database(this.file);
    db.exec('CREATE TABLE app_rows (id INTEGER PRIMARY KEY, entity_id TEXT NOT NULL)');
    db.exec(
      'CREATE TABLE pulled (scope TEXT, entity_id TEXT, version INTEGER, PRIMARY KEY (scope, entity_id))',
    );
    db.close();
    this.main = this.#openProc('main');
    await this.main.engine.open();
    await this.main.engine.start(this.activeScope);
    this.clientId = this.main.engine.clientId;
    this.probe = this.#openProc('probe');
    await this.probe.engine.open();
    await this.probe.engine.start(this.model.config.scopes[0]);
  }

  #openProc(role: Proc['role']): Proc {
    const db = new Database(this.file);
    const proc: Proc = {
      n: ++this.#procs,
      role,
      db,
      alive: true,
      engine: undefined as unknown as SyncEngine,
    };
    proc.engine = createSyncEngine({
      // OFF: a committed transaction is in the OS's page cache, which survives a process crash (what
      // this test simulates); fsyncs only matter for power loss (the adapter's own tests).
      // The probe never waits for the lock: one thread cannot wait for its own other connection.
      storage: createBetterSqlite3Storage(db, {
        synchronous: 'OFF',
        busyTimeoutMs: role === 'probe' ? 0 : 5_000,
      }),
      entities: this.entities,
      network: this.#adapter(proc),
      clock: this.clock,
      timers: this.timers,
      random: this.random,
      batch: this.model.config.batch,
      backoff: { maxAttempts: this.model.config.maxAttempts },
      leaseTtlMs: LEASE_TTL_MS,
    });
    this.#listen(proc);
    return proc;
  }

  /** SIGKILL: nothing more reaches the disk or the network; the engine is never closed. */
  crash(proc: Proc): void {
    proc.alive = false;
    if (this.running?.proc === proc.n) this.running = undefined;
    proc.db.close();
  }

  async restart(): Promise<void> {
    const proc = this.#openProc('main');
    await proc.engine.open();
    expect(proc.engine.clientId, 'the device id survives a crash').toBe(this.clientId);
    await this.signIn(proc.engine, this.activeScope);
    this.main = proc;
  }

  async close(): Promise<void> {
    for (const proc of [this.main, this.probe]) {
      if (proc?.alive) await proc.engine.close().catch(() => undefined);
    }
  }

  // --- events ---------------------------------------------------------------------------------

  #listen(proc: Proc): void {
    const engine = proc.engine;
    const model = this.model;
    const tracked = (id: string, what: string): Tracked | undefined => {
      const t = model.mutations.get(id);
      if (t === undefined) this.violation(`${what} for unknown mutation ${id}`);
      else if (t.fate !== 'live') this.violation(`${what} for ${describeTracked(t)}, which is ${t.fate}`);
      return t?.fate === 'live' ? t : undefined;
    };
    // Run events of a dead process are not events of the database any more: its run ended with it.
    engine.on('run:started', (e) => {
      if (!proc.alive) return;
      if (this.running !== undefined) {
        this.violation(
          `invariant 6: run ${e.runId.slice(-6)} (process ${proc.n}) started while run ${this.running.runId.slice(-6)} (process ${this.running.proc}) is in progress`,
        );
      }
      this.running = { proc: proc.n, runId: e.runId };
      this.relaxSchedules(e.startedAt);
    });
    engine.on('run:finished', (e) => {
      if (!proc.alive) return;
      if (this.running?.runId !== e.runId) {
        this.violation(`invariant 6: run ${e.runId.slice(-6)} finished but was not the run in progress`);
      }
      this.running = undefined;
    });
    // Mutation events are emitted after their outcome committed: a dead process's late ones still count.
    engine.on('mutation:confirmed', (e) => {
      const t = tracked(e.id, 'mutation:confirmed');
      if (t === undefined) return;
      this.events.pushed++;
      t.fate = 'confirmed';
    });
    engine.on('retry:scheduled', (e) => {
      const t = tracked(e.id, 'retry:scheduled');
      if (t === undefined) return;
      this.events.retried++;
      const now = this.clock.now();
      if (e.attempt !== t.attempts + 1) {
        this.violation(
          `invariant 4: ${describeTracked(t)} retry announced as attempt ${e.attempt} after ${t.attempts}`,
        );
      }
      const s = t.lastSend;
      if (s === undefined) {
        this.violation(`invariant 4: ${describeTracked(t)} retry scheduled although never sent`);
      } else if (s.answer !== 'ambiguous' && s.answer !== 'retryable' && s.answer !== 'retry') {
        this.violation(
          `invariant 4: an attempt counted for ${describeTracked(t)} after a '${s.answer}' answer`,
        );
      } else {
        const bounds = backoffBounds(e.attempt);
        const ra =
          s.retryAfterMs !== undefined && s.retryAfterMs > 0
            ? Math.min(Math.ceil(s.retryAfterMs), RETRY_AFTER_CEILING_MS)
            : 0;
        const lo = s.tResp + Math.max(bounds.lo, ra);
        const hi = now + Math.max(bounds.hi, ra);
        if (e.nextAttemptAt < lo || e.nextAttemptAt > hi) {
          this.violation(
            `invariant 4: ${describeTracked(t)} attempt ${e.attempt} retries in ${e.nextAttemptAt - s.tResp} ms after its answer; bounds [${lo - s.tResp}, ${hi - s.tResp}] (Retry-After ${s.retryAfterMs ?? 'none'})`,
          );
        }
      }
      t.attempts = e.attempt;
      t.floor = { lo: e.nextAttemptAt, hi: e.nextAttemptAt };
    });
    engine.on('mutation:failed', (e) => {
      const t = tracked(e.id, 'mutation:failed');
      if (t === undefined) return;
      this.events.failed++;
      if (e.attempts !== t.attempts + 1) {
        this.violation(
          `invariant 4: ${describeTracked(t)} failed at attempt ${e.attempts} after ${t.attempts}`,
        );
      }
      const answer = t.lastSend?.answer;
      const fits =
        e.code === 'exhausted'
          ? answer === 'ambiguous' || answer === 'retryable' || answer === 'retry'
          : answer === 'rejected' || answer === 'gone';
      if (!fits) this.violation(`${describeTracked(t)} dead-lettered (${e.code}) after a '${answer}' answer`);
      t.attempts = e.attempts;
      t.exhausted = e.code === 'exhausted';
      if (!t.exhausted && t.lastSentKey !== undefined) t.refusedKeys.add(t.lastSentKey);
      t.floor = undefined;
    });
    engine.on('conflict:detected', (e) => {
      const t = tracked(e.id, 'conflict:detected');
      if (t === undefined) return;
      if (e.resolution === 'manual') this.events.conflicted++;
      else this.events.resolved++;
      if (t.lastSend?.answer !== 'conflict' && t.lastSend?.answer !== 'gone') {
        this.violation(`${describeTracked(t)} conflict reported after a '${t.lastSend?.answer}' answer`);
      }
      if (t.lastSentKey !== undefined) t.refusedKeys.add(t.lastSentKey);
      if (e.resolution === 'server-wins') {
        t.fate = 'dropped';
        model.overwritten.add(t.id);
      } else {
        t.attempts++;
        if (e.resolution !== 'manual') model.stats.rebases++;
      }
      t.floor = undefined;
    });
  }

  // --- the network the engines see -----------------------------------------------------------

  #adapter(proc: Proc): NetworkAdapter {
    return {
      push: (request) => this.#push(proc, request),
      pull: (request) => this.#pull(proc, request),
      refreshCredentials: async (scope, signal) => {
        if (!proc.alive) return false;
        const active = proc.engine.activeScope;
        if (active === undefined || scopeKey(active) !== scopeKey(scope)) {
          this.violation(
            `invariant 5: credentials of ${who(scope)} refreshed while ${who(active)} is signed in`,
          );
        }
        return this.network.refreshCredentials!(scope, signal);
      },
    };
  }

  /** Faults the test scheduled, in order; a whole-batch 422 is only said of keys the server never applied. */
  #nextPushFault(request: PushRequest): Fault | undefined {
    const scheduled = this.pushFaults.shift();
    const fault =
      scheduled ??
      (this.faultRate > 0 && this.#flaky() < this.faultRate
        ? BACKGROUND_FAULTS[Math.floor(this.#flaky() * BACKGROUND_FAULTS.length)]
        : undefined);
    if (fault?.kind === 'status' && fault.status === 422) {
      // The engine re-keys a rejected mutation by design ("definitively not applied"); an
      // idempotent server replays an applied key instead of refusing it, so a 422 for one would
      // be a fault no server makes (see the report for the design note).
      const applied = new Set(this.server.log().map((entry) => entry.key));
      if (request.mutations.some((m) => applied.has(m.key))) {
        this.model.stats.faultsDowngraded++;
        return undefined;
      }
    }
    return fault;
  }

  async #push(proc: Proc, request: PushRequest): Promise<PushResponse> {
    if (!proc.alive) return DEAD_PUSH;
    const model = this.model;
    const now = this.clock.now();
    const entry = ++this.wireEntries;
    model.stats.requests++;
    const active = proc.engine.activeScope;
    const requestScope = scopeKey(request.scope);
    if (active === undefined || scopeKey(active) !== requestScope) {
      this.violation(`invariant 5: push for ${who(request.scope)} while ${who(active)} is signed in`);
    }
    if (this.notBefore !== undefined && now < this.notBefore.lo) {
      this.violation(
        `invariant 4: a request ${this.notBefore.lo - now} ms before the server's Retry-After allowed`,
      );
    }
    const sent: Tracked[] = [];
    for (const m of request.mutations) {
      const t = model.mutations.get(m.id);
      if (t === undefined) {
        this.violation(
          `push carries unknown mutation ${m.id}${model.ghosts.has(m.id) ? ' (its transaction rolled back)' : ''}`,
        );
        continue;
      }
      if (t.scopeKey !== requestScope) {
        this.violation(`invariant 5: ${describeTracked(t)} sent in a request of ${who(request.scope)}`);
      }
      if (t.entity !== request.entity) this.violation(`${describeTracked(t)} sent as a ${request.entity}`);
      if (t.fate !== 'live') this.violation(`invariant 1/2: ${describeTracked(t)} sent although ${t.fate}`);
      if (sent.includes(t)) this.violation(`invariant 2: ${describeTracked(t)} twice in one request`);
      if (this.inflightIds.has(t.id) || this.inflightKeys.has(m.key)) {
        this.violation(
          `invariant 2: ${describeTracked(t)} (key ${m.key.slice(-6)}) sent while already in flight`,
        );
      }
      if (this.inflightRecords.has(t.record) || sent.some((s) => s.record === t.record)) {
        this.violation(`invariant 3: two mutations of ${t.entity}/${t.clientEntityId} in flight at once`);
      }
      for (const other of model.mutations.values()) {
        if (other.record === t.record && other.ordinal < t.ordinal && other.fate === 'live') {
          this.violation(
            `invariant 3: ${describeTracked(t)} sent before ${describeTracked(other)} was settled`,
          );
        }
      }
      if (t.floor !== undefined && now < t.floor.lo) {
        this.violation(`invariant 4: ${describeTracked(t)} sent ${t.floor.lo - now} ms before it was due`);
      }
      if (t.refusedKeys.has(m.key)) {
        this.violation(
          `invariant 2: ${describeTracked(t)} resent under key ${m.key.slice(-6)}, which the server already refused`,
        );
      }
      t.floor = undefined;
      t.handedOver = true;
      t.lastSentKey = m.key;
      this.#learnKey(t, m.key, 'sent');
      sent.push(t);
    }
    for (const t of sent) {
      this.inflightIds.add(t.id);
      this.inflightRecords.add(t.record);
    }
    for (const m of request.mutations) this.inflightKeys.add(m.key);
    try {
      const what = proc.role === 'main' && this.interrupt?.at === entry ? this.interrupt.what : undefined;
      if (what === 'crash-enter') {
        // Synchronously, before anything else runs: another request's outcome may be mid-transaction.
        this.crash(proc);
        return DEAD_PUSH;
      }
      // Let the run's other requests (bounded concurrency) get here too.
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (!proc.alive) return DEAD_PUSH;
      if (what === 'switch-user') {
        model.active = model.active === 0 ? 1 : 0;
        model.stats.userSwitches++;
        this.sideEffects.push(this.signIn(proc.engine, this.activeScope));
      } else if (what === 'logout') {
        this.signedOutMidRun = true;
        this.sideEffects.push(proc.engine.stop());
      } else if (what === 'probe') {
        await this.#probeSingleFlight(proc);
      }
      if (!request.signal?.aborted) {
        const now = proc.engine.activeScope;
        if (now === undefined || scopeKey(now) !== requestScope) {
          this.violation(
            `invariant 5: a request of ${who(request.scope)} went out after ${who(now)} signed in`,
          );
        }
      }
      const response = await this.network.push(request);
      const tResp = this.clock.now();
      for (const t of sent) {
        const { answer, retryAfterMs } = answerOf(response, t.id);
        t.lastSend = { runKey: this.runKey, tResp, answer, retryAfterMs };
        t.rekeyAllowed = definitive(answer);
      }
      if (
        response.type === 'failure' &&
        response.failure.class === 'retryable' &&
        (response.failure.status === 429 || response.failure.status === 503) &&
        (response.failure.retryAfterMs ?? 0) > 0
      ) {
        const until = tResp + Math.min(Math.ceil(response.failure.retryAfterMs!), RETRY_AFTER_CEILING_MS);
        this.throttleFloor = Math.max(this.throttleFloor, until);
      }
      if (what === 'crash-after-send') {
        // The server processed the request; the process dies before reading the answer.
        this.crash(proc);
        return DEAD_PUSH;
      }
      return response;
    } finally {
      for (const t of sent) {
        this.inflightIds.delete(t.id);
        this.inflightRecords.delete(t.record);
      }
      for (const m of request.mutations) this.inflightKeys.delete(m.key);
    }
  }

  /** Invariant 6 from the outside: while this run is in flight, nobody else may run. */
  async #probeSingleFlight(proc: Proc): Promise<void> {
    const same = await proc.engine.runOnce({ trigger: 'probe-same-engine' });
    if (same.outcome !== 'busy') {
      this.violation(`invariant 6: a second runOnce on the running engine returned '${same.outcome}'`);
    } else this.model.stats.busyRefusals++;
    // Another process: only when no other request of this run can be mid-transaction (a second
    // connection in this one thread could only fail with SQLITE_BUSY, never wait).
    if (this.model.config.batch.concurrency !== 1) return;
    try {
      const other = await this.probe.engine.runOnce({ trigger: 'probe-other-process' });
      // Refused by the lease, or before it (paused, throttled), or the lock itself was busy.
      const refused =
        other.outcome === 'busy' ||
        other.outcome === 'auth-required' ||
        other.outcome === 'throttled' ||
        (other.outcome === 'error' && other.error?.code === 'STORAGE_BUSY');
      if (!refused) {
        this.violation(`invariant 6: another process ran ('${other.outcome}') while a run held the lease`);
      } else this.model.stats.busyRefusals++;
    } catch (error) {
      if (!(error instanceof StorageError && error.code === 'STORAGE_BUSY')) throw error;
      this.model.stats.busyRefusals++;
    }
    // Its engine decided its next run, which may re-base schedules.
    this.relaxSchedules(this.clock.now());
  }

  async #pull(proc: Proc, request: PullRequest): Promise<PullResponse> {
    if (!proc.alive) return DEAD_PULL;
    const active = proc.engine.activeScope;
    if (active === undefined || scopeKey(active) !== scopeKey(request.scope)) {
      this.violation(`invariant 5: pull for ${who(request.scope)} while ${who(active)} is signed in`);
    }
    this.model.stats.requests++;
    return this.network.pull(request);
  }

  /** A key seen for a mutation: the one it was enqueued with, or a new one the server allowed. */
  #learnKey(t: Tracked, key: string, where: string): void {
    if (t.keys.includes(key)) return;
    if (!t.rekeyAllowed) {
      this.violation(
        `invariant 2: ${describeTracked(t)} has a new idempotency key (${where}) although the server never refused its previous one`,
      );
    }
    const owner = this.model.keyToId.get(key);
    if (owner !== undefined && owner !== t.id)
      this.violation(`invariant 2: key ${key} reused by two mutations`);
    t.rekeyAllowed = false;
    t.keys.push(key);
    this.model.keyToId.set(key, t.id);
    this.model.acked.push(ackOf(t, key));
  }

  learnKey(t: Tracked, key: string, where: string): void {
    this.#learnKey(t, key, where);
  }

  // --- the checks after every command -------------------------------------------------------

  /**
   * Read the lease as another process would, to say whether the next run must be refused: only a
   * crashed run leaves it behind. Renewed "in the future" (the wall clock went back), it counts
   * with the time it had left.
   */
  leaseHeldByOther(): boolean {
    const row = this.main.db
      .prepare("SELECT expires_at, renewed_at FROM sync_lease WHERE name = 'sync'")
      .get() as { expires_at: number; renewed_at: number } | undefined;
    const now = this.clock.now();
    if (row === undefined) return false;
    return row.renewed_at > now ? row.expires_at - row.renewed_at > 0 : row.expires_at > now;
  }

  #meta(key: string): string | undefined {
    const row = this.main.db.prepare('SELECT value FROM sync_meta WHERE key = ?').get(key) as
      | { value: string }
      | undefined;
    return row?.value;
  }

  async checkInvariants(where: string): Promise<Mutation[]> {
    const model = this.model;
    expect(model.violations.join('\n'), `violations (${where})`).toBe('');
    const engine = this.main.engine;
    const listed = await engine.queue.list({ scope: 'all', limit: 1000 });

    // Invariant 1: the queue holds exactly the live mutations.
    const listedIds = new Set(listed.map((m) => m.id));
    const live = [...model.mutations.values()].filter((t) => t.fate === 'live');
    const missing = live.filter((t) => !listedIds.has(t.id)).map(describeTracked);
    const unexpected = listed
      .filter((m) => model.mutations.get(m.id)?.fate !== 'live')
      .map(
        (m) =>
          `${m.id.slice(-8)} ${m.op} ${m.entity}/${m.entityId} (${model.mutations.get(m.id)?.fate ?? (model.ghosts.has(m.id) ? 'rolled back' : 'never acknowledged')})`,
      );
    expect({ missing, unexpected }, `invariant 1: queue vs model (${where})`).toEqual({
      missing: [],
      unexpected: [],
    });

    // Invariant 8 for server-wins: every drop the engine announced left exactly one `overwritten`
    // notice, and no notice names a mutation still queued (the drop and its notice commit
    // together, crash or not). Events come only after a commit, so a drop cut off by a crash
    // before its event may have a notice the model does not know of: that direction is not checked.
    const noticed = (
      this.main.db.prepare("SELECT data FROM sync_notices WHERE kind = 'overwritten'").all() as {
        data: string;
      }[]
    ).map((row) => (JSON.parse(row.data) as { mutationId: string }).mutationId);
    expect(
      {
        twice: noticed.filter((id, i) => noticed.indexOf(id) !== i),
        queued: noticed.filter((id) => listedIds.has(id)),
        unnoticed: [...model.overwritten]
          .filter((id) => !noticed.includes(id))
          .map((id) => describeTracked(model.mutations.get(id)!)),
      },
      `invariant 8: overwritten notices vs server-wins drops (${where})`,
    ).toEqual({ twice: [], queued: [], unnoticed: [] });
    let lastOrdinal = -1;
    // A row rewritten after the wall clock was set back (a merge, a recovered claim) keeps its
    // schedule: the distance may grow by however far the clock went back.
    const ceiling =
      Math.max(MAX_MS, Math.min(model.maxRetryAfterMs, RETRY_AFTER_CEILING_MS)) + model.clockSetBackMs;
    for (const m of listed) {
      const t = model.mutations.get(m.id)!;
      expect(t.ordinal, 'queue order is enqueue order').toBeGreaterThan(lastOrdinal);
      lastOrdinal = t.ordinal;
      expect(
        { scope: scopeKey(m.scope), entity: m.entity, op: m.op },
        `fields of ${describeTracked(t)}`,
      ).toEqual({ scope: t.scopeKey, entity: t.entity, op: t.op });
      if (!model.config.assignIds) expect(m.entityId).toBe(t.clientEntityId);
      this.#learnKey(t, m.key, 'queued');
      expect(model.violations.join('\n'), `invariant 2 (${where})`).toBe('');
      expect(m.attempts, `invariant 4: attempts of ${describeTracked(t)} (${where})`).toBe(t.attempts);
      if (m.state === 'pending') {
        if (t.floor !== undefined) {
          expect(
            m.nextAttemptAt,
            `invariant 4: ${describeTracked(t)} due earlier than scheduled`,
          ).toBeGreaterThanOrEqual(t.floor.lo);
        }
        expect(
          m.nextAttemptAt - m.updatedAt,
          `invariant 4: ${describeTracked(t)} scheduled beyond the policy's cap and every Retry-After`,
        ).toBeLessThanOrEqual(ceiling);
      }
    }

    // Conflicts waiting for the user are exactly the active user's mutations in state conflict.
    const active = scopeKey(this.activeScope);
    const open = (await engine.conflicts()).map((c) => c.mutationId).sort();
    const inConflict = listed
      .filter((m) => m.state === 'conflict' && scopeKey(m.scope) === active)
      .map((m) => m.id)
      .sort();
    expect(open, `open conflicts vs queue (${where})`).toEqual(inConflict);

    // The server's log: invariants 2, 3 and 5 on what was applied.
    const log = this.server.log();
    const applications = new Map<string, number>();
    const appliedOrder = new Map<string, number[]>();
    for (const entry of log) {
      const id = model.keyToId.get(entry.key);
      const t = id === undefined ? undefined : model.mutations.get(id);
      if (t === undefined) {
        expect.fail(
          `applied with a key no request of this device carried: ${entry.op} ${entry.entity}/${entry.entityId}`,
        );
        continue;
      }
      expect(
        { scope: scopeKey(entry.scope), entity: entry.entity },
        `invariant 5: ${describeTracked(t)} applied under another scope`,
      ).toEqual({ scope: t.scopeKey, entity: t.entity });
      const count = (applications.get(t.id) ?? 0) + 1;
      applications.set(t.id, count);
      expect(count, `invariant 2: ${describeTracked(t)} applied twice (${where})`).toBe(1);
      const order = appliedOrder.get(t.record) ?? [];
      order.push(t.ordinal);
      appliedOrder.set(t.record, order);
    }
    for (const [record, ordinals] of appliedOrder) {
      expect(ordinals, `invariant 3: applied order of ${record}`).toEqual(
        [...ordinals].sort((a, b) => a - b),
      );
    }
    const confirmedUnapplied = [...model.mutations.values()]
      .filter((t) => t.fate === 'confirmed' && !applications.has(t.id))
      .map(describeTracked);
    expect(confirmedUnapplied, 'invariant 1: confirmed without being applied').toEqual([]);

    const result = checkDelivery({
      enqueued: model.acked,
      applied: log,
      queued: listed,
      discarded: [...model.mutations.values()].filter((t) => t.fate !== 'live' && t.fate !== 'confirmed'),
    });
    expect(result.ok, `${describeDelivery(result)} (${where})`).toBe(true);

    const row = this.main.db.prepare('SELECT COUNT(*) AS n FROM app_rows').get() as { n: number };
    expect(row.n, "the app's rows commit with their enqueue, or not at all").toBe(model.appRows);
    return listed;
  }

  /** One run as an OS background job makes it, with the checks a single run allows. */
  async run(options: {
    deadlineMs?: number;
    interrupt?: { at: number; what: Interruption };
  }): Promise<RunReport> {
    const model = this.model;
    model.stats.runs++;
    this.runKey++;
    this.wireEntries = 0;
    this.interrupt = options.interrupt;
    this.signedOutMidRun = false;
    this.throttleFloor = 0;
    this.events = { pushed: 0, retried: 0, failed: 0, conflicted: 0, resolved: 0 };
    const proc = this.main;
    const scope = this.activeScope;
    const startedAt = this.clock.now();
    const paused = this.#meta('auth_paused') === scopeKey(scope);
    const throttledUntil = Number(this.#meta('not_before') ?? 0);
    const throttled = !paused && throttledUntil > startedAt;
    const leaseHeld = !paused && !throttled && this.leaseHeldByOther();
    // B2 (fixed, see its regression test): the stop is re-based when the wall clock goes back.
    if (throttled) {
      expect(
        throttledUntil - startedAt,
        'invariant 4 (FAULTS.md 29): a Retry-After stop never holds sync longer than any delay a server may ask',
      ).toBeLessThanOrEqual(RETRY_AFTER_CEILING_MS);
    }
    const report = await proc.engine.runOnce(
      options.deadlineMs === undefined ? {} : { deadline: startedAt + options.deadlineMs },
    );
    await Promise.all(this.sideEffects.splice(0));
    this.interrupt = undefined;
    if (!proc.alive) {
      model.stats.crashesMidRun++;
      await this.restart();
      return report;
    }
    if (this.signedOutMidRun) await this.signIn(proc.engine, this.activeScope);
    // Invariant 6 across processes: a live lease (a crashed run's) refuses the run; an expired one does not.
    if (paused) expect(report.outcome, 'a paused user runs nothing').toBe('auth-required');
    else if (throttled) {
      expect(report.outcome, 'invariant 4: nothing is sent before a Retry-After that stopped a run').toBe(
        'throttled',
      );
      expect(report.nextDueAt).toBe(throttledUntil);
    } else if (leaseHeld) {
      expect(report.outcome, 'invariant 6: a live lease of a crashed run refuses the run').toBe('busy');
      model.stats.busyRefusals++;
    } else expect(report.outcome, 'invariant 6: an expired lease is taken over').not.toBe('busy');
    if (!paused && !throttled && !leaseHeld) {
      expect(
        {
          pushed: report.counts.pushed,
          retried: report.counts.retried,
          failed: report.counts.failed,
          conflicted: report.counts.conflicted,
          resolved: report.counts.resolved,
        },
        'the report counts what the run announced',
      ).toEqual(this.events);
    }
    if (this.throttleFloor > 0 && report.nextDueAt !== null) {
      expect(report.nextDueAt, 'invariant 4: nextDueAt never before a Retry-After').toBeGreaterThanOrEqual(
        this.throttleFloor,
      );
    }
    // A request cut off in flight counts no attempt and is not due again before the next attempt's backoff.
    for (const t of model.mutations.values()) {
      if (t.fate !== 'live' || t.lastSend?.runKey !== this.runKey || t.lastSend.answer !== 'aborted')
        continue;
      const bounds = backoffBounds(t.attempts + 1);
      t.floor = { lo: t.lastSend.tResp + bounds.lo, hi: this.clock.now() + bounds.hi };
    }
    // Invariant 4 for the whole run: a 429/503 Retry-After holds every later request.
    if (this.throttleFloor > this.clock.now()) {
      // The engine's stop is at most the ceiling after the run's last answer.
      const now = this.clock.now();
      this.notBefore = { lo: this.throttleFloor, hi: now + RETRY_AFTER_CEILING_MS };
    }
    // Deciding the next run re-bases schedules too.
    this.relaxSchedules(this.clock.now());
    return report;
  }
}

function ackOf(t: Tracked, key: string): AcknowledgedMutation {
  return { id: t.id, key, scope: t.scope, entity: t.entity, entityId: t.clientEntityId, op: t.op };
}

// ---------------------------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------------------------

type EngineCommand = fc.AsyncCommand<EngineModel, EngineUnderTest>;

type Via = 'enqueue' | 'transaction' | 'rolled-back' | 'crash-in-transaction';

interface EnqueueSpec {
  readonly entity: (typeof ENTITIES)[number];
  readonly entityId: string;
  readonly op: 'create' | 'update' | 'delete';
  readonly n: number;
  /** Made against the server's current version, or without one. */
  readonly base: 'none' | 'server';
}

/** A burst of app writes: each enqueued alone, all in one transaction, or all in one that fails. */
class EnqueueCommand implements EngineCommand {
  constructor(
    readonly specs: readonly EnqueueSpec[],
    readonly via: Via,
  ) {}

  check(): boolean {
    return true;
  }

  #input(real: EngineUnderTest, spec: EnqueueSpec): MutationInput {
    const { entity, entityId, n, base } = spec;
    const op: string = spec.op;
    const scope = real.activeScope;
    const record = JSON.stringify([scopeKey(scope), entity, entityId]);
    if (op === 'create' && real.model.config.assignIds && entity === 'activity') {
      // A second create of a client id with server-assigned ids broke per-record order (B3, fixed:
      // a re-create now waits for what is queued under the mapped id). Counted to show it is met.
      if (real.model.created.has(record)) real.model.stats.recreates++;
      real.model.created.add(record);
    }
    const baseVersion =
      base === 'server' ? (real.server.record(scope, entity, entityId)?.version ?? null) : null;
    return {
      entity,
      op,
      entityId,
      ...(op === 'delete' ? {} : { data: { n, by: scope.userId } }),
      ...(baseVersion === null ? {} : { baseVersion }),
    };
  }

  async run(model: EngineModel, real: EngineUnderTest): Promise<void> {
    model.stats.commands++;
    const engine = real.main.engine;
    const insertApp = 'INSERT INTO app_rows (entity_id) VALUES (?)';

    if (this.via === 'rolled-back' || this.via === 'crash-in-transaction') {
      const inside: EnqueuedMutation[] = [];
      const failure = new Error('the app failed after its writes and its enqueues');
      const proc = real.main;
      const attempt = engine.transaction(async (tx) => {
        for (const spec of this.specs) {
          await tx.run(insertApp, [spec.entityId]);
          inside.push(await tx.enqueue(this.#input(real, spec)));
        }
        if (this.via === 'crash-in-transaction') real.crash(proc);
        else throw failure;
      });
      await expect(attempt, 'neither the app rows nor the mutations are acknowledged').rejects.toBeDefined();
      for (const m of inside) if (m.coalesced === 'none') model.ghosts.add(m.id);
      if (this.via === 'crash-in-transaction') {
        model.stats.crashesInTransaction++;
        await real.restart();
      }
      await real.checkInvariants(this.toString());
      return;
    }

    const scope = real.activeScope;
    let stored: EnqueuedMutation[];
    if (this.via === 'enqueue') {
      stored = [];
      for (const spec of this.specs) stored.push(await engine.enqueue(this.#input(real, spec)));
    } else {
      stored = await engine.transaction(async (tx) => {
        const out: EnqueuedMutation[] = [];
        for (const spec of this.specs) {
          await tx.run(insertApp, [spec.entityId]);
          out.push(await tx.enqueue(this.#input(real, spec)));
        }
        return out;
      });
      model.appRows += this.specs.length;
    }
    for (const [i, m] of stored.entries()) this.#acknowledge(model, scope, this.specs[i]!, m);
    await real.checkInvariants(this.toString());
  }

  #acknowledge(model: EngineModel, scope: Scope, spec: EnqueueSpec, stored: EnqueuedMutation): void {
    const { entity, entityId } = spec;
    model.stats.acknowledged++;
    expect(scopeKey(stored.scope), 'enqueued under the signed-in user').toBe(scopeKey(scope));
    const record = JSON.stringify([scopeKey(scope), entity, entityId]);
    if (stored.coalesced === 'none') {
      expect(model.mutations.has(stored.id), 'a fresh id').toBe(false);
      expect(model.keyToId.has(stored.key), 'a fresh key').toBe(false);
      expect(stored.attempts).toBe(0);
      const t: Tracked = {
        id: stored.id,
        ordinal: model.mutations.size,
        scope,
        scopeKey: scopeKey(scope),
        entity,
        clientEntityId: entityId,
        record,
        op: stored.op,
        keys: [stored.key],
        attempts: 0,
        fate: 'live',
        handedOver: false,
        rekeyAllowed: false,
        lastSentKey: undefined,
        refusedKeys: new Set(),
        exhausted: false,
        floor: undefined,
        lastSend: undefined,
      };
      model.mutations.set(t.id, t);
      model.keyToId.set(stored.key, t.id);
      model.acked.push(ackOf(t, stored.key));
      return;
    }
    const t = model.mutations.get(stored.id);
    expect(t?.fate, `coalesced (${stored.coalesced}) into a mutation that is not queued`).toBe('live');
    expect(t!.handedOver, 'invariant 2: coalesced into a mutation already handed to the network').toBe(false);
    expect(t!.record, 'coalesced into another record').toBe(record);
    expect(t!.keys).toEqual([stored.key]);
    if (stored.coalesced === 'merged') t!.op = stored.op;
    else t!.fate = 'cancelled';
  }

  toString(): string {
    const specs = this.specs.map(
      ({ entity, entityId, op, n, base }) =>
        `${op} ${entity}/${entityId} n=${n}${base === 'server' ? ' base=server' : ''}`,
    );
    return `Enqueue(${this.via}: ${specs.join('; ')})`;
  }
}

class RunCommand implements EngineCommand {
  constructor(
    readonly deadlineMs: number | undefined,
    readonly interrupt: { at: number; what: Interruption } | undefined,
  ) {}

  check(): boolean {
    return true;
  }

  async run(model: EngineModel, real: EngineUnderTest): Promise<void> {
    model.stats.commands++;
    await real.run({
      ...(this.deadlineMs === undefined ? {} : { deadlineMs: this.deadlineMs }),
      ...(this.interrupt === undefined ? {} : { interrupt: this.interrupt }),
    });
    await real.checkInvariants(this.toString());
  }

  toString(): string {
    const parts = [
      ...(this.deadlineMs === undefined ? [] : [`deadline +${this.deadlineMs}ms`]),
      ...(this.interrupt === undefined ? [] : [`${this.interrupt.what} at request ${this.interrupt.at}`]),
    ];
    return `Run(${parts.join(', ')})`;
  }
}

class CrashAndRestartCommand implements EngineCommand {
  check(): boolean {
    return true;
  }

  async run(model: EngineModel, real: EngineUnderTest): Promise<void> {
    model.stats.commands++;
    model.stats.crashesIdle++;
    real.crash(real.main);
    await real.restart();
    await real.checkInvariants(this.toString());
  }

  toString(): string {
    return 'CrashAndRestart';
  }
}

class ServerFaultCommand implements EngineCommand {
  constructor(
    readonly faults: readonly Fault[],
    readonly target: 'push' | 'pull',
    readonly refreshFails: boolean,
  ) {}

  check(): boolean {
    return true;
  }

  async run(model: EngineModel, real: EngineUnderTest): Promise<void> {
    model.stats.commands++;
    model.stats.faultsInjected += this.faults.length;
    (this.target === 'push' ? real.pushFaults : real.pullFaults).push(...this.faults);
    if (this.refreshFails) real.refreshFailures = 1;
    for (const fault of this.faults) {
      if ((fault.kind === 'status' || fault.kind === 'partial') && fault.retryAfterMs !== undefined) {
        model.maxRetryAfterMs = Math.max(model.maxRetryAfterMs, fault.retryAfterMs);
      }
      if (fault.kind === 'partial') model.maxRetryAfterMs = Math.max(model.maxRetryAfterMs, 1000);
    }
    await real.checkInvariants(this.toString());
  }

  toString(): string {
    const faults = this.faults.map((f) =>
      f.kind === 'status'
        ? `${f.status}${f.retryAfterMs === undefined ? '' : `/RA ${f.retryAfterMs}`}`
        : f.kind === 'partial'
          ? `partial[${f.pattern?.join(',')}]`
          : f.kind,
    );
    return `ServerFault(${this.target}: ${faults.join(' ')}${this.refreshFails ? ', refresh fails' : ''})`;
  }
}

class ServerChangeCommand implements EngineCommand {
  constructor(
    readonly kind: 'put' | 'remove',
    readonly whose: 'active' | 'other',
    readonly entity: string,
    readonly entityId: string,
    readonly n: number,
  ) {}

  check(): boolean {
    return true;
  }

  async run(model: EngineModel, real: EngineUnderTest): Promise<void> {
    model.stats.commands++;
    const scope = model.config.scopes[this.whose === 'active' ? model.active : model.active === 0 ? 1 : 0];
    if (this.kind === 'put')
      real.server.put(scope, this.entity, this.entityId, { n: this.n, by: 'another-client' });
    else real.server.remove(scope, this.entity, this.entityId);
    await real.checkInvariants(this.toString());
  }

  toString(): string {
    return `ServerChange(${this.kind} ${this.entity}/${this.entityId} of ${this.whose} user)`;
  }
}

class ClockCommand implements EngineCommand {
  constructor(
    readonly how: 'jump' | 'advance',
    readonly ms: number,
  ) {}

  check(): boolean {
    return true;
  }

  async run(model: EngineModel, real: EngineUnderTest): Promise<void> {
    model.stats.commands++;
    if (this.how === 'jump') {
      real.latestWall();
      real.clock.jump(this.ms);
      model.clockSetBackMs += Math.max(0, -this.ms);
    } else real.clock.advance(this.ms);
    await real.checkInvariants(this.toString());
  }

  toString(): string {
    return this.how === 'jump' ? `ClockJump(${this.ms})` : `AdvanceClock(${this.ms})`;
  }
}

type LogoutKind = 'relogin' | 'switch' | 'purge-relogin' | 'purge-switch';

class LogoutLoginCommand implements EngineCommand {
  constructor(readonly kind: LogoutKind) {}

  check(): boolean {
    return true;
  }

  async run(model: EngineModel, real: EngineUnderTest): Promise<void> {
    model.stats.commands++;
    const engine = real.main.engine;
    const leaving = real.activeScope;
    const purge = this.kind.startsWith('purge');
    const before = await engine.queue.list({ scope: leaving, limit: 1000 });
    const { purged } = await engine.stop({ purge });
    expect(engine.activeScope, 'signed out').toBeUndefined();
    if (purge) {
      model.stats.purges++;
      expect(purged, 'a purge removes exactly the leaving user’s queue').toBe(before.length);
      for (const m of before) model.mutations.get(m.id)!.fate = 'purged';
      // A purge deletes the leaving user's notices with the queue.
      for (const id of model.overwritten) {
        if (model.mutations.get(id)!.scopeKey === scopeKey(leaving)) model.overwritten.delete(id);
      }
    } else {
      expect(purged).toBe(0);
      const kept = await engine.queue.list({ scope: leaving, limit: 1000 });
      expect(
        kept.map((m) => m.id),
        'a sign-out keeps the rows',
      ).toEqual(before.map((m) => m.id));
    }
    if (this.kind.endsWith('switch')) {
      model.active = model.active === 0 ? 1 : 0;
      model.stats.userSwitches++;
    }
    await real.signIn(engine, real.activeScope);
    await real.checkInvariants(this.toString());
  }

  toString(): string {
    return `LogoutLogin(${this.kind})`;
  }
}

class ResolveConflictCommand implements EngineCommand {
  constructor(
    readonly rank: number,
    readonly how: 'local' | 'server' | 'merged',
    readonly n: number,
  ) {}

  check(): boolean {
    return true;
  }

  async run(model: EngineModel, real: EngineUnderTest): Promise<void> {
    model.stats.commands++;
    const engine = real.main.engine;
    const open = await engine.conflicts();
    if (open.length === 0) {
      await real.checkInvariants(this.toString());
      return;
    }
    const conflict = open[this.rank % open.length]!;
    const t = model.mutations.get(conflict.mutationId);
    expect(t?.fate, 'an open conflict is a queued mutation').toBe('live');
    const resolution =
      this.how === 'merged'
        ? { merged: { n: this.n, merged: true } }
        : { keep: this.how === 'local' ? 'local' : 'server' };
    await engine.resolveConflict(
      conflict.mutationId,
      resolution as Parameters<SyncEngine['resolveConflict']>[1],
    );
    model.stats.conflictsResolved++;
    const after = await engine.queue.get(conflict.mutationId);
    if (this.how === 'server') {
      expect(after, 'keep server drops the local change').toBeUndefined();
      t!.fate = 'dropped';
    } else {
      expect(after?.state).toBe('pending');
      expect(after!.baseVersion, 'resent against the server’s version').toEqual(conflict.serverVersion);
      expect(after!.nextAttemptAt, 'due at once').toBe(real.clock.now());
      expect(t!.keys, 'a resolved conflict is resent under a new key').not.toContain(after!.key);
      real.learnKey(t!, after!.key, 'resolveConflict');
      if (this.how === 'merged') expect(after!.data).toEqual({ n: this.n, merged: true });
      t!.floor = undefined;
    }
    await real.checkInvariants(this.toString());
  }

  toString(): string {
    return `ResolveConflict(#${this.rank}, ${this.how})`;
  }
}

class RetryOrDiscardCommand implements EngineCommand {
  constructor(
    readonly kind: 'retry-all-failed' | 'retry-ids' | 'discard-ids',
    readonly ranks: readonly number[],
  ) {}

  check(): boolean {
    return true;
  }

  async run(model: EngineModel, real: EngineUnderTest): Promise<void> {
    model.stats.commands++;
    const engine = real.main.engine;
    const listed = await engine.queue.list({ scope: 'all', limit: 1000 });
    const now = real.clock.now();
    if (this.kind === 'retry-all-failed') {
      const active = scopeKey(real.activeScope);
      const failed = listed.filter((m) => m.state === 'failed' && scopeKey(m.scope) === active);
      const ids = await engine.queue.retry({ allFailed: true });
      expect(ids, 'every failed mutation of the user, nothing else').toEqual(failed.map((m) => m.id));
      await this.#afterRetry(model, real, failed, now);
    } else if (listed.length > 0) {
      const picked = [...new Set(this.ranks.map((r) => listed[r % listed.length]!))].sort(
        (a, b) => a.seq - b.seq,
      );
      if (this.kind === 'retry-ids') {
        const eligible = picked.filter((m) => m.state === 'failed' || m.state === 'pending');
        const ids = await engine.queue.retry(picked.map((m) => m.id));
        expect(ids, 'failed and pending ones are made due').toEqual(eligible.map((m) => m.id));
        await this.#afterRetry(model, real, eligible, now);
      } else if (picked.some((m) => m.state === 'inflight')) {
        // A crashed run's claim: the server may be applying it right now.
        const error = await engine.queue.discard(picked.map((m) => m.id)).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(
          error instanceof StateError && error.code === 'MUTATION_INFLIGHT',
          'an inflight mutation is never discarded',
        ).toBe(true);
      } else {
        const ids = await engine.queue.discard(picked.map((m) => m.id));
        expect(ids).toEqual(picked.map((m) => m.id));
        for (const m of picked) model.mutations.get(m.id)!.fate = 'discarded';
      }
    }
    await real.checkInvariants(this.toString());
  }

  async #afterRetry(
    model: EngineModel,
    real: EngineUnderTest,
    retried: readonly Mutation[],
    now: number,
  ): Promise<void> {
    for (const before of retried) {
      const t = model.mutations.get(before.id)!;
      const after = (await real.main.engine.queue.get(before.id))!;
      expect(after.state).toBe('pending');
      expect(after.nextAttemptAt, 'made due now').toBe(now);
      if (before.state === 'failed') {
        expect(after.attempts, 'a retried dead letter starts its attempts again').toBe(0);
        t.attempts = 0;
        if (t.exhausted) {
          model.stats.exhaustedRetried++;
          // It may have been applied (its last answer was lost): the key must stay.
          expect(after.key, 'invariant 2: an exhausted mutation keeps its key').toBe(before.key);
        } else {
          expect(after.key, 'a rejected mutation is resent under a new key').not.toBe(before.key);
          real.learnKey(t, after.key, 'queue.retry');
        }
        t.exhausted = false;
      } else {
        expect(after.key, 'retrying a pending mutation keeps its key').toBe(before.key);
      }
      t.floor = undefined;
    }
  }

  toString(): string {
    return `RetryOrDiscard(${this.kind} ${this.ranks.join(',')})`;
  }
}

// ---------------------------------------------------------------------------------------------
// Arbitraries
// ---------------------------------------------------------------------------------------------

const arbConfig: fc.Arbitrary<CaseConfig> = fc.record({
  scopes: fc.constantFrom(...SCOPE_PAIRS),
  coalesce: fc.boolean(),
  contactConflict: fc.constantFrom('server-wins' as const, 'client-wins' as const, 'merge' as const),
  assignIds: fc.boolean(),
  batch: fc.record({ maxCount: fc.constantFrom(1, 3, 100), concurrency: fc.constantFrom(1, 4) }),
  latencyMs: fc.constantFrom(0, 0, 500, 3_000),
  maxAttempts: fc.constantFrom(Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY, 2),
  pull: fc.boolean(),
  faultRate: fc.constantFrom(0, 0, 0.25, 0.5),
  seed: fc.integer(),
});

interface Weights {
  readonly enqueue: number;
  readonly run: number;
  readonly crash: number;
  readonly midRunInterrupt: number;
  readonly logout: number;
}

function commandsArb(weights: Weights): fc.Arbitrary<Iterable<EngineCommand>> {
  const spec: fc.Arbitrary<EnqueueSpec> = fc.record({
    entity: fc.constantFrom(...ENTITIES),
    entityId: fc.constantFrom(...RECORD_IDS),
    op: fc.constantFrom(
      'create' as const,
      'create' as const,
      'update' as const,
      'update' as const,
      'delete' as const,
    ),
    n: fc.integer({ min: 0, max: 99 }),
    base: fc.constantFrom('none' as const, 'none' as const, 'server' as const),
  });
  const enqueue = fc
    .tuple(
      fc.array(spec, { minLength: 1, maxLength: 4 }),
      fc.oneof(
        { arbitrary: fc.constant<Via>('enqueue'), weight: 6 },
        { arbitrary: fc.constant<Via>('transaction'), weight: 4 },
        { arbitrary: fc.constant<Via>('rolled-back'), weight: 1 },
        { arbitrary: fc.constant<Via>('crash-in-transaction'), weight: 1 },
      ),
    )
    .map(([specs, via]) => new EnqueueCommand(specs, via));
  const interrupt = fc.record({
    at: fc.constantFrom(1, 1, 1, 2, 3),
    what: fc.constantFrom<Interruption>('crash-enter', 'crash-after-send', 'switch-user', 'logout', 'probe'),
  });
  const run = fc
    .tuple(
      fc.option(fc.integer({ min: 0, max: 8_000 }), { nil: undefined, freq: 3 }),
      fc.oneof(
        { arbitrary: fc.constant(undefined), weight: 10 - weights.midRunInterrupt },
        { arbitrary: interrupt, weight: weights.midRunInterrupt },
      ),
    )
    .map(([deadline, stop]) => new RunCommand(deadline, stop));
  const serverFault = fc
    .tuple(
      fc.array(arbFault(fc, { statuses: [401, 408, 422, 429, 500, 503], maxRetryAfterMs: 2 * DAY }), {
        minLength: 1,
        maxLength: 3,
      }),
      fc.constantFrom('push' as const, 'push' as const, 'push' as const, 'pull' as const),
      fc.boolean(),
    )
    .map(([faults, target, refreshFails]) => new ServerFaultCommand(faults, target, refreshFails));
  const serverChange = fc
    .tuple(
      fc.constantFrom('put' as const, 'put' as const, 'remove' as const),
      fc.constantFrom('active' as const, 'active' as const, 'other' as const),
      fc.constantFrom(...ENTITIES),
      fc.constantFrom(...RECORD_IDS),
      fc.integer({ min: 100, max: 199 }),
    )
    .map(([kind, whose, entity, id, n]) => new ServerChangeCommand(kind, whose, entity, id, n));
  const clock = fc.oneof(
    arbClockJump(fc).map((ms) => new ClockCommand('jump', ms)),
    fc
      .oneof(fc.integer({ min: 0, max: 120_000 }), fc.constantFrom(LEASE_TTL_MS + 1, 3_600_000))
      .map((ms) => new ClockCommand('advance', ms)),
  );
  const logout = fc
    .constantFrom<LogoutKind>('relogin', 'switch', 'switch', 'purge-relogin', 'purge-switch')
    .map((kind) => new LogoutLoginCommand(kind));
  const resolve = fc
    .tuple(
      fc.nat(),
      fc.constantFrom('local' as const, 'server' as const, 'merged' as const),
      fc.integer({ min: 0, max: 99 }),
    )
    .map(([rank, how, n]) => new ResolveConflictCommand(rank, how, n));
  const retryDiscard = fc
    .tuple(
      fc.constantFrom('retry-all-failed' as const, 'retry-ids' as const, 'discard-ids' as const),
      fc.array(fc.nat(), { minLength: 1, maxLength: 3 }),
    )
    .map(([kind, ranks]) => new RetryOrDiscardCommand(kind, ranks));
  const command: fc.Arbitrary<EngineCommand> = fc.oneof(
    { arbitrary: enqueue, weight: weights.enqueue },
    { arbitrary: run, weight: weights.run },
    { arbitrary: fc.constant(new CrashAndRestartCommand()), weight: weights.crash },
    { arbitrary: serverFault, weight: 3 },
    { arbitrary: serverChange, weight: 2 },
    { arbitrary: clock, weight: 2 },
    { arbitrary: logout, weight: weights.logout },
    { arbitrary: resolve, weight: 3 },
    { arbitrary: retryDiscard, weight: 3 },
  );
  return fc.commands([command], {
    maxCommands: MAX_COMMANDS,
    size: 'max',
    ...(REPLAY_PATH === undefined ? {} : { replayPath: REPLAY_PATH }),
  });
}

// ---------------------------------------------------------------------------------------------
// The properties
// ---------------------------------------------------------------------------------------------

/**
 * A healthy network, both users in turn: run until each user's queue is empty, discarding what
 * waits for the user (dead letters, conflicts), as a user who gives up would.
 */
async function drain(model: EngineModel, real: EngineUnderTest): Promise<void> {
  real.pushFaults.length = 0;
  real.pullFaults.length = 0;
  real.faultRate = 0;
  real.refreshFailures = 0;
  real.network.setOnline(true);
  for (const target of [model.active === 0 ? 1 : 0, model.active] as const) {
    const engine = (): SyncEngine => real.main.engine;
    if (model.active !== target) {
      await engine().stop();
      model.active = target;
      await real.signIn(engine(), real.activeScope);
    }
    const scope = real.activeScope;
    let drained = false;
    const outcomes: string[] = [];
    for (let i = 0; i < MAX_DRAIN_RUNS && !drained; i++) {
      const report = await real.run({});
      outcomes.push(report.outcome);
      if (report.outcome === 'auth-required' || report.outcome === 'throttled')
        await real.signIn(engine(), scope);
      const stuck = await engine().queue.list({ scope, state: ['failed', 'conflict'], limit: 1000 });
      for (const id of await engine().queue.discard(stuck.map((m) => m.id))) {
        model.mutations.get(id)!.fate = 'discarded';
      }
      await real.checkInvariants(`drain ${who(scope)} run ${i}`);
      if ((await engine().queue.stats({ scope })).total === 0) drained = true;
      else if (report.nextDueAt !== null && report.outcome !== 'busy') {
        real.clock.advance(Math.max(0, report.nextDueAt - real.clock.now()));
      } else real.clock.advance(LEASE_TTL_MS + 1);
    }
    const left = await engine().queue.list({ scope, limit: 1000 });
    expect(
      left.map((m) => `${m.op} ${m.entity}/${m.entityId} ${m.state} attempts ${m.attempts}`),
      `not drained for ${who(scope)} after ${MAX_DRAIN_RUNS} runs (${outcomes.join(' ')})`,
    ).toEqual([]);
  }
  const listed = await real.checkInvariants('drained');
  expect(listed).toEqual([]);
  const result = checkDelivery({
    enqueued: model.acked,
    applied: real.server.log(),
    queued: listed,
    discarded: [...model.mutations.values()].filter((t) => t.fate !== 'live' && t.fate !== 'confirmed'),
  });
  expect(result.ok, describeDelivery(result)).toBe(true);
  model.stats.delivered += result.delivered;
  model.stats.lost += result.lost.length;
  model.stats.duplicated += result.duplicated.length;
  model.stats.outOfOrder += result.outOfOrder.length;
}

function engineModelProperty(name: string, weights: Weights) {
  const stats = statsFor(name);
  return fc.asyncProperty(arbConfig, commandsArb(weights), async (config, commands) => {
    stats.cases++;
    const { dir, remove } = tempDir('sync-core-engine-model-');
    const model: EngineModel = {
      config,
      active: 0,
      mutations: new Map(),
      acked: [],
      keyToId: new Map(),
      ghosts: new Set(),
      overwritten: new Set(),
      appRows: 0,
      created: new Set(),
      maxRetryAfterMs: config.faultRate > 0 ? 20_000 : 0,
      clockSetBackMs: 0,
      violations: [],
      stats,
    };
    const real = new EngineUnderTest(model, dir);
    try {
      await real.setUp();
      await fc.asyncModelRun(() => ({ model, real }), commands);
      await drain(model, real);
    } finally {
      await real.close();
      remove();
    }
  });
}

const PARAMETERS = {
  numRuns: NUM_RUNS,
  ...(SEED === undefined ? {} : { seed: SEED }),
  ...(PATH === undefined ? {} : { path: PATH, endOnFailure: true }),
};

describe('the whole engine against a model (better-sqlite3 file, model server, faulty network, fake clock)', () => {
  afterAll(() => {
    for (const [name, s] of Object.entries(STATS)) {
      console.log(
        `[engine-model] ${name}: ${s.cases} cases, ${s.commands} commands, ${s.runs} runs, ${s.requests} requests; ` +
          `crashes ${s.crashesIdle} idle / ${s.crashesMidRun} mid-run / ${s.crashesInTransaction} in a transaction; ` +
          `${s.userSwitches} user switches, ${s.purges} purges, ${s.conflictsResolved} conflicts resolved, ` +
          `${s.faultsInjected} faults (${s.faultsDowngraded} 422s withheld), ${s.busyRefusals} busy refusals, ${s.rebases} rebases, ${s.exhaustedRetried} exhausted retried; ` +
          `${s.acknowledged} acknowledged, ${s.delivered} delivered; lost ${s.lost}, duplicated ${s.duplicated}, out of order ${s.outOfOrder}; re-creates of a mapped client id ${s.recreates}`,
      );
    }
  });

  it(
    'invariants 1–6 (no loss, effectively once, per-record order, bounded backoff, scope isolation, single flight) and 8 for server-wins (one overwritten notice per dropped mutation) hold after every command, and the drained queue has lost = duplicated = outOfOrder = ∅',
    async () => {
      await fc.assert(
        engineModelProperty('mixed', { enqueue: 6, run: 5, crash: 1, midRunInterrupt: 2, logout: 1 }),
        PARAMETERS,
      );
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'invariants 1, 2, 5, 6 and 8 across crashes and user switches: a process killed at any request (before it, after the server applied it, inside a transaction) loses nothing, applies nothing twice, never sends a signed-out user’s mutations, its lease holds until it expires, and a server-wins drop commits with its overwritten notice',
    async () => {
      await fc.assert(
        engineModelProperty('crash-and-users', {
          enqueue: 6,
          run: 6,
          crash: 2,
          midRunInterrupt: 6,
          logout: 3,
        }),
        PARAMETERS,
      );
    },
    TEST_TIMEOUT_MS,
  );
});

describe('engine bugs found by the model-based suite (minimal deterministic reproductions)', () => {
  async function smallEngine() {
    const clock = createFakeClock();
    const server = createModelServer();
    const network = createFaultyNetwork(server, { clock });
    const engine = createSyncEngine({
      storage: createBetterSqlite3Storage(new Database(':memory:')),
      entities: { activity: { conflict: 'manual' } },
      network,
      clock,
      timers: createFakeTimers(clock),
      random: createSeededRandom(1),
    });
    await engine.open();
    await engine.start({ userId: 'u1' });
    return { clock, server, network, engine };
  }

  // B1. Found by 'invariants 1–6 …' (open conflicts vs queue), e.g. seed 334663544, path
  // "5:0:0:0:0:0:0:0:0:3:4:4:7:10:4:4:5:5" (commands: enqueue a create, the server gets the record
  // from another client, run → manual conflict, the drain discards it). Fixed in the working tree
  // while this suite was written (queue.discard now resolves the conflict as 'discarded'): kept as
  // a regression test.
  it('B1 (fixed): queue.discard of a mutation in conflict closes its conflict — engine.conflicts() and status.snapshot().openConflicts no longer report it', async () => {
    const { engine } = await smallEngine();
    try {
      // An update of a record the server does not have: a manual conflict.
      const update = await engine.enqueue({
        entity: 'activity',
        op: 'update',
        entityId: 'a1',
        data: { n: 1 },
      });
      const report = await engine.runOnce();
      expect(report.counts.conflicted).toBe(1);
      expect((await engine.conflicts()).map((c) => c.mutationId)).toEqual([update.id]);

      expect(await engine.queue.discard([update.id])).toEqual([update.id]);
      expect(await engine.queue.get(update.id)).toBeUndefined();
      // The user gave the change up: nothing waits for them any more.
      expect(await engine.conflicts()).toEqual([]);
      expect((await engine.status.snapshot()).openConflicts).toBe(0);
    } finally {
      await engine.close();
    }
  });

  // B2. Found by 'invariants 1–6 …' (the FAULTS.md 29 check of a throttled run), seed 1139726982,
  // path "257:0:0:0:0:0:6:8:7:8:10:11:11:11:11:12" with SYNC_CORE_RUNS=400
  // (commands: enqueue, run → 503 with Retry-After 20 s, ClockJump(-86400000), run → throttled for a day).
  it('B2 (fixed): the run-level Retry-After stop (sync_meta not_before) is re-based when the wall clock goes back — after a 429 with Retry-After 60 s and the clock set back a day, runs resume 60 s later, not a day (FAULTS.md 29)', async () => {
    const { clock, network, engine } = await smallEngine();
    try {
      await engine.enqueue({ entity: 'activity', op: 'create', entityId: 'a1', data: { n: 1 } });
      network.faults.next({ kind: 'status', status: 429, retryAfterMs: 60_000 });
      const first = await engine.runOnce();
      expect(first.outcome).toBe('throttled');
      expect(first.nextDueAt! - clock.now()).toBe(60_000);

      clock.jump(-DAY);
      const second = await engine.runOnce();
      // Mutation schedules are re-based on the new clock with the delay the server asked for
      // (mutation-queue clampFutureSchedules); the run-level stop should be too: at most 60 s more.
      const waitMs = second.outcome === 'throttled' ? second.nextDueAt! - clock.now() : 0;
      expect(waitMs).toBeLessThanOrEqual(60_000);
    } finally {
      await engine.close();
    }
  });
  // B3. Found by 'invariants 1–6 …' (the send-order check of invariant 3) with SYNC_CORE_STRICT=1,
  // first as seed 801925666, path "1:0:1:1:9:4:4:5:10:2:6:9:9:10:14:15:36:25:24:24:27:27:28:28:28:30:30:31:31:31:31:31:34:35:35:35:35:35:35:35:35:36",
  // replayPath "eB////3:9B" (a later edit of r2 queued under a stale server id overtook an earlier
  // one). The working tree then stopped translating creates and the edits behind them, which
  // closed that path but not this one: seed -216310345, path
  // "281:0:0:2:2:2:2:5:5:6:9:8:9:11:9:10:9:8:8:8:7:7:7:7:8:9:9", replayPath "///E:P" with
  // SYNC_CORE_STRICT=1 SYNC_CORE_RUNS=300. An edit queued before a re-create is translated to the
  // server id, the re-create is not: one client record, two queue records, no order between them.
  // Fixed: a create whose client id is mapped depends on the last mutation queued under the
  // mapped id. The properties no longer step around it (SYNC_CORE_STRICT is gone).
  it('B3 (fixed): with server-assigned ids, an edit of a record and a later re-create of its client id are queued under two different ids (server id, client id) and sent together — two mutations of one record in flight, in no guaranteed order (invariant 3)', async () => {
    const clock = createFakeClock();
    const server = createModelServer({ assignIds: ['activity'] });
    const network = createFaultyNetwork(server, { clock });
    const engine = createSyncEngine({
      storage: createBetterSqlite3Storage(new Database(':memory:')),
      entities: { activity: {} },
      network,
      clock,
      timers: createFakeTimers(clock),
      random: createSeededRandom(1),
    });
    await engine.open();
    await engine.start({ userId: 'u1' });
    try {
      await engine.enqueue({ entity: 'activity', op: 'create', entityId: 'a1', data: { n: 1 } });
      expect((await engine.runOnce()).counts.pushed).toBe(1); // a1 is srv-1 on the server
      const removal = await engine.enqueue({ entity: 'activity', op: 'delete', entityId: 'a1' });
      const recreate = await engine.enqueue({
        entity: 'activity',
        op: 'create',
        entityId: 'a1',
        data: { n: 2 },
      });
      expect([removal.entityId, recreate.entityId]).toEqual(['srv-1', 'a1']);
      await engine.runOnce();
      const second = network.requests()[1];
      const sent = second?.type === 'push' ? second.request.mutations.map((m) => m.id) : [];
      // Invariant 3: the re-create of a1 waits until the delete of a1 is confirmed.
      expect(sent, 'the delete and the re-create of a1 in flight together').toEqual([removal.id]);
    } finally {
      await engine.close();
    }
  });

  it('chained server ids: a re-create queued under a client id before its first create was confirmed gets a second server id, and a later edit of the client id goes to that second record (invariant 3)', async () => {
    const clock = createFakeClock();
    const server = createModelServer({ assignIds: ['activity'] });
    const network = createFaultyNetwork(server, { clock });
    const assigned: string[] = [];
    const engine = createSyncEngine({
      storage: createBetterSqlite3Storage(new Database(':memory:')),
      entities: {
        activity: {
          onIdAssigned: async (_tx, { clientId, serverId }) => {
            assigned.push(`${clientId}->${serverId}`);
          },
        },
      },
      network,
      clock,
      timers: createFakeTimers(clock),
      random: createSeededRandom(2),
    });
    await engine.open();
    await engine.start({ userId: 'u1' });
    try {
      // All three are queued under a1 before the server has assigned anything.
      await engine.enqueue({ entity: 'activity', op: 'create', entityId: 'a1', data: { n: 1 } });
      await engine.enqueue({ entity: 'activity', op: 'delete', entityId: 'a1' });
      await engine.enqueue({ entity: 'activity', op: 'create', entityId: 'a1', data: { n: 2 } });
      const first = await engine.runOnce();
      expect(first.counts.pushed).toBe(3);
      // The first create became srv-1 (the delete and the re-create were renamed to it), and the
      // re-create, sent as srv-1, became srv-2: the app's a1 is now srv-2.
      expect(assigned).toEqual(['a1->srv-1', 'srv-1->srv-2']);
      const edit = await engine.enqueue({ entity: 'activity', op: 'update', entityId: 'a1', data: { n: 3 } });
      expect(edit.entityId, 'the edit follows the chain of mappings to the live record').toBe('srv-2');
      const second = await engine.runOnce();
      expect(second.counts).toMatchObject({ pushed: 1, conflicted: 0, failed: 0 });
      expect(await engine.queue.stats()).toMatchObject({ pending: 0, conflict: 0, failed: 0 });
    } finally {
      await engine.close();
    }
  });
});
