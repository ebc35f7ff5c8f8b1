/**
 * Conflicts (DESIGN.md section 6), server-assigned ids (section 8) and the status store (invariant
 * 8) end to end: the real reference server over loopback, better-sqlite3 files, the fetch adapter.
 */
import Database from 'better-sqlite3';
import type { ConflictDetectedEvent, EntityOptions, JsonValue } from 'sync-core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type ReferenceServer, startServer } from '../../examples/server/index.js';
import { referenceClient } from '../helpers/reference-client.js';
import { manualClock } from '../helpers/storage-factories.js';

let server: ReferenceServer;
const disposers: (() => Promise<void>)[] = [];
const SCOPE = { userId: 'u1', orgId: 'o1' };

beforeEach(async () => {
  server = await startServer({ port: 0, assignIds: ['activity'] });
});
afterEach(async () => {
  for (const dispose of disposers.splice(0)) await dispose();
  await server.close();
});

async function client(
  entities: Record<string, EntityOptions>,
  extra: Parameters<typeof referenceClient>[1] = {},
) {
  const c = await referenceClient(server, { entities, ...extra });
  disposers.push(c.dispose);
  return c;
}

/** A record the server has at version 2, and a local update made against version 1. */
async function staleUpdate(engine: Awaited<ReturnType<typeof client>>['engine'], entity = 'contact') {
  server.put(SCOPE, entity, 'c1', { name: 'Ada', city: 'Oslo' });
  server.put(SCOPE, entity, 'c1', { name: 'Ada', city: 'Bergen' });
  return engine.enqueue({ entity, op: 'update', entityId: 'c1', data: { phone: '123' }, baseVersion: 1 });
}

