import type { BackoffPolicy } from '../backoff/index.js';
import type { ResolvedEntity } from '../config.js';
import type { Clock, RandomSource, TimerHandle, Timers } from '../contracts/clock.js';
import type {
  NetworkAdapter,
  PushItemResult,
  PushResponse,
  TransportFailure,
} from '../contracts/network-adapter.js';
import type { Mutation, Scope } from '../contracts/records.js';
import { SyncError } from '../errors.js';
import type { SyncEvents } from '../events.js';
import type { MutationQueue, RecordEntry } from '../queue/mutation-queue.js';
import { scopeKey } from '../queue/scope.js';
import type { StatusStore } from '../status/status-store.js';
import type { GuardedExecutor, GuardedStorage } from '../storage/guarded-storage.js';
import { applyBookkeeping } from './bookkeeping.js';
import type { RunLease } from './lease.js';
import {
  type Decision,
  type DecisionContext,
  decideFailure,
  decideMissing,
  decideResult,
} from './outcomes.js';
import { pullEntity } from './pull-runner.js';

/** What started a run. Free-form labels are allowed; these are the ones the library uses. */
export type RunTrigger = 'background' | 'foreground' | 'connectivity' | 'schedule' | 'manual' | (string & {});

/**
 * How a run ended.
 *
 * - `ok`: everything that was due was sent and recorded, and every pull handler ran to the end.
 * - `offline`: the network was unreachable; claims were released, no attempt counted.
 * - `throttled`: the server asked to slow down (429/503); the run stopped after recording.
 * - `server-error`: a whole batch failed (5xx, timeout, an invalid response such as a captive
 *   portal's page); the run stopped rather than hammer a failing server. Backoff was recorded.
 * - `deadline`: the run stopped before its deadline (or was cut at it) with work left.
 * - `aborted`: the host's signal aborted the run, or the user signed out or in as someone else.
 * - `auth-required`: credentials were refused after one refresh; sync pauses until `start()`.
 * - `busy`: another run holds the lease (this process or another); nothing was done.
 * - `lease-lost`: the lease expired mid-run and another run took it; this one stopped.
 * - `no-scope`: no user is signed in (`start()` was not called); nothing was done.
 * - `error`: storage failed; see `error`.
 */
export type RunOutcome =
  | 'ok'
  | 'offline'
  | 'throttled'
  | 'server-error'
  | 'deadline'
  | 'aborted'
  | 'auth-required'
  | 'busy'
  | 'lease-lost'
  | 'no-scope'
  | 'error';

/** Counts of one run. They match what was recorded in the queue (DESIGN.md invariant 8). */
export interface RunCounts {
  /** Confirmed by the server (applied or duplicate), removed from the queue. */
  readonly pushed: number;
  /** Scheduled for another attempt. */
  readonly retried: number;
  /** Dead-lettered (rejected or exhausted). */
  readonly failed: number;
  /** Stopped on a version conflict that waits for the user (manual strategy). */
  readonly conflicted: number;
  /** Claimed but released unsent or without effect (offline, aborted, deadline, auth); no attempt. */
  readonly released: number;
  /** Expired claims of a dead run returned to pending at the start. */
  readonly recovered: number;
  /** Conflicts resolved by the entity type's strategy (server-wins, client-wins, merge). */
  readonly resolved: number;
  /** Server changes applied by pull handlers. */
  readonly pulled: number;
  /** Requests made (push batches, including a resend after a credential refresh, and pull pages). */
  readonly batches: number;
}

/** The report `runOnce` returns and `run:finished` carries. */
export interface RunReport {
  readonly runId: string;
  readonly trigger: RunTrigger;
  readonly outcome: RunOutcome;
  readonly startedAt: number;
  readonly finishedAt: number;
  readonly counts: RunCounts;
  /**
   * When the earliest remaining mutation becomes sendable (ms since epoch), or `null` when nothing
   * sendable remains. Never earlier than a Retry-After that stopped the run. A scheduler runs again
   * then (DESIGN.md section 4).
   */
  readonly nextDueAt: number | null;
  /** Present when `outcome` is `error`: the storage failure. */
  readonly error?: { readonly code: string; readonly message: string };
}

