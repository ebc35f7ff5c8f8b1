/**
 * The delivery checker: what reached the server compared with what the app was promised, in the
 * terms of Jepsen's total-queue checker (FAULTS.md: lost = ∅, unexpected = ∅), plus the two
 * properties a sync queue adds — each mutation applied once (DESIGN.md invariant 2) and per-record
 * order (invariant 3).
 *
 * @packageDocumentation
 */

import type { Scope } from '../contracts/records.js';

/**
 * An acknowledged mutation: `enqueue()` resolved with it. The objects `engine.enqueue` returns fit
 * as they are.
 *
 * @example
 * ```ts
 * import type { AcknowledgedMutation } from 'sync-core/testing';
 * const acknowledged: AcknowledgedMutation[] = [];
 * acknowledged.push(await engine.enqueue({ entity: 'activity', op: 'create', entityId: 'a1', data: {} }));
 * ```
 */
export interface AcknowledgedMutation {
  readonly id: string;
  /**
   * The idempotency key: what the server log is matched by. `queue.retry` gives a rejected dead
   * letter a new key: list the mutation again (from `queue.get`) and both keys stand for it.
   */
  readonly key: string;
  readonly scope: Scope;
  readonly entity: string;
  /** The client's id of the record. */
  readonly entityId: string;
  readonly op: string;
  /**
   * From `enqueue` with coalescing on. `'merged'` entries repeat an earlier id (one stored
   * mutation): the checker keeps its first place in the order and takes the latest fields. `'cancelled'` means neither the
   * create nor the delete will be sent: the id counts as discarded.
   */
  readonly coalesced?: 'none' | 'merged' | 'cancelled';
}

/**
 * A mutation the server applied. The entries of `ModelServer.log()` fit as they are.
 *
 * @example
 * ```ts
 * import type { AppliedMutationRecord } from 'sync-core/testing';
 * const applied: readonly AppliedMutationRecord[] = server.log();
 * ```
 */
export interface AppliedMutationRecord {
  /** The idempotency key it was applied with (`null`: applied without one, never acknowledged). */
  readonly key: string | null;
  readonly scope: Scope;
  readonly entity: string;
  /** The record's id on the server (may be a server-assigned id). */
  readonly entityId: string;
  readonly op: string;
}

/**
 * What {@link checkDelivery} compares.
 *
 * @example
 * ```ts
 * import { checkDelivery, type DeliveryInput } from 'sync-core/testing';
 * const input: DeliveryInput = { enqueued: acknowledged, applied: server.log(), queued: await engine.queue.list(), discarded: [] };
 * checkDelivery(input);
 * ```
 */
export interface DeliveryInput {
  /** Every acknowledged mutation, in enqueue order. */
  readonly enqueued: readonly AcknowledgedMutation[];
  /** What the server applied, in application order (`server.log()`). */
  readonly applied: readonly AppliedMutationRecord[];
  /**
   * Ids still in the client's queue, in any state (pending, inflight, failed, conflict), or the
   * mutations themselves: `await engine.queue.list({ scope: 'all', limit: 1000 })` fits.
   */
  readonly queued: readonly (string | { readonly id: string })[];
  /** Ids the app removed on purpose (`engine.queue.discard`, a purging sign-out). @default [] */
  readonly discarded?: readonly (string | { readonly id: string })[];
}

/**
 * An acknowledged mutation the server applied more than once.
 *
 * @example
 * ```ts
 * import { checkDelivery, type DuplicatedDelivery } from 'sync-core/testing';
 * const duplicated: readonly DuplicatedDelivery[] = checkDelivery(input).duplicated; // [{ key, id, count: 2 }] when a key was applied twice
 * ```
 */
export interface DuplicatedDelivery {
  /** The key of its first application. */
  readonly key: string;
  /** The mutation's id. */
  readonly id: string;
  /** How many times it was applied (≥ 2). */
  readonly count: number;
}

/**
 * A record whose mutations reached the server in another order than they were enqueued.
 *
 * @example
 * ```ts
 * import { checkDelivery, type OutOfOrderRecord } from 'sync-core/testing';
 * for (const o of checkDelivery(input).outOfOrder as readonly OutOfOrderRecord[]) console.log(o.entityId, o.expected, o.actual);
 * ```
 */
