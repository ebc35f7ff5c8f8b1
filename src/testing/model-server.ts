/**
 * An in-memory model of a protocol v1 server (DESIGN.md section 8), with the semantics of the
 * reference server in `examples/server`: per-partition records with integer versions and
 * tombstones, an idempotency-key table that replays a key's original result (`applied` comes
 * back as `duplicate`), stale-base-version conflicts, deletes of missing records answered
 * `applied`, optional server-assigned ids, and a change log paged by an opaque cursor.
 *
 * It has no I/O and no clock: a property test can run thousands of syncs against it in a second,
 * and its {@link ModelServer.log} is the ground truth the delivery checker compares with.
 *
 * @packageDocumentation
 */

import type {
  PullChange,
  PullRequest,
  PullResponse,
  PushItemResult,
  PushResponse,
  TransportFailure,
} from '../contracts/network-adapter.js';
import type { JsonObject, JsonValue, Scope, Version } from '../contracts/records.js';
import { ConfigError } from '../errors.js';

/**
 * The built-in operations the model applies; any other `op` is rejected with `unknown-op`.
 *
 * @example
 * ```ts
 * import type { ModelOp } from 'sync-core/testing';
 * const ops: ModelOp[] = ['create', 'update', 'delete'];
 * ```
 */
export type ModelOp = 'create' | 'update' | 'delete';

/**
 * A record as the model holds it.
 *
 * @example
 * ```ts
 * import { createModelServer, type ModelRecord } from 'sync-core/testing';
 * const server = createModelServer();
 * const record: ModelRecord = server.put({ userId: 'u1' }, 'activity', 'a1', { title: 'x' }); // { version: 1, data: { title: 'x' }, deleted: false }
 * ```
 */
export interface ModelRecord {
  /** 1 on create, +1 on every update and delete; a tombstone keeps its version. */
  readonly version: number;
  /** The record's data; `null` once deleted. */
  readonly data: JsonObject | null;
  readonly deleted: boolean;
}

/**
 * One mutation the model applied, in {@link ModelServer.log}. Exactly one entry per accepted
 * mutation, never one for an idempotent replay, a conflict or a rejection.
 *
 * @example
 * ```ts
 * import type { AppliedEntry } from 'sync-core/testing';
 * const creates: AppliedEntry[] = server.log().filter((e) => e.op === 'create' && !e.noop);
 * ```
 */
export interface AppliedEntry {
  /** Order of application, from 1, across all partitions. */
  readonly seq: number;
  /** The idempotency key it was sent with. */
  readonly key: string;
  /** The push request's `clientId`. */
  readonly clientId: string;
  /** The scope of the request (whose credentials sent it). */
  readonly scope: Scope;
  readonly entity: string;
  /** The record's id on the server (the assigned `srv-<n>` id for `assignIds` types). */
  readonly entityId: string;
  /** The id the client sent, which differs from `entityId` when the server assigned its own. */
  readonly clientEntityId: string;
  readonly op: ModelOp;
  readonly baseVersion: number | null;
  /** The record's version after this mutation (the tombstone's, or 0, for a `noop` delete). */
  readonly version: number;
  /** The data as sent (an update's patch); `null` for deletes. */
  readonly data: JsonObject | null;
  /**
   * `true` for a delete of a record that was missing or already deleted: answered `applied`
   * (the client's goal is reached) but nothing changed and no change-log entry was written. The
   * reference server leaves these out of its log; the model keeps them so that a delivery check
   * sees every confirmed mutation.
   */
  readonly noop: boolean;
}

/**
 * A mutation as {@link ModelServer.handlePush} takes it: an `OutgoingMutation` fits.
 *
 * @example
 * ```ts
 * import type { ModelPushMutation } from 'sync-core/testing';
 * const m: ModelPushMutation = { id: 'm1', key: 'k1', op: 'update', entityId: 'a1', baseVersion: 1, data: { title: 'y' } };
 * ```
 */
