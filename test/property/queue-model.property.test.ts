/**
 * Model-based test of the durable mutation queue (DESIGN.md invariants 1 and 3).
 *
 * The real system is the queue as an app and its sync runs use it: `createSyncEngine` over
 * better-sqlite3 on a temporary FILE (enqueue, transaction, queue.retry/discard/list), and a
 * `MutationQueue` over a second connection to the same file standing in for a sync run
 * (claim/record/recoverExpired), both on one manual clock. The model is a plain array of rows.
 * After every command the whole table is compared with the model: lost = ∅ and unexpected = ∅
 * (Jepsen's queue checker), and every field agrees.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import {
  createSyncEngine,
  type EnqueuedMutation,
  type EntityOptions,
  type JsonObject,
  type JsonValue,
  type Mutation,
  type MutationError,
  type MutationState,
  StateError,
  type SyncEngine,
  type Version,
} from 'sync-core';
import { describe, expect, it } from 'vitest';
import { createBetterSqlite3Storage } from '../../adapters/better-sqlite3/index.js';
import { type MutationOutcome, MutationQueue, type RecordEntry } from '../../src/queue/mutation-queue.js';
import { GuardedStorage } from '../../src/storage/guarded-storage.js';
import { manualClock, seededRandom, tempDir } from '../helpers/storage-factories.js';

const LONG = process.env.SYNC_CORE_LONG !== undefined && process.env.SYNC_CORE_LONG !== '';
const NUM_RUNS = LONG ? 2000 : 200;
const MAX_COMMANDS = 60;
const TEST_TIMEOUT_MS = LONG ? 1_800_000 : 120_000;

const SCOPE = { userId: 'u1', orgId: 'o1' } as const;
const CLAIM_TTL_MS = 60_000;
const ENTITY_TYPES = ['activity', 'contact'] as const;
const ENTITY_IDS = ['r0', 'r1', 'r2'] as const;
const FIELDS = ['title', 'minutes', 'note'] as const;

type EntityType = (typeof ENTITY_TYPES)[number];
type Op = 'create' | 'update' | 'delete';

// ---------------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------------

interface ModelRow {
  seq: number;
  id: string;
  key: string;
  entity: EntityType;
  entityId: string;
  op: Op;
  data: JsonValue | null;
  bytes: number;
  baseVersion: Version | null;
  dependsOn: string[];
  state: MutationState;
  attempts: number;
  nextAttemptAt: number;
  lastError: MutationError | null;
  claimToken: string | null;
  claimExpiresAt: number | null;
  /** Claimed at least once: from then on the row is immutable (never coalesced into). */
  sent: boolean;
  createdAt: number;
  updatedAt: number;
}

interface Claim {
  readonly token: string;
  readonly ids: readonly string[];
}

interface QueueModel {
  now: number;
  readonly coalescing: ReadonlySet<EntityType>;
  /** Queued rows, in seq order. */
  rows: ModelRow[];
  /** Every id ever stored, in enqueue order (gone ones included: dependsOn/retry/discard pick from it). */
  readonly stored: string[];
  /** Record of every id ever stored. */
  readonly recordOf: Map<string, string>;
  /** Enqueue ordinal of every id ever stored. */
  readonly ordinal: Map<string, number>;
  readonly claims: Claim[];
  /** Rows of the app's own table written by committed transactions. */
  appRows: number;
}

function recordKey(entity: string, entityId: string): string {
  return `${entity}/${entityId}`;
}

function sameRecord(a: ModelRow, b: ModelRow): boolean {
  return a.entity === b.entity && a.entityId === b.entityId;
}

function byteLength(data: JsonValue | null): number {
  return data === null ? 0 : Buffer.byteLength(JSON.stringify(data), 'utf8');
}

function toMutation(row: ModelRow): Mutation {
  return {
    seq: row.seq,
    id: row.id,
    key: row.key,
    scope: SCOPE,
    entity: row.entity,
    entityId: row.entityId,
    op: row.op,
    data: row.data,
    baseVersion: row.baseVersion,
    dependsOn: row.dependsOn,
    state: row.state,
    attempts: row.attempts,
    nextAttemptAt: row.nextAttemptAt,
    lastError: row.lastError,
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
  };
}

function findRow(model: Readonly<QueueModel>, id: string): ModelRow | undefined {
  return model.rows.find((row) => row.id === id);
}

/**
 * What a claim must return: pending, due, the head of its record (no earlier queued mutation of
 * the same record, whatever its state), every dependency gone from the queue; in seq order; the
 * first `maxCount`, then cut where the next would exceed `maxBytes` (the first is always taken).
 */
