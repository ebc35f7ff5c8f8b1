import { EventEmitter } from 'eventemitter3';
import {
  type BackoffOptions,
  type BackoffPolicy,
  DEFAULT_RETRY_AFTER_CEILING_MS,
  resolveBackoffPolicy,
} from '../backoff/index.js';
import {
  type EntityOptions,
  invalidOption,
  positiveInteger,
  type QueueLimits,
  type ResolvedEntity,
  resolveEntities,
} from '../config.js';
import { ConflictStore } from '../conflict/conflict-store.js';
import type { Conflict, ConflictResolution } from '../conflict/conflict-strategy.js';
import {
  type Clock,
  defaultRandom,
  type RandomSource,
  systemClock,
  systemTimers,
  type Timers,
} from '../contracts/clock.js';
import type { NetworkAdapter } from '../contracts/network-adapter.js';
import type { Mutation, MutationInput, QueueStats, Scope } from '../contracts/records.js';
import {
  alwaysOnline,
  type ConnectivityAdapter,
  type RunRequest,
  type SchedulerAdapter,
} from '../contracts/scheduler-adapter.js';
import type { SqlParams, SqlRow, StorageAdapter } from '../contracts/storage-adapter.js';
import { ConfigError, NotFoundError, StateError, SyncError, ValidationError } from '../errors.js';
import type { MutationEnqueuedEvent, SyncEvents } from '../events.js';
import { uuidV4 } from '../queue/ids.js';
import { type EnqueuedMutation, type ListOptions, MutationQueue } from '../queue/mutation-queue.js';
import { type PreparedMutation, prepareMutation } from '../queue/prepare-mutation.js';
import { checkScope, scopeKey } from '../queue/scope.js';
import {
  connectivityDelay,
  DEFAULT_CONNECTIVITY_DELAY_MAX_MS,
  DEFAULT_PERIODIC_MS,
  DEFAULT_RUN_REQUEST_NAME,
  decideNextRun,
  resolvePeriodicMs,
} from '../scheduler/job-scheduler.js';
import type { Notice } from '../status/notice.js';
import { type RunRecord, StatusStore } from '../status/status-store.js';
import { GuardedStorage } from '../storage/guarded-storage.js';
import { migrate } from '../storage/migrations.js';
import { RunLease } from './lease.js';
import { AuthGate, emptyCounts, type RunOptions, type RunReport, SyncRun } from './sync-run.js';

/**
 * Options of {@link createSyncEngine}. Only `storage` and `entities` are required.
 */
export interface SyncEngineOptions {
  /** The SQLite connection holding the queue, e.g. `createBetterSqlite3Storage(db)`. */
  readonly storage: StorageAdapter;
  /** Every entity type the app enqueues, with its validation and coalescing options. */
  readonly entities: Readonly<Record<string, EntityOptions>>;
  /** Wall clock. @default the system clock (`Date.now`) */
  readonly clock?: Clock;
  /** Uniform random numbers in [0, 1) for ids and jitter. @default Web Crypto, else `Math.random` */
  readonly random?: RandomSource;
  /** Payload limits. */
  readonly limits?: QueueLimits;
  /**
   * Sends batches: `createFetchNetwork(…)` from `sync-core/fetch`, or your own adapter. Required
   * for `runOnce`; an engine without one only queues.
   */
  readonly network?: NetworkAdapter;
  /**
   * Per-mutation retry backoff (DESIGN.md section 5): 30 s initial, ×2, capped at 1 h, equal
   * jitter, no attempt limit by default. The same policy spaces runs that end offline.
   */
  readonly backoff?: BackoffOptions & {
    /**
     * The longest server `Retry-After` honoured; longer ones are cut to this.
     * @default 86_400_000 (24 h)
     */
    readonly retryAfterCeilingMs?: number;
  };
  /** Batch limits of a run. A run holds at most one claim of this size in memory (invariant 7). */
  readonly batch?: {
    /** Most mutations claimed per round. @default 100 (max 1000) */
    readonly maxCount?: number;
    /** Most payload bytes claimed per round (at least one mutation is always claimed). @default 1_048_576 */
    readonly maxBytes?: number;
    /** Requests in flight at once (one per entity type of a round). @default 4 (max 32) */
    readonly concurrency?: number;
  };
  /**
   * How long a run's lease and its claims last without renewal. A run renews both each round; a
   * crashed run's lease and claims expire after this. Keep it above your request timeout.
   * @default 60_000
   */
  readonly leaseTtlMs?: number;
  /**
   * How long the first round of a run is assumed to take before any is measured, to decide whether
   * it fits before the deadline. @default 2_000
   */
  readonly initialBatchEstimateMs?: number;
  /** Timers for run deadlines. @default the platform's timers, unref'd on Node */
  readonly timers?: Timers;
  /**
   * Where the engine asks for its next run (DESIGN.md section 4, step 5): `createTimerScheduler()`
   * in a Node/Electron process, or your own adapter over WorkManager/BGTaskScheduler. Without
   * one, nothing is scheduled: the host asks `await engine.nextRunRequest()` and calls `runOnce`
   * itself (the host-driven model of OS background hooks).
   */
  readonly scheduler?: SchedulerAdapter;
  /**
   * Whether the device is online, and a subscription to changes. No run starts while offline;
   * coming back online schedules a run after a short jittered delay.
   * @default alwaysOnline (Node: assume online; offline failures drive backoff)
   */
  readonly connectivity?: ConnectivityAdapter;
  /**
   * The periodic run interval while signed in (a refresh even when nothing is queued, e.g. to
   * pull). `Infinity` disables periodic runs. @default 900_000 (15 min, the platforms' floor)
   */
  readonly periodicMs?: number;
  /**
   * Coming back online, the next run is scheduled after a uniform random delay in
   * `[0, connectivityDelayMaxMs]`, so a fleet that regains the network together does not hit the
   * server in the same second. Size it to the fleet: the devices that reconnect at once divided by
   * the requests per second the server accepts (10,000 devices at 500 req/s: 20_000 ms).
   * docs/performance.md's fleet simulation shows the trade-off.
   * @default 10_000
   */
  readonly connectivityDelayMaxMs?: number;
  /**
   * A mutation still unconfirmed this long after it was queued raises one `stuck` notice (it keeps
   * retrying). @default 86_400_000 (24 h)
   */
  readonly stuckAfterMs?: number;
  /** Changes asked for per pull page. @default 500 (max 1000) */
  readonly pullLimit?: number;
  /** Run rows kept in the history (`sync_runs`). @default 200 */
  readonly runHistoryLimit?: number;
  /**
   * How many attempts a mutation may have before a conflict on it is left to the user even when
   * its entity type resolves conflicts automatically (client-wins, merge). @default 3
   */
  readonly maxConflictRebases?: number;
}

