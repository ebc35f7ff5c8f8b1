import type { Clock, RandomSource } from '../contracts/clock.js';
import type { Scope, Version } from '../contracts/records.js';
import type { RunCounts } from '../engine/sync-run.js';
import { uuidV4 } from '../queue/ids.js';
import { parseScopeKey, scopeKey } from '../queue/scope.js';
import type { Executor } from '../storage/guarded-storage.js';
import type { Notice, NoticeKind } from './notice.js';

/** One row of run history (`sync_runs`), as `engine.status.runs()` returns it. */
export interface RunRecord extends RunCounts {
  readonly runId: string;
  readonly scope: Scope;
  readonly trigger: string;
  readonly outcome: string;
  readonly startedAt: number;
  readonly finishedAt: number;
  readonly error: { readonly code: string; readonly message: string } | null;
}

interface NoticeRow {
  id: string;
  scope: string;
  kind: NoticeKind;
  data: string;
  created_at: number;
  updated_at: number;
  seen_at: number | null;
}

interface RunRow {
  id: string;
  scope: string;
  trigger: string;
  outcome: string;
  started_at: number;
  finished_at: number;
  pushed: number;
  retried: number;
  failed: number;
  conflicted: number;
  released: number;
  recovered: number;
  resolved: number;
  pulled: number;
  batches: number;
  error: string | null;
}

function toNotice(row: NoticeRow): Notice {
  return {
    ...(JSON.parse(row.data) as object),
    id: row.id,
    kind: row.kind,
    scope: parseScopeKey(row.scope),
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    seenAt: row.seen_at,
  } as Notice;
}

/** Mutation fields a notice names (never its payload). */
export interface NoticeSubject {
  readonly id: string;
  readonly entity: string;
  readonly entityId: string;
}

/**
 * The status store: run history and notices, in `sync_runs` and `sync_notices`. Every write takes
 * the executor of the transaction that changed the queue, so after a crash the status agrees with
 * the queue (FAULTS.md 7): a confirmation and its `synced` count, a dead letter and its notice,
 * commit together.
 */
export class StatusStore {
  readonly #clock: Clock;
  readonly #random: RandomSource;
  readonly #historyLimit: number;

  constructor(clock: Clock, random: RandomSource, historyLimit: number) {
    this.#clock = clock;
    this.#random = random;
    this.#historyLimit = historyLimit;
  }