function expectedClaim(model: Readonly<QueueModel>, maxCount: number, maxBytes: number): ModelRow[] {
  const queued = new Set(model.rows.map((row) => row.id));
  const due = model.rows.filter(
    (row) =>
      row.state === 'pending' &&
      row.nextAttemptAt <= model.now &&
      !model.rows.some((earlier) => earlier.seq < row.seq && sameRecord(earlier, row)) &&
      row.dependsOn.every((dep) => !queued.has(dep)),
  );
  const out: ModelRow[] = [];
  let bytes = 0;
  for (const row of due.slice(0, maxCount)) {
    if (out.length > 0 && bytes + row.bytes > maxBytes) break;
    bytes += row.bytes;
    out.push(row);
  }
  return out;
}

type CoalescePrediction =
  | { readonly kind: 'append' }
  | { readonly kind: 'merge'; readonly tail: ModelRow; readonly op: Op; readonly data: JsonValue | null }
  | { readonly kind: 'cancel'; readonly tail: ModelRow };

/**
 * The coalescing rules of DESIGN.md/EntityOptions.coalesce, written independently of
 * src/queue/coalesce.ts: only into the record's LAST queued mutation, and only while it is pending
 * and was never claimed. Two guards keep dependencies sound: a new mutation bringing a dependency
 * the last one lacks is appended (merged, the dependency would make the earlier mutation wait for
 * a later one, possibly itself: a record blocked for good); a delete does not cancel a create that
 * another queued mutation depends on (the dependant would go out as if its parent existed).
 */
function predictCoalesce(
  model: Readonly<QueueModel>,
  input: EnqueueInput,
  dependsOn: readonly string[],
): CoalescePrediction {
  if (!model.coalescing.has(input.entity) || input.op === 'create') return { kind: 'append' };
  const ofRecord = model.rows.filter((row) => row.entity === input.entity && row.entityId === input.entityId);
  const tail = ofRecord[ofRecord.length - 1];
  if (tail === undefined || tail.state !== 'pending' || tail.sent) return { kind: 'append' };
  if (dependsOn.some((dep) => !tail.dependsOn.includes(dep))) return { kind: 'append' };
  if (input.op === 'update' && (tail.op === 'create' || tail.op === 'update')) {
    return {
      kind: 'merge',
      tail,
      op: tail.op,
      data: { ...(tail.data as JsonObject), ...(input.data as JsonObject) },
    };
  }
  if (input.op === 'delete' && tail.op === 'create') {
    const hasDependant = model.rows.some((row) => row.dependsOn.includes(tail.id));
    return hasDependant ? { kind: 'append' } : { kind: 'cancel', tail };
  }
  if (input.op === 'delete' && tail.op === 'update') {
    return { kind: 'merge', tail, op: 'delete', data: input.data ?? null };
  }
  return { kind: 'append' };
}

// ---------------------------------------------------------------------------------------------
// The real system
// ---------------------------------------------------------------------------------------------

interface RawRow {
  id: string;
  claim_token: string | null;
  claim_expires_at: number | null;
  sent: number;
  bytes: number;
}

/** The engine (the app's side) and a MutationQueue on a second connection (a sync run's side). */
class QueueUnderTest {
  readonly clock = manualClock();
  readonly #file: string;
  readonly #entities: Readonly<Record<string, EntityOptions>>;
  // One random source for the whole life of the database: a reopened engine must not replay the
  // ids it already handed out.
  readonly #random = seededRandom(20_261_125);
  #engine: SyncEngine | undefined;
  #runStorage: GuardedStorage | undefined;
  #run: MutationQueue | undefined;
  #clientId: string | undefined;
  /** Confirmed ids per record, in the order the queue recorded them. */
  readonly confirmed = new Map<string, string[]>();

  constructor(file: string, entities: Readonly<Record<string, EntityOptions>>) {
    this.#file = file;
    this.#entities = entities;
  }

