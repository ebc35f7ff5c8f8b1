// examples/quickstart/push-to-server.ts
import Database from 'better-sqlite3';
import { createSyncEngine } from 'sync-core';
import { createBetterSqlite3Storage } from 'sync-core/better-sqlite3';
import { createFetchNetwork } from 'sync-core/fetch';
import { Agent, fetch } from 'undici';
import { startServer } from '../server/index.js';

// The reference server stands in for your backend (a development tool, not for production).
const server = await startServer({ port: 0 });
const { token } = server.issueToken({ userId: 'u1', orgId: 'o1' });
const dispatcher = new Agent({ connections: 4, keepAliveTimeout: 10_000 }); // keep-alive pool

const db = new Database('app.db');
db.exec('CREATE TABLE IF NOT EXISTS activities (id TEXT PRIMARY KEY, title TEXT NOT NULL)');
const engine = createSyncEngine({
  storage: createBetterSqlite3Storage(db),
  network: createFetchNetwork({
    baseUrl: server.url,
    fetch: (url, init) => fetch(url, { ...init, dispatcher }),
    credentials: async () => ({ token }), // called per request; sync-core never stores tokens
  }),
  entities: { activity: { coalesce: true } },
});
await engine.open();
await engine.start({ userId: 'u1', orgId: 'o1' });

// The app's own row and its queued mutation commit together, or not at all.
await engine.transaction(async (tx) => {
  await tx.run('INSERT INTO activities (id, title) VALUES (?, ?)', ['a1', 'Home visit']);
  await tx.enqueue({ entity: 'activity', op: 'create', entityId: 'a1', data: { title: 'Home visit' } });
});

// What an OS background task calls when it wakes the app (with its time budget as the deadline).
const report = await engine.runOnce({ trigger: 'background', deadline: Date.now() + 25_000 });
console.log(report.outcome, report.counts.pushed, 'pushed;', server.log().length, 'applied on the server');

await engine.close();
await dispatcher.close();
await server.close();