  /**
   * Raise a notice, or update the unseen one with the same dedupe key. `merge` combines the
   * stored data with the new (the running `synced` summary adds counts).
   */
  async #raise(
    tx: Executor,
    scope: Scope,
    kind: NoticeKind,
    dedupeKey: string,
    data: Record<string, unknown>,
    merge?: (stored: Record<string, unknown>) => Record<string, unknown>,
  ): Promise<void> {
    const now = this.#clock.now();
    const key = scopeKey(scope);
    const [existing] = await tx.all<{ id: string; data: string }>(
      'SELECT id, data FROM sync_notices WHERE scope = ? AND dedupe_key = ? AND seen_at IS NULL',
      [key, dedupeKey],
    );
    if (existing) {
      const next = merge ? merge(JSON.parse(existing.data) as Record<string, unknown>) : data;
      // A changed notice gets a new id: an app that showed the old content and acknowledges it by
      // the old id must not mark the new content seen without having shown it.
      await tx.run('UPDATE sync_notices SET id = ?, data = ?, updated_at = ? WHERE id = ?', [
        uuidV4(this.#random),
        JSON.stringify(next),
        now,
        existing.id,
      ]);
      return;
    }
    await tx.run(
      'INSERT INTO sync_notices (id, scope, kind, dedupe_key, data, created_at, updated_at, seen_at) VALUES (?, ?, ?, ?, ?, ?, ?, NULL)',
      [uuidV4(this.#random), key, kind, dedupeKey, JSON.stringify(data), now, now],
    );
  }

  /** Add confirmed mutations to the scope's running `synced` summary. */
  async addSynced(tx: Executor, scope: Scope, counts: ReadonlyMap<string, number>): Promise<void> {
    if (counts.size === 0) return;
    const added = Object.fromEntries(counts);
    const total = [...counts.values()].reduce((a, b) => a + b, 0);
    await this.#raise(tx, scope, 'synced', 'synced', { counts: added, total }, (stored) => {
      const merged: Record<string, number> = { ...(stored.counts as Record<string, number>) };
      for (const [entity, n] of counts) merged[entity] = (merged[entity] ?? 0) + n;
      return { counts: merged, total: Number(stored.total ?? 0) + total };
    });
  }

  /** A mutation was dead-lettered. */
  async addFailed(
    tx: Executor,
    scope: Scope,
    m: NoticeSubject,
    code: string,
    message: string,
  ): Promise<void> {
    await this.#raise(tx, scope, 'failed', `failed:${m.id}`, {
      entity: m.entity,
      entityId: m.entityId,
      mutationId: m.id,
      code,
      message,
    });
  }

  /** A conflict waits for the user. */
  async addConflict(tx: Executor, scope: Scope, m: NoticeSubject): Promise<void> {
    await this.#raise(tx, scope, 'conflict', `conflict:${m.id}`, {
      entity: m.entity,
      entityId: m.entityId,
      mutationId: m.id,
    });
  }

  /**
   * A mutation was dropped because the server's version won its conflict (strategy
   * `server-wins`). One per mutation: its id is the dedupe key.
   */
  async addOverwritten(
    tx: Executor,
    scope: Scope,
    m: NoticeSubject,
    serverVersion: Version | null,
  ): Promise<void> {
    await this.#raise(tx, scope, 'overwritten', `overwritten:${m.id}`, {
      entity: m.entity,
      entityId: m.entityId,
      mutationId: m.id,
      serverVersion,
    });
  }

  /** Sign-in is needed (at most one unseen). */
  async addAuthRequired(tx: Executor, scope: Scope): Promise<void> {
    await this.#raise(tx, scope, 'auth-required', 'auth-required', {});
  }

  /**
   * Raise one `stuck` notice for each mutation of `scope` unconfirmed since before
   * `now - stuckAfterMs` that never had one (seen or not): the notice says it once, the mutation
   * keeps retrying.
   */
  async raiseStuck(tx: Executor, scope: Scope, stuckAfterMs: number): Promise<number> {
    const now = this.#clock.now();
    const key = scopeKey(scope);
    const rows = await tx.all<{ id: string; entity: string; entity_id: string; created_at: number }>(
      `SELECT m.id, m.entity, m.entity_id, m.created_at FROM sync_mutations AS m
       WHERE m.scope = ? AND m.state IN ('pending', 'inflight') AND m.created_at <= ?
         AND NOT EXISTS (SELECT 1 FROM sync_notices AS n WHERE n.scope = m.scope AND n.dedupe_key = 'stuck:' || m.id)
       ORDER BY m.seq LIMIT 100`,
      [key, now - stuckAfterMs],
    );
    for (const row of rows) {
      await this.#raise(tx, scope, 'stuck', `stuck:${row.id}`, {
        entity: row.entity,
        entityId: row.entity_id,
        mutationId: row.id,
        since: row.created_at,
      });
    }
    return rows.length;
  }

  /** Write one run row, and keep only the most recent `historyLimit` rows. */
  async recordRun(tx: Executor, scope: Scope, run: Omit<RunRecord, 'scope'>): Promise<void> {
    await tx.run(
      `INSERT INTO sync_runs (id, scope, trigger, outcome, started_at, finished_at, pushed, retried, failed, conflicted,
         released, recovered, resolved, pulled, batches, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      [
        run.runId,
        scopeKey(scope),
        run.trigger,
        run.outcome,
        run.startedAt,
        run.finishedAt,
        run.pushed,
        run.retried,
        run.failed,
        run.conflicted,
        run.released,
        run.recovered,
        run.resolved,
        run.pulled,
        run.batches,
        run.error === null ? null : JSON.stringify(run.error),
      ],
    );
    await tx.run(
      `DELETE FROM sync_runs WHERE started_at < (
         SELECT started_at FROM sync_runs ORDER BY started_at DESC LIMIT 1 OFFSET ?)`,
      [this.#historyLimit - 1],
    );
  }

  /** Unseen notices of a scope (or every scope), oldest first. */
  async unseen(executor: Executor, scope: Scope | 'all'): Promise<Notice[]> {
    const rows =
      scope === 'all'
        ? await executor.all<NoticeRow>(
            'SELECT id, scope, kind, data, created_at, updated_at, seen_at FROM sync_notices WHERE seen_at IS NULL ORDER BY created_at, id',
          )
        : await executor.all<NoticeRow>(
            'SELECT id, scope, kind, data, created_at, updated_at, seen_at FROM sync_notices WHERE scope = ? AND seen_at IS NULL ORDER BY created_at, id',
            [scopeKey(scope)],
          );
    return rows.map(toNotice);
  }

  /** Mark notices seen. @returns how many were unseen and are now seen. */
  async acknowledge(executor: Executor, ids: readonly string[]): Promise<number> {
    const now = this.#clock.now();
    let changed = 0;
    for (let i = 0; i < ids.length; i += 500) {
      const chunk = ids.slice(i, i + 500);
      const { changes } = await executor.run(
        `UPDATE sync_notices SET seen_at = ? WHERE seen_at IS NULL AND id IN (${chunk.map(() => '?').join(', ')})`,
        [now, ...chunk],
      );
      changed += changes;
    }
    return changed;
  }

  /** The most recent runs, newest first. */
  async runs(executor: Executor, scope: Scope | 'all', limit: number): Promise<RunRecord[]> {
    const rows =
      scope === 'all'
        ? await executor.all<RunRow>('SELECT * FROM sync_runs ORDER BY started_at DESC LIMIT ?', [limit])
        : await executor.all<RunRow>(
            'SELECT * FROM sync_runs WHERE scope = ? ORDER BY started_at DESC LIMIT ?',
            [scopeKey(scope), limit],
          );
    return rows.map((row) => ({
      runId: row.id,
      scope: parseScopeKey(row.scope),
      trigger: row.trigger,
      outcome: row.outcome,
      startedAt: row.started_at,
      finishedAt: row.finished_at,
      pushed: row.pushed,
      retried: row.retried,
      failed: row.failed,
      conflicted: row.conflicted,
      released: row.released,
      recovered: row.recovered,
      resolved: row.resolved,
      pulled: row.pulled,
      batches: row.batches,
      error: row.error === null ? null : (JSON.parse(row.error) as RunRecord['error']),
    }));
  }
}
