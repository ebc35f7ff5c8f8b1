import { EventEmitter } from 'eventemitter3';
import {
  type EntityOptions,
  invalidOption,
  type QueueLimits,
  type ResolvedEntity,
  resolveEntities,
} from '../config.js';
import { type Clock, defaultRandom, type RandomSource, systemClock } from '../contracts/clock.js';
import type { Mutation, MutationInput, QueueStats, Scope } from '../contracts/records.js';
import type { SqlParams, SqlRow, StorageAdapter } from '../contracts/storage-adapter.js';
import { StateError, ValidationError } from '../errors.js';
import type { MutationEnqueuedEvent, SyncEvents } from '../events.js';
import { uuidV4 } from '../queue/ids.js';
import { type EnqueuedMutation, type ListOptions, MutationQueue } from '../queue/mutation-queue.js';
import { type PreparedMutation, prepareMutation } from '../queue/prepare-mutation.js';
import { checkScope, scopeKey } from '../queue/scope.js';
import { GuardedStorage } from '../storage/guarded-storage.js';
import { migrate } from '../storage/migrations.js';

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
   * (DESIGN.md section 2). Rejects with whatever `fn` threw, after rolling back.
   */
  transaction<T>(fn: (tx: EngineTransaction) => Promise<T>): Promise<T>;
  /** Inspect, retry and discard queued mutations. */
  readonly queue: QueueApi;
}

class Engine extends EventEmitter<SyncEvents> implements SyncEngine {
  readonly #storage: GuardedStorage;
  readonly #entities: ReadonlyMap<string, ResolvedEntity>;
  readonly #clock: Clock;
  readonly #random: RandomSource;
  readonly #queue: MutationQueue;
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
    this.queue = this.#createQueueApi();
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
    await this.#storage.close();
  }

  async start(scope: Scope): Promise<void> {
    this.#assertOpen('start');
    this.#scope = checkScope(scope);
  }

  async stop(options: { readonly purge?: boolean } = {}): Promise<StopResult> {
    this.#assertOpen('stop');
    const scope = this.#scope;
    this.#scope = undefined;
    if (!options.purge || scope === undefined) return { purged: 0 };
    const { changes } = await this.#storage.run('DELETE FROM sync_mutations WHERE scope = ?', [
      scopeKey(scope),
    ]);
    return { purged: changes };
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
    const stored = await this.#storage.transaction('immediate', async (tx) => {
      const out: EnqueuedMutation[] = [];
      for (const item of prepared) out.push(await this.#queue.insert(tx, scope, item));
      return out;
    });
    this.#emitEnqueued(stored);
    return stored;
  }

  async transaction<T>(fn: (tx: EngineTransaction) => Promise<T>): Promise<T> {
    this.#assertOpen('transaction');
    if (typeof fn !== 'function') invalidOption('transaction(fn)', 'a function', fn);
    const enqueued: EnqueuedMutation[] = [];
    const result = await this.#storage.transaction('immediate', async (executor) => {
      let finished = false;
      const guard = (what: string) => {
        if (finished) {
          throw new StateError('ENGINE_CLOSED', `${what}: the transaction has already finished`);
        }
      };
      const tx: EngineTransaction = {
        run: (sql, params) => {
          guard('tx.run');
          return executor.run(sql, params);
        },
        all: <R = SqlRow>(sql: string, params?: SqlParams) => {
          guard('tx.all');
          return executor.all<R>(sql, params);
        },
        enqueue: async (input) => {
          guard('tx.enqueue');
          const scope = this.#requireScope('tx.enqueue');
          const stored = await this.#queue.insert(
            executor,
            scope,
            await prepareMutation(input, this.#entities),
          );
          enqueued.push(stored);
          return stored;
        },
        enqueueMany: async (inputs) => {
          guard('tx.enqueueMany');
          const scope = this.#requireScope('tx.enqueueMany');
          const prepared = await this.#prepareAll(inputs);
          const out: EnqueuedMutation[] = [];
          for (const item of prepared) out.push(await this.#queue.insert(executor, scope, item));
          enqueued.push(...out);
          return out;
        },
      };
      try {
        return await fn(tx);
      } finally {
        finished = true;
      }
    });
    // Only now is the enqueue durable; listeners never hear of a rolled-back mutation.
    this.#emitEnqueued(enqueued);
    return result;
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
    for (const m of mutations) {
      const event: MutationEnqueuedEvent = Object.freeze({
        id: m.id,
        entity: m.entity,
        op: m.op,
        coalesced: m.coalesced,
      });
      this.emit('mutation:enqueued', event);
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
