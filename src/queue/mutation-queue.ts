import type { Clock, RandomSource } from '../contracts/clock.js';
import type {
  JsonValue,
  Mutation,
  MutationError,
  MutationState,
  QueueStats,
  Scope,
  Version,
} from '../contracts/records.js';
import { StateError, ValidationError } from '../errors.js';
import type { Executor, GuardedExecutor, GuardedStorage } from '../storage/guarded-storage.js';
import { fromJsonColumn } from '../storage/json-column.js';
import { decideCoalesce } from './coalesce.js';
import { uuidV4, uuidV7 } from './ids.js';
import { utf8Length } from './json-safety.js';
import type { PreparedMutation } from './prepare-mutation.js';
import { parseScopeKey, scopeKey } from './scope.js';

/** How `enqueue` treated a mutation when coalescing is on for its entity type. */
export type CoalesceOutcome = 'none' | 'merged' | 'cancelled';

/**
 * A mutation as `enqueue` returns it.
 *
 * - `coalesced: 'none'`: stored as a new mutation.
 * - `'merged'`: merged into the record's last unsent mutation; this *is* that stored mutation (its
 *   id, its place in the queue) with the merged payload.
 * - `'cancelled'`: a delete cancelled the record's unsent create; this is the removed create as it
 *   was, and neither it nor the delete will be sent.
 */
export type EnqueuedMutation = Mutation & { readonly coalesced: CoalesceOutcome };

/** What happened to one claimed mutation, as the engine records it. */
export type MutationOutcome =
  /** The server confirmed it (applied or duplicate): it leaves the queue. */
  | { readonly type: 'confirmed' }
  /** Send again later; `countsAttempt` is false for failures that never count (DESIGN.md §5). */
  | {
      readonly type: 'retry';
      readonly nextAttemptAt: number;
      readonly error: MutationError;
      readonly countsAttempt: boolean;
    }
  /**
   * Not sent, or sent without effect (offline, aborted): back to pending, no attempt counted; not
   * due before `notBefore` when given (a server's Retry-After that stopped the run).
   */
  | { readonly type: 'release'; readonly notBefore?: number }
  /** Dead-lettered: rejected by the server, or out of attempts. */
  | { readonly type: 'failed'; readonly error: MutationError; readonly countsAttempt: boolean }
  /** The server reported a version conflict; the record waits for a resolution. */
  | { readonly type: 'conflict'; readonly error: MutationError; readonly countsAttempt: boolean }
  /**
   * Send again now with this payload against the server's version (a conflict resolved by
   * client-wins or a merge). Counts an attempt, so a record that keeps conflicting is bounded.
   */
  | {
      readonly type: 'rebase';
      readonly data: JsonValue | null;
      readonly baseVersion: Version | null;
      readonly error: MutationError;
    }
  /** The local change is dropped (a conflict resolved by server-wins): it leaves the queue. */
  | { readonly type: 'drop' };

/** One entry of {@link MutationQueue.record}. */
export interface RecordEntry {
  readonly id: string;
  readonly outcome: MutationOutcome;
}

/** Limits and identity of one claim. */
export interface ClaimRequest {
  readonly scope: Scope;
  /** Claim token: results are recorded only by the holder of the claim. */
  readonly token: string;
  readonly claimTtlMs: number;
  /** At most this many mutations. */
  readonly maxCount: number;
  /** At most this many payload bytes (at least one mutation is claimed whatever its size). */
  readonly maxBytes: number;
}

/** Filter for {@link MutationQueue.list}. */
export interface ListOptions {
  /** Only mutations in these states. Default: all. */
  readonly state?: MutationState | readonly MutationState[];
  /** Only this entity type. */
  readonly entity?: string;
  /** Only this scope; `'all'` for every scope. */
  readonly scope?: Scope | 'all';
  /** Only mutations after this `seq` (keyset pagination). */
  readonly afterSeq?: number;
  /** At most this many. @default 100 (max 1000) */
  readonly limit?: number;
}

interface MutationRow {
  seq: number;
  id: string;
  key: string;
  scope: string;
  entity: string;
  entity_id: string;
  op: string;
  data: string | null;
  bytes: number;
  base_version: string | null;
  depends_on: string | null;
  state: MutationState;
  attempts: number;
  next_attempt_at: number;
  last_error: string | null;
  sent: number;
  created_at: number;
  updated_at: number;
}

const COLUMNS =
  'seq, id, key, scope, entity, entity_id, op, data, bytes, base_version, depends_on, state, attempts, next_attempt_at, last_error, sent, created_at, updated_at';

// Returned by a claim: every column but those the claim itself sets or the caller already knows
// (a quarter fewer values to copy out of SQLite per claimed row, and no scope key to parse).
const CLAIMED_COLUMNS =
  'seq, id, key, entity, entity_id, op, data, base_version, depends_on, attempts, next_attempt_at, last_error, created_at';

