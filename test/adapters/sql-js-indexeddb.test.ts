import { IDBFactory } from 'fake-indexeddb';
import { createSyncEngine } from 'sync-core';
import { expect, it } from 'vitest';
import { openIndexedDbStorage } from '../../adapters/sql-js/index.js';
import { createInProcessLockManager } from '../helpers/in-process-lock-manager.js';
import { loadSqlJs } from '../helpers/storage-factories.js';

it('smoke', async () => {
  const SQL = await loadSqlJs();
  const indexedDB = new IDBFactory();
  const locks = createInProcessLockManager();
  const s1 = await openIndexedDbStorage(SQL, { name: 'q', indexedDB, locks });
  const e1 = createSyncEngine({ storage: s1, entities: { a: {} } });
  await e1.open();
  await e1.start({ userId: 'u' });
  for (let i = 0; i < 10; i++) await e1.enqueue({ entity: 'a', op: 'create', entityId: `${i}`, data: {} });
  const s2 = await openIndexedDbStorage(SQL, { name: 'q', indexedDB, locks });
  const e2 = createSyncEngine({ storage: s2, entities: { a: {} } });
  await e2.open();
  await e2.start({ userId: 'u' });
  await e2.enqueue({ entity: 'a', op: 'create', entityId: 'x', data: {} });
  expect((await e1.queue.stats()).total).toBe(11);
  expect((await e2.queue.stats()).total).toBe(11);
  await e1.close();
  await e2.close();
  expect(locks.maxHeld('sync-core:q')).toBe(1);
});
