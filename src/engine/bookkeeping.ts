import type { AppTransaction } from '../contracts/app-transaction.js';
import { SyncError } from '../errors.js';
import { scopeKey } from '../queue/scope.js';
import type { GuardedExecutor } from '../storage/guarded-storage.js';
import { toJsonColumn } from '../storage/json-column.js';
import type { Decision } from './outcomes.js';
import type { RunContext } from './sync-run.js';

/** Confirmations whose version is carried over in one statement (4 parameters each, under 999). */
const REBASE_ROWS_PER_STATEMENT = 200;

/** The app's view of a transaction executor: its own statements only. */
export function appTransaction(tx: GuardedExecutor): AppTransaction {
  return { run: (sql, params) => tx.run(sql, params), all: (sql, params) => tx.all(sql, params) };
}

/**
 * What must change together with recorded outcomes, in the same transaction (FAULTS.md 7: after a
 * crash, the status agrees with the queue): the `synced` counts, dead-letter, conflict and
 * overwritten (server-wins) notices, stored conflicts, and the rewrite of queued mutations when the
 * server assigned its own id.
 */
export async function applyBookkeeping(
  tx: GuardedExecutor,
  ctx: Pick<RunContext, 'status' | 'scope' | 'entities' | 'clock'>,
  decisions: readonly Decision[],
): Promise<void> {
  const now = ctx.clock.now();
  const synced = new Map<string, number>();
  const rebased: (string | null)[] = [];
  for (const d of decisions) {
    if (d.kind !== 'confirmed') continue;
    const m = d.mutation;
    synced.set(m.entity, (synced.get(m.entity) ?? 0) + 1);
    // Later edits of this record made against the same version as this one (the app read v1,
    // edited twice) are now based on the version this one produced: without this, the device's
    // second edit would conflict with its own first.
    if (d.version !== undefined && m.op !== 'delete') {
      const base = toJsonColumn(m.baseVersion);
      const version = JSON.stringify(d.version);
      // Queued rows of a record the server just gave an id are still under the client id here
      // (assignId renames them below, in this transaction); rows the app queued under the server
      // id itself are matched too.
      rebased.push(m.entity, m.entityId, base, version);
      if (d.assignedId !== undefined && d.assignedId !== m.entityId) {
        rebased.push(m.entity, d.assignedId, base, version);
      }
    }
  }
  // One statement per chunk rather than one per confirmation (a drain confirms thousands).
  const perRow = 4;
  for (let i = 0; i < rebased.length; i += REBASE_ROWS_PER_STATEMENT * perRow) {
    const chunk = rebased.slice(i, i + REBASE_ROWS_PER_STATEMENT * perRow);
    const values = Array.from({ length: chunk.length / perRow }, () => '(?, ?, ?, ?)').join(', ');
    await tx.run(
      // CROSS JOIN pins the plan: for each confirmed record, its rows by the record index. Left to
      // itself, SQLite's planner scans every pending row once the list is longer than a few.
      `WITH v (entity, entity_id, old_version, new_version) AS (VALUES ${values})
       UPDATE sync_mutations SET base_version = (SELECT v.new_version FROM v
         WHERE v.entity = sync_mutations.entity AND v.entity_id = sync_mutations.entity_id)
       WHERE seq IN (SELECT m.seq FROM v CROSS JOIN sync_mutations AS m
         WHERE m.scope = ? AND m.entity = v.entity AND m.entity_id = v.entity_id AND m.state = 'pending'
           AND m.base_version IS v.old_version)`,
      [...chunk, scopeKey(ctx.scope)],
    );
  }
  for (const d of decisions) {
    const m = d.mutation;
    if (d.kind === 'failed' && d.outcome.type === 'failed') {
      await ctx.status.addFailed(tx, ctx.scope, m, d.outcome.error.code, d.outcome.error.message);
    }
    if (d.conflict) {
      const manual = d.conflict.resolution === 'manual';
      // A mutation that conflicts again after a rebase keeps one row: the latest server side.
      await tx.run(
        `INSERT INTO sync_conflicts (mutation_id, scope, entity, entity_id, local_data, base_version, server_data,
           server_version, created_at, resolved_at, resolution) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (mutation_id) DO UPDATE SET local_data = excluded.local_data, base_version = excluded.base_version,
           server_data = excluded.server_data, server_version = excluded.server_version, created_at = excluded.created_at,
           resolved_at = excluded.resolved_at, resolution = excluded.resolution`,
        [
          m.id,
          scopeKey(ctx.scope),
          m.entity,
          m.entityId,
          toJsonColumn(m.data),
          toJsonColumn(m.baseVersion),
          toJsonColumn(d.conflict.data),
          toJsonColumn(d.conflict.version),
          now,
          manual ? null : now,
          manual ? null : d.conflict.resolution,
        ],
      );
      if (manual) await ctx.status.addConflict(tx, ctx.scope, m);
      if (d.conflict.resolution === 'server-wins') {
        // DESIGN.md section 6, server-wins: "drop local, notice". The drop commits in this same
        // transaction, so after a crash there is a notice exactly when the change left the queue.
        await ctx.status.addOverwritten(tx, ctx.scope, m, d.conflict.version);
      }
    }
    if (d.assignedId !== undefined) await assignId(tx, ctx, m.entity, m.entityId, d.assignedId);
  }
  await ctx.status.addSynced(tx, ctx.scope, synced);
}

/**
 * The server gave a record created offline its own id (DESIGN.md section 8): remember the mapping
 * (later enqueues with the client id are translated), rewrite queued mutations of the record and
 * payload fields that reference it, and let the app update its own rows — all in this transaction.
 */
async function assignId(
  tx: GuardedExecutor,
  ctx: Pick<RunContext, 'scope' | 'entities' | 'clock'>,
  entity: string,
  clientId: string,
  serverId: string,
): Promise<void> {
  const scope = scopeKey(ctx.scope);
  await tx.run(
    `INSERT INTO sync_id_map (scope, entity, client_id, server_id, created_at) VALUES (?, ?, ?, ?, ?)
     ON CONFLICT (scope, entity, client_id) DO UPDATE SET server_id = excluded.server_id`,
    [scope, entity, clientId, serverId, ctx.clock.now()],
  );
  // Inflight rows are left alone: they are being sent with the id they were claimed with, and the
  // server maps it; their idempotency key stands for exactly that content.
  await tx.run(
    "UPDATE sync_mutations SET entity_id = ? WHERE scope = ? AND entity = ? AND entity_id = ? AND state != 'inflight'",
    [serverId, scope, entity, clientId],
  );
  for (const other of ctx.entities.values()) {
    for (const [field, target] of other.references) {
      if (target !== entity) continue;
      const path = `$."${field}"`;
      await tx.run(
        `UPDATE sync_mutations SET data = json_set(data, ?, ?)
         WHERE scope = ? AND entity = ? AND state != 'inflight' AND data IS NOT NULL AND json_extract(data, ?) = ?`,
        [path, serverId, scope, other.name, path, clientId],
      );
    }
  }
  const hook = ctx.entities.get(entity)?.onIdAssigned;
  if (hook) {
    try {
      await hook(appTransaction(tx), { clientId, serverId });
    } catch (error) {
      // The confirmation and the rewrite roll back with it: the mutation stays queued (the next
      // resend is a duplicate that reports the same id) until the hook succeeds.
      throw new SyncError('HOOK_FAILED', `the onIdAssigned hook of "${entity}" threw`, { cause: error });
    }
  }
}
