import type { JsonValue } from '../contracts/records.js';

/** What to do with a new mutation given the record's last queued, never-sent mutation. */
export type CoalesceDecision =
  /** Queue the new mutation after the last one. */
  | { readonly kind: 'append' }
  /** Rewrite the last mutation in place to `op` with `data`; queue nothing new. */
  | { readonly kind: 'merge'; readonly op: string; readonly data: JsonValue | null }
  /** Remove the last mutation and queue nothing: the record never reaches the server. */
  | { readonly kind: 'cancel' };

function isObject(value: JsonValue | null): value is { [key: string]: JsonValue } {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Decide how a new mutation combines with the last queued mutation of the same record. Only
 * called when that last mutation is pending and was never sent: once a mutation may have reached
 * the server, it is immutable (its idempotency key stands for exactly that content).
 *
 * | last   | new    | result                                  |
 * |--------|--------|-----------------------------------------|
 * | create | update | create with fields merged (new wins)    |
 * | update | update | update with fields merged (new wins)    |
 * | create | delete | cancel: nothing is sent                 |
 * | update | delete | delete (the update's base version kept) |
 * | other  |        | append                                  |
 *
 * The merge is shallow, as a PATCH body is: a nested object in the new update replaces the old one.
 */
export function decideCoalesce(
  last: { readonly op: string; readonly data: JsonValue | null },
  next: { readonly op: string; readonly data: JsonValue | null },
): CoalesceDecision {
  if (next.op === 'update' && (last.op === 'create' || last.op === 'update')) {
    if (!isObject(last.data) || !isObject(next.data)) return { kind: 'append' };
    return { kind: 'merge', op: last.op, data: { ...last.data, ...next.data } };
  }
  if (next.op === 'delete') {
    if (last.op === 'create') return { kind: 'cancel' };
    if (last.op === 'update') return { kind: 'merge', op: 'delete', data: next.data };
  }
  return { kind: 'append' };
}