export interface ModelPushMutation {
  readonly id: string;
  readonly key: string;
  readonly op: string;
  readonly entityId: string;
  readonly baseVersion?: Version | null;
  readonly data?: JsonValue | null;
}

/**
 * A push as {@link ModelServer.handlePush} takes it: a `PushRequest` fits (its signal is unused).
 *
 * @example
 * ```ts
 * import { createModelServer, type ModelPushRequest } from 'sync-core/testing';
 * const request: ModelPushRequest = { entity: 'activity', scope: { userId: 'u1' }, clientId: 'c1', mutations: [] };
 * createModelServer().handlePush(request); // { type: 'results', results: [] }
 * ```
 */
export interface ModelPushRequest {
  readonly entity: string;
  readonly scope: Scope;
  readonly clientId: string;
  readonly mutations: readonly ModelPushMutation[];
}

/**
 * A pull as {@link ModelServer.handlePull} takes it: a `PullRequest` fits.
 *
 * @example
 * ```ts
 * import { createModelServer, type ModelPullRequest } from 'sync-core/testing';
 * const request: ModelPullRequest = { entity: 'activity', scope: { userId: 'u1' }, cursor: null, limit: 100 };
 * createModelServer().handlePull(request); // { type: 'page', changes: [], cursor: 'c0', hasMore: false }
 * ```
 */
export type ModelPullRequest = Pick<PullRequest, 'entity' | 'scope' | 'cursor' | 'limit'>;

/**
 * What a {@link ModelServerOptions.rejectWhen} hook sees.
 *
 * @example
 * ```ts
 * import { createModelServer, type RejectableMutation } from 'sync-core/testing';
 * const rejectWhen = (m: RejectableMutation) => (m.data?.['title'] === '' ? 'title is required' : undefined);
 * const server = createModelServer({ rejectWhen });
 * ```
 */
export interface RejectableMutation {
  readonly scope: Scope;
  readonly entity: string;
  readonly op: ModelOp;
  /** The id the client sent. */
  readonly entityId: string;
  readonly key: string;
  readonly baseVersion: number | null;
  readonly data: JsonObject | null;
  readonly clientId: string;
}

/**
 * Per-request item faults for {@link ModelServer.handlePush}, as the reference server's
 * `partial` fault and `rejectWhen` hook produce them.
 *
 * @example
 * ```ts
 * import type { PushItemFaults } from 'sync-core/testing';
 * const faults: PushItemFaults = { retryIds: ['m1'], retryAfterMs: 5_000, rejectIds: ['m2'] };
 * server.handlePush(request, faults);
 * ```
 */
export interface PushItemFaults {
  /**
   * Mutation ids answered `{ status: 'retry' }`: neither applied nor remembered, so a resend is
   * processed afresh.
   */
  readonly retryIds?: Iterable<string>;
  /** `retryAfterMs` of those results. @default 1000 */
  readonly retryAfterMs?: number;
  /**
   * Mutation ids answered `rejected` (`code: 'invalid'`) without being applied; the rejection is
   * remembered under the key, so a resend replays it.
   */
  readonly rejectIds?: Iterable<string>;
}

/**
 * Options of {@link createModelServer}. All optional.
 *
 * @example
 * ```ts
 * import { createModelServer, type ModelServerOptions } from 'sync-core/testing';
 * const options: ModelServerOptions = { assignIds: ['activity'] };
 * const server = createModelServer(options);
 * ```
 */
export interface ModelServerOptions {
  /**
   * Entity types whose creates get a server-assigned id (`srv-<n>`), returned as `entityId` on
   * `applied` and replayed on `duplicate`. The client's id is remembered: later updates and
   * deletes sent with it reach the record.
   * @default []
   */
  readonly assignIds?: readonly string[];
  /**
   * Validation hook: return a message to reject a mutation (`rejected`, code `'invalid'`,
   * remembered under its key), `undefined` to accept it. Called after the key lookup.
   * @default accept everything
   */
  readonly rejectWhen?: (mutation: RejectableMutation) => string | undefined;
}

