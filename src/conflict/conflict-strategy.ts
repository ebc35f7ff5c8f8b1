import type { JsonValue, Version } from '../contracts/records.js';
import { findJsonIssue } from '../queue/json-safety.js';

/** What a conflict strategy or a merge function knows about one conflict. */
export interface ConflictContext {
  readonly mutationId: string;
  readonly entity: string;
  readonly entityId: string;
  readonly op: string;
  /** The version the local change was made against. */
  readonly baseVersion: Version | null;
  /** The server's current version, or `null` when the record no longer exists there. */
  readonly serverVersion: Version | null;
}

/**
 * Merge a local change with the server's current record into the payload to send instead, based on
 * the server's version. Return `undefined` to leave the conflict to the user (manual). Must be
 * pure and fast: it runs inside the run that met the conflict.
 *
 * @param local - the local mutation's payload.
 * @param server - the server's current data (`null` when the record is gone).
 */
export type MergeFunction = (
  local: JsonValue | null,
  server: JsonValue | null,
  context: ConflictContext,
) => JsonValue | undefined;

/**
 * How conflicts of an entity type are resolved (DESIGN.md section 6).
 *
 * - `'manual'` (default): both versions are stored, the mutation waits in state `conflict`, a
 *   notice is raised, later mutations of the record wait; the app calls `resolveConflict`.
 * - `'server-wins'`: the local change is dropped (the server's version stands), an `overwritten`
 *   notice tells the user on the next launch; later mutations of the record proceed.
 * - `'client-wins'`: the local change is resent against the server's current version.
 * - a {@link MergeFunction}: its result is resent against the server's current version.
 *
 * A conflict is never retried blindly: `client-wins` and merges rebase on the version the server
 * reported, and a record that keeps conflicting (more than `maxConflictRebases`, default 3 times)
 * falls back to `manual`.
 */
export type ConflictStrategy = 'manual' | 'server-wins' | 'client-wins' | MergeFunction;

/** How the app resolves a manual conflict with `engine.resolveConflict(id, resolution)`. */
export type ConflictResolution =
  /** Send the local change again, against the server's version. */
  | { readonly keep: 'local' }
  /** Drop the local change: the server's version stands. */
  | { readonly keep: 'server' }
  /** Send this payload instead, against the server's version. */
  | { readonly merged: JsonValue };

/** A stored conflict, as `engine.conflicts()` lists them. */
export interface Conflict {
  readonly mutationId: string;
  readonly entity: string;
  readonly entityId: string;
  readonly local: JsonValue | null;
  readonly baseVersion: Version | null;
  readonly server: JsonValue | null;
  readonly serverVersion: Version | null;
  readonly createdAt: number;
  /** When resolved, how; `null` while it waits for the user. */
  readonly resolution:
    | 'local'
    | 'server'
    | 'merged'
    | 'discarded'
    | 'server-wins'
    | 'client-wins'
    | 'merge'
    | null;
  readonly resolvedAt: number | null;
}

/** The outcome a strategy chooses for one conflict. */
export type ConflictDecision =
  | { readonly type: 'manual' }
  | { readonly type: 'drop' }
  | { readonly type: 'rebase'; readonly data: JsonValue | null; readonly how: 'client-wins' | 'merge' };

/**
 * Apply a strategy to one conflict. A merge function that throws or returns `undefined`, a record
 * gone from the server under client-wins, and a record that already rebased `maxRebases` times all
 * fall back to manual.
 */
export function decideConflict(
  strategy: ConflictStrategy,
  local: JsonValue | null,
  server: JsonValue | null,
  context: ConflictContext,
  rebasesSoFar: number,
  maxRebases: number,
): ConflictDecision {
  if (strategy === 'manual') return { type: 'manual' };
  if (strategy === 'server-wins') return { type: 'drop' };
  if (rebasesSoFar >= maxRebases) return { type: 'manual' };
  if (strategy === 'client-wins') {
    // Resending an update to a record that no longer exists would only conflict again.
    if (context.serverVersion === null && context.op !== 'delete') return { type: 'manual' };
    return { type: 'rebase', data: local, how: 'client-wins' };
  }
  let merged: JsonValue | undefined;
  try {
    merged = strategy(local, server, context);
  } catch {
    return { type: 'manual' };
  }
  // A merge result that is not plain JSON (undefined inside, a Date, a cycle…) would be sent as
  // something other than what the function returned: leave the conflict to the user instead.
  if (merged === undefined || findJsonIssue(merged) !== undefined) return { type: 'manual' };
  return { type: 'rebase', data: merged, how: 'merge' };
}
