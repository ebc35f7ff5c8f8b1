// examples/quickstart/queue-stats.ts
import Database from 'better-sqlite3';
import { createSyncEngine } from 'sync-core';
import { createBetterSqlite3Storage } from 'sync-core/better-sqlite3';

const engine = createSyncEngine({
  storage: createBetterSqlite3Storage(new Database('app.db')),
  entities: { activity: { coalesce: true } },
});
await engine.open();
await engine.start({ userId: 'u1', orgId: 'o1' });
await engine.enqueue({ entity: 'activity', op: 'create', entityId: 'a1', data: { title: 'Home visit' } });
console.log(await engine.queue.stats()); // { pending: 1, inflight: 0, failed: 0, conflict: 0, total: 1, … }
await engine.close();
