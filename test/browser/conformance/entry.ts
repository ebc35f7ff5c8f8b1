/**
 * The storage conformance suite over `openIndexedDbStorage` (sql.js persisted to IndexedDB, under
 * a Web Lock), bundled for the browser: once with the adapter's default (debounced) saves, once
 * with `persistMode: 'commit'`. `reopen()` is a new adapter over what IndexedDB holds.
 */
import initSqlJs from 'sql.js';
import type { StorageAdapter } from 'sync-core';
import { openIndexedDbStorage } from 'sync-core/sql-js';
import { describeStorageConformance } from '../../conformance/storage-conformance.js';
import { listTests, runTest } from './harness.js';

type SqlJs = Awaited<ReturnType<typeof initSqlJs>>;
let sqlJs: Promise<SqlJs> | undefined;
const loadSqlJs = () => {
  sqlJs ??= initSqlJs({ locateFile: (file) => `/${file}` });
  return sqlJs;
};

let queues = 0;

function indexedDbFactory(label: string, persistMode?: 'commit') {
  return () => {
    const name = `conformance-${label}-${Date.now()}-${queues++}`;
    const open = async (): Promise<StorageAdapter> =>
      openIndexedDbStorage(await loadSqlJs(), persistMode === undefined ? { name } : { name, persistMode });
    return {
      name: `sql.js + IndexedDB in Chromium (openIndexedDbStorage, ${label})`,
      create: open,
      reopen: open,
      cleanup: () => void indexedDB.deleteDatabase(`sync-core:${name}`),
    };
  };
}

describeStorageConformance(indexedDbFactory('default saves'));
describeStorageConformance(indexedDbFactory("persistMode 'commit'", 'commit'));

Object.assign(globalThis, { conformance: { listTests, runTest } });
