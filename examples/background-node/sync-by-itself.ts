// examples/background-node/sync-by-itself.ts
// A Node/Electron process with the in-process timer scheduler: the app only signs in and enqueues.
// The server is down when the changes are made; when it comes back, sync happens by itself.
import Database from 'better-sqlite3';
import { createSyncEngine, createTimerScheduler } from 'sync-core';
import { createBetterSqlite3Storage } from 'sync-core/better-sqlite3';
import { createFetchNetwork } from 'sync-core/fetch';
import { startServer } from '../server/index.js';

const server = await startServer({ port: 0 });
const { token } = server.issueToken({ userId: 'u1' });
await server.goOffline(); // an outage: connections are refused

const scheduler = createTimerScheduler();
const engine = createSyncEngine({
  storage: createBetterSqlite3Storage(new Database('app.db')),
  network: createFetchNetwork({ baseUrl: server.url, credentials: async () => ({ token }) }),
  entities: { activity: {} },
  scheduler,
  // Short delays so the example finishes quickly; the defaults are 30 s doubling to 1 h.
  backoff: { initialMs: 200, maxMs: 1_000 },
});
let outageRuns = 0;
engine.on('run:finished', (report) => {
  console.log(`run (${report.trigger}): ${report.outcome}, ${report.counts.pushed} pushed`);
  // The outage ends after the device has tried twice; nothing in this program calls runOnce.
  if (report.outcome === 'offline' && ++outageRuns === 2) void server.goOnline();
});
await engine.open();
await engine.start({ userId: 'u1' });
for (let i = 1; i <= 5; i++) {
  await engine.enqueue({
    entity: 'activity',
    op: 'create',
    entityId: `a${i}`,
    data: { title: `Visit ${i}` },
  });
}

const deadline = Date.now() + 20_000;
while ((await engine.queue.stats()).total > 0 && Date.now() < deadline) {
  await new Promise((resolve) => setTimeout(resolve, 50));
}
console.log(`server applied ${server.log().length} of 5; queue holds ${(await engine.queue.stats()).total}`);

await engine.close();
scheduler.dispose();
await server.close();