describe('conflict strategies against the reference server', () => {
  it('manual: both sides stored, the record waits, a notice is raised; keep local resends against the server version', async () => {
    const { engine } = await client({ contact: {} });
    const stale = await staleUpdate(engine);
    const later = await engine.enqueue({
      entity: 'contact',
      op: 'update',
      entityId: 'c1',
      data: { note: 'x' },
    });
    const report = await engine.runOnce();
    expect(report.counts.conflicted).toBe(1);
    const [conflict] = await engine.conflicts();
    expect(conflict).toMatchObject({
      mutationId: stale.id,
      local: { phone: '123' },
      baseVersion: 1,
      server: { name: 'Ada', city: 'Bergen' },
      serverVersion: 2,
      resolution: null,
    });
    expect(await engine.queue.get(later.id)).toMatchObject({ state: 'pending', attempts: 0 });
    const notices = await engine.status.unseenNotices();
    expect(notices.filter((n) => n.kind === 'conflict')).toMatchObject([
      { mutationId: stale.id, entity: 'contact' },
    ]);
    // A conflict is never retried blindly: another run sends nothing for this record.
    expect((await engine.runOnce()).counts.batches).toBe(0);

    await engine.resolveConflict(stale.id, { keep: 'local' });
    expect(await engine.conflicts()).toEqual([]);
    expect((await engine.status.unseenNotices()).filter((n) => n.kind === 'conflict')).toEqual([]);
    const after = await engine.runOnce();
    expect(after.counts.pushed).toBe(2);
    expect(server.record(SCOPE, 'contact', 'c1')).toMatchObject({
      version: 4,
      data: { city: 'Bergen', phone: '123', note: 'x' },
    });
  });

  it('manual: keep server drops the local change; merged sends the merged payload', async () => {
    const { engine } = await client({ contact: {} });
    const stale = await staleUpdate(engine);
    await engine.runOnce();
    await engine.resolveConflict(stale.id, { keep: 'server' });
    expect(await engine.queue.get(stale.id)).toBeUndefined();
    expect(server.log()).toHaveLength(0);

    const again = await engine.enqueue({
      entity: 'contact',
      op: 'update',
      entityId: 'c1',
      data: { phone: '9' },
      baseVersion: 1,
    });
    await engine.runOnce();
    await engine.resolveConflict(again.id, { merged: { phone: '9', city: 'Bergen (merged)' } });
    await engine.runOnce();
    expect(server.record(SCOPE, 'contact', 'c1')).toMatchObject({
      data: { phone: '9', city: 'Bergen (merged)' },
    });
    await expect(engine.resolveConflict(again.id, { keep: 'local' })).rejects.toMatchObject({
      code: 'CONFLICT_NOT_FOUND',
    });
  });

  it('discarding a conflicted mutation closes its conflict and its notice', async () => {
    const { engine } = await client({ contact: {} });
    const stale = await staleUpdate(engine);
    await engine.runOnce();
    expect(await engine.conflicts()).toHaveLength(1);
    await engine.queue.discard([stale.id]);
    expect(await engine.conflicts()).toEqual([]);
    expect((await engine.status.unseenNotices()).filter((n) => n.kind === 'conflict')).toEqual([]);
  });

  it('server-wins: the local change is dropped, later mutations of the record proceed', async () => {
    const { engine } = await client({ contact: { conflict: 'server-wins' } });
    const events: ConflictDetectedEvent[] = [];
    engine.on('conflict:detected', (e) => events.push(e));
    const stale = await staleUpdate(engine);
    await engine.enqueue({ entity: 'contact', op: 'update', entityId: 'c1', data: { note: 'after' } });
    const report = await engine.runOnce();
    expect(report.counts).toMatchObject({ resolved: 1, conflicted: 0, pushed: 1 });
    expect(events).toEqual([{ id: stale.id, entity: 'contact', entityId: 'c1', resolution: 'server-wins' }]);
    expect(server.record(SCOPE, 'contact', 'c1')?.data).toEqual({
      name: 'Ada',
      city: 'Bergen',
      note: 'after',
    });
    expect(await engine.conflicts()).toEqual([]);
  });

  it("server-wins: one unseen 'overwritten' notice per dropped mutation, raised with the drop, survives a restart, hidden once acknowledged", async () => {
    const clock = manualClock(Date.now());
    const first = await client({ contact: { conflict: 'server-wins' } }, { clock });
    const engine = first.engine;
    // Two stale edits of c1 (the second waits behind the first, then conflicts too) and one of c2.
    const a = await staleUpdate(engine);
    const b = await engine.enqueue({
      entity: 'contact',
      op: 'update',
      entityId: 'c1',
      data: { phone: '456' },
      baseVersion: 1,
    });
    server.put(SCOPE, 'contact', 'c2', { name: 'Grace' });
    server.put(SCOPE, 'contact', 'c2', { name: 'Grace', city: 'Paris' });
    server.put(SCOPE, 'contact', 'c2', { name: 'Grace', city: 'Lyon' });
    const c = await engine.enqueue({
      entity: 'contact',
      op: 'update',
      entityId: 'c2',
      data: { phone: '789' },
      baseVersion: 1,
    });
    const report = await engine.runOnce();
    expect(report.counts).toMatchObject({ resolved: 3, conflicted: 0, pushed: 0 });
    expect(await engine.queue.stats()).toMatchObject({ total: 0 });

    const expected = [
      { mutationId: a.id, entityId: 'c1', serverVersion: 2 },
      { mutationId: b.id, entityId: 'c1', serverVersion: 2 },
      { mutationId: c.id, entityId: 'c2', serverVersion: 3 },
    ].map((n) => ({
      id: expect.any(String),
      kind: 'overwritten',
      scope: SCOPE,
      createdAt: expect.any(Number),
      updatedAt: expect.any(Number),
      seenAt: null,
      entity: 'contact',
      ...n,
    }));
    const byMutation = (x: { mutationId: string }, y: { mutationId: string }) =>
      x.mutationId < y.mutationId ? -1 : 1;
    const overwrittenOf = async (e: typeof engine) =>
      (await e.status.unseenNotices()).filter((n) => n.kind === 'overwritten');
    // Exactly these fields: no payload of either side (FAULTS.md 33).
    expect((await overwrittenOf(engine)).sort(byMutation)).toEqual(expected.sort(byMutation));
    expect(await engine.conflicts()).toEqual([]);
    // Another run finds nothing to send and raises nothing again.
    expect((await engine.runOnce()).counts.batches).toBe(0);
    expect(await overwrittenOf(engine)).toHaveLength(3);
    await engine.close();

    // Next launch: a new engine on the same file reads them, shows them, acknowledges them.
    const second = await client({ contact: { conflict: 'server-wins' } }, { clock, file: first.file });
    const notices = await overwrittenOf(second.engine);
    expect(notices.sort(byMutation)).toEqual(expected.sort(byMutation));
    expect(await second.engine.status.acknowledge(notices.map((n) => n.id))).toBe(3);
    expect(await overwrittenOf(second.engine)).toEqual([]);
    expect((await second.engine.status.snapshot()).unseenNotices).toBe(0);
  });

  it("client-wins and a merge raise no 'overwritten' notice: the local change is sent", async () => {
    const { engine } = await client({
      contact: { conflict: 'client-wins' },
      note: { conflict: (local, serverData) => ({ ...(serverData as object), ...(local as object) }) },
    });
    await staleUpdate(engine, 'contact');
    await staleUpdate(engine, 'note');
    const report = await engine.runOnce();
    expect(report.counts).toMatchObject({ resolved: 2, pushed: 2, conflicted: 0 });
    const notices = await engine.status.unseenNotices();
    expect(notices.map((n) => n.kind)).toEqual(['synced']);
  });

  it('client-wins: resent against the server version in the same run', async () => {
    const { engine } = await client({ contact: { conflict: 'client-wins' } });
    await staleUpdate(engine);
    const report = await engine.runOnce();
    expect(report.counts).toMatchObject({ resolved: 1, pushed: 1 });
    expect(server.log()).toMatchObject([{ entityId: 'c1', op: 'update', baseVersion: 2, version: 3 }]);
  });

  it('a merge function gets local, server and context; its result is sent against the server version', async () => {
    const seen: { local: JsonValue | null; server: JsonValue | null; serverVersion: unknown }[] = [];
    const { engine } = await client({
      contact: {
        conflict: (local, serverData, context) => {
          seen.push({ local, server: serverData, serverVersion: context.serverVersion });
          return { ...(serverData as object), ...(local as object), merged: true };
        },
      },
    });
    await staleUpdate(engine);
    await engine.runOnce();
    expect(seen).toEqual([
      { local: { phone: '123' }, server: { name: 'Ada', city: 'Bergen' }, serverVersion: 2 },
    ]);
    expect(server.record(SCOPE, 'contact', 'c1')?.data).toEqual({
      name: 'Ada',
      city: 'Bergen',
      phone: '123',
      merged: true,
    });
  });

  it('a record that keeps conflicting falls back to manual (never an infinite retry, amplify-js #6278)', async () => {
    const { engine } = await client(
      {
        contact: {
          conflict: (local) => {
            server.put(SCOPE, 'contact', 'c1', { bump: Math.random() }); // someone else edits again
            return local;
          },
        },
      },
      { engine: { maxConflictRebases: 3 } },
    );
    const stale = await staleUpdate(engine);
    const report = await engine.runOnce();
    expect(report.counts.resolved).toBe(3);
    expect(report.counts.conflicted).toBe(1);
    expect(await engine.queue.get(stale.id)).toMatchObject({ state: 'conflict', attempts: 4 });
    expect(server.log()).toHaveLength(0);
  });

  it('update of a record deleted on the server is a conflict with no server data', async () => {
    const { engine } = await client({ contact: {} });
    server.put(SCOPE, 'contact', 'c1', { name: 'x' });
    server.remove(SCOPE, 'contact', 'c1');
    const m = await engine.enqueue({
      entity: 'contact',
      op: 'update',
      entityId: 'c1',
      data: { name: 'y' },
      baseVersion: 1,
    });
    await engine.runOnce();
    const [conflict] = await engine.conflicts();
    expect(conflict).toMatchObject({ mutationId: m.id, server: null });
  });
});