const INSERT_SQL = `INSERT INTO sync_mutations
  (id, key, scope, entity, entity_id, op, data, bytes, base_version, depends_on, state, attempts, next_attempt_at, created_at, updated_at)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?)`;
const INSERT_RETURNING_SQL = `${INSERT_SQL} RETURNING seq`;

const TAIL_SQL = `SELECT ${COLUMNS} FROM sync_mutations
  WHERE scope = ? AND entity = ? AND entity_id = ? ORDER BY seq DESC LIMIT 1`;

// Due heads: pending, due, no earlier mutation on the same record (whatever its state: an
// inflight, failed or conflicted predecessor blocks its record, never the whole queue), and every
// dependency confirmed (gone from the table).
const DUE_HEADS = `FROM sync_mutations AS m
  WHERE m.scope = ? AND m.state = 'pending' AND m.next_attempt_at <= ?
    AND NOT EXISTS (SELECT 1 FROM sync_mutations AS p
      WHERE p.scope = m.scope AND p.entity = m.entity AND p.entity_id = m.entity_id AND p.seq < m.seq)
    AND (m.depends_on IS NULL OR NOT EXISTS (
      SELECT 1 FROM json_each(m.depends_on) AS d JOIN sync_mutations AS q ON q.id = d.value))`;

// One statement claims the oldest due heads within the byte budget (the first is taken whatever
// its size): a single UPDATE is atomic on its own, so no other process can claim a row between
// the choice and the write, and a claim costs one commit without an explicit transaction.
// RETURNING gives rows in no particular order; the caller sorts them by seq.
const CLAIM_SQL = `UPDATE sync_mutations
  SET state = 'inflight', claim_token = ?, claim_expires_at = ?, sent = 1, updated_at = ?
  WHERE seq IN (
    SELECT seq FROM (
      SELECT m.seq, ROW_NUMBER() OVER (ORDER BY m.seq) AS n,
        SUM(m.bytes) OVER (ORDER BY m.seq ROWS UNBOUNDED PRECEDING) AS total
      FROM (SELECT m.seq, m.bytes ${DUE_HEADS} ORDER BY m.seq LIMIT ?) AS m)
    WHERE n = 1 OR total <= ?)
  RETURNING ${CLAIMED_COLUMNS}`;

/** A claimed row: the columns the claim did not set itself (scope, state and times are known). */
type ClaimedRow = Omit<MutationRow, 'scope' | 'bytes' | 'state' | 'sent' | 'updated_at'>;

function toClaimed(row: ClaimedRow, scope: Scope, now: number): Mutation {
  return buildMutation(row, scope, 'inflight', now);
}

function toMutation(row: MutationRow): Mutation {
  return buildMutation(row, parseScopeKey(row.scope), row.state, row.updated_at);
}

/** A `Mutation` from its row; scope, state and `updatedAt` come from the caller (a claim knows them). */
function buildMutation(row: ClaimedRow, scope: Scope, state: MutationState, updatedAt: number): Mutation {
  return {
    seq: row.seq,
    id: row.id,
    key: row.key,
    scope,
    entity: row.entity,
    entityId: row.entity_id,
    op: row.op,
    data: fromJsonColumn<JsonValue>(row.data),
    baseVersion: fromJsonColumn<Version>(row.base_version),
    dependsOn: fromJsonColumn<string[]>(row.depends_on) ?? [],
    state,
    attempts: row.attempts,
    nextAttemptAt: row.next_attempt_at,
    lastError: fromJsonColumn<MutationError>(row.last_error),
    createdAt: row.created_at,
    updatedAt,
  };
}

// A pending schedule stamped after `now` (the clock went back) or further ahead than the ceiling.
const CLAMP_NEEDED_SQL = `SELECT 1 FROM sync_mutations
  WHERE state = 'pending' AND (updated_at > ? OR next_attempt_at > ?) LIMIT 1`;

/** Links of a chain of id mappings followed at most (a cycle or a longer chain stops there). */
const MAX_ID_MAP_HOPS = 16;

/** Ids bound in one `IN (…)` list: under SQLite's smallest default variable limit (999). */
const MAX_IDS_PER_STATEMENT = 500;

function placeholders(count: number): string {
  return new Array(count).fill('?').join(', ');
}

/**
 * The durable mutation queue: every SQL statement that touches `sync_mutations`.
 *
 * Apps reach it through the engine (`engine.enqueue`, `engine.queue`); the engine's runs use
 * {@link MutationQueue.claim}, {@link MutationQueue.record} and {@link MutationQueue.recoverExpired}.
 * Every write is a single statement or one immediate transaction, so a crash at any instant leaves
 * the queue as it was before or after the call, never between (DESIGN.md invariant 1).
 */
