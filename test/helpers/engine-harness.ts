import Database from 'better-sqlite3';
import {
  createSyncEngine,
  type EntityOptions,
  type MutationEnqueuedEvent,
  type QueueLimits,
  type Scope,
  type StorageAdapter,
  type SyncEngine,
} from 'sync-core';
import { onTestFinished } from 'vitest';
import { createBetterSqlite3Storage } from '../../adapters/better-sqlite3/index.js';
import { MutationQueue } from '../../src/queue/mutation-queue.js';
import { GuardedStorage } from '../../src/storage/guarded-storage.js';
import { manualClock, seededRandom } from './storage-factories.js';

/** Options of {@link startTestEngine}. */
export interface TestEngineOptions {
  readonly entities: Readonly<Record<string, EntityOptions>>;
  readonly limits?: QueueLimits;
  /** The scope started after `open()`; `null` leaves the engine open without a scope. */
  readonly scope?: Scope | null;
  /** Seed of the deterministic random source. */
  readonly seed?: number;
}

/** An engine over an in-memory better-sqlite3 database, with its fake clock and raw handles. */
export interface TestEngine {
  readonly engine: SyncEngine;
  /** The storage adapter the engine uses (share it with {@link TestEngine.internalQueue}). */
  readonly storage: StorageAdapter;
  /** The raw database, for assertions the public API cannot make. */
  readonly db: Database.Database;
  readonly clock: ReturnType<typeof manualClock>;
  /** Every `mutation:enqueued` event, in order. */
  readonly events: MutationEnqueuedEvent[];
  /**
   * The internal queue over the same adapter, to claim and record like a sync run would. It has
   * its own guard; await each call and the two never interleave.
   */
  internalQueue(): MutationQueue;
}

export const USER: Scope = Object.freeze({ userId: 'user-1', orgId: 'org-1' });

/**
 * Create, open and (by default) start an engine for one test. Closed when the test finishes, so
 * call it from inside `it`.
 */
export async function startTestEngine(options: TestEngineOptions): Promise<TestEngine> {
  const db = new Database(':memory:');
  const storage = createBetterSqlite3Storage(db);
  const clock = manualClock();
  const random = seededRandom(options.seed ?? 7);
  const engine = createSyncEngine({
    storage,
    entities: options.entities,
    clock,
    random,
    ...(options.limits ? { limits: options.limits } : {}),
  });
  const events: MutationEnqueuedEvent[] = [];
  engine.on('mutation:enqueued', (event) => events.push(event));
  onTestFinished(() => engine.close());
  await engine.open();
  const scope = options.scope === undefined ? USER : options.scope;
  if (scope !== null) await engine.start(scope);
  return {
    engine,
    storage,
    db,
    clock,
    events,
    internalQueue: () => new MutationQueue(new GuardedStorage(storage), clock, seededRandom(99)),
  };
}

/** Claim every due mutation of `scope` as one run would. */
export function claimAll(queue: MutationQueue, token: string, scope: Scope = USER) {
  return queue.claim({ scope, token, claimTtlMs: 60_000, maxCount: 1000, maxBytes: Number.MAX_SAFE_INTEGER });
}

/** The settled rejection of `promise`, or a failure when it resolved. */
export async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected the promise to reject, but it resolved');
}

/** The thrown error of `fn`, or a failure when it returned. */
export function thrownBy(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected the call to throw, but it returned');
}