describe('own edits', () => {
  it("a device's second edit of a record is based on the version its first edit produced (no self-conflict)", async () => {
    const { engine } = await client({ contact: {} });
    server.put(SCOPE, 'contact', 'c1', { name: 'Ada' });
    await engine.enqueue({ entity: 'contact', op: 'update', entityId: 'c1', data: { a: 1 }, baseVersion: 1 });
    await engine.enqueue({ entity: 'contact', op: 'update', entityId: 'c1', data: { b: 2 }, baseVersion: 1 });
    const report = await engine.runOnce();
    expect(report.counts).toMatchObject({ pushed: 2, conflicted: 0 });
    expect(server.log().map((e) => e.baseVersion)).toEqual([1, 2]);
  });

  it('an edit queued after an offline create is based on the version the create produced, also when the server assigned the id', async () => {
    const { engine } = await client({ activity: {} });
    await engine.enqueue({
      entity: 'activity',
      op: 'create',
      entityId: 'local-a1',
      data: { title: 'Visit' },
    });
    await engine.enqueue({
      entity: 'activity',
      op: 'update',
      entityId: 'local-a1',
      data: { title: 'Visit 2' },
    });
    const report = await engine.runOnce();
    expect(report.counts).toMatchObject({ pushed: 2, conflicted: 0 });
    const log = server.log();
    expect(log.map((e) => `${e.op}:${e.entityId}`)).toEqual(['create:srv-1', 'update:srv-1']);
    // Without the carry-over the edit went out with no base version: a blind overwrite.
    expect(log[1]!.baseVersion).toBe(1);
  });
});