/** Options of one run. */
export interface RunOptions {
  /** What started the run, for reports and events. @default 'manual' */
  readonly trigger?: RunTrigger;
  /** Abort the run: in-flight requests are aborted and their claims released. */
  readonly signal?: AbortSignal;
  /**
   * Wall-clock time (ms since epoch) by which the run must have finished, e.g. the OS background
   * task's budget. No batch is started that would not finish by then (judged by measured batch
   * durations); requests still in flight at the deadline are aborted and their claims released.
   */
  readonly deadline?: number;
}

/** The fixed parts a run needs from its engine. */
export interface RunContext {
  readonly storage: GuardedStorage;
  readonly queue: MutationQueue;
  readonly status: StatusStore;
  readonly lease: RunLease;
  readonly network: NetworkAdapter;
  readonly entities: ReadonlyMap<string, ResolvedEntity>;
  readonly clock: Clock;
  readonly random: RandomSource;
  readonly timers: Timers;
  readonly policy: BackoffPolicy;
  readonly retryAfterCeilingMs: number;
  readonly maxConflictRebases: number;
  readonly clientId: string;
  readonly scope: Scope;
  readonly batch: { readonly maxCount: number; readonly maxBytes: number; readonly concurrency: number };
  readonly pullLimit: number;
  readonly claimTtlMs: number;
  readonly stuckAfterMs: number;
  readonly initialBatchEstimateMs: number;
  readonly emit: <E extends keyof SyncEvents>(event: E, payload: Parameters<SyncEvents[E]>[0]) => void;
  /** Single-flight credential refresh shared by every request of the engine. */
  readonly auth: AuthGate;
  /**
   * Whether this run's scope is still the engine's active scope. Checked before every request:
   * a run never sends for a user who signed out (DESIGN.md invariant 5).
   */
  readonly isScopeActive: () => boolean;
}

/**
 * Credential refresh shared by concurrent requests (DESIGN.md section 5, FAULTS.md 24): the first
 * 401 starts one refresh; requests that got a 401 with credentials older than the latest refresh
 * just resend; a 401 with fresh credentials after a refresh in this run means sync must pause.
 */
export class AuthGate {
  #generation = 0;
  #refreshing: Promise<boolean> | undefined;

  get generation(): number {
    return this.#generation;
  }

