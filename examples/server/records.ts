/**
 * Record writes shared by the push and REST APIs: versions, tombstones, stale-base-version
 * conflicts and server-assigned ids. Each function only reads and writes the store; the caller
 * runs it inside the transaction that also remembers the idempotency key.
 *
 * @packageDocumentation
 */

import type { ServerStore } from './store.js';
import type { JsonObject } from './types.js';

/** What a write did. Each API maps these to its own answers. */
export type WriteOutcome =
  /** The record changed: it has `version` now (`data` is the full record, `null` for a delete). */
  | {
      readonly kind: 'applied';
      readonly entityId: string;
      readonly version: number;
      readonly data: JsonObject | null;
      /** The server chose `entityId` (assigned-id types, or a REST create without an id). */
      readonly assigned: boolean;
    }
  /** Update or delete of a record that is missing or deleted (`version` is the tombstone's, or 0). */
  | { readonly kind: 'missing'; readonly entityId: string; readonly version: number }
  /** Create over a live record, or a stale base version: the record's current state. */
  | {
      readonly kind: 'conflict';
      readonly entityId: string;
      readonly version: number;
      readonly data: JsonObject | null;
    };

/** Where a write goes. */
export interface WriteTarget {
  readonly store: ServerStore;
  readonly partition: string;
  readonly entity: string;
}

/** True for a plain JSON object (not null, not an array). */
export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The next server-assigned id, `srv-<n>`. */
export function nextServerId(store: ServerStore): string {
  return `srv-${store.nextCounter('server-id')}`;
}

/**
 * Create a record.
 *
 * @param clientId the client's id for it; `undefined` lets the server pick one
 * @param assign whether the server assigns its own id even when the client sent one (the client
 *   id is then remembered and later translated)
 */
export function createRecord(
  target: WriteTarget,
  clientId: string | undefined,
  data: JsonObject,
  assign: boolean,
): WriteOutcome {
  const { store, partition, entity } = target;
  let entityId: string;
  let assigned = false;
  if (clientId === undefined) {
    entityId = nextServerId(store);
    assigned = true;
  } else {
    const mapped = store.findMapping(partition, entity, clientId);
    if (mapped !== undefined) {
      entityId = mapped;
      assigned = true;
    } else if (assign) {
      entityId = nextServerId(store);
      assigned = true;
      store.insertMapping(partition, entity, clientId, entityId);
    } else {
      entityId = clientId;
    }
  }
  const current = store.getRecord(partition, entity, entityId);
  if (current !== undefined && !current.deleted) {
    return { kind: 'conflict', entityId, version: current.version, data: current.data };
  }
  // Re-creating over a tombstone continues its version, so versions never go backwards for pull.
  const version = (current?.version ?? 0) + 1;
  store.writeRecord(partition, entity, entityId, version, data);
  return { kind: 'applied', entityId, version, data, assigned };
}

/**
 * Shallow-merge `patch` into a record.
 *
 * @param baseVersion the version the client edited; `null` skips the check (last writer wins)
 */
export function updateRecord(
  target: WriteTarget,
  clientId: string,
  patch: JsonObject,
  baseVersion: number | null,
): WriteOutcome {
  const { store, partition, entity } = target;
  const entityId = store.resolveId(partition, entity, clientId);
  const current = store.getRecord(partition, entity, entityId);
  if (current === undefined || current.deleted) {
    return { kind: 'missing', entityId, version: current?.version ?? 0 };
  }
  if (baseVersion !== null && baseVersion !== current.version) {
    return { kind: 'conflict', entityId, version: current.version, data: current.data };
  }
  const data = { ...current.data, ...patch };
  const version = current.version + 1;
  store.writeRecord(partition, entity, entityId, version, data);
  return { kind: 'applied', entityId, version, data, assigned: false };
}

/**
 * Delete a record, leaving a tombstone with the next version.
 *
 * @param baseVersion the version the client deleted; `null` skips the check
 */
export function deleteRecord(
  target: WriteTarget,
  clientId: string,
  baseVersion: number | null,
): WriteOutcome {
  const { store, partition, entity } = target;
  const entityId = store.resolveId(partition, entity, clientId);
  const current = store.getRecord(partition, entity, entityId);
  if (current === undefined || current.deleted) {
    return { kind: 'missing', entityId, version: current?.version ?? 0 };
  }
  if (baseVersion !== null && baseVersion !== current.version) {
    return { kind: 'conflict', entityId, version: current.version, data: current.data };
  }
  const version = current.version + 1;
  store.writeRecord(partition, entity, entityId, version, null);
  return { kind: 'applied', entityId, version, data: null, assigned: false };
}