describe('server-assigned ids', () => {
  it('a parent and its child created offline: later mutations and references are rewritten atomically', async () => {
    const appRows: { id: string }[] = [];
    const { engine, file } = await client({
      activity: {
        onIdAssigned: async (tx, { clientId, serverId }) => {
          await tx.run('UPDATE activities SET id = ? WHERE id = ?', [serverId, clientId]);
        },
      },
      note: { references: { activityId: 'activity' } },
    });
    await engine.transaction(async (tx) => {
      await tx.run('CREATE TABLE IF NOT EXISTS activities (id TEXT PRIMARY KEY)');
      await tx.run('INSERT INTO activities (id) VALUES (?)', ['local-a1']);
      const parent = await tx.enqueue({
        entity: 'activity',
        op: 'create',
        entityId: 'local-a1',
        data: { title: 'Visit' },
      });
      await tx.enqueue({
        entity: 'note',
        op: 'create',
        entityId: 'n1',
        data: { activityId: 'local-a1', text: 'hello' },
        dependsOn: [parent.id],
      });
      await tx.enqueue({
        entity: 'activity',
        op: 'update',
        entityId: 'local-a1',
        data: { title: 'Visit 2' },
      });
    });
    const confirmed: (string | undefined)[] = [];
    engine.on('mutation:confirmed', (e) => confirmed.push(e.serverId));
    await engine.runOnce();
    const log = server.log();
    expect(log.map((e) => `${e.entity}:${e.op}:${e.entityId}`)).toEqual([
      'activity:create:srv-1',
      'note:create:n1',
      'activity:update:srv-1',
    ]);
    expect(log[1]!.data).toEqual({ activityId: 'srv-1', text: 'hello' });
    expect(confirmed[0]).toBe('srv-1');
    const db = new Database(file, { readonly: true });
    appRows.push(...(db.prepare('SELECT id FROM activities').all() as { id: string }[]));
    db.close();
    expect(appRows).toEqual([{ id: 'srv-1' }]);
    // The UI still holds the client id: a new edit is queued under the server id.
    const next = await engine.enqueue({
      entity: 'activity',
      op: 'update',
      entityId: 'local-a1',
      data: { title: '3' },
    });
    expect(next.entityId).toBe('srv-1');
  });
});

