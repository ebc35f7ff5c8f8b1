/**
 * Pull (DESIGN.md section 4, step 4) against the reference server over loopback: pages applied by
 * the app's handler in the transaction that advances the cursor, resumable without gaps or repeats.
 */
import Database from 'better-sqlite3';
import type { PullHandler } from 'sync-core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type ReferenceServer, startServer } from '../../examples/server/index.js';
import { referenceClient } from '../helpers/reference-client.js';

let server: ReferenceServer;
const disposers: (() => Promise<void>)[] = [];
const SCOPE = { userId: 'u1', orgId: 'o1' };

beforeEach(async () => {
  server = await startServer({ port: 0 });
});
afterEach(async () => {
  for (const dispose of disposers.splice(0)) await dispose();
  await server.close();
});

/** The app's pull handler: upsert into its own table, delete on delete, keep rows with local edits. */
function tableHandler(applied: string[], skipped: string[] = []): PullHandler {
  return async (tx, page) => {
    await tx.run(
      'CREATE TABLE IF NOT EXISTS activities (id TEXT PRIMARY KEY, version INTEGER NOT NULL, data TEXT NOT NULL)',
    );
    for (const change of page.changes) {
      if (page.pendingEntityIds.has(change.entityId)) {
        skipped.push(change.entityId);
        continue;
      }
      applied.push(`${change.entityId}@${change.version}`);
      if (change.op === 'delete') await tx.run('DELETE FROM activities WHERE id = ?', [change.entityId]);
      else {
        await tx.run('INSERT OR REPLACE INTO activities (id, version, data) VALUES (?, ?, ?)', [
          change.entityId,
          Number(change.version),
          JSON.stringify(change.data),
        ]);
      }
    }
  };
}

function rows(file: string): { id: string; version: number }[] {
  const db = new Database(file, { readonly: true });
  try {
    return db.prepare('SELECT id, version FROM activities ORDER BY id').all() as {
      id: string;
      version: number;
    }[];
  } finally {
    db.close();
  }
}

describe('pull', () => {
  it('pages through every change since the cursor into the app table, then only what is new', async () => {
    for (let i = 0; i < 1_200; i++) server.put(SCOPE, 'activity', `a${String(i).padStart(4, '0')}`, { i });
    server.remove(SCOPE, 'activity', 'a0007');
    const applied: string[] = [];
    const c = await referenceClient(server, {
      entities: { activity: { pull: tableHandler(applied) } },
      engine: { pullLimit: 500 },
    });
    disposers.push(c.dispose);
    const report = await c.engine.runOnce();
    expect(report.outcome).toBe('ok');
    expect(report.counts.pulled).toBe(1_201);
    expect(server.stats().pullRequests).toBe(3);
    expect(rows(c.file)).toHaveLength(1_199);
    expect(new Set(applied).size).toBe(applied.length);

    const again = await c.engine.runOnce();
    expect(again.counts.pulled).toBe(0);
    server.put(SCOPE, 'activity', 'a0001', { i: 'changed' });
    expect((await c.engine.runOnce()).counts.pulled).toBe(1);
    expect(rows(c.file).find((r) => r.id === 'a0001')?.version).toBe(2);
  });

  it('a page whose handler fails rolls back with its cursor: the next run resumes there, no gap, no repeat', async () => {
    for (let i = 0; i < 30; i++) server.put(SCOPE, 'activity', `a${String(i).padStart(2, '0')}`, { i });
    const committed: string[] = [];
    let calls = 0;
    const inner = tableHandler([]);
    const c = await referenceClient(server, {
      entities: {
        activity: {
          pull: async (tx, page) => {
            calls++;
            await inner(tx, page);
            if (calls === 2) throw new Error('app crashed while applying page 2');
            committed.push(...page.changes.map((ch) => ch.entityId));
          },
        },
      },
      engine: { pullLimit: 10 },
    });
    disposers.push(c.dispose);
    const failed = await c.engine.runOnce();
    expect(failed.outcome).toBe('error');
    expect(failed.error?.code).toBe('PULL_HANDLER_FAILED');
    expect(rows(c.file)).toHaveLength(10);
    const resumed = await c.engine.runOnce();
    expect(resumed.outcome).toBe('ok');
    expect(committed).toEqual(Array.from({ length: 30 }, (_, i) => `a${String(i).padStart(2, '0')}`));
    expect(rows(c.file)).toHaveLength(30);
  });

  it('stops between pages at the deadline and resumes in the next run', async () => {
    for (let i = 0; i < 50; i++) server.put(SCOPE, 'activity', `a${String(i).padStart(2, '0')}`, { i });
    const applied: string[] = [];
    const c = await referenceClient(server, {
      entities: { activity: { pull: tableHandler(applied) } },
      engine: { pullLimit: 10, initialBatchEstimateMs: 10 },
    });
    disposers.push(c.dispose);
    server.faults.latencyMs = 80;
    const first = await c.engine.runOnce({ deadline: Date.now() + 250 });
    expect(first.outcome).toBe('deadline');
    expect(first.counts.pulled).toBeGreaterThan(0);
    expect(first.counts.pulled).toBeLessThan(50);
    server.faults.latencyMs = 0;
    const second = await c.engine.runOnce();
    expect(first.counts.pulled + second.counts.pulled).toBe(50);
    expect(new Set(applied).size).toBe(50);
  });

  it('tells the handler which records still have unconfirmed local mutations', async () => {
    server.put(SCOPE, 'activity', 'mine', { v: 1 });
    server.put(SCOPE, 'activity', 'theirs', { v: 1 });
    const skipped: string[] = [];
    const c = await referenceClient(server, { entities: { activity: { pull: tableHandler([], skipped) } } });
    disposers.push(c.dispose);
    // A local edit that conflicts stays queued: pull must not overwrite the user's row.
    server.put(SCOPE, 'activity', 'mine', { v: 2 });
    await c.engine.enqueue({
      entity: 'activity',
      op: 'update',
      entityId: 'mine',
      data: { v: 'local' },
      baseVersion: 1,
    });
    await c.engine.runOnce();
    expect(new Set(skipped)).toEqual(new Set(['mine']));
    expect(rows(c.file).map((r) => r.id)).toEqual(['theirs']);
  });

  it('pull runs after push in the same run, and only for entity types with a handler', async () => {
    const c = await referenceClient(server, {
      entities: { activity: { pull: tableHandler([]) }, contact: {} },
    });
    disposers.push(c.dispose);
    await c.engine.enqueue({ entity: 'activity', op: 'create', entityId: 'a1', data: { t: 1 } });
    await c.engine.enqueue({ entity: 'contact', op: 'create', entityId: 'c1', data: {} });
    const report = await c.engine.runOnce();
    expect(report.counts.pushed).toBe(2);
    expect(report.counts.pulled).toBe(1);
    expect(rows(c.file)).toEqual([{ id: 'a1', version: 1 }]);
  });

  it('offline during pull: the run stops offline with the cursor where it was', async () => {
    server.put(SCOPE, 'activity', 'a1', { v: 1 });
    const c = await referenceClient(server, { entities: { activity: { pull: tableHandler([]) } } });
    disposers.push(c.dispose);
    await server.goOffline();
    expect((await c.engine.runOnce()).outcome).toBe('offline');
    await server.goOnline();
    expect((await c.engine.runOnce()).counts.pulled).toBe(1);
  });
});
