/**
 * What the benchmarks compare: a real engine (better-sqlite3 on a temp file, the fetch adapter over
 * undici) and the raw baselines on an identical `sync_mutations` table.
 */
import { randomUUID } from 'node:crypto';
import { copyFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { createSyncEngine, type MutationInput, type Scope, type SyncEngine } from 'sync-core';
import { createBetterSqlite3Storage, type SynchronousLevel } from 'sync-core/better-sqlite3';
import { createFetchNetwork, type FetchNetworkOptions, fetchFromUndiciRequest } from 'sync-core/fetch';
import { Agent, fetch as undiciFetch, request as undiciRequest } from 'undici';
import { uuidV7 } from '../../src/queue/ids.js';
import { scopeKey } from '../../src/queue/scope.js';
import { tempDir } from './lib.js';

export const SCOPE: Scope = { userId: 'u1', orgId: 'o1' };
export const SCOPE_KEY = scopeKey(SCOPE);
export const ENTITIES = { activity: {} } as const;

/** The mutation every benchmark queues: a small create, as an app's form save would. */
export function mutation(i: number): MutationInput {
  return { entity: 'activity', op: 'create', entityId: `a${i}`, data: { title: `Visit ${i}`, minutes: 30 } };
}

let schemaCache: string[] | undefined;

/**
 * The DDL of `sync_mutations` and its indexes exactly as the engine creates them: read back from a
 * scratch database an engine opened once.
 */
export async function mutationsSchema(): Promise<string[]> {
  if (schemaCache) return schemaCache;
  const { dir, remove } = tempDir('sync-core-bench-schema-');
  try {
    const engine = createSyncEngine({
      storage: createBetterSqlite3Storage(new Database(join(dir, 'scratch.db'))),
      entities: ENTITIES,
    });
    await engine.open();
    await engine.close();
    const db = new Database(join(dir, 'scratch.db'), { readonly: true });
    const rows = db
      .prepare(
        "SELECT sql FROM sqlite_master WHERE tbl_name = 'sync_mutations' AND sql IS NOT NULL ORDER BY type DESC, name",
      )
      .all() as { sql: string }[];
    db.close();
    // Tables before indexes ("table" > "index" with DESC).
    schemaCache = rows.map((row) => row.sql);
    return schemaCache;
  } finally {
    remove();
  }
}

/**
 * A raw better-sqlite3 database with the engine's pragmas and `sync_mutations` table (created when
 * missing; a database the engine queued into already has it).
 */
export async function openRawDb(
  file: string,
  synchronous: SynchronousLevel = 'FULL',
): Promise<Database.Database> {
  const db = new Database(file);
  db.pragma('busy_timeout = 5000');
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${synchronous}`);
  const exists = db
    .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sync_mutations'")
    .get();
  if (!exists) for (const sql of await mutationsSchema()) db.exec(sql);
  return db;
}

/**
 * The raw INSERT of the same row the engine stores: same columns and values (a time-ordered UUIDv7
 * id as the engine makes, a random UUIDv4 idempotency key, the scope key, the JSON payload and its
 * byte length, the timestamps). The id matters: `id` has a UNIQUE index, and random v4 ids would
 * land all over it (slower inserts) where the engine's v7 ids append.
 */
export function rawInserter(db: Database.Database) {
  const stmt = db.prepare(`INSERT INTO sync_mutations
    (id, key, scope, entity, entity_id, op, data, bytes, base_version, depends_on, state, attempts, next_attempt_at, created_at, updated_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, 'pending', 0, ?, ?, ?)`);
  return (input: MutationInput) => {
    const data = JSON.stringify(input.data);
    const now = Date.now();
    stmt.run(
      uuidV7(now, Math.random),
      randomUUID(),
      SCOPE_KEY,
      input.entity,
      input.entityId,
      input.op,
      data,
      Buffer.byteLength(data),
      now,
      now,
      now,
    );
  };
}

export interface EngineOptions {
  readonly synchronous?: SynchronousLevel;
  readonly network?: Partial<FetchNetworkOptions> & { baseUrl: string; token: string };
  readonly batch?: { maxCount?: number };
  /**
   * The fetch adapter's HTTP client: undici's `request` through `fetchFromUndiciRequest` (what
   * docs/adapters.md recommends on Node, and the raw loops' client) or undici's WHATWG `fetch`.
   * @default 'request'
   */
  readonly client?: 'request' | 'fetch';
}

/** An open, started engine on `file`, with a keep-alive undici pool when a server is given. */
export async function openEngine(file: string, options: EngineOptions = {}) {
  let dispatcher: Agent | undefined;
  let engine: SyncEngine;
  if (options.network) {
    const { token, ...networkOptions } = options.network;
    const agent = new Agent({ connections: 8, keepAliveTimeout: 10_000 });
    dispatcher = agent;
    engine = createSyncEngine({
      storage: createBetterSqlite3Storage(new Database(file), { synchronous: options.synchronous ?? 'FULL' }),
      entities: ENTITIES,
      batch: { maxCount: options.batch?.maxCount ?? 100 },
      network: createFetchNetwork({
        fetch:
          options.client === 'fetch'
            ? (url, init) => undiciFetch(url, { ...init, dispatcher: agent })
            : fetchFromUndiciRequest(undiciRequest, { dispatcher: agent }),
        credentials: () => ({ token }),
        ...networkOptions,
      }),
    });
  } else {
    engine = createSyncEngine({
      storage: createBetterSqlite3Storage(new Database(file), { synchronous: options.synchronous ?? 'FULL' }),
      entities: ENTITIES,
    });
  }
  await engine.open();
  await engine.start(SCOPE);
  return {
    engine,
    async close() {
      await engine.close();
      await dispatcher?.close();
    },
  };
}

/** Queue `count` mutations on a fresh engine database at `file` (1,000 per transaction). */
export async function fillQueue(file: string, count: number, first = 0): Promise<void> {
  const { engine, close } = await openEngine(file, { synchronous: 'NORMAL' });
  try {
    for (let i = 0; i < count; i += 1000) {
      const inputs: MutationInput[] = [];
      for (let j = i; j < Math.min(count, i + 1000); j++) inputs.push(mutation(first + j));
      await engine.enqueueMany(inputs);
    }
  } finally {
    await close();
  }
}

let templateDir: { dir: string; remove: () => void } | undefined;
const templates = new Map<number, string>();

/**
 * A database file with `count` pending mutations, built once per bench process and copied by the
 * runs that consume it (a drain empties its copy). {@link removeTemplates} deletes them.
 */
export async function queueTemplate(count: number): Promise<string> {
  const known = templates.get(count);
  if (known) return known;
  templateDir ??= tempDir('sync-core-bench-templates-');
  const file = join(templateDir.dir, `queue-${count}.db`);
  await fillQueue(file, count);
  templates.set(count, file);
  return file;
}

const rawTemplates = new Map<number, string>();

/**
 * Like {@link queueTemplate}, built fast for large backlogs (the 1M memory run): an engine creates
 * the database (schema, client id) and queues the first mutation; the rest are inserted with the
 * raw prepared INSERT of {@link rawInserter} (the same row the engine stores) in one transaction,
 * with `synchronous = OFF` and the secondary indexes dropped while filling (built again after).
 */
export async function rawQueueTemplate(count: number): Promise<string> {
  const known = rawTemplates.get(count);
  if (known) return known;
  templateDir ??= tempDir('sync-core-bench-templates-');
  const file = join(templateDir.dir, `raw-queue-${count}.db`);
  await fillQueue(file, 1);
  const db = new Database(file);
  try {
    // No rollback journal while filling a throwaway file; WAL again at the end, as the engine sets it.
    db.pragma('journal_mode = OFF');
    db.pragma('synchronous = OFF');
    db.pragma('cache_size = -262144'); // 256 MiB: the random `key` values stay in cache
    // Secondary indexes are dropped while filling and built again after (one sort each, far faster
    // than updating them row by row); the file ends up with the same schema.
    const indexes = db
      .prepare(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'sync_mutations' AND sql IS NOT NULL",
      )
      .all() as { name: string; sql: string }[];
    const insert = rawInserter(db);
    db.transaction(() => {
      for (const index of indexes) db.exec(`DROP INDEX ${index.name}`);
      for (let i = 1; i < count; i++) insert(mutation(i));
      for (const index of indexes) db.exec(index.sql);
    }).immediate();
    db.pragma('journal_mode = WAL');
  } finally {
    db.close();
  }
  rawTemplates.set(count, file);
  return file;
}

export function removeTemplates(): void {
  templateDir?.remove();
  templateDir = undefined;
  templates.clear();
  rawTemplates.clear();
}

/** Copy a closed database (its WAL too, should one be left) to `target`. */
export function copyDb(source: string, target: string): void {
  copyFileSync(source, target);
  if (existsSync(`${source}-wal`)) copyFileSync(`${source}-wal`, `${target}-wal`);
}