export class MutationQueue {
  readonly #storage: GuardedStorage;
  readonly #clock: Clock;
  readonly #random: RandomSource;
  #lastScope: Scope | undefined;
  #lastScopeKey = '';

  constructor(storage: GuardedStorage, clock: Clock, random: RandomSource) {
    this.#storage = storage;
    this.#clock = clock;
    this.#random = random;
  }

  /**
   * Store one prepared mutation under `scope`, coalescing when its entity type asks for it.
   * Runs on `executor`: pass a transaction's executor to commit together with the app's own write.
   * Coalescing reads the record's last mutation then rewrites it, so when
   * {@link needsTransaction} says so the caller must pass a transaction's executor (another
   * process could otherwise claim the row between the read and the write).
   */
  static needsTransaction(prepared: PreparedMutation): boolean {
    return prepared.entity.coalesce && (prepared.op === 'update' || prepared.op === 'delete');
  }

  /**
   * Store several prepared mutations in order, on a transaction's executor. One look at the id
   * map serves them all: while no record of the scope has a server-assigned id (the usual case),
   * no mutation needs translating.
   */
  async insertMany(
    tx: Executor,
    scope: Scope,
    inputs: readonly PreparedMutation[],
  ): Promise<EnqueuedMutation[]> {
    const mapped = await tx.all('SELECT 1 FROM sync_id_map WHERE scope = ? LIMIT 1', [scopeKey(scope)]);
    const out: EnqueuedMutation[] = [];
    for (const input of inputs)
      out.push(await this.insert(tx, scope, input, { idMapEmpty: mapped.length === 0 }));
    return out;
  }