/**
 * Counters since the model was created, from {@link ModelServer.stats}.
 *
 * @example
 * ```ts
 * import type { ModelServerStats } from 'sync-core/testing';
 * const { applied, duplicates }: ModelServerStats = server.stats();
 * ```
 */
export interface ModelServerStats {
  readonly pushRequests: number;
  readonly pullRequests: number;
  /** Fresh `applied` results (`noop` deletes included). */
  readonly applied: number;
  /** Replays of a remembered key, whatever the original result was. */
  readonly duplicates: number;
  /** Fresh `conflict` results. */
  readonly conflicts: number;
  /** Fresh `rejected` results (and whole requests refused as invalid). */
  readonly rejected: number;
  /** Items answered `retry` through {@link PushItemFaults.retryIds}. */
  readonly retries: number;
}

/**
 * An in-memory protocol v1 server. Create it with {@link createModelServer}; put a
 * `createFaultyNetwork(server)` in front of it to hand to an engine.
 *
 * Data is partitioned like the reference server's: by `orgId` when the scope has one, else by
 * `userId`. Records, the change log, assigned ids and idempotency keys of one partition are
 * invisible to the others.
 *
 * @example
 * ```ts
 * import { createModelServer } from 'sync-core/testing';
 * const server = createModelServer();
 * const scope = { userId: 'u1' };
 * const push = {
 *   entity: 'activity', scope, clientId: 'c1',
 *   mutations: [{ id: 'm1', key: 'k1', op: 'create', entityId: 'a1', data: { title: 'Visit' } }],
 * };
 * server.handlePush(push); // { type: 'results', results: [{ id: 'm1', status: 'applied', version: 1 }] }
 * server.handlePush(push); // … status: 'duplicate', version: 1 — the same key is applied once
 * server.log().length; // 1
 * ```
 */
export interface ModelServer {
  /**
   * Answer a push: one result per mutation, processed in array order, each with its key as one
   * atomic step. A request the reference server would answer 400 (duplicate mutation ids, an
   * empty key or id, a non-integer base version) comes back as the `rejected` `http-400` failure
   * the fetch adapter would report, with nothing applied.
   */
  handlePush(request: ModelPushRequest, faults?: PushItemFaults): PushResponse;
  /**
   * Answer a pull: the partition's changes of `entity` after `cursor` (`null`: from the start),
   * at most `limit` (clamped to 1000). A cursor this model did not issue, or a `limit` that is not
   * a positive integer, is the `rejected` `http-400` failure.
   */
  handlePull(request: ModelPullRequest): PullResponse;
  /** Every applied mutation, in application order (a copy). */
  log(): AppliedEntry[];
  /**
   * Write a record as another client would: replaces its data (creating or re-creating it), bumps
   * its version and appends to the change log, without a log entry. Use it to provoke conflicts.
   * `entityId` may be a client id the server mapped to an assigned id.
   */
  put(scope: Scope, entity: string, entityId: string, data: JsonObject): ModelRecord;
  /**
   * Delete a record as another client would (tombstone, version + 1, change-log entry). Returns
   * the tombstone, or `undefined` when the record is missing or already deleted.
   */
  remove(scope: Scope, entity: string, entityId: string): ModelRecord | undefined;
  /** A record's current state (tombstones included), or `undefined` if it never existed. */
  record(scope: Scope, entity: string, entityId: string): ModelRecord | undefined;
  /** Every record of a partition's entity type (tombstones included), by server id. */
  records(scope: Scope, entity: string): ReadonlyMap<string, ModelRecord>;
  /** A snapshot of the counters. */
  stats(): ModelServerStats;
}

/** What a key remembers: the first result, without the per-request `id`. */
type StoredResult =
  | { readonly status: 'applied'; readonly version: number; readonly entityId?: string }
  | { readonly status: 'conflict'; readonly version: number; readonly data: JsonObject | null }
  | { readonly status: 'rejected'; readonly error: { readonly code: string; readonly message: string } };

