import { join } from 'node:path';
import Database from 'better-sqlite3';
import { ConfigError, createSyncEngine, StorageError } from 'sync-core';
import { describe, expect, it } from 'vitest';
import { createBetterSqlite3Storage } from '../../adapters/better-sqlite3/index.js';
import { describeStorageConformance } from '../conformance/storage-conformance.js';
import { betterSqlite3FileFactory, tempDir } from '../helpers/storage-factories.js';

describeStorageConformance(betterSqlite3FileFactory);

describe('better-sqlite3 adapter', () => {
  it('applies WAL, the busy timeout and synchronous=FULL by default', async () => {
    const { dir, remove } = tempDir();
    const db = new Database(join(dir, 'a.db'));
    const storage = createBetterSqlite3Storage(db, { closeDatabase: false });
    const engine = createSyncEngine({ storage, entities: { a: {} } });
    await engine.open();
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(db.pragma('synchronous', { simple: true })).toBe(2); // FULL
    expect(db.pragma('busy_timeout', { simple: true })).toBe(5000);
    await engine.close();
    expect(db.open).toBe(true); // closeDatabase: false leaves the app's handle open
    db.close();
    remove();
  });

  it('takes synchronous and busyTimeoutMs as options and closes the database by default', async () => {
    const { dir, remove } = tempDir();
    const db = new Database(join(dir, 'a.db'));
    const engine = createSyncEngine({
      storage: createBetterSqlite3Storage(db, { synchronous: 'NORMAL', busyTimeoutMs: 250 }),
      entities: { a: {} },
    });
    await engine.open();
    expect(db.pragma('synchronous', { simple: true })).toBe(1);
    expect(db.pragma('busy_timeout', { simple: true })).toBe(250);
    await engine.close();
    expect(db.open).toBe(false);
    remove();
  });

  it('rejects invalid options with a ConfigError naming the option', () => {
    const db = new Database(':memory:');
    expect(() => createBetterSqlite3Storage(db, { synchronous: 'SOMETIMES' as never })).toThrow(ConfigError);
    expect(() => createBetterSqlite3Storage(db, { busyTimeoutMs: -1 })).toThrow(
      /busyTimeoutMs: expected an integer/,
    );
    expect(() => createBetterSqlite3Storage({} as never)).toThrow(ConfigError);
    db.close();
  });

  it('reports a corrupt file as STORAGE_CORRUPT and never recreates an empty queue (FAULTS 10)', async () => {
    const { dir, remove } = tempDir();
    const file = join(dir, 'corrupt.db');
    const { writeFileSync, readFileSync } = await import('node:fs');
    writeFileSync(file, Buffer.from('this is not a sqlite database, it is a text file '.repeat(100)));
    const before = readFileSync(file);
    const engine = createSyncEngine({
      storage: createBetterSqlite3Storage(new Database(file)),
      entities: { a: {} },
    });
    const error = await engine.open().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StorageError);
    expect(error).toMatchObject({ code: 'STORAGE_CORRUPT' });
    expect(readFileSync(file).equals(before)).toBe(true);
    remove();
  });
});