/** A snapshot of the engine's status, for a sync indicator or a support screen. */
export interface StatusSnapshot {
  /** The active scope, or `undefined` when signed out. */
  readonly scope: Scope | undefined;
  /** Whether a run is in progress in this engine. */
  readonly running: boolean;
  /** Whether sync is paused until the user signs in again (`auth-required`). */
  readonly authRequired: boolean;
  /** Queue counts of the active scope (of every scope when signed out). */
  readonly queue: QueueStats;
  /** The most recent run of the active scope (or any scope when signed out), if any. */
  readonly lastRun: RunRecord | undefined;
  /** How many notices are unseen. */
  readonly unseenNotices: number;
  /** How many conflicts wait for the user. */
  readonly openConflicts: number;
}

/** The status store, read by the foreground app on its next launch. */
export interface StatusApi {
  /** Queue counts, last run, unseen notices, open conflicts, auth state — one consistent read. */
  snapshot(): Promise<StatusSnapshot>;
  /**
   * Call `listener` with a fresh snapshot after every change this engine makes (enqueue, run
   * finished, notices acknowledged, conflicts resolved, sign-in/out). Returns the unsubscribe
   * function. Changes made by another process (a background job) are seen on the next change here
   * or by calling `snapshot()`.
   */
  subscribe(listener: (snapshot: StatusSnapshot) => void): () => void;
  /** Notices not yet acknowledged, oldest first (the active scope's; every scope's when signed out). */
  unseenNotices(): Promise<Notice[]>;
  /** Mark notices seen. Returns how many were unseen. */
  acknowledge(ids: readonly string[]): Promise<number>;
  /** The most recent runs, newest first. @param limit at most this many (default 20) */
  runs(limit?: number): Promise<RunRecord[]>;
}

/** The statements and enqueue calls available inside {@link SyncEngine.transaction}. */
export interface EngineTransaction {
  /** Run one of the app's own write statements in this transaction (parameters bound, never interpolated). */
  run(sql: string, params?: SqlParams): Promise<{ changes: number }>;
  /** Read rows in this transaction. */
  all<T = SqlRow>(sql: string, params?: SqlParams): Promise<T[]>;
  /** Queue a mutation in this transaction: it commits with the app's own writes, or not at all. */
  enqueue(input: MutationInput): Promise<EnqueuedMutation>;
  /** Queue several mutations in this transaction, in order. */
  enqueueMany(inputs: readonly MutationInput[]): Promise<EnqueuedMutation[]>;
}

/** Which mutations a queue call looks at: the active scope by default, or `'all'`. */
export interface ScopeOption {
  /** A scope, or `'all'` for every scope. Default: the active scope, or all when none is active. */
  readonly scope?: Scope | 'all';
}

/** The user-facing view of the queue: inspect, retry, discard. */
export interface QueueApi {
  /** Counts per state and the age of the oldest unconfirmed mutation. */
  stats(options?: ScopeOption): Promise<QueueStats>;
  /** Mutations in queue order, filtered; keyset-paginate with `afterSeq`. */
  list(options?: ListOptions): Promise<Mutation[]>;
  /** One mutation by id, or `undefined` when it is not (or no longer) queued. */
  get(id: string): Promise<Mutation | undefined>;
  /**
   * Send these failed mutations again (attempts reset) or these pending ones now; or every failed
   * mutation of the scope with `{ allFailed: true }`. Returns the ids made due.
   */
  retry(
    selection: readonly string[] | { readonly allFailed: true },
    options?: ScopeOption,
  ): Promise<string[]>;
  /**
   * Remove mutations for good; refuses (and removes nothing) when one is being sent right now.
   * Returns the ids removed.
   */
  discard(ids: readonly string[]): Promise<string[]>;
}

/** The result of {@link SyncEngine.stop}. */
export interface StopResult {
  /** Mutations of the scope removed by `purge: true` (0 otherwise). */
  readonly purged: number;
}

/**
 * A sync engine over one database. Create it with {@link createSyncEngine}, `open()` it, `start()` a
 * user scope, and `enqueue` changes.
 */