interface ChangeEntry {
  readonly seq: number;
  readonly partition: string;
  readonly entity: string;
  readonly entityId: string;
  readonly version: number;
  readonly data: JsonObject | null;
}

type WriteOutcome =
  | {
      readonly kind: 'applied';
      readonly entityId: string;
      readonly version: number;
      readonly assigned: boolean;
    }
  | { readonly kind: 'missing'; readonly entityId: string; readonly version: number }
  | {
      readonly kind: 'conflict';
      readonly entityId: string;
      readonly version: number;
      readonly data: JsonObject | null;
    };

/** A {@link PushItemResult} before its request-specific `id` is added. */
type ResultBody = PushItemResult extends infer R ? (R extends unknown ? Omit<R, 'id'> : never) : never;

const MAX_PULL_LIMIT = 1000;
const MAX_KEY_LENGTH = 512;

function getOrCreate<K, V>(map: Map<K, V>, key: K, make: () => V): V {
  let value = map.get(key);
  if (value === undefined) {
    value = make();
    map.set(key, value);
  }
  return value;
}

/** The partition a scope's data lives in, as the reference server computes it. */
function partitionOf(scope: Scope): string {
  return scope.orgId !== undefined ? `org:${scope.orgId}` : `user:${scope.userId}`;
}

function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Stored data is copied in and out: a caller mutating what it passed or got never edits the model. */
function copy<T extends JsonValue>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

function copyScope(scope: Scope): Scope {
  return scope.orgId === undefined ? { userId: scope.userId } : { userId: scope.userId, orgId: scope.orgId };
}

function badRequest(message: string): { type: 'failure'; failure: TransportFailure } {
  return {
    type: 'failure',
    failure: {
      class: 'rejected',
      code: 'http-400',
      status: 400,
      message: `the server rejected the request (400): ${message}`,
    },
  };
}

function encodeCursor(seq: number): string {
  return `c${seq.toString(36)}`;
}

function decodeCursor(cursor: string): number | undefined {
  if (!/^c[0-9a-z]{1,11}$/.test(cursor)) return undefined;
  const seq = Number.parseInt(cursor.slice(1), 36);
  // Canonical spelling only, so two cursors never name the same position.
  return Number.isSafeInteger(seq) && encodeCursor(seq) === cursor ? seq : undefined;
}

function checkPush(request: ModelPushRequest): string | undefined {
  if (typeof request !== 'object' || request === null) return 'expected a push request object';
  if (typeof request.entity !== 'string' || request.entity === '')
    return 'entity: expected a non-empty string';
  if (typeof request.clientId !== 'string' || request.clientId === '') {
    return 'clientId: expected a non-empty string';
  }
  if (typeof request.scope?.userId !== 'string') return 'scope: expected { userId, orgId? }';
  if (!Array.isArray(request.mutations)) return 'mutations: expected an array';
  const ids = new Set<string>();
  for (const [i, m] of request.mutations.entries()) {
    if (typeof m?.id !== 'string' || m.id === '') return `mutations.${i}.id: expected a non-empty string`;
    if (ids.has(m.id)) return `mutations: id ${JSON.stringify(m.id)} appears twice`;
    ids.add(m.id);
    if (typeof m.key !== 'string' || m.key === '' || m.key.length > MAX_KEY_LENGTH) {
      return `mutations.${i}.key: expected a string of 1 to ${MAX_KEY_LENGTH} characters`;
    }
    if (typeof m.op !== 'string' || m.op === '') return `mutations.${i}.op: expected a non-empty string`;
    if (typeof m.entityId !== 'string' || m.entityId === '') {
      return `mutations.${i}.entityId: expected a non-empty string`;
    }
    const base = m.baseVersion;
    if (base !== undefined && base !== null && !(Number.isSafeInteger(base) && (base as number) >= 0)) {
      return `mutations.${i}.baseVersion: expected a non-negative integer or null`;
    }
  }
  return undefined;
}

