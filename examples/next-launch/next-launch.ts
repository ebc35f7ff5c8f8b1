// examples/next-launch/next-launch.ts
import Database from 'better-sqlite3';
import { createSyncEngine, formatNotices, type PullHandler, type SyncEngine } from 'sync-core';
import { createBetterSqlite3Storage } from 'sync-core/better-sqlite3';
import { createFetchNetwork } from 'sync-core/fetch';
import { Agent, fetch } from 'undici';
import * as z from 'zod';
import { startServer } from '../server/index.js';

// A day in the life of a field worker's app: changes made offline, delivered by an OS background
// job while nobody looks, and shown as quiet notices on the next launch.

// The reference server stands in for your backend (a development tool, not for production).
const server = await startServer({ port: 0 });
const scope = { userId: 'u1', orgId: 'o1' };
const { token } = server.issueToken(scope);
const dispatcher = new Agent({ connections: 4, keepAliveTimeout: 10_000 }); // keep-alive pool

const activity = z.object({ title: z.string().min(1), minutes: z.number().int().nonnegative() });
type Activity = z.infer<typeof activity>;

// Pulled server changes go into the app's own table, in the transaction that advances the cursor.
const pullActivities: PullHandler = async (tx, page) => {
  for (const change of page.changes) {
    // A record with a local change still queued keeps its local row: the change is on its way.
    if (page.pendingEntityIds.has(change.entityId)) continue;
    if (change.op === 'delete') {
      await tx.run('DELETE FROM activities WHERE id = ?', [change.entityId]);
    } else {
      const data = change.data as Activity;
      // Idempotent: a version the row already has (or passed) changes nothing.
      await tx.run(
        `INSERT INTO activities (id, title, minutes, version) VALUES (?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET title = excluded.title, minutes = excluded.minutes, version = excluded.version
         WHERE activities.version IS NULL OR excluded.version > activities.version`,
        [change.entityId, data.title, data.minutes, Number(change.version)],
      );
    }
  }
};

/** What the app does at every launch, foreground or background: open the same database file. */
async function launch(): Promise<{ engine: SyncEngine; db: Database.Database }> {
  const db = new Database('app.db');
  db.exec(`CREATE TABLE IF NOT EXISTS activities (
    id TEXT PRIMARY KEY, title TEXT NOT NULL, minutes INTEGER NOT NULL, version INTEGER)`);
  const engine = createSyncEngine({
    storage: createBetterSqlite3Storage(db),
    network: createFetchNetwork({
      baseUrl: server.url,
      fetch: (url, init) => fetch(url, { ...init, dispatcher }),
      credentials: async () => ({ token }),
    }),
    entities: {
      activity: {
        schema: activity,
        updateSchema: activity.partial(),
        conflict: 'manual', // the default: a conflict waits for the user
        pull: pullActivities,
      },
    },
  });
  await engine.open();
  await engine.start(scope);
  return { engine, db };
}

// Morning, online: the app pulls what the office already has.
server.put(scope, 'activity', 'a0', { title: 'Group meeting', minutes: 60 });
let { engine, db } = await launch();
await engine.runOnce({ trigger: 'foreground' });

// During the day, offline: every change is the app's own write plus its queued mutation, atomically.
async function record(id: string, data: Activity): Promise<void> {
  await engine.transaction(async (tx) => {
    await tx.run('INSERT INTO activities (id, title, minutes) VALUES (?, ?, ?)', [
      id,
      data.title,
      data.minutes,
    ]);
    await tx.enqueue({ entity: 'activity', op: 'create', entityId: id, data });
  });
}
await record('a1', { title: 'Home visit', minutes: 45 });
await record('a2', { title: 'Phone call', minutes: 15 });
await record('a3', { title: 'Hospital visit', minutes: 90 });
await record('a4', { title: 'Walk', minutes: 0 }); // the server will refuse this one
await engine.transaction(async (tx) => {
  const [row] = await tx.all<{ version: number }>('SELECT version FROM activities WHERE id = ?', ['a0']);
  await tx.run('UPDATE activities SET minutes = ? WHERE id = ?', [90, 'a0']);
  // The base version lets the server tell whether someone else changed the record meanwhile.
  await tx.enqueue({
    entity: 'activity',
    op: 'update',
    entityId: 'a0',
    data: { minutes: 90 },
    baseVersion: row?.version ?? null,
  });
});

// Meanwhile a coordinator edits the same record, and the backend has a rule the app does not know.
server.put(scope, 'activity', 'a0', { title: 'Group meeting (moved to 14:00)', minutes: 60 });
server.faults.rejectWhen = (m) =>
  (m.data as { minutes?: number } | null)?.minutes === 0 ? 'a visit lasts at least one minute' : undefined;

// Evening, back online: the OS wakes the app for a short background job, with a time budget.
const report = await engine.runOnce({ trigger: 'background', deadline: Date.now() + 25_000 });
const { pushed, failed, conflicted, pulled } = report.counts;
console.log(
  `background run: ${report.outcome}, ${pushed} pushed, ${failed} failed, ${conflicted} conflicted, ${pulled} pulled`,
);
await engine.close(); // the job ends; the process may be killed now

// Next launch, in the foreground: a new engine on the same file finds what the job wrote down.
({ engine, db } = await launch());
const notices = await engine.status.unseenNotices();
for (const line of formatNotices(notices, { labels: { activity: 'visit' } })) {
  console.log(`[${line.severity}] ${line.text}`); // a quiet banner in a real app
  await engine.status.acknowledge(line.noticeIds); // shown: never shown again
}

// The user opens the conflict and keeps their own change; it is resent against the server's version.
const [conflict] = await engine.conflicts();
if (conflict) {
  console.log(
    `conflict on ${conflict.entityId}: local ${JSON.stringify(conflict.local)} made against v${conflict.baseVersion},` +
      ` server ${JSON.stringify(conflict.server)} at v${conflict.serverVersion}`,
  );
  await engine.resolveConflict(conflict.mutationId, { keep: 'local' });
}
const again = await engine.runOnce({ trigger: 'foreground' });
console.log(`foreground run: ${again.outcome}, ${again.counts.pushed} pushed, ${again.counts.pulled} pulled`);
const a0 = db.prepare('SELECT title, minutes, version FROM activities WHERE id = ?').get('a0') as Activity & {
  version: number;
};
console.log(`a0 in the app: ${a0.title}, ${a0.minutes} min, v${a0.version}`);

// What that run delivered is a new notice; the app shows it and acknowledges it the same way.
const later = await engine.status.unseenNotices();
for (const line of formatNotices(later, { labels: { activity: 'visit' } })) {
  console.log(`[${line.severity}] ${line.text}`);
}
await engine.status.acknowledge(later.map((n) => n.id));

// The refused change stays in the queue as `failed` until the user fixes it (queue.retry) or gives up
// on it (queue.discard); later changes to that record wait behind it.
for (const m of await engine.queue.list({ state: 'failed' })) {
  console.log(`${m.entityId} was refused: ${m.lastError?.message}`);
}
const stats = await engine.queue.stats();
console.log(
  `server applied ${server.stats().applied} changes; ${stats.failed} failed change left in the queue`,
);

await engine.close();
await dispatcher.close();
await server.close();