export interface SyncEngine
  extends Pick<EventEmitter<SyncEvents>, 'on' | 'off' | 'once' | 'removeAllListeners'> {
  /** This device's id, created at first `open()` and kept in the database. */
  readonly clientId: string;
  /** The scope mutations are queued under and sent for, or `undefined` before `start()`. */
  readonly activeScope: Scope | undefined;
  /** Whether `open()` has completed and `close()` has not been called. */
  readonly isOpen: boolean;
  /** Open the storage and apply schema migrations (one transaction). Idempotent. */
  open(): Promise<void>;
  /** Close the storage. Calls after this throw `ENGINE_CLOSED`. Idempotent. */
  close(): Promise<void>;
  /** Sign in: make `scope` the active scope. */
  start(scope: Scope): Promise<void>;
  /**
   * Sign out: clear the active scope. With `purge: true` (a deliberate sign-out) the scope's queued
   * mutations are deleted and counted; without it they stay for the same user's return.
   */
  stop(options?: { readonly purge?: boolean }): Promise<StopResult>;
  /** Validate and queue one mutation under the active scope. Resolves once it is durably stored. */
  enqueue(input: MutationInput): Promise<EnqueuedMutation>;
  /** Validate every input first, then queue them all in one transaction, in order. */
  enqueueMany(inputs: readonly MutationInput[]): Promise<EnqueuedMutation[]>;
  /**
   * Run the app's own writes and its enqueues in one immediate transaction: both commit or neither
   * (DESIGN.md section 2). Rejects with whatever `fn` threw, after rolling back. Calls on `tx` run
   * one at a time in call order, even when started together.
   *
   * Inside `fn`, use `tx` only: an engine method (`engine.enqueue`, `engine.queue.*`, `runOnce`)
   * waits for this transaction to end, so awaiting one inside `fn` never resolves.
   */
  transaction<T>(fn: (tx: EngineTransaction) => Promise<T>): Promise<T>;
  /** Inspect, retry and discard queued mutations. */
  readonly queue: QueueApi;
  /**
   * One sync run (DESIGN.md section 4) for the active scope: take the lease, recover expired
   * claims, push due mutations in rounds until drained, the deadline nears, the signal aborts,
   * the network is down, the server asks to slow down, or credentials are refused. This is what
   * an OS background hook calls. Never rejects for network trouble: see the report's `outcome`.
   *
   * With nothing to do (nothing due or inflight, no pull handler, no lease held) the run takes no
   * lease: it writes its run row in one transaction. `run:started` and `run:finished` are emitted
   * for every run that wrote its row (`run:progress` while it sends); a `busy`, `no-scope`,
   * `offline`, `throttled` or `auth-required` report returned before that comes without events.
   *
   * @throws ConfigError when the engine has no network adapter; StateError when not open.
   */
  runOnce(options?: RunOptions): Promise<RunReport>;
  /** The status store: notices for the next launch, run history, a snapshot for indicators. */
  readonly status: StatusApi;
  /** Conflicts of the active scope that wait for the user (strategy `manual`), oldest first. */
  conflicts(): Promise<Conflict[]>;
  /**
   * Resolve a manual conflict: keep the local change (resent against the server's version), keep
   * the server's (the local change is dropped), or send a merged payload. The record's later
   * mutations proceed once it is confirmed or dropped.
   *
   * @throws NotFoundError `CONFLICT_NOT_FOUND` when no open conflict has this mutation id;
   * ValidationError for a merged payload that is not plain JSON or fails the entity's schema.
   */
  resolveConflict(mutationId: string, resolution: ConflictResolution): Promise<void>;
  /**
   * When the next run should happen, decided from the database (so a fresh background process
   * gets the right answer): what a host registers with WorkManager/BGTaskScheduler, or `null`
   * while sync is paused (signed out, or credentials refused until the next `start()`). The same
   * decision the engine hands its `scheduler` after every run, enqueue and sign-in.
   */
  nextRunRequest(): Promise<RunRequest | null>;
}

class Engine extends EventEmitter<SyncEvents> implements SyncEngine {
  readonly #storage: GuardedStorage;
  readonly #entities: ReadonlyMap<string, ResolvedEntity>;
  readonly #clock: Clock;
  readonly #random: RandomSource;
  readonly #queue: MutationQueue;
  readonly #network: NetworkAdapter | undefined;
  readonly #timers: Timers;
  readonly #policy: BackoffPolicy;
  readonly #retryAfterCeilingMs: number;
  readonly #batch: { readonly maxCount: number; readonly maxBytes: number; readonly concurrency: number };
  readonly #leaseTtlMs: number;
  readonly #initialBatchEstimateMs: number;
  readonly #lease: RunLease;
  readonly #auth = new AuthGate();
  readonly #status: StatusStore;
  readonly #conflicts: ConflictStore;
  readonly #stuckAfterMs: number;
  readonly #pullLimit: number;
  readonly #maxConflictRebases: number;
  readonly #statusListeners = new Set<(snapshot: StatusSnapshot) => void>();
  readonly #scheduler: SchedulerAdapter | undefined;
  readonly #connectivity: ConnectivityAdapter;
  readonly #periodicMs: number;
  readonly #connectivityDelayMaxMs: number;
  #lastReport: RunReport | undefined;
  #scheduled: RunRequest | null = null;
  #scheduling: Promise<unknown> = Promise.resolve();
  #unsubscribeConnectivity: (() => void) | undefined;
  /** Bumped by every start()/stop(): a run checks it before each request (invariant 5). */
  #scopeGeneration = 0;
  #currentRun: { run: SyncRun; done: Promise<RunReport> } | undefined;
  readonly status: StatusApi;
  #clientId: string | undefined;
  #scope: Scope | undefined;
  #state: 'new' | 'opening' | 'open' | 'closed' = 'new';
  #opening: Promise<void> | undefined;
  readonly queue: QueueApi;