  /**
   * A request sent with credentials of `usedGeneration` got a 401. Resolves `true` when it should
   * be resent (credentials were, or just got, refreshed), `false` when sync must pause.
   */
  async onUnauthorized(
    usedGeneration: number,
    refreshedThisRun: { value: boolean },
    refresh: (() => Promise<boolean>) | undefined,
  ): Promise<boolean> {
    if (usedGeneration < this.#generation) return true;
    if (this.#refreshing) return this.#refreshing;
    if (refreshedThisRun.value || refresh === undefined) return false;
    refreshedThisRun.value = true;
    this.#refreshing = refresh()
      .then((ok) => {
        if (ok) this.#generation++;
        return ok;
      })
      .catch(() => false)
      .finally(() => {
        this.#refreshing = undefined;
      });
    return this.#refreshing;
  }
}

type MutableCounts = { -readonly [K in keyof RunCounts]: RunCounts[K] };

/** All-zero run counts: the start of every run, and the counts of a run that did nothing. */
export function emptyCounts(): MutableCounts {
  return {
    pushed: 0,
    retried: 0,
    failed: 0,
    conflicted: 0,
    released: 0,
    recovered: 0,
    resolved: 0,
    pulled: 0,
    batches: 0,
  };
}

/** Why the run stops early. */
export type StopReason = Exclude<RunOutcome, 'ok' | 'busy' | 'no-scope' | 'error'>;

const SLOW_DOWN_STATUSES = new Set([429, 503]);

/** A failure made up by the run itself for a request it decided not to send. */
const NOT_SENT: TransportFailure = {
  class: 'aborted',
  code: 'not-sent',
  message: 'the run stopped before sending',
};

/**
 * One sync run (DESIGN.md section 4), from a taken lease to its report. Created by the engine for
 * each `runOnce`; not reusable.
 */
export class SyncRun {
  readonly #ctx: RunContext;
  readonly #runId: string;
  readonly #trigger: RunTrigger;
  readonly #deadline: number | undefined;
  readonly #controller = new AbortController();
  readonly #counts: MutableCounts = emptyCounts();
  readonly #durations: number[] = [];
  readonly #refreshedThisRun = { value: false };
  #stop: StopReason | undefined;
  /** When the lease and claims were last renewed (the lease was taken just before `execute`). */
  #renewedAt = Number.NEGATIVE_INFINITY;
  /** Not before this time may anything be sent again: a 429/503 Retry-After that stopped the run. */
  #notBefore = 0;
  #done = 0;
  #total = 0;

  constructor(ctx: RunContext, runId: string, options: RunOptions) {
    this.#ctx = ctx;
    this.#runId = runId;
    this.#trigger = options.trigger ?? 'manual';
    this.#deadline = options.deadline;
  }

  get runId(): string {
    return this.#runId;
  }

  get trigger(): RunTrigger {
    return this.#trigger;
  }

  /** Whether the run was told to stop (abort, deadline). */
  get isStopping(): boolean {
    return this.#stop !== undefined;
  }

  /** Abort the run from outside (engine stop/close/start, host signal, deadline). */
  abort(reason: 'aborted' | 'deadline'): void {
    this.#stop ??= reason;
    this.#controller.abort(reason);
  }

  /**
   * Run with the lease already held by `this.#runId`: recover, push, pull, then write the run's
   * notices and its history row. Never rejects: a storage failure ends with outcome `error`.
   */
  async execute(startedAt: number): Promise<RunReport> {
    const ctx = this.#ctx;
    let timer: TimerHandle | undefined;
    let outcome: RunOutcome = 'ok';
    let error: RunReport['error'];
    ctx.emit('run:started', { runId: this.#runId, trigger: this.#trigger, startedAt });
    this.#renewedAt = startedAt;
    try {
      if (this.#deadline !== undefined) {
        const remaining = this.#deadline - ctx.clock.now();
        if (remaining <= 0) this.abort('deadline');
        else timer = ctx.timers.setTimeout(() => this.abort('deadline'), remaining);
      }
      this.#counts.recovered = await ctx.queue.recoverExpired();
      await ctx.queue.clampFutureSchedules(
        Math.max(ctx.policy.maxMs, ctx.retryAfterCeilingMs),
        ctx.policy.maxMs,
      );
      this.#total = await ctx.queue.countDue(ctx.scope);
      await this.#rounds();
      if (this.#stop === undefined) await this.#pull();
      outcome = this.#stop ?? 'ok';
    } catch (caught) {
      outcome = 'error';
      this.#controller.abort('error');
      error =
        caught instanceof SyncError
          ? { code: caught.code, message: caught.message }
          : { code: 'INTERNAL', message: caught instanceof Error ? caught.message : String(caught) };
    } finally {
      if (timer !== undefined) ctx.timers.clearTimeout(timer);
    }
    let nextDueAt: number | null = null;
    try {
      nextDueAt = await ctx.queue.nextDueAt(ctx.scope);
      if (nextDueAt !== null && nextDueAt < this.#notBefore) nextDueAt = this.#notBefore;
    } catch {
      // The report is still worth returning; the scheduler falls back to its periodic interval.
    }
    const report: RunReport = Object.freeze({
      runId: this.#runId,
      trigger: this.#trigger,
      outcome,
      startedAt,
      finishedAt: ctx.clock.now(),
      counts: Object.freeze({ ...this.#counts }),
      nextDueAt,
      ...(error ? { error } : {}),
    });
    await this.#finish(report);
    return report;
  }

  /**
   * The run's history row and its run-level notices (auth-required, stuck), in one transaction.
   * A failure here is not the run's: it is swallowed so the report still reaches the host.
   */
  async #finish(report: RunReport): Promise<void> {
    try {
      await this.#ctx.storage.transaction('immediate', (tx) => this.#finishIn(tx, report));
    } catch {
      // Storage is failing; the queue itself is consistent (every outcome was recorded atomically).
    }
  }

  async #finishIn(tx: GuardedExecutor, report: RunReport): Promise<void> {
    const ctx = this.#ctx;
    if (report.outcome === 'auth-required' && ctx.isScopeActive()) {
      await ctx.status.addAuthRequired(tx, ctx.scope);
      await tx.run(
        "INSERT INTO sync_meta (key, value) VALUES ('auth_paused', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [scopeKey(ctx.scope)],
      );
    }
    if (this.#notBefore > ctx.clock.now()) {
      await tx.run(
        "INSERT INTO sync_meta (key, value) VALUES ('not_before', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        // With the time it was set, so a clock that goes back can re-base it (FAULTS.md 29).
        [JSON.stringify({ until: this.#notBefore, setAt: ctx.clock.now() })],
      );
    } else if (report.outcome === 'ok') {
      // Only a Retry-After that has passed: another process may have stored a new one since this
      // run checked (its read was outside this transaction), and that one must hold.
      await tx.run(
        `DELETE FROM sync_meta WHERE key = 'not_before' AND CASE WHEN json_valid(value)
           THEN COALESCE(json_extract(value, '$.until'), CAST(value AS INTEGER)) ELSE 0 END <= ?`,
        [ctx.clock.now()],
      );
    }
    await ctx.status.raiseStuck(tx, ctx.scope, ctx.stuckAfterMs);
    await ctx.status.recordRun(tx, ctx.scope, {
      runId: report.runId,
      trigger: report.trigger,
      outcome: report.outcome,
      startedAt: report.startedAt,
      finishedAt: report.finishedAt,
      ...report.counts,
      error: report.error ?? null,
    });
  }

  /**
   * A background wake-up with nothing to do, in one transaction (one commit) instead of taking
   * and releasing the lease around a run: when no lease row exists, nothing is inflight, nothing
   * of the scope is due, no schedule needs re-basing and no entity type pulls, the run's
   * history row (DESIGN.md invariant 8) and its stuck notices are written right away.
   *
   * @returns the report, or `undefined` when there is something to do (run {@link execute} with
   *   the lease instead).
   */
  async executeIfIdle(startedAt: number): Promise<RunReport | undefined> {
    const ctx = this.#ctx;
    if (this.#stop !== undefined) return undefined;
    if (this.#deadline !== undefined && this.#deadline <= ctx.clock.now()) return undefined;
    for (const entity of ctx.entities.values()) if (entity.pull !== undefined) return undefined;
    const ceilingMs = Math.max(ctx.policy.maxMs, ctx.retryAfterCeilingMs);
    const report = await ctx.storage.transaction('immediate', async (tx) => {
      const now = ctx.clock.now();
      const busy = await tx.all('SELECT 1 FROM sync_lease LIMIT 1');
      if (busy.length > 0) return undefined;
      if (!(await ctx.queue.isIdle(tx, ctx.scope, now, ceilingMs))) return undefined;
      const idle: RunReport = Object.freeze({
        runId: this.#runId,
        trigger: this.#trigger,
        outcome: 'ok',
        startedAt,
        finishedAt: ctx.clock.now(),
        counts: Object.freeze({ ...this.#counts }),
        nextDueAt: await ctx.queue.nextDueAt(ctx.scope, tx),
      });
      await this.#finishIn(tx, idle);
      return idle;
    });
    // Announced once committed, like every run (listeners never hear of a rolled-back one).
    if (report !== undefined)
      ctx.emit('run:started', { runId: this.#runId, trigger: this.#trigger, startedAt });
    return report;
  }

  /** Claim → send groups → record, round after round, until drained or told to stop. */
  async #rounds(): Promise<void> {
    const ctx = this.#ctx;
    while (this.#stop === undefined) {
      if (this.#deadline !== undefined && ctx.clock.now() + this.#estimate() > this.#deadline) {
        this.#stop = 'deadline';
        break;
      }
      if (!ctx.isScopeActive()) {
        this.abort('aborted');
        break;
      }
      if (!(await this.#renew())) {
        this.#stop = 'lease-lost';
        break;
      }
      const roundStart = ctx.clock.now();
      const claimed = await ctx.queue.claim({
        scope: ctx.scope,
        token: this.#runId,
        claimTtlMs: ctx.claimTtlMs,
        maxCount: ctx.batch.maxCount,
        maxBytes: ctx.batch.maxBytes,
      });
      if (claimed.length === 0) break;
      await this.#sendGroups(claimed);
      this.#durations.push(Math.max(0, ctx.clock.now() - roundStart));
      if (this.#durations.length > 5) this.#durations.shift();
    }
  }

  /** How long the next round is expected to take: the slowest of the last few, with a margin. */
  #estimate(): number {
    if (this.#durations.length === 0) return this.#ctx.initialBatchEstimateMs;
    return Math.ceil(Math.max(...this.#durations) * 1.25);
  }

  /**
   * Extend the lease and the claims this run holds, at most once per third of the TTL: every
   * renewal is a commit (an fsync with `synchronous = FULL`), and renewing before every request
   * would double a drain's commits. Between renewals, no claim is older than a third of the TTL
   * plus one request, so a request timeout under two thirds of the TTL keeps every claim alive
   * while its request is in flight (the defaults: 30 s timeout, 60 s TTL).
   *
   * @returns `false` when the lease was lost.
   */
  async #renew(): Promise<boolean> {
    const now = this.#ctx.clock.now();
    if (now >= this.#renewedAt && now - this.#renewedAt < this.#ctx.claimTtlMs / 3) return true;
    if (!(await this.#ctx.lease.renew(this.#runId))) return false;
    await this.#ctx.queue.extendClaims(this.#runId, this.#ctx.claimTtlMs);
    this.#renewedAt = now;
    return true;
  }

  /** Send the claimed mutations grouped by entity type, at most `concurrency` requests at once. */
  async #sendGroups(claimed: readonly Mutation[]): Promise<void> {
    const groups = new Map<string, Mutation[]>();
    for (const m of claimed) {
      const group = groups.get(m.entity);
      if (group) group.push(m);
      else groups.set(m.entity, [m]);
    }
    const pending = [...groups.values()];
    const worker = async (): Promise<void> => {
      for (let group = pending.shift(); group; group = pending.shift()) {
        if (this.#stop !== undefined) {
          // Stopping (offline, throttled, deadline…): claims of groups not yet sent go back
          // untouched, no attempt counted, and not before a Retry-After that stopped the run.
          await this.#record(
            group.map((mutation) => ({
              mutation,
              kind: 'released',
              outcome: { type: 'release', ...(this.#notBefore > 0 ? { notBefore: this.#notBefore } : {}) },
            })),
          );
          continue;
        }
        await this.#sendGroup(group);
      }
    };
    const results = await Promise.allSettled(
      Array.from({ length: Math.min(this.#ctx.batch.concurrency, pending.length) }, async () => {
        try {
          await worker();
        } catch (error) {
          // One worker's storage failure stops the others before they send more.
          this.#controller.abort('error');
          this.#stop ??= 'aborted';
          throw error;
        }
      }),
    );
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }

  /** Renew, check the scope, then send: no request goes out on a lost lease or for a signed-out user. */
  async #push(
    mutations: readonly Mutation[],
  ): Promise<{ response: PushResponse; generation: number; sent: boolean }> {
    const ctx = this.#ctx;
    const generation = ctx.auth.generation;
    const notSent = {
      response: { type: 'failure', failure: NOT_SENT } as PushResponse,
      generation,
      sent: false,
    };
    if (this.#stop !== undefined) return notSent;
    if (!ctx.isScopeActive()) {
      this.abort('aborted');
      return notSent;
    }
    if (!(await this.#renew())) {
      this.#stop ??= 'lease-lost';
      return notSent;
    }
    this.#counts.batches++;
    try {
      const response = await ctx.network.push({
        entity: mutations[0]!.entity,
        scope: ctx.scope,
        clientId: ctx.clientId,
        signal: this.#controller.signal,
        mutations: mutations.map((m) => ({
          id: m.id,
          key: m.key,
          op: m.op,
          entityId: m.entityId,
          baseVersion: m.baseVersion,
          data: m.data,
          clientTime: new Date(m.createdAt).toISOString(),
          dependsOn: m.dependsOn,
        })),
      });
      return { response, generation, sent: true };
    } catch (error) {
      // The port promises not to reject; if an adapter does anyway, the request may have been
      // sent: treat it as ambiguous, never as a confirmation or a silent loss.
      const aborted = this.#controller.signal.aborted;
      return {
        generation,
        sent: true,
        response: {
          type: 'failure',
          failure: {
            class: aborted ? 'aborted' : 'ambiguous',
            code: aborted ? 'aborted' : 'adapter-error',
            message:
              error instanceof Error ? `network adapter threw: ${error.name}` : 'network adapter threw',
          },
        },
      };
    }
  }

  /** Send one group, refresh credentials once on 401, decide and record every outcome. */
  async #sendGroup(group: readonly Mutation[]): Promise<void> {
    const ctx = this.#ctx;
    const started = ctx.clock.now();
    let { response, generation, sent } = await this.#push(group);
    // 401: refresh once (shared), then resend what was refused.
    const refused = this.#unauthorized(group, response);
    if (refused.length > 0) {
      const refresh = ctx.network.refreshCredentials
        ? () => ctx.network.refreshCredentials!(ctx.scope, this.#controller.signal)
        : undefined;
      const again = await ctx.auth.onUnauthorized(generation, this.#refreshedThisRun, refresh);
      if (again && !this.#controller.signal.aborted) {
        const retried = await this.#push(refused);
        generation = retried.generation;
        sent ||= retried.sent;
        response = mergeResponses(group, response, refused, retried.response);
      }
    }
    const decisions = this.#decide(group, response, sent);
    if (sent) {
      if (response.type === 'results') {
        ctx.emit('batch:sent', {
          runId: this.#runId,
          entity: group[0]!.entity,
          count: group.length,
          durationMs: Math.max(0, ctx.clock.now() - started),
        });
      } else {
        const f = response.failure;
        ctx.emit('batch:failed', {
          runId: this.#runId,
          entity: group[0]!.entity,
          count: group.length,
          failureClass: f.class,
          code: f.code,
          ...(f.status === undefined ? {} : { status: f.status }),
        });
      }
    }
    this.#applyStops(response, decisions);
    await this.#record(decisions);
  }

  /** Mutations of `group` refused with 401 (the whole batch, or single items in REST mode). */
  #unauthorized(group: readonly Mutation[], response: PushResponse): Mutation[] {
    if (response.type === 'failure') return response.failure.class === 'auth' ? [...group] : [];
    const refused = new Set(
      response.results.filter((r) => r.status === 'failed' && r.failure.class === 'auth').map((r) => r.id),
    );
    return group.filter((m) => refused.has(m.id));
  }

  #decisionContext(): DecisionContext {
    const ctx = this.#ctx;
    return {
      now: ctx.clock.now(),
      policy: ctx.policy,
      random: ctx.random,
      retryAfterCeilingMs: ctx.retryAfterCeilingMs,
      entities: ctx.entities,
      maxConflictRebases: ctx.maxConflictRebases,
    };
  }

  #decide(group: readonly Mutation[], response: PushResponse, sent: boolean): Decision[] {
    // One jitter draw for the whole batch: its mutations (same attempt count, as a rule) are then
    // due again together and go out in one request, instead of each on its own schedule — which
    // tripled a fleet's requests after a 429 in the fleet benchmark. Each delay is still within
    // its own attempt's bounds (invariant 4); devices and batches still draw independently.
    let draw: number | undefined;
    const random = this.#ctx.random;
    const context: DecisionContext = {
      ...this.#decisionContext(),
      random: () => {
        draw ??= random();
        return draw;
      },
    };
    if (response.type === 'failure')
      return group.map((m) => decideFailure(m, response.failure, context, sent));
    const byId = new Map<string, PushItemResult>();
    for (const result of response.results) byId.set(result.id, result);
    return group.map((m) => {
      const result = byId.get(m.id);
      return result ? decideResult(m, result, context) : decideMissing(m, context);
    });
  }

  /** Run-level consequences: offline and 401-after-refresh stop the run; 429/503 slow it down. */
  #applyStops(response: PushResponse, decisions: readonly Decision[]): void {
    const classes = new Set(decisions.map((d) => d.failureClass));
    if (classes.has('auth')) {
      this.#stop ??= 'auth-required';
      this.#ctx.emit('auth:required', { runId: this.#runId });
    }
    if (classes.has('offline')) this.#stop ??= 'offline';
    // An adapter reporting "aborted" although this run was not aborted would otherwise have the
    // same mutations claimed and released forever.
    if (classes.has('aborted')) this.#stop ??= 'aborted';
    const slowDown = (failure: TransportFailure): void => {
      if (failure.status === undefined || !SLOW_DOWN_STATUSES.has(failure.status)) return;
      this.#stop ??= 'throttled';
      if (failure.retryAfterMs !== undefined) {
        const until = this.#ctx.clock.now() + Math.min(failure.retryAfterMs, this.#ctx.retryAfterCeilingMs);
        this.#notBefore = Math.max(this.#notBefore, until);
      }
    };
    if (response.type === 'failure') {
      const { failure } = response;
      if (failure.class === 'retryable') slowDown(failure);
      if ((failure.class === 'retryable' || failure.class === 'ambiguous') && this.#stop === undefined) {
        this.#stop = 'server-error';
      }
    } else {
      // One request per mutation (REST mode): a 429/503 on any of them is the server asking to slow down.
      for (const r of response.results) if (r.status === 'failed') slowDown(r.failure);
    }
  }

  /** Record decisions and their bookkeeping in one transaction, then count and announce them. */
  async #record(decisions: readonly Decision[]): Promise<void> {
    if (decisions.length === 0) return;
    const ctx = this.#ctx;
    const entries: RecordEntry[] = decisions.map((d) => ({ id: d.mutation.id, outcome: d.outcome }));
    const byId = new Map(decisions.map((d) => [d.mutation.id, d]));
    let stale: string[];
    try {
      ({ stale } = await ctx.queue.record(this.#runId, entries, (tx: GuardedExecutor, recorded) =>
        applyBookkeeping(
          tx,
          ctx,
          recorded.map((entry) => byId.get(entry.id)!),
        ),
      ));
    } catch (error) {
      // The outcomes rolled back (an app hook threw, storage failed): hand the claims back now,
      // best effort, rather than leaving them in flight until they expire. The next run resends
      // them with their keys; a server that applied them answers as a duplicate.
      await ctx.queue
        .record(
          this.#runId,
          decisions.map((d) => ({ id: d.mutation.id, outcome: { type: 'release' } })),
        )
        .catch(() => undefined);
      throw error;
    }
    const staleIds = new Set(stale);
    for (const d of decisions) {
      if (staleIds.has(d.mutation.id)) continue;
      const m = d.mutation;
      switch (d.kind) {
        case 'confirmed':
          this.#counts.pushed++;
          ctx.emit('mutation:confirmed', {
            id: m.id,
            entity: m.entity,
            entityId: m.entityId,
            ...(d.version === undefined ? {} : { version: d.version }),
            ...(d.assignedId === undefined ? {} : { serverId: d.assignedId }),
          });
          break;
        case 'retried':
          this.#counts.retried++;
          if (d.outcome.type === 'retry') {
            ctx.emit('retry:scheduled', {
              id: m.id,
              entity: m.entity,
              attempt: m.attempts + 1,
              nextAttemptAt: d.outcome.nextAttemptAt,
              reason: d.outcome.error.code,
            });
          }
          break;
        case 'failed':
          this.#counts.failed++;
          ctx.emit('mutation:failed', {
            id: m.id,
            entity: m.entity,
            entityId: m.entityId,
            code: d.outcome.type === 'failed' ? d.outcome.error.code : 'failed',
            attempts: m.attempts + 1,
          });
          break;
        case 'conflicted':
          this.#counts.conflicted++;
          ctx.emit('conflict:detected', {
            id: m.id,
            entity: m.entity,
            entityId: m.entityId,
            resolution: 'manual',
          });
          break;
        case 'resolved':
          this.#counts.resolved++;
          ctx.emit('conflict:detected', {
            id: m.id,
            entity: m.entity,
            entityId: m.entityId,
            resolution: d.conflict?.resolution ?? 'manual',
          });
          break;
        case 'released':
          this.#counts.released++;
          break;
      }
    }
    this.#done += decisions.length - staleIds.size;
    ctx.emit('run:progress', {
      runId: this.#runId,
      done: this.#done,
      total: Math.max(this.#total, this.#done),
    });
  }

  /** Pull every entity type that has a handler, page by page, until done or told to stop. */
  async #pull(): Promise<void> {
    const ctx = this.#ctx;
    if (ctx.network.pull === undefined) return;
    for (const entity of ctx.entities.values()) {
      if (entity.pull === undefined) continue;
      const stop = await pullEntity(ctx, entity, {
        signal: this.#controller.signal,
        stopReason: () => {
          if (this.#stop !== undefined) return this.#stop;
          if (!ctx.isScopeActive()) return 'aborted';
          if (this.#deadline !== undefined && ctx.clock.now() + this.#estimate() > this.#deadline)
            return 'deadline';
          return undefined;
        },
        renew: () => this.#renew(),
        onPage: (changes, durationMs) => {
          this.#counts.batches++;
          this.#counts.pulled += changes;
          this.#durations.push(durationMs);
          if (this.#durations.length > 5) this.#durations.shift();
        },
      });
      if (stop !== undefined) {
        this.#stop ??= stop;
        return;
      }
    }
  }
}

/** Replace the refused mutations' results in `first` by those of the resend. */
function mergeResponses(
  group: readonly Mutation[],
  first: PushResponse,
  refused: readonly Mutation[],
  second: PushResponse,
): PushResponse {
  const refusedIds = new Set(refused.map((m) => m.id));
  if (first.type === 'failure' && refused.length === group.length) return second;
  const results: PushItemResult[] =
    first.type === 'results' ? first.results.filter((r) => !refusedIds.has(r.id)) : [];
  if (second.type === 'results') results.push(...second.results.filter((r) => refusedIds.has(r.id)));
  else for (const m of refused) results.push({ id: m.id, status: 'failed', failure: second.failure });
  return { type: 'results', results };
}
