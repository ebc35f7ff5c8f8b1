/**
 * Opening a user's database file for the CLI: check that it is a sync-core database this build can
 * read, with a one-line error for every way it is not, then open an engine on it (read-only for
 * `inspect`).
 *
 * @packageDocumentation
 */

import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';
import { createSyncEngine, SCHEMA_VERSION, type SyncEngine, SyncError } from 'sync-core';
import { createBetterSqlite3Storage } from 'sync-core/better-sqlite3';

/** A failure the CLI reports as one line on stderr, exiting with `exitCode`. */
export class CliError extends Error {
  readonly exitCode: number;

  constructor(message: string, exitCode = 1) {
    super(message);
    this.name = 'CliError';
    this.exitCode = exitCode;
  }
}

type DatabaseConstructor = typeof BetterSqlite3;

function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * Load better-sqlite3, an optional peer dependency of sync-core: the CLI needs it for every
 * command that opens a database or starts the reference server, and says so when it is missing.
 */
export async function loadBetterSqlite3(command: string): Promise<DatabaseConstructor> {
  try {
    const mod = (await import('better-sqlite3')) as { default: DatabaseConstructor };
    return mod.default;
  } catch (error) {
    const code = errorCode(error);
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') {
      throw new CliError(
        `${command} needs better-sqlite3, an optional peer dependency of sync-core: npm install better-sqlite3`,
      );
    }
    const reason = error instanceof Error ? error.message.split('\n')[0] : String(error);
    throw new CliError(`${command}: better-sqlite3 is installed but could not be loaded (${reason})`);
  }
}

/** A sync-core engine open on a database file, and how to close it. */
export interface OpenedDatabase {
  /** The absolute path of the file. */
  readonly path: string;
  /** The schema version the file had when it was opened. */
  readonly schemaVersion: number;
  /**
   * `inspect` of a file written by an older sync-core: it was read through a migrated temporary
   * copy, so the file itself was not changed.
   */
  readonly readThroughCopy: boolean;
  readonly engine: SyncEngine;
  /** Close the engine (and remove a temporary copy). */
  close(): Promise<void>;
}

/**
 * Read `sync_meta.schema_version` with plain SQL, before the engine touches the file: the engine
 * would migrate a foreign SQLite file into a sync-core one, which a support tool must never do.
 */
function readSchemaVersion(db: BetterSqlite3.Database, path: string): number {
  let tables: unknown[];
  try {
    tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'sync_meta'").all();
  } catch (error) {
    const code = errorCode(error);
    if (code === 'SQLITE_NOTADB') throw new CliError(`${path}: not a SQLite database`);
    if (code === 'SQLITE_CORRUPT') throw new CliError(`${path}: the SQLite database is corrupt`);
    throw new CliError(`${path}: cannot be read (${code ?? String(error)})`);
  }
  if (tables.length === 0) {
    throw new CliError(`${path}: a SQLite database, but not a sync-core one (no sync_meta table)`);
  }
  const row = db.prepare("SELECT value FROM sync_meta WHERE key = 'schema_version'").get() as
    | { value: unknown }
    | undefined;
  if (row === undefined) {
    throw new CliError(
      `${path}: a SQLite database, but not a sync-core one (no schema_version in sync_meta)`,
    );
  }
  const version = Number(row.value);
  if (!Number.isInteger(version) || version < 1) {
    throw new CliError(`${path}: sync_meta holds an unreadable schema version (${String(row.value)})`);
  }
  if (version > SCHEMA_VERSION) {
    throw new CliError(
      `${path}: written by a newer sync-core (schema v${version}; this sync-core reads up to v${SCHEMA_VERSION}): upgrade sync-core`,
    );
  }
  return version;
}

/**
 * Open the sync-core database at `file` for `command`.
 *
 * - `readonly: true` (inspect): the file is opened read-only and never written. A file of an
 *   older schema is read through a migrated temporary copy.
 * - `readonly: false` (retry, discard): the file is opened for writing, the way the app opens it
 *   (an older schema is migrated, as the app's next launch would). Its journal mode is left as is.
 *
 * @throws CliError for a missing file, a directory, a file that is not SQLite, a SQLite file that
 * is not a sync-core database, and a database written by a newer sync-core.
 */
export async function openDatabase(
  file: string,
  options: { readonly command: string; readonly readonly: boolean },
): Promise<OpenedDatabase> {
  const path = resolve(file);
  let isFile: boolean;
  try {
    isFile = statSync(path).isFile();
  } catch {
    throw new CliError(`${file}: no such file`);
  }
  if (!isFile) throw new CliError(`${file}: not a file`);
  const Database = await loadBetterSqlite3(options.command);

  let db: BetterSqlite3.Database;
  try {
    db = new Database(path, { readonly: options.readonly, fileMustExist: true });
  } catch (error) {
    throw new CliError(`${file}: cannot be opened (${errorCode(error) ?? String(error)})`);
  }
  let schemaVersion: number;
  try {
    schemaVersion = readSchemaVersion(db, file);
  } catch (error) {
    db.close();
    throw error;
  }

  let copyDir: string | undefined;
  if (options.readonly && schemaVersion < SCHEMA_VERSION) {
    // The engine migrates on open; a read-only look at an older file goes through a copy.
    // VACUUM INTO writes one consistent file, WAL content included, from a read-only connection.
    copyDir = mkdtempSync(join(tmpdir(), 'sync-core-inspect-'));
    const copy = join(copyDir, 'copy.db');
    try {
      db.prepare('VACUUM INTO ?').run(copy);
    } catch (error) {
      rmSync(copyDir, { recursive: true, force: true });
      throw new CliError(
        `${file}: schema v${schemaVersion} is read through a migrated copy, and copying failed (${errorCode(error) ?? String(error)})`,
      );
    } finally {
      db.close();
    }
    db = new Database(copy);
  }

  const engine = createSyncEngine({
    // `wal: false`: never change the journal mode of a user's file (the app chose it).
    storage: createBetterSqlite3Storage(db, { wal: false }),
    // The queue API needs no entity options: nothing is enqueued or validated here.
    entities: {},
  });
  const cleanup = (): void => {
    if (copyDir !== undefined) rmSync(copyDir, { recursive: true, force: true });
  };
  try {
    await engine.open();
  } catch (error) {
    await engine.close().catch(() => undefined);
    cleanup();
    if (error instanceof SyncError) throw new CliError(`${file}: ${error.code}: ${error.message}`);
    throw error;
  }
  return {
    path,
    schemaVersion,
    readThroughCopy: copyDir !== undefined,
    engine,
    async close() {
      await engine.close();
      cleanup();
    },
  };
}
