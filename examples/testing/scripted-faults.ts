// examples/testing/scripted-faults.ts
import Database from 'better-sqlite3';
import { createSyncEngine } from 'sync-core';
import { createBetterSqlite3Storage } from 'sync-core/better-sqlite3';
import { createFakeClock, createFaultyNetwork, createModelServer, runUntilIdle } from 'sync-core/testing';
import { expect, test } from 'vitest';

test('a timeout after the server committed: resent with the same key, applied once', async () => {
  const clock = createFakeClock();
  const server = createModelServer();
  const network = createFaultyNetwork(server);
  const engine = createSyncEngine({
    storage: createBetterSqlite3Storage(new Database(':memory:')),
    entities: { activity: {} },
    network,
    clock,
  });
  await engine.open();
  await engine.start({ userId: 'u1' });
  const change = await engine.enqueue({ entity: 'activity', op: 'create', entityId: 'a1', data: { t: 1 } });

  network.faults.next({ kind: 'timeout-after-commit' });
  const { reports } = await runUntilIdle(engine, clock);

  expect(reports.map((r) => r.outcome)).toEqual(['server-error', 'ok']);
  const [first, resend] = network.requests();
  expect(first?.reachedServer).toBe(true);
  expect(resend?.response).toEqual({
    type: 'results',
    results: [{ id: change.id, status: 'duplicate', version: 1 }],
  });
  expect(server.log()).toHaveLength(1);
  await engine.close();
});