describe('app hooks', () => {
  it('an onIdAssigned hook that throws rolls the confirmation back and hands the claim back at once', async () => {
    let failures = 1;
    const { engine } = await client({
      activity: {
        onIdAssigned: async () => {
          if (failures-- > 0) throw new Error('app bug');
        },
      },
    });
    const m = await engine.enqueue({ entity: 'activity', op: 'create', entityId: 'local', data: {} });
    const failed = await engine.runOnce();
    expect(failed.outcome).toBe('error');
    expect(failed.error?.code).toBe('HOOK_FAILED');
    expect(await engine.queue.get(m.id)).toMatchObject({ state: 'pending', attempts: 0 });
    const ok = await engine.runOnce();
    expect(ok.counts.pushed).toBe(1);
    expect(server.log()).toHaveLength(1);
    expect(server.stats().duplicates).toBe(1);
  });

  it("a server-wins drop rolled back with its batch leaves no 'overwritten' notice; recorded again, exactly one", async () => {
    let failures = 1;
    const { engine } = await client({
      activity: {
        conflict: 'server-wins',
        onIdAssigned: async () => {
          if (failures-- > 0) throw new Error('app bug');
        },
      },
    });
    // In one request and one recording transaction: the drop's notice is written first, then the
    // create's hook throws and takes the whole transaction back.
    const stale = await staleUpdate(engine, 'activity');
    await engine.enqueue({ entity: 'activity', op: 'create', entityId: 'local', data: {} });
    const failed = await engine.runOnce();
    expect(failed.error?.code).toBe('HOOK_FAILED');
    expect(await engine.queue.get(stale.id)).toMatchObject({ state: 'pending' });
    expect(await engine.status.unseenNotices()).toEqual([]);

    const ok = await engine.runOnce();
    expect(ok.counts).toMatchObject({ resolved: 1, pushed: 1 });
    expect(await engine.queue.get(stale.id)).toBeUndefined();
    const overwritten = (await engine.status.unseenNotices()).filter((n) => n.kind === 'overwritten');
    expect(overwritten).toMatchObject([{ mutationId: stale.id, entity: 'activity', entityId: 'c1' }]);
  });
});