  async insert(
    executor: Executor,
    scope: Scope,
    input: PreparedMutation,
    hints: { readonly idMapEmpty?: boolean } = {},
  ): Promise<EnqueuedMutation> {
    // The engine passes the same frozen scope object for every enqueue of a session.
    if (scope !== this.#lastScope || !Object.isFrozen(scope)) {
      this.#lastScope = scope;
      this.#lastScopeKey = scopeKey(scope);
    }
    const key = this.#lastScopeKey;
    const prepared = hints.idMapEmpty ? input : await this.#translateIds(executor, key, input);
    if (MutationQueue.needsTransaction(prepared)) {
      const [tail] = await executor.all<MutationRow>(TAIL_SQL, [
        key,
        prepared.entity.name,
        prepared.entityId,
      ]);
      if (tail && tail.state === 'pending' && tail.sent === 0) {
        const merged = await this.#coalesce(executor, tail, prepared);
        if (merged) return merged;
      }
    }
    const now = this.#clock.now();
    const id = uuidV7(now, this.#random);
    const idempotencyKey = uuidV4(this.#random);
    const baseVersion = prepared.baseVersion === null ? null : JSON.stringify(prepared.baseVersion);
    const dependsOn = prepared.dependsOn.length === 0 ? null : JSON.stringify(prepared.dependsOn);
    const params = [
      id,
      idempotencyKey,
      key,
      prepared.entity.name,
      prepared.entityId,
      prepared.op,
      prepared.dataJson,
      prepared.bytes,
      baseVersion,
      dependsOn,
      now,
      now,
      now,
    ];
    // seq is the rowid: free from drivers that report it, else through RETURNING (one statement
    // either way: another process or tab cannot claim and delete the row before seq is known).
    let seq: number;
    if (this.#storage.adapter.capabilities?.insertRowid === true) {
      const { lastInsertRowid } = await executor.run(INSERT_SQL, params);
      seq = Number(lastInsertRowid);
      if (!Number.isSafeInteger(seq)) {
        // An adapter (or a wrapper of one) that declares insertRowid but did not report it.
        const [row] = await executor.all<{ seq: number }>('SELECT seq FROM sync_mutations WHERE id = ?', [
          id,
        ]);
        seq = Number(row?.seq ?? -1);
      }
    } else {
      const rows = await executor.all<{ seq: number }>(INSERT_RETURNING_SQL, params);
      seq = Number(rows[0]!.seq);
    }
    return {
      seq,
      id,
      key: idempotencyKey,
      scope,
      entity: prepared.entity.name,
      entityId: prepared.entityId,
      op: prepared.op,
      data: prepared.data,
      baseVersion: prepared.baseVersion,
      dependsOn: prepared.dependsOn,
      state: 'pending',
      attempts: 0,
      nextAttemptAt: now,
      lastError: null,
      createdAt: now,
      updatedAt: now,
      coalesced: 'none',
    };
  }

  /**
   * Records created offline that the server has since given its own id are queued under that id,
   * and payload references to them (the entity type's `references`) are rewritten: the app may
   * still hold the client id in its UI when it enqueues the next edit.
   */
  async #translateIds(
    executor: Executor,
    scope: string,
    prepared: PreparedMutation,
  ): Promise<PreparedMutation> {
    // Mappings chain when a record is created again under an id the server had already mapped:
    // the queued rows were renamed to the first server id, and a create among them got a second
    // one. The record the app means is at the end of the chain.
    const lookup = async (entity: string, clientId: string): Promise<string | undefined> => {
      let found: string | undefined;
      const seen = new Set([clientId]);
      for (let id = clientId; seen.size <= MAX_ID_MAP_HOPS; ) {
        const [row] = await executor.all<{ server_id: string }>(
          'SELECT server_id FROM sync_id_map WHERE scope = ? AND entity = ? AND client_id = ?',
          [scope, entity, id],
        );
        if (row === undefined || seen.has(row.server_id)) break;
        found = row.server_id;
        seen.add(found);
        id = found;
      }
      return found;
    };
    // A create names a new record: its client id is not the old record's, even if a record once
    // created under that id got a server id. Edits of a client id whose new create is still queued
    // belong to that new record too: they are not translated either.
    let entityId = prepared.entityId;
    let dependsOn = prepared.dependsOn;
    if (prepared.op === 'create') {
      // But the app sees one record under its client id: a re-create waits for whatever is still
      // queued of the record that id was mapped to (a delete, a first create's edits), or the two
      // would be in flight together in no guaranteed order (invariant 3).
      const mapped = await lookup(prepared.entity.name, prepared.entityId);
      if (mapped !== undefined) {
        const [last] = await executor.all<{ id: string }>(
          'SELECT id FROM sync_mutations WHERE scope = ? AND entity = ? AND entity_id = ? ORDER BY seq DESC LIMIT 1',
          [scope, prepared.entity.name, mapped],
        );
        if (last !== undefined && !dependsOn.includes(last.id)) dependsOn = [...dependsOn, last.id];
      }
    } else {
      const mapped = await lookup(prepared.entity.name, prepared.entityId);
      // Only when a mapping exists (rare) is it worth asking whether a new create is queued.
      if (mapped !== undefined) {
        const recreated = await executor.all<{ n: number }>(
          "SELECT 1 AS n FROM sync_mutations WHERE scope = ? AND entity = ? AND entity_id = ? AND op = 'create' LIMIT 1",
          [scope, prepared.entity.name, prepared.entityId],
        );
        if (recreated.length === 0) entityId = mapped;
      }
    }
    let data = prepared.data;
    if (
      prepared.entity.references.size > 0 &&
      typeof data === 'object' &&
      data !== null &&
      !Array.isArray(data)
    ) {
      for (const [field, target] of prepared.entity.references) {
        const value = data[field];
        if (typeof value !== 'string') continue;
        const serverId = await lookup(target, value);
        if (serverId !== undefined) data = { ...data, [field]: serverId };
      }
    }
    if (entityId === prepared.entityId && data === prepared.data && dependsOn === prepared.dependsOn) {
      return prepared;
    }
    const dataJson = data === prepared.data ? prepared.dataJson : JSON.stringify(data);
    return {
      ...prepared,
      entityId,
      dependsOn,
      data,
      dataJson,
      bytes: dataJson === null ? 0 : utf8Length(dataJson),
    };
  }

  async #coalesce(
    executor: Executor,
    tail: MutationRow,
    prepared: PreparedMutation,
  ): Promise<EnqueuedMutation | undefined> {
    const last = toMutation(tail);
    // A new dependency could point at something queued after `last` (or at `last` itself): merged
    // into `last`, it would make `last` wait for a later mutation, a cycle that never clears.
    const lastDeps = new Set(last.dependsOn);
    if (prepared.dependsOn.some((dep) => !lastDeps.has(dep))) return undefined;
    const decision = decideCoalesce(last, prepared);
    if (decision.kind === 'append') return undefined;
    const now = this.#clock.now();
    if (decision.kind === 'cancel') {
      // Another mutation waits for this create (a child created under it): cancelling would let
      // the child go out as if its parent existed. Queue the delete instead.
      const dependants = await executor.all<{ seq: number }>(
        'SELECT m.seq FROM sync_mutations AS m, json_each(m.depends_on) AS d WHERE m.depends_on IS NOT NULL AND d.value = ? LIMIT 1',
        [last.id],
      );
      if (dependants.length > 0) return undefined;
      await executor.run('DELETE FROM sync_mutations WHERE seq = ?', [tail.seq]);
      return { ...last, coalesced: 'cancelled' };
    }
    const dataJson = decision.data === null ? null : JSON.stringify(decision.data);
    const bytes = dataJson === null ? 0 : utf8Length(dataJson);
    // A merge that would outgrow the limit is queued separately instead: both parts were valid.
    if (bytes > prepared.entity.maxPayloadBytes) return undefined;
    const dependsOn = last.dependsOn;
    await executor.run(
      'UPDATE sync_mutations SET op = ?, data = ?, bytes = ?, depends_on = ?, updated_at = ? WHERE seq = ?',
      [
        decision.op,
        dataJson,
        bytes,
        dependsOn.length === 0 ? null : JSON.stringify(dependsOn),
        now,
        tail.seq,
      ],
    );
    return { ...last, op: decision.op, data: decision.data, dependsOn, updatedAt: now, coalesced: 'merged' };
  }

