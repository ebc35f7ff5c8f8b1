// examples/testing/property-test.ts
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { createSyncEngine, type EnqueuedMutation } from 'sync-core';
import { createBetterSqlite3Storage } from 'sync-core/better-sqlite3';
import * as kit from 'sync-core/testing';
import { test } from 'vitest';

const changes = fc.array(kit.arbMutationInput(fc, { entities: ['activity'], ids: ['a', 'b'] }));

test('every change reaches the server once, in order, whatever the network does', async () => {
  await fc.assert(
    fc.asyncProperty(changes, kit.arbFaultSchedule(fc), async (inputs, schedule) => {
      const clock = kit.createFakeClock();
      const server = kit.createModelServer();
      const engine = createSyncEngine({
        storage: createBetterSqlite3Storage(new Database(':memory:')),
        entities: { activity: {} },
        network: kit.createFaultyNetwork(server, { schedule }),
        clock,
      });
      await engine.open();
      await engine.start({ userId: 'u1' });
      const enqueued: EnqueuedMutation[] = [];
      for (const input of inputs) enqueued.push(await engine.enqueue(input));
      await kit.runUntilIdle(engine, clock);
      const queued = await engine.queue.list({ limit: 1000 });
      kit.assertDelivery(kit.checkDelivery({ enqueued, applied: server.log(), queued }));
      await engine.close();
    }),
  );
});