describe('status store', () => {
  it("each run's row counts match the queue and the server's log (invariant 8); notices survive a restart", async () => {
    const clock = manualClock(Date.now());
    const first = await client({ activity: {}, contact: {} }, { clock });
    for (let i = 0; i < 20; i++) {
      await first.engine.enqueue({
        entity: i % 2 ? 'activity' : 'contact',
        op: 'create',
        entityId: `r${i}`,
        data: { i },
      });
    }
    server.faults.rejectWhen = (m) => (m.entityId === 'r3' ? 'r3 is invalid' : undefined);
    server.faults.partial = { itemRetryRate: 0.4, retryAfterMs: 1_000 };
    const reports = [];
    for (let i = 0; i < 6 && (await first.engine.queue.stats()).pending > 0; i++) {
      reports.push(await first.engine.runOnce());
      clock.advance(3_600_000);
    }
    server.faults.partial = { itemRetryRate: 0 };
    reports.push(await first.engine.runOnce());
    const runs = await first.engine.status.runs(100);
    expect(runs).toHaveLength(reports.length);
    for (const report of reports) {
      const row = runs.find((r) => r.runId === report.runId)!;
      expect(row).toMatchObject({ outcome: report.outcome, ...report.counts });
    }
    const pushed = runs.reduce((sum, r) => sum + r.pushed, 0);
    expect(pushed).toBe(server.log().length);
    expect(pushed).toBe(19);
    await first.engine.close();

    // Next launch: a new engine on the same file reads the notices.
    const second = await client({ activity: {}, contact: {} }, { clock, file: first.file });
    const notices = await second.engine.status.unseenNotices();
    const synced = notices.find((n) => n.kind === 'synced');
    expect(synced).toMatchObject({ total: 19, counts: { activity: 9, contact: 10 } });
    expect(notices.filter((n) => n.kind === 'failed')).toMatchObject([
      { entity: 'activity', entityId: 'r3', code: 'rejected:invalid', message: 'r3 is invalid' },
    ]);
    const snapshot = await second.engine.status.snapshot();
    expect(snapshot).toMatchObject({
      unseenNotices: notices.length,
      queue: { failed: 1 },
      authRequired: false,
    });
    expect(await second.engine.status.acknowledge(notices.map((n) => n.id))).toBe(notices.length);
    expect(await second.engine.status.unseenNotices()).toEqual([]);
    // A new confirmation starts a new synced summary.
    await second.engine.enqueue({ entity: 'activity', op: 'create', entityId: 'later', data: {} });
    await second.engine.runOnce();
    expect(await second.engine.status.unseenNotices()).toMatchObject([{ kind: 'synced', total: 1 }]);
  });

  it('acknowledging a synced notice that grew since it was read does not hide the new count', async () => {
    const { engine } = await client({ activity: {} });
    await engine.enqueue({ entity: 'activity', op: 'create', entityId: 'a', data: {} });
    await engine.runOnce();
    const shown = await engine.status.unseenNotices();
    expect(shown).toMatchObject([{ kind: 'synced', total: 1 }]);
    // A background run adds to the summary before the app acknowledges what it showed.
    await engine.enqueue({ entity: 'activity', op: 'create', entityId: 'b', data: {} });
    await engine.runOnce();
    expect(await engine.status.acknowledge(shown.map((n) => n.id))).toBe(0);
    expect(await engine.status.unseenNotices()).toMatchObject([{ kind: 'synced', total: 2 }]);
  });

  it('auth-required raises one notice and the snapshot says so; sign-in clears the pause', async () => {
    const { engine } = await client({ activity: {} });
    await engine.enqueue({ entity: 'activity', op: 'create', entityId: 'a', data: {} });
    server.faults.failNext(3, { status: 401 });
    expect((await engine.runOnce()).outcome).toBe('auth-required');
    expect((await engine.runOnce()).outcome).toBe('auth-required');
    expect((await engine.status.unseenNotices()).filter((n) => n.kind === 'auth-required')).toHaveLength(1);
    expect((await engine.status.snapshot()).authRequired).toBe(true);
    server.faults.reset();
    await engine.start(SCOPE);
    expect((await engine.status.snapshot()).authRequired).toBe(false);
    expect((await engine.runOnce()).counts.pushed).toBe(1);
  });

  it('a mutation unconfirmed after stuckAfter raises one stuck notice and keeps retrying', async () => {
    const clock = manualClock(Date.now());
    const { engine } = await client({ activity: {} }, { clock });
    const m = await engine.enqueue({ entity: 'activity', op: 'create', entityId: 'a', data: {} });
    server.faults.errorRate = 1;
    await engine.runOnce();
    clock.advance(25 * 3_600_000);
    await engine.runOnce();
    await engine.runOnce();
    const stuck = (await engine.status.unseenNotices()).filter((n) => n.kind === 'stuck');
    expect(stuck).toMatchObject([{ mutationId: m.id }]);
    await engine.status.acknowledge(stuck.map((n) => n.id));
    clock.advance(3_600_000);
    await engine.runOnce();
    expect((await engine.status.unseenNotices()).filter((n) => n.kind === 'stuck')).toEqual([]);
    expect(await engine.queue.get(m.id)).toMatchObject({ state: 'pending' });
  });

  it('subscribe() delivers a fresh snapshot after enqueue and after a run', async () => {
    const { engine } = await client({ activity: {} });
    const seen: number[] = [];
    const unsubscribe = engine.status.subscribe((s) => seen.push(s.queue.total));
    await engine.enqueue({ entity: 'activity', op: 'create', entityId: 'a', data: {} });
    await engine.runOnce();
    await new Promise((resolve) => setTimeout(resolve, 20));
    unsubscribe();
    expect(seen).toContain(1);
    expect(seen[seen.length - 1]).toBe(0);
  });
});
