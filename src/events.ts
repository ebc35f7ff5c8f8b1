/**
 * The engine's typed events. Every payload is one read-only object carrying ids and counts,
 * never payloads or credentials (FAULTS.md 33), so events can go to logs and analytics as they are.
 *
 * @packageDocumentation
 */

import type { TransportFailure } from './contracts/network-adapter.js';
import type { Version } from './contracts/records.js';
import type { RunReport, RunTrigger } from './engine/sync-run.js';
import type { CoalesceOutcome } from './queue/mutation-queue.js';

/** `mutation:enqueued`: a mutation was committed to the queue (after its transaction committed). */
export interface MutationEnqueuedEvent {
  readonly id: string;
  readonly entity: string;
  readonly op: string;
  /** Whether it was stored new, merged into the record's last unsent mutation, or cancelled one. */
  readonly coalesced: CoalesceOutcome;
}

/** `run:started`: a run took the lease and begins. */
export interface RunStartedEvent {
  readonly runId: string;
  readonly trigger: RunTrigger;
  readonly startedAt: number;
}

/** `run:progress`: after each recorded batch; `total` is what was due when the run started. */
export interface RunProgressEvent {
  readonly runId: string;
  /** Mutations with a final or retry outcome recorded so far in this run. */
  readonly done: number;
  /** Mutations due when the run started (more may become due during the run). */
  readonly total: number;
}

/** `batch:sent`: a batch got an answer with per-mutation results. */
export interface BatchSentEvent {
  readonly runId: string;
  readonly entity: string;
  readonly count: number;
  readonly durationMs: number;
}

/** `batch:failed`: a batch failed as a whole (no per-mutation results). */
export interface BatchFailedEvent {
  readonly runId: string;
  readonly entity: string;
  readonly count: number;
  readonly failureClass: TransportFailure['class'];
  readonly code: string;
  readonly status?: number;
}

/** `mutation:confirmed`: the server applied (or had already applied) a mutation; it left the queue. */
export interface MutationConfirmedEvent {
  readonly id: string;
  readonly entity: string;
  readonly entityId: string;
  readonly version?: Version;
  /** The id the server assigned to a record created offline, when it differs from `entityId`. */
  readonly serverId?: string;
}

/** `retry:scheduled`: a mutation will be sent again at `nextAttemptAt`. */
export interface RetryScheduledEvent {
  readonly id: string;
  readonly entity: string;
  /** Attempts counted so far, this one included. */
  readonly attempt: number;
  readonly nextAttemptAt: number;
  /** The failure code that caused the retry, e.g. `'http-503'`, `'timeout'`. */
  readonly reason: string;
}

/** `mutation:failed`: a mutation was dead-lettered (rejected, or out of attempts). */
export interface MutationFailedEvent {
  readonly id: string;
  readonly entity: string;
  readonly entityId: string;
  readonly code: string;
  readonly attempts: number;
}

/**
 * `conflict:detected`: the server reported a version conflict for a mutation, and the entity
 * type's strategy handled it: `manual` (it waits for `resolveConflict`), `server-wins` (dropped,
 * with an `overwritten` notice), `client-wins` or `merge` (rebased on the server's version and sent
 * again).
 */
export interface ConflictDetectedEvent {
  readonly id: string;
  readonly entity: string;
  readonly entityId: string;
  readonly resolution: 'manual' | 'server-wins' | 'client-wins' | 'merge';
}

/** `auth:required`: credentials were refused after a refresh; sync is paused until `start()`. */
export interface AuthRequiredEvent {
  readonly runId: string;
}

/**
 * Every event the engine emits, by name. Subscribe with `engine.on(name, listener)`.
 * Listeners run synchronously. A listener that throws cannot break a run: the engine catches the
 * exception and rethrows it on a later microtask, where the host's unhandled-error reporting sees it.
 *
 * @example
 * ```ts
 * engine.on('run:progress', ({ done, total }) => bar.update(done, { total }));
 * engine.on('run:finished', (report) => console.log(report.outcome, report.counts));
 * ```
 */
export interface SyncEvents {
  'mutation:enqueued': (event: MutationEnqueuedEvent) => void;
  'run:started': (event: RunStartedEvent) => void;
  'run:progress': (event: RunProgressEvent) => void;
  'run:finished': (event: RunReport) => void;
  'batch:sent': (event: BatchSentEvent) => void;
  'batch:failed': (event: BatchFailedEvent) => void;
  'mutation:confirmed': (event: MutationConfirmedEvent) => void;
  'retry:scheduled': (event: RetryScheduledEvent) => void;
  'mutation:failed': (event: MutationFailedEvent) => void;
  'conflict:detected': (event: ConflictDetectedEvent) => void;
  'auth:required': (event: AuthRequiredEvent) => void;
}