export interface OutOfOrderRecord {
  readonly scope: Scope;
  readonly entity: string;
  /** The client's id of the record. */
  readonly entityId: string;
  /** Ids of the record's applied mutations in enqueue order. */
  readonly expected: readonly string[];
  /** The same ids in the order the server first applied them. */
  readonly actual: readonly string[];
}

/**
 * The verdict of {@link checkDelivery}. Every list is empty when `ok`.
 *
 * @example
 * ```ts
 * import { checkDelivery, type DeliveryResult } from 'sync-core/testing';
 * const result: DeliveryResult = checkDelivery(input);
 * if (!result.ok) console.log(result.lost.length, result.duplicated.length);
 * ```
 */
export interface DeliveryResult {
  /** `lost`, `unexpected`, `duplicated` and `outOfOrder` are all empty. */
  readonly ok: boolean;
  /** Acknowledged, never applied, not still queued, not discarded: silently dropped (invariant 1). */
  readonly lost: readonly AcknowledgedMutation[];
  /**
   * Applied, but never acknowledged — or applied under another scope or entity type than the
   * acknowledged mutation with its key (invariant 5).
   */
  readonly unexpected: readonly AppliedMutationRecord[];
  /** Applied more than once, by key (invariant 2); all keys of one mutation count together. */
  readonly duplicated: readonly DuplicatedDelivery[];
  /** Per (scope, entity, entityId): applied order differs from enqueue order (invariant 3). */
  readonly outOfOrder: readonly OutOfOrderRecord[];
  /** Acknowledged mutations applied (at least once). */
  readonly delivered: number;
}

function scopeKey(scope: Scope): string {
  return JSON.stringify([scope.userId, scope.orgId ?? null]);
}

function idOf(value: string | { readonly id: string }): string {
  return typeof value === 'string' ? value : value.id;
}

/**
 * Check a run (or a whole test) for lost, unexpected, duplicated and out-of-order deliveries.
 * Pure: compares its inputs only.
 *
 * Per-record order is judged on the client's identity of the record (scope, entity type, the
 * client's entity id), so server-assigned ids do not matter; only the first application of each
 * key counts for order (a second one is already `duplicated`).
 *
 * @example
 * ```ts
 * import { assertDelivery, checkDelivery } from 'sync-core/testing';
 * // acknowledged: what engine.enqueue resolved with; server: createModelServer()
 * const result = checkDelivery({
 *   enqueued: acknowledged,
 *   applied: server.log(),
 *   queued: await engine.queue.list({ scope: 'all', limit: 1000 }),
 *   discarded: discardedIds,
 * });
 * assertDelivery(result); // throws a readable Error unless lost = unexpected = duplicated = outOfOrder = ∅
 * ```
 */
export function checkDelivery(input: DeliveryInput): DeliveryResult {
  const discarded = new Set((input.discarded ?? []).map(idOf));
  const queued = new Set(input.queued.map(idOf));

  // One entry per stored mutation, at its first place; a repeated id (a coalesced merge, a
  // dead letter retried under a new key) updates it in place, and each of its keys stands for it.
  const byId = new Map<string, AcknowledgedMutation>();
  const byKey = new Map<string, string>();
  for (const m of input.enqueued) {
    byId.set(m.id, m);
    byKey.set(m.key, m.id);
    if (m.coalesced === 'cancelled') discarded.add(m.id);
  }
  const acknowledged = [...byId.values()];
  const order = new Map<string, number>();
  for (const [i, m] of acknowledged.entries()) order.set(m.id, i);

  const unexpected: AppliedMutationRecord[] = [];
  const counts = new Map<string, { count: number; key: string }>();
  // Per record (client identity): ids in the order of their first application.
  const appliedOrder = new Map<string, { record: AcknowledgedMutation; ids: string[] }>();
  for (const entry of input.applied) {
    const id = entry.key === null ? undefined : byKey.get(entry.key);
    const m = id === undefined ? undefined : byId.get(id);
    if (m === undefined || scopeKey(m.scope) !== scopeKey(entry.scope) || m.entity !== entry.entity) {
      unexpected.push(entry);
      continue;
    }
    const seen = counts.get(m.id);
    if (seen !== undefined) {
      seen.count++;
      continue;
    }
    counts.set(m.id, { count: 1, key: entry.key! });
    const recordKey = JSON.stringify([scopeKey(m.scope), m.entity, m.entityId]);
    const slot = appliedOrder.get(recordKey);
    if (slot === undefined) appliedOrder.set(recordKey, { record: m, ids: [m.id] });
    else slot.ids.push(m.id);
  }

  const lost = acknowledged.filter((m) => !counts.has(m.id) && !queued.has(m.id) && !discarded.has(m.id));
  const duplicated: DuplicatedDelivery[] = [];
  for (const [id, { count, key }] of counts) {
    if (count > 1) duplicated.push({ key, id, count });
  }
  const outOfOrder: OutOfOrderRecord[] = [];
  for (const { record, ids } of appliedOrder.values()) {
    const expected = [...ids].sort((a, b) => order.get(a)! - order.get(b)!);
    if (expected.some((id, i) => id !== ids[i])) {
      outOfOrder.push({
        scope: record.scope,
        entity: record.entity,
        entityId: record.entityId,
        expected,
        actual: ids,
      });
    }
  }
  return {
    ok: lost.length === 0 && unexpected.length === 0 && duplicated.length === 0 && outOfOrder.length === 0,
    lost,
    unexpected,
    duplicated,
    outOfOrder,
    delivered: counts.size,
  };
}