/**
 * Create an in-memory protocol v1 server model.
 *
 * @param options - See {@link ModelServerOptions}.
 * @throws ConfigError for an invalid option.
 *
 * @example
 * ```ts
 * import { createFaultyNetwork, createModelServer } from 'sync-core/testing';
 * const server = createModelServer({ assignIds: ['activity'] });
 * const network = createFaultyNetwork(server); // pass as `network` to createSyncEngine
 * server.put({ userId: 'u1' }, 'activity', 'a1', { title: 'edited elsewhere' }); // provoke a conflict
 * ```
 */
export function createModelServer(options: ModelServerOptions = {}): ModelServer {
  if (typeof options !== 'object' || options === null) {
    throw new ConfigError(`createModelServer(options): expected an object, got ${String(options)}`);
  }
  const { assignIds = [], rejectWhen } = options;
  if (!Array.isArray(assignIds) || assignIds.some((e) => typeof e !== 'string')) {
    throw new ConfigError('createModelServer(options).assignIds: expected an array of entity type names');
  }
  if (rejectWhen !== undefined && typeof rejectWhen !== 'function') {
    throw new ConfigError(
      `createModelServer(options).rejectWhen: expected a function, got ${typeof rejectWhen}`,
    );
  }
  const assigning = new Set(assignIds);
  // partition → entity → id → record
  const records = new Map<string, Map<string, Map<string, ModelRecord>>>();
  // partition → key → first result
  const keys = new Map<string, Map<string, StoredResult>>();
  // partition → entity → client id → server id
  const idMap = new Map<string, Map<string, Map<string, string>>>();
  const changes: ChangeEntry[] = [];
  const applied: AppliedEntry[] = [];
  let nextServerId = 1;
  const stats = {
    pushRequests: 0,
    pullRequests: 0,
    applied: 0,
    duplicates: 0,
    conflicts: 0,
    rejected: 0,
    retries: 0,
  };

  const table = (partition: string, entity: string): Map<string, ModelRecord> =>
    getOrCreate(
      getOrCreate(records, partition, () => new Map()),
      entity,
      () => new Map(),
    );
  const mapping = (partition: string, entity: string): Map<string, string> =>
    getOrCreate(
      getOrCreate(idMap, partition, () => new Map()),
      entity,
      () => new Map(),
    );
  const keyTable = (partition: string): Map<string, StoredResult> =>
    getOrCreate(keys, partition, () => new Map());
  const resolveId = (partition: string, entity: string, id: string): string =>
    mapping(partition, entity).get(id) ?? id;

  const write = (partition: string, entity: string, id: string, version: number, data: JsonObject | null) => {
    table(partition, entity).set(id, { version, data, deleted: data === null });
    changes.push({ seq: changes.length + 1, partition, entity, entityId: id, version, data });
  };

  const create = (partition: string, entity: string, clientId: string, data: JsonObject): WriteOutcome => {
    const mapped = mapping(partition, entity).get(clientId);
    let entityId = clientId;
    let assigned = false;
    if (mapped !== undefined) {
      entityId = mapped;
      assigned = true;
    } else if (assigning.has(entity)) {
      entityId = `srv-${nextServerId++}`;
      assigned = true;
      mapping(partition, entity).set(clientId, entityId);
    }
    const current = table(partition, entity).get(entityId);
    if (current !== undefined && !current.deleted) {
      return { kind: 'conflict', entityId, version: current.version, data: current.data };
    }
    // Re-creating over a tombstone continues its version, so versions never go back for pull.
    const version = (current?.version ?? 0) + 1;
    write(partition, entity, entityId, version, data);
    return { kind: 'applied', entityId, version, assigned };
  };

  const change = (
    partition: string,
    entity: string,
    clientId: string,
    patch: JsonObject | null,
    baseVersion: number | null,
  ): WriteOutcome => {
    const entityId = resolveId(partition, entity, clientId);
    const current = table(partition, entity).get(entityId);
    if (current === undefined || current.deleted) {
      return { kind: 'missing', entityId, version: current?.version ?? 0 };
    }
    if (baseVersion !== null && baseVersion !== current.version) {
      return { kind: 'conflict', entityId, version: current.version, data: current.data };
    }
    const version = current.version + 1;
    write(partition, entity, entityId, version, patch === null ? null : { ...current.data, ...patch });
    return { kind: 'applied', entityId, version, assigned: false };
  };

  const apply = (
    request: ModelPushRequest,
    partition: string,
    m: ModelPushMutation,
    rejectIds: ReadonlySet<string>,
  ): StoredResult => {
    const op = m.op;
    if (op !== 'create' && op !== 'update' && op !== 'delete') {
      return {
        status: 'rejected',
        error: {
          code: 'unknown-op',
          message: `unknown op ${JSON.stringify(op)}: this server applies create, update and delete`,
        },
      };
    }
    const data = op === 'delete' ? null : m.data;
    if (op !== 'delete' && !isJsonObject(data)) {
      return {
        status: 'rejected',
        error: { code: 'invalid', message: `data: expected a JSON object for ${op}` },
      };
    }
    const object = data === null || data === undefined ? null : copy(data as JsonObject);
    const baseVersion = (m.baseVersion ?? null) as number | null;
    const reason = rejectIds.has(m.id)
      ? 'rejected by the fault schedule'
      : rejectWhen?.({
          scope: copyScope(request.scope),
          entity: request.entity,
          op,
          entityId: m.entityId,
          key: m.key,
          baseVersion,
          data: object === null ? null : copy(object),
          clientId: request.clientId,
        });
    if (reason !== undefined) return { status: 'rejected', error: { code: 'invalid', message: reason } };

    const outcome =
      op === 'create'
        ? create(partition, request.entity, m.entityId, object as JsonObject)
        : change(partition, request.entity, m.entityId, op === 'update' ? object : null, baseVersion);
    if (outcome.kind === 'conflict')
      return { status: 'conflict', version: outcome.version, data: outcome.data };
    if (outcome.kind === 'missing' && op !== 'delete') {
      // An update of a record that is gone is a conflict (the client must decide); a delete of one
      // already achieved what it wanted.
      return { status: 'conflict', version: outcome.version, data: null };
    }
    applied.push({
      seq: applied.length + 1,
      key: m.key,
      clientId: request.clientId,
      scope: copyScope(request.scope),
      entity: request.entity,
      entityId: outcome.entityId,
      clientEntityId: m.entityId,
      op,
      baseVersion,
      version: outcome.version,
      data: object,
      noop: outcome.kind === 'missing',
    });
    return outcome.kind === 'applied' && outcome.assigned
      ? { status: 'applied', version: outcome.version, entityId: outcome.entityId }
      : { status: 'applied', version: outcome.version };
  };

  /** A stored result as answered: fresh, or replayed (`applied` → `duplicate`), data copied out. */
  const replay = (original: StoredResult, isReplay = true): ResultBody => {
    if (original.status === 'conflict') {
      return { ...original, data: original.data === null ? null : copy(original.data) };
    }
    if (original.status !== 'applied' || !isReplay) return original;
    return original.entityId === undefined
      ? { status: 'duplicate', version: original.version }
      : { status: 'duplicate', version: original.version, entityId: original.entityId };
  };

  const server: ModelServer = {
    handlePush(request, faults = {}) {
      stats.pushRequests++;
      const invalid = checkPush(request);
      if (invalid !== undefined) {
        stats.rejected++;
        return badRequest(invalid);
      }
      const retryIds = new Set(faults.retryIds ?? []);
      const rejectIds = new Set(faults.rejectIds ?? []);
      const retryAfterMs = faults.retryAfterMs ?? 1000;
      const partition = partitionOf(request.scope);
      const remembered = keyTable(partition);
      const results = request.mutations.map((m): PushItemResult => {
        if (retryIds.has(m.id)) {
          stats.retries++;
          return { id: m.id, status: 'retry', retryAfterMs };
        }
        const original = remembered.get(m.key);
        if (original !== undefined) {
          stats.duplicates++;
          return { id: m.id, ...replay(original) } as PushItemResult;
        }
        const result = apply(request, partition, m, rejectIds);
        remembered.set(m.key, result);
        if (result.status === 'applied') stats.applied++;
        else if (result.status === 'conflict') stats.conflicts++;
        else stats.rejected++;
        return { id: m.id, ...replay(result, false) } as PushItemResult;
      });
      return { type: 'results', results };
    },

    handlePull(request) {
      stats.pullRequests++;
      if (typeof request?.entity !== 'string' || request.entity === '') {
        return badRequest('entity: a non-empty query parameter is required');
      }
      if (typeof request.scope?.userId !== 'string') return badRequest('scope: expected { userId, orgId? }');
      if (!Number.isSafeInteger(request.limit) || request.limit < 1) {
        return badRequest('limit: expected a positive integer');
      }
      let after = 0;
      if (request.cursor !== null && request.cursor !== undefined && request.cursor !== '') {
        const decoded = typeof request.cursor === 'string' ? decodeCursor(request.cursor) : undefined;
        if (decoded === undefined) return badRequest('cursor: not a cursor this server issued');
        after = decoded;
      }
      const limit = Math.min(request.limit, MAX_PULL_LIMIT);
      const partition = partitionOf(request.scope);
      const page: ChangeEntry[] = [];
      let hasMore = false;
      for (const entry of changes) {
        if (entry.seq <= after || entry.partition !== partition || entry.entity !== request.entity) continue;
        if (page.length === limit) {
          hasMore = true;
          break;
        }
        page.push(entry);
      }
      const last = page[page.length - 1];
      return {
        type: 'page',
        changes: page.map(
          (entry): PullChange =>
            entry.data === null
              ? { entityId: entry.entityId, op: 'delete', version: entry.version }
              : { entityId: entry.entityId, op: 'upsert', version: entry.version, data: copy(entry.data) },
        ),
        cursor: encodeCursor(last === undefined ? after : last.seq),
        hasMore,
      };
    },

    log() {
      return applied.map((entry) => ({
        ...entry,
        scope: copyScope(entry.scope),
        data: entry.data === null ? null : copy(entry.data),
      }));
    },

    put(scope, entity, entityId, data) {
      if (!isJsonObject(data)) throw new ConfigError('server.put(data): expected a JSON object');
      const partition = partitionOf(scope);
      const id = resolveId(partition, entity, entityId);
      const version = (table(partition, entity).get(id)?.version ?? 0) + 1;
      write(partition, entity, id, version, copy(data));
      return { version, data: copy(data), deleted: false };
    },

    remove(scope, entity, entityId) {
      const partition = partitionOf(scope);
      const id = resolveId(partition, entity, entityId);
      const current = table(partition, entity).get(id);
      if (current === undefined || current.deleted) return undefined;
      write(partition, entity, id, current.version + 1, null);
      return { version: current.version + 1, data: null, deleted: true };
    },

    record(scope, entity, entityId) {
      const partition = partitionOf(scope);
      const current = table(partition, entity).get(resolveId(partition, entity, entityId));
      return current === undefined
        ? undefined
        : { ...current, data: current.data === null ? null : copy(current.data) };
    },

    records(scope, entity) {
      const out = new Map<string, ModelRecord>();
      for (const [id, current] of table(partitionOf(scope), entity)) {
        out.set(id, { ...current, data: current.data === null ? null : copy(current.data) });
      }
      return out;
    },

    stats: () => ({ ...stats }),
  };
  return server;
}