  /**
   * Claim the next due mutations of `scope` for sending, oldest first: each is the earliest
   * unconfirmed mutation of its record (DESIGN.md invariant 3, so a record never has two in
   * flight) with every dependency confirmed. Claimed rows become `inflight` with the token and
   * an expiry; a run that dies leaves them to {@link MutationQueue.recoverExpired}.
   */
  async claim(request: ClaimRequest): Promise<Mutation[]> {
    const now = this.#clock.now();
    const rows = await this.#storage.all<ClaimedRow>(CLAIM_SQL, [
      request.token,
      now + request.claimTtlMs,
      now,
      scopeKey(request.scope),
      now,
      request.maxCount,
      request.maxBytes,
    ]);
    rows.sort((a, b) => a.seq - b.seq);
    return rows.map((row) => toClaimed(row, request.scope, now));
  }

  /**
   * Record the outcome of claimed mutations in one transaction: all of them or none (FAULTS.md 4).
   * An entry whose claim is no longer held under `token` (it expired and was recovered) is skipped
   * and reported in `stale`: its result belongs to whoever holds the claim now.
   */
  async record(
    token: string,
    entries: readonly RecordEntry[],
    also?: (tx: GuardedExecutor, recorded: readonly RecordEntry[]) => Promise<void>,
  ): Promise<{ recorded: number; stale: string[] }> {
    if (entries.length === 0) return { recorded: 0, stale: [] };
    return this.#storage.transaction('immediate', async (tx) => {
      const done: RecordEntry[] = [];
      const now = this.#clock.now();
      let recorded = 0;
      const stale: string[] = [];
      // Confirmations are most of a drain: one DELETE per chunk instead of one per mutation.
      const deleted = new Set<string>();
      const removable = entries.filter((e) => e.outcome.type === 'confirmed' || e.outcome.type === 'drop');
      for (let i = 0; i < removable.length; i += MAX_IDS_PER_STATEMENT) {
        const chunk = removable.slice(i, i + MAX_IDS_PER_STATEMENT);
        const rows = await tx.all<{ id: string }>(
          `DELETE FROM sync_mutations WHERE claim_token = ? AND id IN (${placeholders(chunk.length)}) RETURNING id`,
          [token, ...chunk.map((e) => e.id)],
        );
        for (const row of rows) deleted.add(row.id);
      }
      for (const { id, outcome } of entries) {
        let changes: number;
        switch (outcome.type) {
          case 'drop':
          case 'confirmed':
            changes = deleted.has(id) ? 1 : 0;
            break;
          case 'retry':
            ({ changes } = await tx.run(
              `UPDATE sync_mutations SET state = 'pending', attempts = attempts + ?, next_attempt_at = ?, last_error = ?,
                 claim_token = NULL, claim_expires_at = NULL, updated_at = ? WHERE id = ? AND claim_token = ?`,
              [
                outcome.countsAttempt ? 1 : 0,
                outcome.nextAttemptAt,
                JSON.stringify(outcome.error),
                now,
                id,
                token,
              ],
            ));
            break;
          case 'release':
            ({ changes } = await tx.run(
              `UPDATE sync_mutations SET state = 'pending', next_attempt_at = MAX(next_attempt_at, ?),
                 claim_token = NULL, claim_expires_at = NULL, updated_at = ?
               WHERE id = ? AND claim_token = ?`,
              [outcome.notBefore ?? 0, now, id, token],
            ));
            break;
          case 'failed':
          case 'conflict':
            ({ changes } = await tx.run(
              `UPDATE sync_mutations SET state = ?, attempts = attempts + ?, last_error = ?,
                 claim_token = NULL, claim_expires_at = NULL, updated_at = ? WHERE id = ? AND claim_token = ?`,
              [outcome.type, outcome.countsAttempt ? 1 : 0, JSON.stringify(outcome.error), now, id, token],
            ));
            break;
          case 'rebase': {
            const dataJson = outcome.data === null ? null : JSON.stringify(outcome.data);
            ({ changes } = await tx.run(
              // A new idempotency key: the conflict was a definitive "not applied" for the old one, and
              // the server replays its stored answer to the old key whatever the new content.
              `UPDATE sync_mutations SET state = 'pending', key = ?, data = ?, bytes = ?, base_version = ?,
                 attempts = attempts + 1, next_attempt_at = ?, last_error = ?, claim_token = NULL, claim_expires_at = NULL,
                 updated_at = ?
               WHERE id = ? AND claim_token = ?`,
              [
                uuidV4(this.#random),
                dataJson,
                dataJson === null ? 0 : utf8Length(dataJson),
                outcome.baseVersion === null ? null : JSON.stringify(outcome.baseVersion),
                now,
                JSON.stringify(outcome.error),
                now,
                id,
                token,
              ],
            ));
            break;
          }
        }
        if (changes === 0) stale.push(id);
        else {
          recorded++;
          done.push({ id, outcome });
        }
      }
      // Bookkeeping that must agree with the queue (conflicts, notices, id rewrites) commits with it.
      if (also && done.length > 0) await also(tx, done);
      return { recorded, stale };
    });
  }

  /**
   * Push back the expiry of every claim held under `token`: a run renews them with its lease
   * before each request, so a long round never has its claims recovered (and resent by another
   * run) while its requests are still in flight.
   */
  async extendClaims(token: string, claimTtlMs: number): Promise<void> {
    await this.#storage.run(
      "UPDATE sync_mutations SET claim_expires_at = ?, updated_at = ? WHERE claim_token = ? AND state = 'inflight'",
      [this.#clock.now() + claimTtlMs, this.#clock.now(), token],
    );
  }

  /**
   * Return inflight mutations whose claim expired to pending, without counting an attempt: the
   * run that claimed them died or lost its lease. A claim stamped in the future (its `updated_at`,
   * set at claim and renewal, is after now) can only come from a wall clock that went back: it is
   * re-based on the new clock with the time it had left. The test never uses this process's own
   * TTL: processes may be configured with different ones.
   *
   * @returns how many were recovered.
   */
  async recoverExpired(): Promise<number> {
    const now = this.#clock.now();
    return this.#storage.transaction('immediate', async (tx) => {
      // Claims stamped in the future (the wall clock went back): re-base them on the new clock,
      // keeping the time they had left. Treating them as expired would let a second run resend
      // requests a live run still has in flight; keeping them would strand them until the clock
      // catches up.
      await tx.run(
        `UPDATE sync_mutations SET claim_expires_at = ? + MAX(0, claim_expires_at - updated_at), updated_at = ?
         WHERE state = 'inflight' AND updated_at > ?`,
        [now, now, now],
      );
      const { changes } = await tx.run(
        `UPDATE sync_mutations SET state = 'pending', claim_token = NULL, claim_expires_at = NULL, updated_at = ?
         WHERE state = 'inflight' AND claim_expires_at <= ?`,
        [now, now],
      );
      return changes;
    });
  }

  /**
   * Pull schedules that lie implausibly far ahead back to `now + clampToMs` (FAULTS.md 29): when
   * the wall clock jumps back, a retry scheduled for "in 30 s" would otherwise wait a day.
   * Anything further ahead than `ceilingMs` (the longest delay the policy or a Retry-After could
   * have produced) cannot be a real schedule.
   *
   * @returns how many were clamped.
   */
  async clampFutureSchedules(ceilingMs: number, clampToMs: number): Promise<number> {
    const now = this.#clock.now();
    // Nearly always there is nothing to move: a read instead of a write transaction on every run
    // and every scheduling decision.
    const [stale] = await this.#storage.all(CLAMP_NEEDED_SQL, [now, now + ceilingMs]);
    if (stale === undefined) return 0;
    return this.#storage.transaction('immediate', async (tx) => {
      // Scheduled "in the future" relative to a clock that has since gone back: keep the delay
      // that was asked for (at most the ceiling), counted from now. A mutation that was due stays
      // due, instead of waiting for the clock to catch up.
      const rebased = await tx.run(
        `UPDATE sync_mutations SET next_attempt_at = ? + MIN(?, MAX(0, next_attempt_at - updated_at)), updated_at = ?
         WHERE state = 'pending' AND updated_at > ?`,
        [now, ceilingMs, now, now],
      );
      const clamped = await tx.run(
        "UPDATE sync_mutations SET next_attempt_at = ?, updated_at = ? WHERE state = 'pending' AND next_attempt_at > ?",
        [now + clampToMs, now, now + ceilingMs],
      );
      return rebased.changes + clamped.changes;
    });
  }

  /**
   * When the next mutation of `scope` could be sent: the earliest `nextAttemptAt` among pending
   * mutations that head their record with every dependency confirmed (a mutation stuck behind a
   * failed one does not count: waking up for it would find nothing to send). `null` when none.
   */
  async nextDueAt(scope: Scope, executor: Executor = this.#storage): Promise<number | null> {
    const rows = await executor.all<{ due: number | null }>(
      `SELECT MIN(m.next_attempt_at) AS due FROM sync_mutations AS m
       WHERE m.scope = ? AND m.state = 'pending'
         AND NOT EXISTS (SELECT 1 FROM sync_mutations AS p
           WHERE p.scope = m.scope AND p.entity = m.entity AND p.entity_id = m.entity_id AND p.seq < m.seq)
         AND (m.depends_on IS NULL OR NOT EXISTS (
           SELECT 1 FROM json_each(m.depends_on) AS d JOIN sync_mutations AS q ON q.id = d.value))`,
      [scopeKey(scope)],
    );
    const due = rows[0]?.due;
    return due === null || due === undefined ? null : Number(due);
  }

  /**
   * Whether a run would find nothing to do: no claim of any scope to recover, no mutation of
   * `scope` due at `now`, and no pending schedule that {@link clampFutureSchedules} would move
   * (stamped after `now`, or further ahead than `ceilingMs`).
   */
  async isIdle(executor: Executor, scope: Scope, now: number, ceilingMs: number): Promise<boolean> {
    const busy = await executor.all(
      `SELECT 1 FROM sync_mutations WHERE state = 'inflight'
       UNION ALL SELECT 1 FROM (SELECT 1 FROM sync_mutations
         WHERE scope = ? AND state = 'pending' AND next_attempt_at <= ? LIMIT 1)
       LIMIT 1`,
      [scopeKey(scope), now],
    );
    if (busy.length > 0) return false;
    return (await executor.all(CLAMP_NEEDED_SQL, [now, now + ceilingMs])).length === 0;
  }

  /** How many mutations of `scope` are pending and due now (for progress totals). */
  async countDue(scope: Scope): Promise<number> {
    const rows = await this.#storage.all<{ n: number }>(
      "SELECT COUNT(*) AS n FROM sync_mutations WHERE scope = ? AND state = 'pending' AND next_attempt_at <= ?",
      [scopeKey(scope), this.#clock.now()],
    );
    return Number(rows[0]?.n ?? 0);
  }

  /** Counts per state and the age of the oldest mutation; one scope, or every scope. */
  async stats(scope: Scope | 'all', executor: Executor = this.#storage): Promise<QueueStats> {
    // Counts come from the (scope, state) index alone; the oldest mutation is the first in queue
    // order (seq), one index step, rather than a MIN(created_at) that reads every row.
    const [counted, first] =
      scope === 'all'
        ? [
            await executor.all<{ state: MutationState; n: number }>(
              'SELECT state, COUNT(*) AS n FROM sync_mutations GROUP BY state',
            ),
            await executor.all<{ created_at: number }>(
              'SELECT created_at FROM sync_mutations ORDER BY seq LIMIT 1',
            ),
          ]
        : [
            await executor.all<{ state: MutationState; n: number }>(
              'SELECT state, COUNT(*) AS n FROM sync_mutations WHERE scope = ? GROUP BY state',
              [scopeKey(scope)],
            ),
            await executor.all<{ created_at: number }>(
              'SELECT created_at FROM sync_mutations WHERE scope = ? ORDER BY seq LIMIT 1',
              [scopeKey(scope)],
            ),
          ];
    const counts: Record<MutationState, number> = { pending: 0, inflight: 0, failed: 0, conflict: 0 };
    for (const row of counted) counts[row.state] = Number(row.n);
    const total = counts.pending + counts.inflight + counts.failed + counts.conflict;
    const oldest = first[0]?.created_at;
    return {
      ...counts,
      total,
      oldestAgeMs: oldest === undefined ? null : Math.max(0, this.#clock.now() - Number(oldest)),
    };
  }

  /** List mutations in queue order. */
  async list(options: ListOptions, activeScope: Scope | undefined): Promise<Mutation[]> {
    const where: string[] = [];
    const params: (string | number)[] = [];
    const scope = options.scope ?? activeScope ?? 'all';
    if (scope !== 'all') {
      where.push('scope = ?');
      params.push(scopeKey(scope));
    }
    if (options.state !== undefined) {
      const states = typeof options.state === 'string' ? [options.state] : [...options.state];
      where.push(`state IN (${placeholders(states.length)})`);
      params.push(...states);
    }
    if (options.entity !== undefined) {
      where.push('entity = ?');
      params.push(options.entity);
    }
    if (options.afterSeq !== undefined) {
      where.push('seq > ?');
      params.push(options.afterSeq);
    }
    const limit = options.limit ?? 100;
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
      throw new ValidationError('VALIDATION_FAILED', [
        { path: ['limit'], message: `expected an integer from 1 to 1000, got ${String(limit)}` },
      ]);
    }
    params.push(limit);
    const rows = await this.#storage.all<MutationRow>(
      `SELECT ${COLUMNS} FROM sync_mutations ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY seq LIMIT ?`,
      params,
    );
    return rows.map(toMutation);
  }

  /** One mutation by id, or `undefined` when it is not (or no longer) queued. */
  async get(id: string): Promise<Mutation | undefined> {
    const rows = await this.#storage.all<MutationRow>(`SELECT ${COLUMNS} FROM sync_mutations WHERE id = ?`, [
      id,
    ]);
    return rows[0] && toMutation(rows[0]);
  }

  /**
   * Make failed mutations pending again with a fresh attempt count, and pending ones due now.
   * Mutations in other states are left alone.
   *
   * @returns the ids made due.
   */
  async retry(
    selection: readonly string[] | { readonly allFailed: true },
    scope: Scope | 'all',
  ): Promise<string[]> {
    return this.#storage.transaction('immediate', async (tx) => {
      const now = this.#clock.now();
      const scopeWhere = scope === 'all' ? '' : ' AND scope = ?';
      const scopeParams = scope === 'all' ? [] : [scopeKey(scope)];
      const rows = Array.isArray(selection)
        ? await this.#selectByIds(tx, selection as readonly string[], "state IN ('failed', 'pending')")
        : await tx.all<{ seq: number; id: string }>(
            `SELECT seq, id FROM sync_mutations WHERE state = 'failed'${scopeWhere} ORDER BY seq`,
            scopeParams,
          );
      for (const row of rows) {
        // A rejected mutation was definitively not applied, and the server replays its stored
        // rejection to the same key: retrying it needs a new key. One that ran out of attempts may
        // have been applied (its last answer was lost): it keeps its key, so a resend is deduplicated.
        await tx.run(
          `UPDATE sync_mutations SET
             key = CASE WHEN state = 'failed' AND COALESCE(json_extract(last_error, '$.code'), '') != 'exhausted'
               THEN ? ELSE key END,
             attempts = CASE WHEN state = 'failed' THEN 0 ELSE attempts END,
             state = 'pending', next_attempt_at = ?, updated_at = ? WHERE seq = ?`,
          [uuidV4(this.#random), now, now, row.seq],
        );
      }
      return rows.map((row) => row.id);
    });
  }

  /**
   * Remove mutations for good (the app gives up on them): later mutations on their records, and
   * mutations depending on them, become sendable. An inflight mutation cannot be discarded (the
   * server may be applying it right now): the whole call is refused with `MUTATION_INFLIGHT`.
   *
   * @returns the ids removed.
   */
  async discard(ids: readonly string[]): Promise<string[]> {
    return this.#storage.transaction('immediate', async (tx) => {
      const rows = await this.#selectByIds(tx, ids, '1 = 1');
      const inflight = rows.filter((row) => row.state === 'inflight');
      if (inflight.length > 0) {
        throw new StateError(
          'MUTATION_INFLIGHT',
          `cannot discard ${inflight.length} mutation(s) being sent (first: ${inflight[0]!.id}); retry after the run ends`,
        );
      }
      const now = this.#clock.now();
      for (const row of rows) {
        await tx.run('DELETE FROM sync_mutations WHERE seq = ?', [row.seq]);
        if (row.state === 'conflict') {
          // The user dealt with the conflict by dropping the change: it is no longer open.
          await tx.run(
            "UPDATE sync_conflicts SET resolved_at = ?, resolution = 'discarded' WHERE mutation_id = ? AND resolved_at IS NULL",
            [now, row.id],
          );
          await tx.run('UPDATE sync_notices SET seen_at = ? WHERE dedupe_key = ? AND seen_at IS NULL', [
            now,
            `conflict:${row.id}`,
          ]);
        }
      }
      return rows.map((row) => row.id);
    });
  }

  async #selectByIds(
    tx: Executor,
    ids: readonly string[],
    condition: string,
  ): Promise<{ seq: number; id: string; state: MutationState }[]> {
    const out: { seq: number; id: string; state: MutationState }[] = [];
    for (let i = 0; i < ids.length; i += MAX_IDS_PER_STATEMENT) {
      const chunk = ids.slice(i, i + MAX_IDS_PER_STATEMENT);
      out.push(
        ...(await tx.all<{ seq: number; id: string; state: MutationState }>(
          `SELECT seq, id, state FROM sync_mutations WHERE id IN (${placeholders(chunk.length)}) AND ${condition} ORDER BY seq`,
          chunk,
        )),
      );
    }
    return out;
  }
}