  constructor(options: SyncEngineOptions) {
    super();
    if (typeof options !== 'object' || options === null) invalidOption('options', 'an object', options);
    const storage = options.storage as StorageAdapter | undefined;
    if (
      typeof storage !== 'object' ||
      storage === null ||
      typeof storage.run !== 'function' ||
      typeof storage.all !== 'function' ||
      typeof storage.exec !== 'function' ||
      typeof storage.transaction !== 'function' ||
      typeof storage.close !== 'function'
    ) {
      invalidOption('storage', 'a StorageAdapter (exec, run, all, transaction, close)', storage);
    }
    if (options.clock !== undefined && typeof options.clock?.now !== 'function') {
      invalidOption('clock', 'an object with now()', options.clock);
    }
    if (options.random !== undefined && typeof options.random !== 'function') {
      invalidOption('random', 'a function returning a number in [0, 1)', options.random);
    }
    this.#storage = new GuardedStorage(storage);
    this.#entities = resolveEntities(options.entities, options.limits);
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? defaultRandom();
    this.#queue = new MutationQueue(this.#storage, this.#clock, this.#random);
    const network = options.network;
    if (
      network !== undefined &&
      (typeof network !== 'object' || network === null || typeof network.push !== 'function')
    ) {
      invalidOption('network', 'a NetworkAdapter (push)', network);
    }
    this.#network = network;
    if (
      options.timers !== undefined &&
      (typeof options.timers?.setTimeout !== 'function' || typeof options.timers?.clearTimeout !== 'function')
    ) {
      invalidOption('timers', 'an object with setTimeout and clearTimeout', options.timers);
    }
    this.#timers = options.timers ?? systemTimers;
    const { retryAfterCeilingMs, ...backoff } = options.backoff ?? {};
    this.#policy = resolveBackoffPolicy(backoff);
    this.#retryAfterCeilingMs = positiveInteger(
      'backoff.retryAfterCeilingMs',
      retryAfterCeilingMs,
      DEFAULT_RETRY_AFTER_CEILING_MS,
    );
    this.#batch = {
      maxCount: positiveInteger('batch.maxCount', options.batch?.maxCount, 100, 1000),
      maxBytes: positiveInteger('batch.maxBytes', options.batch?.maxBytes, 1_048_576),
      concurrency: positiveInteger('batch.concurrency', options.batch?.concurrency, 4, 32),
    };
    this.#leaseTtlMs = positiveInteger('leaseTtlMs', options.leaseTtlMs, 60_000);
    this.#initialBatchEstimateMs = positiveInteger(
      'initialBatchEstimateMs',
      options.initialBatchEstimateMs,
      2_000,
    );
    this.#lease = new RunLease(this.#storage, this.#clock, this.#leaseTtlMs);
    this.#stuckAfterMs = positiveInteger('stuckAfterMs', options.stuckAfterMs, 86_400_000);
    this.#pullLimit = positiveInteger('pullLimit', options.pullLimit, 500, 1000);
    this.#maxConflictRebases = positiveInteger('maxConflictRebases', options.maxConflictRebases, 3, 100);
    this.#status = new StatusStore(
      this.#clock,
      this.#random,
      positiveInteger('runHistoryLimit', options.runHistoryLimit, 200, 100_000),
    );
    this.#conflicts = new ConflictStore(this.#storage, this.#clock, this.#random);
    const scheduler = options.scheduler;
    if (
      scheduler !== undefined &&
      (typeof scheduler?.schedule !== 'function' || typeof scheduler?.cancel !== 'function')
    ) {
      invalidOption('scheduler', 'a SchedulerAdapter (schedule, cancel)', scheduler);
    }
    this.#scheduler = scheduler;
    const connectivity = options.connectivity ?? alwaysOnline;
    if (typeof connectivity?.isOnline !== 'function' || typeof connectivity?.subscribe !== 'function') {
      invalidOption('connectivity', 'a ConnectivityAdapter (isOnline, subscribe)', connectivity);
    }
    this.#connectivity = connectivity;
    this.#periodicMs =
      options.periodicMs === undefined ? DEFAULT_PERIODIC_MS : resolvePeriodicMs(options.periodicMs);
    this.#connectivityDelayMaxMs = positiveInteger(
      'connectivityDelayMaxMs',
      options.connectivityDelayMaxMs,
      DEFAULT_CONNECTIVITY_DELAY_MAX_MS,
      86_400_000,
    );
    this.queue = this.#createQueueApi();
    this.status = this.#createStatusApi();
  }

  get clientId(): string {
    if (this.#clientId === undefined) throw new StateError('ENGINE_NOT_OPEN', 'clientId: call open() first');
    return this.#clientId;
  }

  get activeScope(): Scope | undefined {
    return this.#scope;
  }

  get isOpen(): boolean {
    return this.#state === 'open';
  }

  open(): Promise<void> {
    if (this.#state === 'closed')
      return Promise.reject(new StateError('ENGINE_CLOSED', 'open: the engine was closed'));
    if (this.#state === 'open') return Promise.resolve();
    this.#opening ??= this.#doOpen().catch((error: unknown) => {
      this.#opening = undefined;
      this.#state = 'new';
      throw error;
    });
    return this.#opening;
  }

  async #doOpen(): Promise<void> {
    this.#state = 'opening';
    await this.#storage.open();
    await migrate(this.#storage);
    this.#clientId = await this.#storage.transaction('immediate', async (tx) => {
      const rows = await tx.all<{ value: string }>("SELECT value FROM sync_meta WHERE key = 'client_id'");
      if (rows[0]) return rows[0].value;
      const id = uuidV4(this.#random);
      await tx.run("INSERT INTO sync_meta (key, value) VALUES ('client_id', ?)", [id]);
      return id;
    });
    this.#state = 'open';
  }

  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    if (this.#opening) await this.#opening.catch(() => undefined);
    this.#state = 'closed';
    this.#unsubscribeConnectivity?.();
    this.#unsubscribeConnectivity = undefined;
    await this.#abortRun();
    await this.#cancelSchedule();
    await this.#scheduling.catch(() => undefined);
    await this.#storage.close();
  }

  async start(scope: Scope): Promise<void> {
    this.#assertOpen('start');
    const checked = checkScope(scope);
    // Signing in again is how the app says credentials are good again after `auth-required`.
    // Cleared before the scope changes: if the database refuses, the previous user stays active.
    const paused = await this.#storage.all(
      "SELECT 1 FROM sync_meta WHERE key IN ('auth_paused', 'not_before')",
    );
    if (paused.length > 0)
      await this.#storage.run("DELETE FROM sync_meta WHERE key IN ('auth_paused', 'not_before')");
    const switching = this.#scope !== undefined && scopeKey(this.#scope) !== scopeKey(checked);
    if (switching) this.#scopeGeneration++;
    this.#scope = checked;
    // Another user's run must not keep sending (DESIGN.md invariant 5).
    if (switching) await this.#abortRun();
    if (switching) this.#lastReport = undefined;
    this.#unsubscribeConnectivity ??= this.#connectivity.subscribe((online) => this.#onConnectivity(online));
    this.#notifyStatus();
    await this.#reschedule('start');
  }

  async stop(options: { readonly purge?: boolean } = {}): Promise<StopResult> {
    this.#assertOpen('stop');
    const scope = this.#scope;
    this.#scope = undefined;
    this.#scopeGeneration++;
    this.#lastReport = undefined;
    this.#unsubscribeConnectivity?.();
    this.#unsubscribeConnectivity = undefined;
    // A run of the signed-out user must not keep sending (DESIGN.md invariant 5).
    await this.#abortRun();
    await this.#cancelSchedule();
    this.#notifyStatus();
    if (!options.purge || scope === undefined) return { purged: 0 };
    const key = scopeKey(scope);
    // A deliberate sign-out wipes the user's queue and what sync-core stored about it, atomically.
    const purged = await this.#storage.transaction('immediate', async (tx) => {
      const { changes } = await tx.run('DELETE FROM sync_mutations WHERE scope = ?', [key]);
      for (const table of ['sync_conflicts', 'sync_id_map', 'sync_cursors', 'sync_notices', 'sync_runs']) {
        await tx.run(`DELETE FROM ${table} WHERE scope = ?`, [key]);
      }
      return changes;
    });
    this.#notifyStatus();
    return { purged };
  }

  async enqueue(input: MutationInput): Promise<EnqueuedMutation> {
    const scope = this.#requireScope('enqueue');
    const prepared = await prepareMutation(input, this.#entities);
    this.#assertOpen('enqueue');
    const stored = MutationQueue.needsTransaction(prepared)
      ? await this.#storage.transaction('immediate', (tx) => this.#queue.insert(tx, scope, prepared))
      : await this.#queue.insert(this.#storage, scope, prepared);
    this.#emitEnqueued([stored]);
    return stored;
  }

  async enqueueMany(inputs: readonly MutationInput[]): Promise<EnqueuedMutation[]> {
    const scope = this.#requireScope('enqueueMany');
    const prepared = await this.#prepareAll(inputs);
    this.#assertOpen('enqueueMany');
    const stored = await this.#storage.transaction('immediate', (tx) =>
      this.#queue.insertMany(tx, scope, prepared),
    );
    this.#emitEnqueued(stored);
    return stored;
  }

  async transaction<T>(fn: (tx: EngineTransaction) => Promise<T>): Promise<T> {
    this.#assertOpen('transaction');
    if (typeof fn !== 'function') invalidOption('transaction(fn)', 'a function', fn);
    const enqueued: EnqueuedMutation[] = [];
    const result = await this.#storage.transaction('immediate', async (executor) => {
      let finished = false;
      // Calls on `tx` run one at a time, in call order, even when the app starts them together
      // (`Promise.all`): coalescing reads then rewrites a record's last mutation, and two
      // interleaved enqueues on one record would both merge into the same stale row.
      let tail: Promise<unknown> = Promise.resolve();
      const serial = <R>(what: string, fn: () => Promise<R>): Promise<R> => {
        const next = tail.then(() => {
          if (finished)
            throw new StateError('ENGINE_CLOSED', `${what}: the transaction has already finished`);
          return fn();
        });
        tail = next.catch(() => undefined);
        return next;
      };
      const tx: EngineTransaction = {
        run: (sql, params) => serial('tx.run', () => executor.run(sql, params)),
        all: <R = SqlRow>(sql: string, params?: SqlParams) =>
          serial('tx.all', () => executor.all<R>(sql, params)),
        enqueue: (input) =>
          serial('tx.enqueue', async () => {
            const scope = this.#requireScope('tx.enqueue');
            const stored = await this.#queue.insert(
              executor,
              scope,
              await prepareMutation(input, this.#entities),
            );
            enqueued.push(stored);
            return stored;
          }),
        enqueueMany: (inputs) =>
          serial('tx.enqueueMany', async () => {
            const scope = this.#requireScope('tx.enqueueMany');
            const prepared = await this.#prepareAll(inputs);
            const out: EnqueuedMutation[] = [];
            for (const item of prepared) out.push(await this.#queue.insert(executor, scope, item));
            enqueued.push(...out);
            return out;
          }),
      };
      try {
        const value = await fn(tx);
        await tail;
        return value;
      } finally {
        finished = true;
      }
    });
    // Only now is the enqueue durable; listeners never hear of a rolled-back mutation.
    this.#emitEnqueued(enqueued);
    return result;
  }

  async runOnce(options: RunOptions = {}): Promise<RunReport> {
    this.#assertOpen('runOnce');
    const network = this.#network;
    if (network === undefined) {
      throw new ConfigError('runOnce: expected a network adapter, got none (createSyncEngine({ network }))');
    }
    if (typeof options !== 'object' || options === null)
      invalidOption('runOnce(options)', 'an object', options);
    if (options.deadline !== undefined && !Number.isFinite(options.deadline)) {
      invalidOption('runOnce(options).deadline', 'a finite time in ms since epoch', options.deadline);
    }
    if (options.signal !== undefined && typeof options.signal?.addEventListener !== 'function') {
      invalidOption('runOnce(options).signal', 'an AbortSignal', options.signal);
    }
    const trigger = options.trigger ?? 'manual';
    const runId = uuidV4(this.#random);
    const startedAt = this.#clock.now();
    const trivial = (
      outcome: 'busy' | 'no-scope' | 'auth-required' | 'aborted' | 'offline' | 'throttled' | 'error',
      extra: Partial<RunReport> = {},
    ): RunReport =>
      Object.freeze({
        runId,
        trigger,
        outcome,
        startedAt,
        finishedAt: startedAt,
        counts: Object.freeze(emptyCounts()),
        nextDueAt: null,
        ...extra,
      });
    const scope = this.#scope;
    if (scope === undefined) return trivial('no-scope');
    if (this.#currentRun !== undefined) return trivial('busy');
    const generation = this.#scopeGeneration;
    const run = new SyncRun(
      {
        storage: this.#storage,
        queue: this.#queue,
        status: this.#status,
        lease: this.#lease,
        network,
        entities: this.#entities,
        clock: this.#clock,
        random: this.#random,
        timers: this.#timers,
        policy: this.#policy,
        retryAfterCeilingMs: this.#retryAfterCeilingMs,
        maxConflictRebases: this.#maxConflictRebases,
        clientId: this.clientId,
        scope,
        batch: this.#batch,
        pullLimit: this.#pullLimit,
        claimTtlMs: this.#leaseTtlMs,
        stuckAfterMs: this.#stuckAfterMs,
        initialBatchEstimateMs: this.#initialBatchEstimateMs,
        emit: (event, payload) => this.#emit(event, payload),
        auth: this.#auth,
        isScopeActive: () => this.#scopeGeneration === generation && this.#state === 'open',
      },
      runId,
      options,
    );
    // Registered before the first await: a stop(), a start() of another user or a close() from
    // now on aborts this run, even before it has taken the lease (DESIGN.md invariant 5).
    const onAbort = () => run.abort('aborted');
    if (options.signal?.aborted) run.abort('aborted');
    else options.signal?.addEventListener('abort', onAbort, { once: true });
    const done = this.#leasedRun(run, scope, startedAt, trivial);
    this.#currentRun = { run, done };
    this.#notifyStatus();
    let report: RunReport;
    try {
      report = await done;
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
      this.#currentRun = undefined;
      this.#notifyStatus();
    }
    if (this.#scopeGeneration === generation) await this.#afterRun(report);
    return report;
  }

  /** After every run: count consecutive offline runs (persisted for run-level backoff), reschedule. */
  async #afterRun(report: RunReport): Promise<void> {
    if (this.#state !== 'open') return;
    this.#lastReport = report;
    try {
      if (report.outcome === 'offline') {
        await this.#storage.run(
          `INSERT INTO sync_meta (key, value) VALUES ('offline_runs', '1')
           ON CONFLICT (key) DO UPDATE SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)`,
        );
      } else if (report.outcome !== 'busy' && report.outcome !== 'no-scope') {
        await this.#storage.run("DELETE FROM sync_meta WHERE key = 'offline_runs'");
      }
    } catch {
      // Storage trouble: the run report says so already; scheduling falls back to the periodic run.
    }
    await this.#reschedule('run');
  }

  async #isOnline(): Promise<boolean> {
    try {
      return (await this.#connectivity.isOnline()) !== false;
    } catch {
      return true;
    }
  }

  /**
   * The persisted run-level Retry-After, re-based on the current clock when it was set "in the
   * future" (the wall clock went back), and never further ahead than the Retry-After ceiling.
   */
  async #notBefore(stored: string | undefined): Promise<number> {
    if (stored === undefined) return 0;
    let parsed: { until: number; setAt: number } | number;
    try {
      parsed = JSON.parse(stored) as { until: number; setAt: number } | number;
    } catch {
      return 0;
    }
    const now = this.#clock.now();
    const { until, setAt } = typeof parsed === 'number' ? { until: parsed, setAt: now } : parsed;
    const ceiling = this.#retryAfterCeilingMs;
    if (setAt <= now) return Math.min(until, now + ceiling);
    // Set "in the future": the clock went back. Keep the delay that was left, from now, and store
    // the re-based value so it is not re-based again (and again) on every read.
    const rebased = now + Math.min(Math.max(0, until - setAt), ceiling);
    await this.#storage
      .run("UPDATE sync_meta SET value = ? WHERE key = 'not_before'", [
        JSON.stringify({ until: rebased, setAt: now }),
      ])
      .catch(() => undefined);
    return rebased;
  }

  async nextRunRequest(): Promise<RunRequest | null> {
    this.#assertOpen('nextRunRequest');
    return this.#decide();
  }

  /** The scheduling decision of DESIGN.md section 4, step 5, from the database and the last run. */
  async #decide(): Promise<RunRequest | null> {
    const scope = this.#scope;
    if (scope === undefined) return null;
    const key = scopeKey(scope);
    // A wall clock that went back must not strand what was due (FAULTS.md 29), also when the host
    // asks before any run has re-based the schedules.
    await this.#queue
      .clampFutureSchedules(Math.max(this.#policy.maxMs, this.#retryAfterCeilingMs), this.#policy.maxMs)
      .catch(() => undefined);
    const [nextDueAt, counts, meta, online] = await Promise.all([
      this.#queue.nextDueAt(scope),
      this.#storage.all<{ n: number }>(
        "SELECT COUNT(*) AS n FROM sync_mutations WHERE scope = ? AND state IN ('pending', 'inflight')",
        [key],
      ),
      this.#storage.all<{ key: string; value: string }>(
        "SELECT key, value FROM sync_meta WHERE key IN ('auth_paused', 'offline_runs', 'not_before')",
      ),
      this.#isOnline(),
    ]);
    const paused = meta.some((row) => row.key === 'auth_paused' && row.value === key);
    const offlineRuns = Number(meta.find((row) => row.key === 'offline_runs')?.value ?? 0);
    const notBefore = await this.#notBefore(meta.find((row) => row.key === 'not_before')?.value);
    return decideNextRun({
      now: this.#clock.now(),
      report: this.#lastReport,
      nextDueAt: nextDueAt === null ? null : Math.max(nextDueAt, notBefore),
      hasPending: Number(counts[0]?.n ?? 0) > 0,
      consecutiveOfflineRuns: offlineRuns,
      online,
      periodicMs: this.#periodicMs,
      policy: this.#policy,
      random: this.#random,
      paused,
      name: DEFAULT_RUN_REQUEST_NAME,
      retryAfterCeilingMs: this.#retryAfterCeilingMs,
    });
  }

  /**
   * Hand the scheduler the next run request. After a run, its decision replaces the current one;
   * after an enqueue, a sign-in or a connectivity change, the earlier of the two stands (a burst of
   * local writes must not keep postponing a run that is already due). Serialised, so decisions
   * are applied in the order they were made.
   */
  #reschedule(cause: 'run' | 'start' | 'enqueue' | 'connectivity', override?: RunRequest): Promise<void> {
    // Host-driven (no scheduler): the host asks nextRunRequest() itself; keep enqueue cheap.
    if (this.#scheduler === undefined && cause !== 'run') return this.#scheduling as Promise<void>;
    const next = this.#scheduling.then(async () => {
      if (this.#state !== 'open' || this.#scope === undefined) return;
      const current = this.#scheduled;
      // A run already due covers any new write: no need to decide again per enqueue.
      if (cause === 'enqueue' && current !== null && current.notBefore <= this.#clock.now()) return;
      const decision = override ?? (await this.#decide());
      // Back online: a request left waiting from the offline period (due in the past) is replaced
      // by the jittered one, so a fleet reconnecting together does not all run at once.
      const stale = cause === 'connectivity' && current !== null && current.notBefore <= this.#clock.now();
      if (
        cause !== 'run' &&
        !stale &&
        decision !== null &&
        current !== null &&
        current.notBefore <= decision.notBefore
      ) {
        return;
      }
      this.#scheduled = decision;
      if (this.#scheduler === undefined) return;
      if (decision === null) {
        await this.#scheduler.cancel(DEFAULT_RUN_REQUEST_NAME);
        return;
      }
      await this.#scheduler.schedule(decision, async (trigger) => {
        this.#scheduled = null;
        if (this.#state !== 'open') return;
        await this.runOnce({ trigger }).catch(() => undefined);
      });
    });
    this.#scheduling = next.catch(() => undefined);
    return this.#scheduling as Promise<void>;
  }

  async #cancelSchedule(): Promise<void> {
    this.#scheduled = null;
    try {
      await this.#scheduler?.cancel(DEFAULT_RUN_REQUEST_NAME);
    } catch {
      // A scheduler that fails to cancel must not block sign-out or close.
    }
  }

  /** Back online: run soon, after a short jitter (a fleet coming back at once is spread out). */
  #onConnectivity(online: boolean): void {
    if (!online || this.#state !== 'open' || this.#scope === undefined) return;
    void this.#storage
      .run("DELETE FROM sync_meta WHERE key = 'offline_runs'")
      .catch(() => undefined)
      .then(() =>
        this.#reschedule('connectivity', {
          name: DEFAULT_RUN_REQUEST_NAME,
          notBefore: this.#clock.now() + connectivityDelay(this.#random, this.#connectivityDelayMaxMs),
          requiresNetwork: true,
          reason: 'connectivity',
        }),
      );
  }

  /** The part of a run that needs the lease: checks, acquire, execute, release, announce. */
  async #leasedRun(
    run: SyncRun,
    scope: Scope,
    startedAt: number,
    trivial: (
      outcome: 'busy' | 'auth-required' | 'aborted' | 'offline' | 'throttled' | 'error',
      extra?: Partial<RunReport>,
    ) => RunReport,
  ): Promise<RunReport> {
    // No run starts while the device says it is offline: nothing to send with, no attempt.
    if (!(await this.#isOnline())) return trivial('offline');
    try {
      const meta = await this.#storage.all<{ key: string; value: string }>(
        "SELECT key, value FROM sync_meta WHERE key IN ('auth_paused', 'not_before')",
      );
      if (meta.some((row) => row.key === 'auth_paused' && row.value === scopeKey(scope)))
        return trivial('auth-required');
      // A server's Retry-After that stopped an earlier run (in this process or another) holds for
      // every mutation, including those that run never reached (DESIGN.md invariant 4).
      const notBefore = await this.#notBefore(meta.find((row) => row.key === 'not_before')?.value);
      if (notBefore > this.#clock.now()) return trivial('throttled', { nextDueAt: notBefore });
      if (run.isStopping) return trivial('aborted');
      const idle = await run.executeIfIdle(startedAt);
      if (idle !== undefined) {
        this.#emit('run:finished', idle);
        return idle;
      }
      if (!(await this.#lease.acquire(run.runId))) return trivial('busy');
    } catch (error) {
      // The database refused even the lease (locked by another process past the busy timeout,
      // full, read-only): report it like any run that failed, so the next run is still scheduled.
      return trivial('error', {
        error:
          error instanceof SyncError
            ? { code: error.code, message: error.message }
            : { code: 'INTERNAL', message: error instanceof Error ? error.message : String(error) },
      });
    }
    let report: RunReport;
    try {
      report = await run.execute(startedAt);
    } finally {
      await this.#lease.release(run.runId).catch(() => undefined);
    }
    this.#emit('run:finished', report);
    return report;
  }

  /** Abort the run in progress, if any, and wait until it has released its claims. */
  async #abortRun(): Promise<void> {
    const current = this.#currentRun;
    if (current === undefined) return;
    current.run.abort('aborted');
    await current.done.catch(() => undefined);
  }

  /**
   * Emit to every listener; a listener that throws is reported on a later microtask instead of
   * breaking the run that emitted (its claims would otherwise stay inflight until they expire).
   */
  #emit<E extends keyof SyncEvents>(event: E, payload: Parameters<SyncEvents[E]>[0]): void {
    for (const listener of this.listeners(event)) {
      try {
        (listener as (arg: typeof payload) => void)(payload);
      } catch (error) {
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }

  async conflicts(): Promise<Conflict[]> {
    this.#assertOpen('conflicts');
    return this.#conflicts.open(this.#scope ?? 'all');
  }

  async resolveConflict(mutationId: string, resolution: ConflictResolution): Promise<void> {
    this.#assertOpen('resolveConflict');
    if (typeof mutationId !== 'string')
      invalidOption('resolveConflict(mutationId)', 'a mutation id string', mutationId);
    const conflict = await this.#conflicts.get(mutationId);
    if (conflict === undefined || conflict.resolution !== null) {
      throw new NotFoundError(
        'CONFLICT_NOT_FOUND',
        `resolveConflict: no open conflict for mutation ${mutationId.slice(0, 64)}`,
      );
    }
    let merged: PreparedMutation | undefined;
    if (typeof resolution === 'object' && resolution !== null && 'merged' in resolution) {
      merged = await prepareMutation(
        { entity: conflict.entity, op: 'update', entityId: conflict.entityId, data: resolution.merged },
        this.#entities,
      );
    } else if (
      typeof resolution !== 'object' ||
      resolution === null ||
      !('keep' in resolution) ||
      (resolution.keep !== 'local' && resolution.keep !== 'server')
    ) {
      invalidOption('resolveConflict(resolution)', "{ keep: 'local' | 'server' } or { merged }", resolution);
    }
    await this.#conflicts.resolve(conflict, resolution, merged?.data ?? null);
    this.#notifyStatus();
  }

  #createStatusApi(): StatusApi {
    return {
      snapshot: () => {
        this.#assertOpen('status.snapshot');
        return this.#snapshot();
      },
      subscribe: (listener) => {
        if (typeof listener !== 'function')
          invalidOption('status.subscribe(listener)', 'a function', listener);
        this.#statusListeners.add(listener);
        return () => {
          this.#statusListeners.delete(listener);
        };
      },
      unseenNotices: async () => {
        this.#assertOpen('status.unseenNotices');
        return this.#status.unseen(this.#storage, this.#scope ?? 'all');
      },
      acknowledge: async (ids) => {
        this.#assertOpen('status.acknowledge');
        if (!Array.isArray(ids) || ids.some((id) => typeof id !== 'string')) {
          invalidOption('status.acknowledge(ids)', 'an array of notice ids', ids);
        }
        const changed = await this.#status.acknowledge(this.#storage, ids);
        if (changed > 0) this.#notifyStatus();
        return changed;
      },
      runs: async (limit = 20) => {
        this.#assertOpen('status.runs');
        return this.#status.runs(
          this.#storage,
          this.#scope ?? 'all',
          positiveInteger('status.runs(limit)', limit, 20, 1000),
        );
      },
    };
  }

  /** One consistent read of everything the status snapshot shows. */
  #snapshot(): Promise<StatusSnapshot> {
    const scope = this.#scope;
    const which = scope ?? 'all';
    return this.#storage.transaction('deferred', async (tx) => {
      const queue = await this.#queue.stats(which, tx);
      const [lastRun] = await this.#status.runs(tx, which, 1);
      const unseen = await this.#status.unseen(tx, which);
      const openConflicts = (await this.#conflicts.open(which, tx)).length;
      const paused = await tx.all<{ value: string }>("SELECT value FROM sync_meta WHERE key = 'auth_paused'");
      return Object.freeze({
        scope,
        running: this.#currentRun !== undefined,
        authRequired: scope !== undefined && paused[0]?.value === scopeKey(scope),
        queue,
        lastRun,
        unseenNotices: unseen.length,
        openConflicts,
      });
    });
  }

  /** Tell status subscribers something changed (a snapshot is read only when someone listens). */
  #notifyStatus(): void {
    if (this.#statusListeners.size === 0 || this.#state !== 'open') return;
    this.#snapshot().then(
      (snapshot) => {
        for (const listener of this.#statusListeners) {
          try {
            listener(snapshot);
          } catch (error) {
            queueMicrotask(() => {
              throw error;
            });
          }
        }
      },
      () => undefined,
    );
  }

  async #prepareAll(inputs: readonly MutationInput[]): Promise<PreparedMutation[]> {
    if (!Array.isArray(inputs)) {
      throw new ValidationError('VALIDATION_FAILED', [
        { path: [], message: 'expected an array of mutations' },
      ]);
    }
    const out: PreparedMutation[] = [];
    for (let i = 0; i < inputs.length; i++) {
      try {
        out.push(await prepareMutation(inputs[i], this.#entities));
      } catch (error) {
        if (error instanceof ValidationError) {
          throw new ValidationError(
            error.code as ConstructorParameters<typeof ValidationError>[0],
            error.issues.map((issue) => ({ ...issue, path: [i, ...issue.path] })),
          );
        }
        throw error;
      }
    }
    return out;
  }

  #emitEnqueued(mutations: readonly EnqueuedMutation[]): void {
    if (mutations.length > 0) {
      this.#notifyStatus();
      // A local write never waits for the periodic run: ask for one now (or keep an earlier one).
      void this.#reschedule('enqueue');
    }
    for (const m of mutations) {
      const event: MutationEnqueuedEvent = Object.freeze({
        id: m.id,
        entity: m.entity,
        op: m.op,
        coalesced: m.coalesced,
      });
      this.#emit('mutation:enqueued', event);
    }
  }

  #assertOpen(what: string): void {
    if (this.#state === 'closed') throw new StateError('ENGINE_CLOSED', `${what}: the engine was closed`);
    if (this.#state !== 'open') throw new StateError('ENGINE_NOT_OPEN', `${what}: call open() first`);
  }

  #requireScope(what: string): Scope {
    this.#assertOpen(what);
    if (this.#scope === undefined) {
      throw new StateError(
        'NO_ACTIVE_SCOPE',
        `${what}: no active scope; call start({ userId }) after sign-in`,
      );
    }
    return this.#scope;
  }

  #queueScope(options: ScopeOption | undefined): Scope | 'all' {
    return options?.scope ?? this.#scope ?? 'all';
  }

  #createQueueApi(): QueueApi {
    return {
      stats: async (options) => {
        this.#assertOpen('queue.stats');
        return this.#queue.stats(this.#queueScope(options));
      },
      list: async (options = {}) => {
        this.#assertOpen('queue.list');
        return this.#queue.list(options, this.#scope);
      },
      get: async (id) => {
        this.#assertOpen('queue.get');
        return this.#queue.get(id);
      },
      retry: async (selection, options) => {
        this.#assertOpen('queue.retry');
        if (
          !Array.isArray(selection) &&
          (typeof selection !== 'object' ||
            selection === null ||
            (selection as { allFailed?: unknown }).allFailed !== true)
        ) {
          invalidOption('retry(selection)', 'an array of mutation ids or { allFailed: true }', selection);
        }
        return this.#queue.retry(selection, this.#queueScope(options));
      },
      discard: async (ids) => {
        this.#assertOpen('queue.discard');
        if (!Array.isArray(ids)) invalidOption('discard(ids)', 'an array of mutation ids', ids);
        return this.#queue.discard(ids);
      },
    };
  }
}

/**
 * Create a sync engine. Nothing touches the database until `open()`.
 *
 * @throws ConfigError when an option is invalid ("expected X, got Y").
 *
 * @example
 * ```ts
 * import Database from 'better-sqlite3';
 * import { createSyncEngine } from 'sync-core';
 * import { createBetterSqlite3Storage } from 'sync-core/better-sqlite3';
 *
 * const engine = createSyncEngine({
 *   storage: createBetterSqlite3Storage(new Database('app.db')),
 *   entities: { activity: { coalesce: true } },
 * });
 * await engine.open();
 * await engine.start({ userId: 'u1', orgId: 'o1' });
 * await engine.enqueue({ entity: 'activity', op: 'create', entityId: 'a1', data: { title: 'Visit' } });
 * console.log(await engine.queue.stats()); // { pending: 1, … }
 * ```
 */
export function createSyncEngine(options: SyncEngineOptions): SyncEngine {
  return new Engine(options);
}
