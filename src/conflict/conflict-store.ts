import type { Clock, RandomSource } from '../contracts/clock.js';
import type { JsonValue, Scope, Version } from '../contracts/records.js';
import { NotFoundError } from '../errors.js';
import { uuidV4 } from '../queue/ids.js';
import { utf8Length } from '../queue/json-safety.js';
import { scopeKey } from '../queue/scope.js';
import type { Executor, GuardedStorage } from '../storage/guarded-storage.js';
import { fromJsonColumn } from '../storage/json-column.js';
import type { Conflict, ConflictResolution } from './conflict-strategy.js';

interface ConflictRow {
  mutation_id: string;
  entity: string;
  entity_id: string;
  local_data: string | null;
  base_version: string | null;
  server_data: string | null;
  server_version: string | null;
  created_at: number;
  resolved_at: number | null;
  resolution: Conflict['resolution'];
}

const COLUMNS =
  'mutation_id, entity, entity_id, local_data, base_version, server_data, server_version, created_at, resolved_at, resolution';

function toConflict(row: ConflictRow): Conflict {
  return {
    mutationId: row.mutation_id,
    entity: row.entity,
    entityId: row.entity_id,
    local: fromJsonColumn<JsonValue>(row.local_data),
    baseVersion: fromJsonColumn<Version>(row.base_version),
    server: fromJsonColumn<JsonValue>(row.server_data),
    serverVersion: fromJsonColumn<Version>(row.server_version),
    createdAt: row.created_at,
    resolution: row.resolution,
    resolvedAt: row.resolved_at,
  };
}

/**
 * Stored conflicts (`sync_conflicts`) and their manual resolution (DESIGN.md section 6). Rows are
 * written by runs, in the transaction that records the conflict; resolving one rewrites its
 * mutation and marks the conflict resolved in one transaction.
 */
export class ConflictStore {
  readonly #storage: GuardedStorage;
  readonly #clock: Clock;
  readonly #random: RandomSource;

  constructor(storage: GuardedStorage, clock: Clock, random: RandomSource) {
    this.#storage = storage;
    this.#clock = clock;
    this.#random = random;
  }

  /** Conflicts waiting for the user, oldest first. */
  async open(scope: Scope | 'all', executor: Executor = this.#storage): Promise<Conflict[]> {
    const rows =
      scope === 'all'
        ? await executor.all<ConflictRow>(
            `SELECT ${COLUMNS} FROM sync_conflicts WHERE resolved_at IS NULL ORDER BY created_at, mutation_id`,
          )
        : await executor.all<ConflictRow>(
            `SELECT ${COLUMNS} FROM sync_conflicts WHERE scope = ? AND resolved_at IS NULL ORDER BY created_at, mutation_id`,
            [scopeKey(scope)],
          );
    return rows.map(toConflict);
  }

  /** One conflict by its mutation id, resolved or not. */
  async get(mutationId: string): Promise<Conflict | undefined> {
    const rows = await this.#storage.all<ConflictRow>(
      `SELECT ${COLUMNS} FROM sync_conflicts WHERE mutation_id = ?`,
      [mutationId],
    );
    return rows[0] && toConflict(rows[0]);
  }

  /**
   * Apply the app's resolution: keep local (resend against the server's version), keep server
   * (drop the local change), or merged (resend this payload against the server's version). The
   * conflict's notice is marked seen: the user has dealt with it. A resent change gets a new
   * idempotency key: the conflict was a definitive "not applied" for the old one, whose stored
   * answer the server would otherwise replay.
   *
   * @throws NotFoundError `CONFLICT_NOT_FOUND` when the mutation is no longer in conflict.
   */
  async resolve(
    conflict: Conflict,
    resolution: ConflictResolution,
    mergedData: JsonValue | null,
  ): Promise<void> {
    await this.#storage.transaction('immediate', async (tx) => {
      const now = this.#clock.now();
      const serverVersion = conflict.serverVersion === null ? null : JSON.stringify(conflict.serverVersion);
      let changes: number;
      let how: 'local' | 'server' | 'merged';
      if ('merged' in resolution) {
        how = 'merged';
        const data = mergedData === null ? null : JSON.stringify(mergedData);
        ({ changes } = await tx.run(
          `UPDATE sync_mutations SET state = 'pending', key = ?, data = ?, bytes = ?, base_version = ?, next_attempt_at = ?,
             last_error = NULL, updated_at = ? WHERE id = ? AND state = 'conflict'`,
          [
            uuidV4(this.#random),
            data,
            data === null ? 0 : utf8Length(data),
            serverVersion,
            now,
            now,
            conflict.mutationId,
          ],
        ));
      } else if (resolution.keep === 'local') {
        how = 'local';
        ({ changes } = await tx.run(
          `UPDATE sync_mutations SET state = 'pending', key = ?, base_version = ?, next_attempt_at = ?, last_error = NULL,
             updated_at = ? WHERE id = ? AND state = 'conflict'`,
          [uuidV4(this.#random), serverVersion, now, now, conflict.mutationId],
        ));
      } else {
        how = 'server';
        ({ changes } = await tx.run("DELETE FROM sync_mutations WHERE id = ? AND state = 'conflict'", [
          conflict.mutationId,
        ]));
      }
      if (changes === 0) {
        throw new NotFoundError(
          'CONFLICT_NOT_FOUND',
          `resolveConflict: mutation ${conflict.mutationId} is no longer in conflict`,
        );
      }
      await tx.run('UPDATE sync_conflicts SET resolved_at = ?, resolution = ? WHERE mutation_id = ?', [
        now,
        how,
        conflict.mutationId,
      ]);
      await tx.run('UPDATE sync_notices SET seen_at = ? WHERE dedupe_key = ? AND seen_at IS NULL', [
        now,
        `conflict:${conflict.mutationId}`,
      ]);
    });
  }
}
