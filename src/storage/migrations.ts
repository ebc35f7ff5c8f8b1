import { StorageError } from '../errors.js';
import type { GuardedExecutor, GuardedStorage } from './guarded-storage.js';

/**
 * One schema change. Migrations are append-only: a released migration is never edited, a new one
 * is added. Each runs inside the single transaction of {@link migrate}.
 */
export interface Migration {
  readonly version: number;
  readonly description: string;
  readonly statements: readonly string[];
}

/**
 * The core's tables, all prefixed `sync_` so they sit beside the host app's own tables.
 *
 * `sync_mutations.seq` is an integer primary key (the rowid): insertion order, and far cheaper to
 * delete by than a random-UUID key. SQLite gives a new row max(rowid)+1, so a new mutation always
 * sorts after every mutation still queued, which is all per-record ordering needs.
 */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'meta and the mutation queue',
    statements: [
      `CREATE TABLE IF NOT EXISTS sync_meta (
        key TEXT PRIMARY KEY NOT NULL,
        value TEXT NOT NULL
      )`,
      `CREATE TABLE sync_mutations (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        key TEXT NOT NULL,
        scope TEXT NOT NULL,
        entity TEXT NOT NULL,
        entity_id TEXT NOT NULL,
        op TEXT NOT NULL,
        data TEXT,
        bytes INTEGER NOT NULL,
        base_version TEXT,
        depends_on TEXT,
        state TEXT NOT NULL CHECK (state IN ('pending', 'inflight', 'failed', 'conflict')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        last_error TEXT,
        claim_token TEXT,
        claim_expires_at INTEGER,
        sent INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
      )`,
      // Head-of-record lookups: "is there an earlier mutation on this record?"
      'CREATE INDEX sync_mutations_record ON sync_mutations (scope, entity, entity_id, seq)',
      // Due work in insertion order, and stats, per scope and state. Index entries end with the
      // rowid, so within one (scope, state) they are already in seq order: a claim walks the
      // pending rows oldest first and stops at its LIMIT, with no sort, whatever the backlog.
      'CREATE INDEX sync_mutations_state ON sync_mutations (scope, state)',
    ],
  },
  {
    version: 2,
    description: 'the run lease (single flight across processes)',
    statements: [
      `CREATE TABLE sync_lease (
        name TEXT PRIMARY KEY NOT NULL,
        holder TEXT NOT NULL,
        acquired_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
      )`,
    ],
  },
  {
    version: 3,
    description: 'conflicts, server-assigned ids, pull cursors, run history and notices',
    statements: [
      // One row per conflict the server reported for a mutation (manual strategy: until resolved).
      `CREATE TABLE sync_conflicts (
        mutation_id TEXT PRIMARY KEY NOT NULL,
        scope TEXT NOT NULL,
        entity TEXT NOT NULL,
        entity_id TEXT NOT NULL,
        local_data TEXT,
        base_version TEXT,
        server_data TEXT,
        server_version TEXT,
        created_at INTEGER NOT NULL,
        resolved_at INTEGER,
        resolution TEXT
      )`,
      'CREATE INDEX sync_conflicts_open ON sync_conflicts (scope, resolved_at)',
      // Client id → server id of records created offline, so later enqueues use the server's id.
      `CREATE TABLE sync_id_map (
        scope TEXT NOT NULL,
        entity TEXT NOT NULL,
        client_id TEXT NOT NULL,
        server_id TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (scope, entity, client_id)
      )`,
      `CREATE TABLE sync_cursors (
        scope TEXT NOT NULL,
        entity TEXT NOT NULL,
        cursor TEXT NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (scope, entity)
      )`,
      `CREATE TABLE sync_runs (
        id TEXT PRIMARY KEY NOT NULL,
        scope TEXT NOT NULL,
        trigger TEXT NOT NULL,
        outcome TEXT NOT NULL,
        started_at INTEGER NOT NULL,
        finished_at INTEGER NOT NULL,
        pushed INTEGER NOT NULL,
        retried INTEGER NOT NULL,
        failed INTEGER NOT NULL,
        conflicted INTEGER NOT NULL,
        released INTEGER NOT NULL,
        recovered INTEGER NOT NULL,
        resolved INTEGER NOT NULL,
        pulled INTEGER NOT NULL,
        batches INTEGER NOT NULL,
        error TEXT
      )`,
      'CREATE INDEX sync_runs_started ON sync_runs (started_at)',
      `CREATE TABLE sync_notices (
        id TEXT PRIMARY KEY NOT NULL,
        scope TEXT NOT NULL,
        kind TEXT NOT NULL,
        dedupe_key TEXT,
        data TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        seen_at INTEGER
      )`,
      // At most one unseen notice per dedupe key (the running `synced` summary, one per mutation…).
      'CREATE UNIQUE INDEX sync_notices_unseen ON sync_notices (scope, dedupe_key) WHERE seen_at IS NULL',
      'CREATE INDEX sync_notices_scope ON sync_notices (scope, seen_at)',
      // When the lease was last renewed: a renewal "in the future" reveals a clock that went back.
      'ALTER TABLE sync_lease ADD COLUMN renewed_at INTEGER NOT NULL DEFAULT 0',
      // Small partial indexes: claim recovery scans only inflight rows, and "does anything depend
      // on this mutation?" only rows that have dependencies.
      "CREATE INDEX sync_mutations_inflight ON sync_mutations (claim_expires_at) WHERE state = 'inflight'",
      'CREATE INDEX sync_mutations_with_deps ON sync_mutations (seq) WHERE depends_on IS NOT NULL',
    ],
  },
];

/** The schema version this build of sync-core writes. */
export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;

async function readVersion(tx: GuardedExecutor): Promise<number> {
  const tables = await tx.all<{ name: string }>(
    "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'sync_meta'",
  );
  if (tables.length === 0) return 0;
  const rows = await tx.all<{ value: string }>("SELECT value FROM sync_meta WHERE key = 'schema_version'");
  const value = rows[0]?.value;
  return value === undefined ? 0 : Number(value);
}

/**
 * Bring the database to {@link SCHEMA_VERSION} in one immediate transaction: a crash mid-way
 * leaves the previous version intact and the next `open()` runs the migration again (FAULTS.md 5).
 * Two processes opening at once serialise on the write lock; the second finds nothing to do.
 *
 * @returns the version found before migrating.
 * @throws StorageError `STORAGE_SCHEMA_TOO_NEW` when a newer sync-core wrote the database.
 */
export async function migrate(storage: GuardedStorage): Promise<number> {
  return storage.transaction('immediate', async (tx) => {
    const found = await readVersion(tx);
    if (!Number.isInteger(found) || found < 0) {
      throw new StorageError('STORAGE_CORRUPT', 'sync_meta holds an unreadable schema version');
    }
    if (found > SCHEMA_VERSION) {
      throw new StorageError(
        'STORAGE_SCHEMA_TOO_NEW',
        `the database has sync-core schema version ${found}, this build knows up to ${SCHEMA_VERSION}: upgrade sync-core`,
      );
    }
    for (const migration of MIGRATIONS) {
      if (migration.version <= found) continue;
      for (const statement of migration.statements) await tx.exec(statement);
    }
    if (found !== SCHEMA_VERSION) {
      await tx.run(
        "INSERT INTO sync_meta (key, value) VALUES ('schema_version', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [String(SCHEMA_VERSION)],
      );
    }
    return found;
  });
}
