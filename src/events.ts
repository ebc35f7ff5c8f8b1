/**
 * The engine's typed events. Every payload is one read-only object carrying ids and counts,
 * never payloads or credentials (FAULTS.md 33), so events can go to logs and analytics as they are.
 *
 * @packageDocumentation
 */

import type { CoalesceOutcome } from './queue/mutation-queue.js';

/** `mutation:enqueued`: a mutation was committed to the queue (after its transaction committed). */
export interface MutationEnqueuedEvent {
  readonly id: string;
  readonly entity: string;
  readonly op: string;
  /** Whether it was stored new, merged into the record's last unsent mutation, or cancelled one. */
  readonly coalesced: CoalesceOutcome;
}

/**
 * Every event the engine emits, by name. Subscribe with `engine.on(name, listener)`.
 *
 * @example
 * ```ts
 * engine.on('mutation:enqueued', (event) => console.log(event.entity, event.op, event.id));
 * ```
 */
export interface SyncEvents {
  'mutation:enqueued': (event: MutationEnqueuedEvent) => void;
}
