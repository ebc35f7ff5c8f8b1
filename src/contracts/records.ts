/**
 * The records sync-core stores and hands back: scopes, mutations, queue statistics.
 *
 * @packageDocumentation
 */

/** A JSON value as stored in the queue: what `JSON.parse(JSON.stringify(x))` returns unchanged. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** A JSON object payload. */
export type JsonObject = { [key: string]: JsonValue };

/**
 * The user (and organisation) a mutation belongs to. Mutations are only ever sent while their scope
 * is the active one, with that scope's credentials (DESIGN.md invariant 5).
 */
export interface Scope {
  readonly userId: string;
  readonly orgId?: string;
}

/** A record version as the server reports it: an integer (protocol v1) or an opaque ETag string. */
export type Version = number | string;

/** The built-in operations. Entity types may declare custom ones (`customOps`). */
export type BuiltinOp = 'create' | 'update' | 'delete';

/**
 * Where a mutation stands.
 *
 * - `pending`: waiting to be sent (possibly not before `nextAttemptAt`).
 * - `inflight`: claimed by a run and possibly sent; its claim expires if the run dies.
 * - `failed`: dead-lettered (rejected by the server or out of attempts); later mutations on the same
 *   record wait until the app retries or discards it.
 * - `conflict`: the server reported a conflict that needs a resolution.
 *
 * A confirmed mutation leaves the queue, so there is no `done` state.
 */
export type MutationState = 'pending' | 'inflight' | 'failed' | 'conflict';

/** Why the last attempt did not confirm a mutation. Never contains payloads or credentials. */
export interface MutationError {
  /** A stable code, e.g. `'http-503'`, `'rejected'`, `'bad-response'`, `'timeout'`. */
  readonly code: string;
  /** A short human-readable reason (the server's own message for rejections). */
  readonly message: string;
  /** The HTTP status, when there was one. */
  readonly status?: number;
}

/** What the app passes to `enqueue`. */
export interface MutationInput {
  /** A registered entity type, e.g. `'activity'`. */
  readonly entity: string;
  /** `'create' | 'update' | 'delete'`, or a custom op the entity type declares. */
  readonly op: string;
  /** The record's id (the client's id for a record created offline). Non-empty, ≤ 512 characters. */
  readonly entityId: string;
  /**
   * The payload: required (an object) for `create` and `update`, optional for `delete` and custom
   * ops. Must be plain JSON; it is validated by the entity type's schema when one is registered.
   */
  readonly data?: unknown;
  /** The version of the record this change was made against, for conflict detection. */
  readonly baseVersion?: Version | null;
  /**
   * Ids of mutations (on other records) that must be confirmed before this one is sent, e.g. a
   * child's create depending on its parent's create. Mutations on the same record are always
   * ordered, without listing them here.
   */
  readonly dependsOn?: readonly string[];
}

/** A queued mutation as stored. */
export interface Mutation {
  /** Insertion order, unique and increasing within one database. */
  readonly seq: number;
  /** Time-ordered unique id (UUID v7 layout). */
  readonly id: string;
  /** The idempotency key, fixed at enqueue and reused on every resend. */
  readonly key: string;
  readonly scope: Scope;
  readonly entity: string;
  readonly entityId: string;
  readonly op: string;
  /** The payload, or `null` when none was given. */
  readonly data: JsonValue | null;
  readonly baseVersion: Version | null;
  readonly dependsOn: readonly string[];
  readonly state: MutationState;
  /** Attempts counted so far (offline failures and credential refreshes never count). */
  readonly attempts: number;
  /** Not sent before this time (ms since epoch). */
  readonly nextAttemptAt: number;
  readonly lastError: MutationError | null;
  /** Milliseconds since epoch. */
  readonly createdAt: number;
  readonly updatedAt: number;
}

/** Counts of the queue, for a badge or a support screen. */
export interface QueueStats {
  readonly pending: number;
  readonly inflight: number;
  readonly failed: number;
  readonly conflict: number;
  /** All mutations not yet confirmed. */
  readonly total: number;
  /** Age in ms of the first unconfirmed mutation in queue order, or `null` when the queue is empty. */
  readonly oldestAgeMs: number | null;
}