/**
 * The error {@link assertDelivery} throws; `result` holds the full verdict.
 *
 * @example
 * ```ts
 * import { assertDelivery, DeliveryCheckError } from 'sync-core/testing';
 * try { assertDelivery(result); } catch (error) { if (error instanceof DeliveryCheckError) console.log(error.result.lost); }
 * ```
 */
export class DeliveryCheckError extends Error {
  /** The verdict that failed. */
  readonly result: DeliveryResult;

  constructor(result: DeliveryResult) {
    super(describeDelivery(result));
    this.name = 'DeliveryCheckError';
    this.result = result;
  }
}

const SHOWN = 10;

function list<T>(title: string, items: readonly T[], line: (item: T) => string): string[] {
  if (items.length === 0) return [];
  const shown = items.slice(0, SHOWN).map((item) => `    - ${line(item)}`);
  if (items.length > SHOWN) shown.push(`    … and ${items.length - SHOWN} more`);
  return [`  ${title} (${items.length}):`, ...shown];
}

function who(scope: Scope): string {
  return scope.orgId === undefined ? scope.userId : `${scope.userId}@${scope.orgId}`;
}

/**
 * A readable report of a delivery verdict: one line per anomaly (ids, keys, records; never payloads).
 *
 * @example
 * ```ts
 * import { checkDelivery, describeDelivery } from 'sync-core/testing';
 * console.log(describeDelivery(checkDelivery({ enqueued: [], applied: [], queued: [] })));
 * // delivery ok: 0 acknowledged mutations delivered; lost = unexpected = duplicated = outOfOrder = ∅
 * ```
 */
export function describeDelivery(result: DeliveryResult): string {
  if (result.ok) {
    return `delivery ok: ${result.delivered} acknowledged mutations delivered; lost = unexpected = duplicated = outOfOrder = ∅`;
  }
  return [
    'delivery check failed:',
    ...list(
      'lost — acknowledged, never applied, not queued, not discarded (invariant 1)',
      result.lost,
      (m) => `${m.id} ${m.op} ${m.entity}/${m.entityId} (${who(m.scope)}) key ${m.key}`,
    ),
    ...list(
      'unexpected — applied but never acknowledged, or under another scope or entity type',
      result.unexpected,
      (a) => `${a.op} ${a.entity}/${a.entityId} (${who(a.scope)}) key ${a.key ?? '(none)'}`,
    ),
    ...list(
      'duplicated — one key applied more than once (invariant 2)',
      result.duplicated,
      (d) => `mutation ${d.id} (key ${d.key}) applied ${d.count} times`,
    ),
    ...list(
      'out of order — a record’s mutations applied in another order than enqueued (invariant 3)',
      result.outOfOrder,
      (o) =>
        `${o.entity}/${o.entityId} (${who(o.scope)}): enqueued ${o.expected.join(', ')}; applied ${o.actual.join(', ')}`,
    ),
  ].join('\n');
}

/**
 * Throw a {@link DeliveryCheckError} with a readable report unless the verdict is ok.
 *
 * @example
 * ```ts
 * import { assertDelivery, checkDelivery } from 'sync-core/testing';
 * assertDelivery(checkDelivery({ enqueued, applied: server.log(), queued: [] }));
 * ```
 */
export function assertDelivery(result: DeliveryResult): void {
  if (!result.ok) throw new DeliveryCheckError(result);
}
