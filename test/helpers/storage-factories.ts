import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import initSqlJs from 'sql.js';
import type { StorageAdapter } from 'sync-core';
import { createBetterSqlite3Storage } from '../../adapters/better-sqlite3/index.js';
import { createNodeFileSnapshot, createSqlJsStorage } from '../../adapters/sql-js/index.js';

/**
 * How the conformance suite gets a storage adapter: a fresh one, and a new adapter over the same
 * persisted data (after the previous one was closed) to prove durability.
 */
export interface StorageFactory {
  readonly name: string;
  /** A fresh, empty database. */
  create(): Promise<StorageAdapter>;
  /** A new adapter over what the last adapter persisted (call after closing it). */
  reopen(): Promise<StorageAdapter>;
  /** Remove files. */
  cleanup(): void;
}

/** A temporary directory removed by the returned function. */
export function tempDir(prefix = 'sync-core-'): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export function betterSqlite3FileFactory(): StorageFactory {
  const { dir, remove } = tempDir();
  const file = join(dir, 'queue.db');
  return {
    name: 'better-sqlite3 (file)',
    create: async () => createBetterSqlite3Storage(new Database(file)),
    reopen: async () => createBetterSqlite3Storage(new Database(file)),
    cleanup: remove,
  };
}

let sqlJs: Awaited<ReturnType<typeof initSqlJs>> | undefined;
export async function loadSqlJs() {
  sqlJs ??= await initSqlJs();
  return sqlJs;
}

export function sqlJsFileFactory(): StorageFactory {
  const { dir, remove } = tempDir();
  const snapshot = createNodeFileSnapshot(join(dir, 'queue.sqlite'));
  return {
    name: 'sql.js (export/reload)',
    create: async () => {
      const SQL = await loadSqlJs();
      return createSqlJsStorage(new SQL.Database(), { persist: snapshot.save });
    },
    reopen: async () => {
      const SQL = await loadSqlJs();
      const image = await snapshot.load();
      return createSqlJsStorage(new SQL.Database(image), { persist: snapshot.save });
    },
    cleanup: remove,
  };
}

/** A fake wall clock for tests: time moves only when told. */
export function manualClock(start = Date.UTC(2026, 10, 25, 8, 0, 0)) {
  let now = start;
  return {
    now: () => now,
    set: (value: number) => {
      now = value;
    },
    advance: (ms: number) => {
      now += ms;
    },
  };
}

/** A deterministic random source (mulberry32) for reproducible ids and jitter. */
export function seededRandom(seed = 42): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}