  get engine(): SyncEngine {
    if (this.#engine === undefined) throw new Error('not connected');
    return this.#engine;
  }

  get run(): MutationQueue {
    if (this.#run === undefined) throw new Error('not connected');
    return this.#run;
  }

  get runStorage(): GuardedStorage {
    if (this.#runStorage === undefined) throw new Error('not connected');
    return this.#runStorage;
  }

  async connect(): Promise<void> {
    // synchronous=NORMAL: durable across process crashes and closes, which is what Reopen tests;
    // power-loss durability (FULL) is the adapter's own test and only costs fsyncs here.
    const engine = createSyncEngine({
      storage: createBetterSqlite3Storage(new Database(this.#file), { synchronous: 'NORMAL' }),
      entities: this.#entities,
      clock: this.clock,
      random: this.#random,
    });
    this.#engine = engine;
    await engine.open();
    await engine.start(SCOPE);
    if (this.#clientId === undefined) {
      this.#clientId = engine.clientId;
      await engine.transaction((tx) =>
        tx.run('CREATE TABLE app_rows (id INTEGER PRIMARY KEY, entity_id TEXT NOT NULL)'),
      );
    } else {
      expect(engine.clientId).toBe(this.#clientId);
    }
    const runStorage = new GuardedStorage(
      createBetterSqlite3Storage(new Database(this.#file), { synchronous: 'NORMAL' }),
    );
    this.#runStorage = runStorage;
    await runStorage.open();
    this.#run = new MutationQueue(runStorage, this.clock, this.#random);
  }

  async close(): Promise<void> {
    await this.#engine?.close();
    await this.#runStorage?.close();
    this.#engine = undefined;
    this.#runStorage = undefined;
    this.#run = undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Checks run after every command
// ---------------------------------------------------------------------------------------------

function assertConfirmationOrder(model: Readonly<QueueModel>, real: QueueUnderTest): void {
  for (const [record, ids] of real.confirmed) {
    const ordinals = ids.map((id) => model.ordinal.get(id) ?? -1);
    const sorted = [...ordinals].sort((a, b) => a - b);
    expect(ordinals, `confirmations of ${record} out of enqueue order`).toEqual(sorted);
    expect(new Set(ids).size, `a mutation of ${record} confirmed twice`).toBe(ids.length);
  }
}

async function assertMatchesModel(model: Readonly<QueueModel>, real: QueueUnderTest): Promise<void> {
  const listed = await real.engine.queue.list({ scope: 'all', limit: 1000 });
  const realIds = listed.map((m) => m.id);
  const modelIds = model.rows.map((row) => row.id);
  const lost = modelIds.filter((id) => !realIds.includes(id));
  const unexpected = realIds.filter((id) => !modelIds.includes(id));
  expect({ lost, unexpected }).toEqual({ lost: [], unexpected: [] });
  expect(realIds, 'queue order').toEqual(modelIds);
  expect(listed).toEqual(model.rows.map(toMutation));

  const raw = await real.runStorage.all<RawRow>(
    'SELECT id, claim_token, claim_expires_at, sent, bytes FROM sync_mutations ORDER BY seq',
  );
  expect(raw).toEqual(
    model.rows.map((row) => ({
      id: row.id,
      claim_token: row.claimToken,
      claim_expires_at: row.claimExpiresAt,
      sent: row.sent ? 1 : 0,
      bytes: row.bytes,
    })),
  );

  // Invariant 3, read off the real table alone: a record never has two mutations in flight.
  const inflight = listed.filter((m) => m.state === 'inflight').map((m) => recordKey(m.entity, m.entityId));
  expect(new Set(inflight).size, 'two mutations of one record in flight').toBe(inflight.length);

  const [app] = await real.runStorage.all<{ n: number }>('SELECT COUNT(*) AS n FROM app_rows');
  expect(app?.n, "app rows (the app's write commits with its enqueue)").toBe(model.appRows);
  assertConfirmationOrder(model, real);
}

// ---------------------------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------------------------

type QueueCommand = fc.AsyncCommand<QueueModel, QueueUnderTest>;

interface EnqueueInput {
  readonly entity: EntityType;
  readonly entityId: string;
  readonly op: Op;
  readonly data: JsonObject | undefined;
  readonly baseVersion: number | null;
}

/** How the app enqueues: plainly, inside a committed transaction, or inside one that throws. */
type EnqueueVia = 'enqueue' | 'transaction' | 'rolled-back';

class EnqueueCommand implements QueueCommand {
  constructor(
    readonly input: EnqueueInput,
    /** Rank into every id stored so far, for `dependsOn`; null for none. */
    readonly dependsOnRank: number | null,
    readonly via: EnqueueVia,
  ) {}

  check(): boolean {
    return true;
  }

  async run(model: QueueModel, real: QueueUnderTest): Promise<void> {
    const dependsOn =
      this.dependsOnRank === null || model.stored.length === 0
        ? []
        : [model.stored[this.dependsOnRank % model.stored.length]!];
    const input = { ...this.input, ...(dependsOn.length > 0 ? { dependsOn } : {}) };
    const prediction = predictCoalesce(model, this.input, dependsOn);

    if (this.via === 'rolled-back') {
      const failure = new Error('the app failed after its write and its enqueue');
      await expect(
        real.engine.transaction(async (tx) => {
          await tx.run('INSERT INTO app_rows (entity_id) VALUES (?)', [this.input.entityId]);
          await tx.enqueue(input);
          throw failure;
        }),
      ).rejects.toBe(failure);
      // Neither the app row, nor a new mutation, nor a merge into an earlier one survives.
      await assertMatchesModel(model, real);
      return;
    }

    let stored: EnqueuedMutation;
    if (this.via === 'transaction') {
      stored = await real.engine.transaction(async (tx) => {
        await tx.run('INSERT INTO app_rows (entity_id) VALUES (?)', [this.input.entityId]);
        return tx.enqueue(input);
      });
      model.appRows++;
    } else {
      stored = await real.engine.enqueue(input);
    }
    const { coalesced, ...mutation } = stored;
    const now = model.now;

    switch (prediction.kind) {
      case 'append': {
        expect(coalesced).toBe('none');
        const maxSeq = model.rows.reduce((max, row) => Math.max(max, row.seq), 0);
        // A new mutation sorts after every mutation still queued (per-record order needs no more).
        expect(mutation.seq).toBeGreaterThan(maxSeq);
        expect(model.recordOf.has(mutation.id), 'a fresh id').toBe(false);
        const data = this.input.data ?? null;
        const row: ModelRow = {
          seq: mutation.seq,
          id: mutation.id,
          key: mutation.key,
          entity: this.input.entity,
          entityId: this.input.entityId,
          op: this.input.op,
          data,
          bytes: byteLength(data),
          baseVersion: this.input.baseVersion,
          dependsOn,
          state: 'pending',
          attempts: 0,
          nextAttemptAt: now,
          lastError: null,
          claimToken: null,
          claimExpiresAt: null,
          sent: false,
          createdAt: now,
          updatedAt: now,
        };
        expect(mutation).toEqual(toMutation(row));
        model.rows.push(row);
        model.ordinal.set(row.id, model.stored.length);
        model.stored.push(row.id);
        model.recordOf.set(row.id, recordKey(row.entity, row.entityId));
        break;
      }
      case 'merge': {
        expect(coalesced).toBe('merged');
        const { tail } = prediction;
        tail.op = prediction.op;
        tail.data = prediction.data;
        tail.bytes = byteLength(prediction.data);
        // dependsOn unchanged: a merge only happens when the new dependencies are already the tail's.
        tail.updatedAt = now;
        expect(mutation).toEqual(toMutation(tail));
        break;
      }
      case 'cancel': {
        expect(coalesced).toBe('cancelled');
        expect(mutation).toEqual(toMutation(prediction.tail));
        model.rows = model.rows.filter((row) => row !== prediction.tail);
        break;
      }
    }
    await assertMatchesModel(model, real);
  }

  toString(): string {
    const deps = this.dependsOnRank === null ? '' : `, dependsOn #${this.dependsOnRank}`;
    return `Enqueue(${this.via}: ${this.input.op} ${this.input.entity}/${this.input.entityId} ${JSON.stringify(this.input.data)}${deps})`;
  }
}

class ClaimCommand implements QueueCommand {
  constructor(
    readonly maxCount: number,
    readonly maxBytes: number,
  ) {}

  check(): boolean {
    return true;
  }

  async run(model: QueueModel, real: QueueUnderTest): Promise<void> {
    const token = `run-${model.claims.length + 1}`;
    const expected = expectedClaim(model, this.maxCount, this.maxBytes);
    const claimed = await real.run.claim({
      scope: SCOPE,
      token,
      claimTtlMs: CLAIM_TTL_MS,
      maxCount: this.maxCount,
      maxBytes: this.maxBytes,
    });
    expect(
      claimed.map((m) => m.id),
      'claimed exactly the due heads of their records, oldest first',
    ).toEqual(expected.map((row) => row.id));
    for (const row of expected) {
      row.state = 'inflight';
      row.claimToken = token;
      row.claimExpiresAt = model.now + CLAIM_TTL_MS;
      row.sent = true;
      row.updatedAt = model.now;
    }
    expect(claimed).toEqual(expected.map(toMutation));
    if (expected.length > 0) model.claims.push({ token, ids: expected.map((row) => row.id) });
    await assertMatchesModel(model, real);
  }

  toString(): string {
    return `Claim(maxCount=${this.maxCount}, maxBytes=${this.maxBytes})`;
  }
}

type OutcomeSpec =
  | { readonly type: 'confirmed' }
  | { readonly type: 'retry'; readonly delayMs: number; readonly countsAttempt: boolean }
  | { readonly type: 'release' }
  | { readonly type: 'failed'; readonly countsAttempt: boolean };

class RecordCommand implements QueueCommand {
  constructor(
    readonly claimRank: number,
    readonly picks: readonly { readonly rank: number; readonly outcome: OutcomeSpec }[],
  ) {}

  check(model: Readonly<QueueModel>): boolean {
    return model.claims.length > 0;
  }

  async run(model: QueueModel, real: QueueUnderTest): Promise<void> {
    // Ranked from the latest claim: a run records what it just claimed; older claims are mostly stale.
    const claim = model.claims[model.claims.length - 1 - (this.claimRank % model.claims.length)]!;
    const chosen = new Map<string, OutcomeSpec>();
    for (const pick of this.picks) {
      const id = claim.ids[pick.rank % claim.ids.length]!;
      if (!chosen.has(id)) chosen.set(id, pick.outcome);
    }
    const now = model.now;
    const entries: RecordEntry[] = [...chosen].map(([id, spec]) => ({ id, outcome: toOutcome(spec, now) }));
    const result = await real.run.record(claim.token, entries);

    const stale: string[] = [];
    for (const { id, outcome } of entries) {
      const row = findRow(model, id);
      // Only the current holder of the claim records: a confirmed, recovered or re-claimed row
      // ignores this (older) claim's results.
      if (row === undefined || row.state !== 'inflight' || row.claimToken !== claim.token) {
        stale.push(id);
        continue;
      }
      applyOutcome(model, row, outcome);
    }
    expect(result).toEqual({ recorded: entries.length - stale.length, stale });

    for (const { id, outcome } of entries) {
      if (outcome.type !== 'confirmed' || stale.includes(id)) continue;
      const record = model.recordOf.get(id)!;
      real.confirmed.set(record, [...(real.confirmed.get(record) ?? []), id]);
    }
    await assertMatchesModel(model, real);
  }

  toString(): string {
    const picks = this.picks.map((p) => `#${p.rank}:${JSON.stringify(p.outcome)}`).join(', ');
    return `Record(claim latest-${this.claimRank}: ${picks})`;
  }
}

function toOutcome(spec: OutcomeSpec, now: number): MutationOutcome {
  switch (spec.type) {
    case 'confirmed':
    case 'release':
      return { type: spec.type };
    case 'retry':
      return {
        type: 'retry',
        nextAttemptAt: now + spec.delayMs,
        error: { code: 'http-503', message: 'unavailable', status: 503 },
        countsAttempt: spec.countsAttempt,
      };
    case 'failed':
      return {
        type: 'failed',
        error: { code: 'rejected', message: 'invalid title' },
        countsAttempt: spec.countsAttempt,
      };
  }
}

function applyOutcome(model: QueueModel, row: ModelRow, outcome: MutationOutcome): void {
  if (outcome.type === 'confirmed') {
    model.rows = model.rows.filter((r) => r !== row);
    return;
  }
  row.claimToken = null;
  row.claimExpiresAt = null;
  row.updatedAt = model.now;
  row.state = outcome.type === 'failed' ? 'failed' : 'pending';
  if (outcome.type === 'retry') {
    row.attempts += outcome.countsAttempt ? 1 : 0;
    row.nextAttemptAt = outcome.nextAttemptAt;
    row.lastError = outcome.error;
  } else if (outcome.type === 'failed') {
    row.attempts += outcome.countsAttempt ? 1 : 0;
    row.lastError = outcome.error;
  }
}

class AdvanceClockCommand implements QueueCommand {
  constructor(readonly ms: number) {}

  check(): boolean {
    return true;
  }

  async run(model: QueueModel, real: QueueUnderTest): Promise<void> {
    model.now += this.ms;
    real.clock.advance(this.ms);
    await assertMatchesModel(model, real);
  }

  toString(): string {
    return `AdvanceClock(${this.ms})`;
  }
}

class RecoverExpiredCommand implements QueueCommand {
  check(): boolean {
    return true;
  }

  async run(model: QueueModel, real: QueueUnderTest): Promise<void> {
    const recovered = await real.run.recoverExpired();
    let expected = 0;
    for (const row of model.rows) {
      if (row.state !== 'inflight' || row.claimExpiresAt === null) continue;
      // Claimed "in the future" because the wall clock went back: re-based on the new clock with
      // the time it had left.
      if (row.updatedAt > model.now) {
        row.claimExpiresAt = model.now + Math.max(0, row.claimExpiresAt - row.updatedAt);
        row.updatedAt = model.now;
      }
      if (row.claimExpiresAt <= model.now) {
        row.state = 'pending';
        row.claimToken = null;
        row.claimExpiresAt = null;
        row.updatedAt = model.now;
        expected++;
      }
    }
    expect(recovered).toBe(expected);
    await assertMatchesModel(model, real);
  }

  toString(): string {
    return 'RecoverExpired';
  }
}

class RetryCommand implements QueueCommand {
  constructor(readonly ranks: readonly number[] | 'all-failed') {}

  check(model: Readonly<QueueModel>): boolean {
    return this.ranks === 'all-failed' || model.stored.length > 0;
  }

  async run(model: QueueModel, real: QueueUnderTest): Promise<void> {
    let made: ModelRow[];
    let returned: string[];
    if (this.ranks === 'all-failed') {
      made = model.rows.filter((row) => row.state === 'failed');
      returned = await real.engine.queue.retry({ allFailed: true });
    } else {
      const ids = new Set(this.ranks.map((rank) => model.stored[rank % model.stored.length]!));
      made = model.rows.filter(
        (row) => ids.has(row.id) && (row.state === 'failed' || row.state === 'pending'),
      );
      returned = await real.engine.queue.retry([...ids]);
    }
    expect(returned).toEqual(made.map((row) => row.id));
    for (const row of made) {
      // A rejected dead letter was definitively not applied: it gets a new idempotency key (the
      // server replays its stored rejection to the old one). One that ran out of attempts may have
      // been applied: it keeps its key.
      if (row.state === 'failed' && row.lastError?.code !== 'exhausted') {
        const fresh = (await real.engine.queue.get(row.id))!.key;
        expect(fresh).not.toBe(row.key);
        row.key = fresh;
      }
      if (row.state === 'failed') row.attempts = 0;
      row.state = 'pending';
      row.nextAttemptAt = model.now;
      row.updatedAt = model.now;
    }
    await assertMatchesModel(model, real);
  }

  toString(): string {
    return `Retry(${this.ranks === 'all-failed' ? 'all failed' : this.ranks.map((r) => `#${r}`).join(', ')})`;
  }
}

class DiscardCommand implements QueueCommand {
  constructor(readonly ranks: readonly number[]) {}

  check(model: Readonly<QueueModel>): boolean {
    return model.stored.length > 0;
  }

  async run(model: QueueModel, real: QueueUnderTest): Promise<void> {
    const ids = [...new Set(this.ranks.map((rank) => model.stored[rank % model.stored.length]!))];
    const selected = model.rows.filter((row) => ids.includes(row.id));
    if (selected.some((row) => row.state === 'inflight')) {
      // The server may be applying it right now: the whole call is refused, nothing removed.
      const error = await real.engine.queue.discard(ids).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(StateError);
      expect(error).toMatchObject({ code: 'MUTATION_INFLIGHT' });
    } else {
      expect(await real.engine.queue.discard(ids)).toEqual(selected.map((row) => row.id));
      model.rows = model.rows.filter((row) => !selected.includes(row));
    }
    await assertMatchesModel(model, real);
  }

  toString(): string {
    return `Discard(${this.ranks.map((r) => `#${r}`).join(', ')})`;
  }
}

class ReopenCommand implements QueueCommand {
  check(): boolean {
    return true;
  }

  async run(model: QueueModel, real: QueueUnderTest): Promise<void> {
    await real.close();
    await real.connect();
    // Durability: the reopened file holds exactly what was acknowledged, field for field.
    await assertMatchesModel(model, real);
  }

  toString(): string {
    return 'Reopen';
  }
}

// ---------------------------------------------------------------------------------------------
// Arbitraries
// ---------------------------------------------------------------------------------------------

const dataArb: fc.Arbitrary<JsonObject> = fc
  .uniqueArray(fc.tuple(fc.constantFrom(...FIELDS), fc.integer({ min: 0, max: 999 })), {
    minLength: 1,
    maxLength: 2,
    selector: ([field]) => field,
  })
  .map((pairs) => Object.fromEntries(pairs));

function enqueueArb(): fc.Arbitrary<QueueCommand> {
  return fc
    .record({
      entity: fc.constantFrom(...ENTITY_TYPES),
      entityId: fc.constantFrom(...ENTITY_IDS),
      op: fc.constantFrom<Op>('create', 'update', 'update', 'delete'),
      data: dataArb,
      deleteReason: fc.option(fc.constantFrom('duplicate', 'mistake'), { nil: undefined }),
      baseVersion: fc.option(fc.integer({ min: 1, max: 9 }), { nil: null }),
      dependsOnRank: fc.oneof(
        { arbitrary: fc.constant(null), weight: 3 },
        { arbitrary: fc.nat(), weight: 1 },
      ),
      via: fc.constantFrom<EnqueueVia>('enqueue', 'enqueue', 'transaction', 'rolled-back'),
    })
    .map(({ entity, entityId, op, data, deleteReason, baseVersion, dependsOnRank, via }) => {
      const input: EnqueueInput = {
        entity,
        entityId,
        op,
        data: op === 'delete' ? (deleteReason === undefined ? undefined : { reason: deleteReason }) : data,
        baseVersion,
      };
      return new EnqueueCommand(input, dependsOnRank, via);
    });
}

const outcomeArb: fc.Arbitrary<OutcomeSpec> = fc.oneof(
  { arbitrary: fc.constant<OutcomeSpec>({ type: 'confirmed' }), weight: 4 },
  {
    arbitrary: fc.record({
      type: fc.constant('retry' as const),
      delayMs: fc.oneof(fc.integer({ min: 0, max: 5_000 }), fc.constantFrom(30_000, 120_000)),
      countsAttempt: fc.boolean(),
    }),
    weight: 2,
  },
  { arbitrary: fc.constant<OutcomeSpec>({ type: 'release' }), weight: 1 },
  { arbitrary: fc.record({ type: fc.constant('failed' as const), countsAttempt: fc.boolean() }), weight: 1 },
);

function commandsArb() {
  const ranks = fc.array(fc.nat(), { minLength: 1, maxLength: 3 });
  const claimArb = fc
    .tuple(fc.integer({ min: 1, max: 5 }), fc.constantFrom(1, 30, 1_000_000))
    .map(([maxCount, maxBytes]) => new ClaimCommand(maxCount, maxBytes));
  const recordArb = fc
    .tuple(
      fc.oneof({ arbitrary: fc.constant(0), weight: 3 }, { arbitrary: fc.nat(), weight: 1 }),
      fc.array(fc.record({ rank: fc.nat(), outcome: outcomeArb }), { minLength: 1, maxLength: 5 }),
    )
    .map(([claimRank, picks]) => new RecordCommand(claimRank, picks));
  const clockArb = fc
    .oneof(
      fc.integer({ min: 0, max: 5_000 }),
      fc.constantFrom(CLAIM_TTL_MS, 120_000, 3_600_000),
      // The wall clock set back (FAULTS.md 29).
      fc.integer({ min: -120_000, max: -1 }),
    )
    .map((ms) => new AdvanceClockCommand(ms));
  const retryArb = fc
    .oneof(ranks, fc.constant('all-failed' as const))
    .map((selection) => new RetryCommand(selection));
  const command: fc.Arbitrary<QueueCommand> = fc.oneof(
    { arbitrary: enqueueArb(), weight: 6 },
    { arbitrary: claimArb, weight: 3 },
    { arbitrary: recordArb, weight: 4 },
    { arbitrary: clockArb, weight: 2 },
    { arbitrary: fc.constant(new RecoverExpiredCommand()), weight: 1 },
    { arbitrary: retryArb, weight: 1 },
    { arbitrary: ranks.map((selection) => new DiscardCommand(selection)), weight: 1 },
    { arbitrary: fc.constant(new ReopenCommand()), weight: 1 },
  );
  return fc.commands<QueueModel, QueueUnderTest, false>([command], {
    maxCommands: MAX_COMMANDS,
    size: 'max',
  });
}

// ---------------------------------------------------------------------------------------------
// The properties
// ---------------------------------------------------------------------------------------------

/**
 * After the commands, deliver everything: every claim confirmed until nothing is claimable. The
 * queue must end empty (no record blocked for good, head-of-line blocking never global) and the
 * confirmations per record must still follow enqueue order.
 */
async function drain(model: QueueModel, real: QueueUnderTest): Promise<void> {
  real.clock.advance(24 * 3_600_000);
  model.now += 24 * 3_600_000;
  await real.run.recoverExpired();
  await real.engine.queue.retry({ allFailed: true });
  for (let round = 0; round <= model.stored.length; round++) {
    const claimed = await real.run.claim({
      scope: SCOPE,
      token: `drain-${round}`,
      claimTtlMs: CLAIM_TTL_MS,
      maxCount: 1000,
      maxBytes: Number.MAX_SAFE_INTEGER,
    });
    if (claimed.length === 0) break;
    const result = await real.run.record(
      `drain-${round}`,
      claimed.map((m) => ({ id: m.id, outcome: { type: 'confirmed' } as const })),
    );
    expect(result).toEqual({ recorded: claimed.length, stale: [] });
    for (const m of claimed) {
      const record = recordKey(m.entity, m.entityId);
      real.confirmed.set(record, [...(real.confirmed.get(record) ?? []), m.id]);
    }
  }
  const left = await real.engine.queue.list({ scope: 'all', limit: 1000 });
  expect(
    left.map((m) => `${m.op} ${m.entity}/${m.entityId} dependsOn ${JSON.stringify(m.dependsOn)}`),
    'mutations that can never be sent',
  ).toEqual([]);
  assertConfirmationOrder(model, real);
}

function queueModelProperty(entities: Readonly<Record<EntityType, EntityOptions>>) {
  const coalescing = new Set(ENTITY_TYPES.filter((name) => entities[name].coalesce === true));
  return fc.asyncProperty(commandsArb(), async (commands) => {
    const { dir, remove } = tempDir('sync-core-model-');
    const real = new QueueUnderTest(join(dir, 'queue.db'), entities);
    try {
      await real.connect();
      const model: QueueModel = {
        now: real.clock.now(),
        coalescing,
        rows: [],
        stored: [],
        recordOf: new Map(),
        ordinal: new Map(),
        claims: [],
        appRows: 0,
      };
      await fc.asyncModelRun(() => ({ model, real }), commands);
      await drain(model, real);
    } finally {
      await real.close();
      remove();
    }
  });
}

describe('mutation queue against an in-memory model (better-sqlite3 file)', () => {
  it(
    'invariant 1 (no loss) and 3 (per-record order): every acknowledged mutation stays queued, field for field, across claim, record, recovery, retry, discard and reopen; claims return exactly the due heads of their records; confirmations follow enqueue order (coalescing off)',
    async () => {
      await fc.assert(queueModelProperty({ activity: {}, contact: {} }), { numRuns: NUM_RUNS });
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'invariant 1 (no loss) and 3 (per-record order) with coalescing on: merges go only into the record’s last never-claimed pending mutation and never add dependencies to it, a delete cancels an unsent create nothing depends on, and every record still drains',
    async () => {
      await fc.assert(queueModelProperty({ activity: { coalesce: true }, contact: {} }), {
        numRuns: NUM_RUNS,
      });
    },
    TEST_TIMEOUT_MS,
  );
});

describe('coalescing keeps dependencies sound (invariant 3; found by the model test)', () => {
  async function withQueue(fn: (real: QueueUnderTest) => Promise<void>): Promise<void> {
    const { dir, remove } = tempDir('sync-core-model-');
    const real = new QueueUnderTest(join(dir, 'queue.db'), { activity: { coalesce: true }, contact: {} });
    try {
      await real.connect();
      await fn(real);
    } finally {
      await real.close();
      remove();
    }
  }

  /** Claim everything due, confirm it, and return the ids in claim order, round by round. */
  async function deliverAll(real: QueueUnderTest): Promise<string[][]> {
    const rounds: string[][] = [];
    for (let round = 0; round < 10; round++) {
      const token = `deliver-${round}`;
      const claimed = await real.run.claim({
        scope: SCOPE,
        token,
        claimTtlMs: CLAIM_TTL_MS,
        maxCount: 100,
        maxBytes: 1e6,
      });
      if (claimed.length === 0) break;
      await real.run.record(
        token,
        claimed.map((m) => ({ id: m.id, outcome: { type: 'confirmed' } as const })),
      );
      rounds.push(claimed.map((m) => m.id));
    }
    return rounds;
  }

  it('an update depending on its own record’s unsent create is queued after it, not merged into it (a create waiting for itself would never be sent)', async () => {
    await withQueue(async (real) => {
      const create = await real.engine.enqueue({
        entity: 'activity',
        op: 'create',
        entityId: 'a',
        data: { n: 1 },
      });
      const update = await real.engine.enqueue({
        entity: 'activity',
        op: 'update',
        entityId: 'a',
        data: { n: 2 },
        dependsOn: [create.id],
      });
      expect(update.coalesced).toBe('none');
      expect(await deliverAll(real)).toEqual([[create.id], [update.id]]);
      expect((await real.engine.queue.stats({ scope: 'all' })).total).toBe(0);
    });
  });

  it('an update depending on a record that depends on this record’s create is queued, not merged (no dependency cycle)', async () => {
    await withQueue(async (real) => {
      const a = await real.engine.enqueue({
        entity: 'activity',
        op: 'create',
        entityId: 'a',
        data: { n: 1 },
      });
      const b = await real.engine.enqueue({
        entity: 'contact',
        op: 'create',
        entityId: 'b',
        data: { n: 1 },
        dependsOn: [a.id],
      });
      const update = await real.engine.enqueue({
        entity: 'activity',
        op: 'update',
        entityId: 'a',
        data: { n: 2 },
        dependsOn: [b.id],
      });
      expect(update.coalesced).toBe('none');
      expect(await deliverAll(real)).toEqual([[a.id], [b.id], [update.id]]);
    });
  });

  it('a delete does not cancel a create another mutation depends on: both are sent, the dependant after its parent', async () => {
    await withQueue(async (real) => {
      const parent = await real.engine.enqueue({
        entity: 'activity',
        op: 'create',
        entityId: 'a',
        data: { n: 1 },
      });
      const child = await real.engine.enqueue({
        entity: 'contact',
        op: 'create',
        entityId: 'c',
        data: { n: 1 },
        dependsOn: [parent.id],
      });
      const deletion = await real.engine.enqueue({ entity: 'activity', op: 'delete', entityId: 'a' });
      expect(deletion.coalesced).toBe('none');
      expect(await deliverAll(real)).toEqual([[parent.id], [child.id, deletion.id]]);
    });
  });
});
