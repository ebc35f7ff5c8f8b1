/**
 * The engine against the real reference server over loopback: better-sqlite3 files, the fetch
 * adapter, real HTTP, real faults. Each row of DESIGN.md section 5 that a server can produce.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type ReferenceServer, startServer } from '../../examples/server/index.js';
import { referenceClient } from '../helpers/reference-client.js';
import { manualClock } from '../helpers/storage-factories.js';

let server: ReferenceServer;
const disposers: (() => Promise<void>)[] = [];

beforeEach(async () => {
  server = await startServer({ port: 0 });
});
afterEach(async () => {
  for (const dispose of disposers.splice(0)) await dispose();
  await server.close();
});

async function client(options: Parameters<typeof referenceClient>[1] = {}) {
  const c = await referenceClient(server, options);
  disposers.push(c.dispose);
  return c;
}

function keysApplied(): string[] {
  return server.log().map((entry) => entry.key ?? '');
}

describe('push over HTTP against the reference server', () => {
  it('drains 10,000 mutations, each applied exactly once, in per-record order', async () => {
    const { engine } = await client({ engine: { batch: { maxCount: 200 } } });
    const inputs = Array.from({ length: 10_000 }, (_, i) => ({
      entity: (i % 5_000) % 3 === 0 ? 'contact' : 'activity',
      op: i < 5_000 ? 'create' : 'update',
      entityId: `r${i % 5_000}`,
      data: { i },
    }));
    for (let i = 0; i < inputs.length; i += 1_000) await engine.enqueueMany(inputs.slice(i, i + 1_000));
    const queued = await engine.queue.list({ limit: 1 });
    expect(queued).toHaveLength(1);
    const report = await engine.runOnce({ trigger: 'background' });
    expect(report.outcome).toBe('ok');
    expect(report.counts.pushed).toBe(10_000);
    expect((await engine.queue.stats()).total).toBe(0);
    const log = server.log();
    expect(log).toHaveLength(10_000);
    expect(new Set(keysApplied()).size).toBe(10_000);
    expect(server.stats().duplicates).toBe(0);
    // Per record: the create reached the server before the update.
    const firstOp = new Map<string, string>();
    for (const entry of log) if (!firstOp.has(entry.entityId)) firstOp.set(entry.entityId, entry.op);
    expect([...firstOp.values()].every((op) => op === 'create')).toBe(true);
  });

  it('timeout after the server applied: resent with the same key, applied once (FAULTS 12)', async () => {
    const clock = manualClock(Date.now());
    const { engine } = await client({ clock, fetch: { timeoutMs: 300 } });
    const m = await engine.enqueue({ entity: 'activity', op: 'create', entityId: 'a1', data: { t: 1 } });
    server.faults.hangNext(1, 'after-apply');
    const first = await engine.runOnce();
    expect(first.counts.retried).toBe(1);
    expect(await engine.queue.get(m.id)).toMatchObject({
      state: 'pending',
      attempts: 1,
      lastError: { code: 'timeout' },
    });
    expect(server.log()).toHaveLength(1);
    clock.advance(60_000);
    const second = await engine.runOnce();
    expect(second.counts.pushed).toBe(1);
    expect(server.log()).toHaveLength(1);
    expect(server.stats().duplicates).toBe(1);
    expect(keysApplied()).toEqual([m.key]);
  });

  it('connection reset after apply: resent with the same key (at once, by the adapter), one effect (FAULTS 3, 13)', async () => {
    const { engine } = await client();
    const m = await engine.enqueue({ entity: 'activity', op: 'create', entityId: 'a1', data: {} });
    server.faults.dropNext(1, 'after-apply');
    const report = await engine.runOnce();
    expect(report.counts.pushed).toBe(1);
    expect((await engine.queue.stats()).total).toBe(0);
    expect(keysApplied()).toEqual([m.key]);
    expect(server.stats().duplicates).toBe(1);
  });

  it('connection reset after apply, every time: ambiguous, backoff, then one effect (FAULTS 13)', async () => {
    const clock = manualClock(Date.now());
    const { engine } = await client({ clock });
    const m = await engine.enqueue({ entity: 'activity', op: 'create', entityId: 'a1', data: {} });
    server.faults.dropNext(10, 'after-apply');
    await engine.runOnce();
    expect(await engine.queue.get(m.id)).toMatchObject({ state: 'pending', attempts: 1 });
    server.faults.reset();
    clock.advance(60_000);
    await engine.runOnce();
    expect((await engine.queue.stats()).total).toBe(0);
    expect(keysApplied()).toEqual([m.key]);
  });

  it('truncated JSON after apply is ambiguous: neither confirmed nor rejected (FAULTS 13)', async () => {
    const clock = manualClock(Date.now());
    const { engine } = await client({ clock });
    const m = await engine.enqueue({ entity: 'activity', op: 'create', entityId: 'a1', data: {} });
    server.faults.malformNext(1, 'truncated-json');
    await engine.runOnce();
    expect(await engine.queue.get(m.id)).toMatchObject({ state: 'pending', attempts: 1 });
    clock.advance(60_000);
    await engine.runOnce();
    expect((await engine.queue.stats()).total).toBe(0);
    expect(server.log()).toHaveLength(1);
  });

  it("a captive portal's 200 text/html is not a success (FAULTS 15)", async () => {
    const { engine } = await client();
    const m = await engine.enqueue({ entity: 'activity', op: 'create', entityId: 'a1', data: {} });
    server.faults.failNext(1, {
      status: 200,
      contentType: 'text/html',
      body: '<html>Sign in to Wi-Fi</html>',
    });
    const report = await engine.runOnce();
    expect(report.counts.pushed).toBe(0);
    expect(await engine.queue.get(m.id)).toMatchObject({
      state: 'pending',
      attempts: 1,
      lastError: { code: 'bad-response' },
    });
    expect(server.log()).toHaveLength(0);
  });

  it('a redirect is not a success and the credentials do not follow it (FAULTS 14)', async () => {
    const other = await startServer({ port: 0 });
    try {
      const { engine } = await client();
      await engine.enqueue({ entity: 'activity', op: 'create', entityId: 'a1', data: {} });
      server.faults.redirectNext(1, `${other.url}/sync/push`, 307);
      const report = await engine.runOnce();
      expect(report.counts.pushed).toBe(0);
      expect(other.stats().requests).toBe(0);
    } finally {
      await other.close();
    }
  });

  it('429 with Retry-After seconds: not before 120 s, the run stops (FAULTS 16)', async () => {
    const clock = manualClock(Date.now());
    const { engine } = await client({ clock });
    for (let i = 0; i < 3; i++)
      await engine.enqueue({ entity: 'activity', op: 'create', entityId: `a${i}`, data: {} });
    server.faults.failNext(1, { status: 429, retryAfter: '120' });
    const report = await engine.runOnce();
    expect(report.outcome).toBe('throttled');
    for (const m of await engine.queue.list())
      expect(m.nextAttemptAt - clock.now()).toBeGreaterThanOrEqual(120_000);
    clock.advance(119_000);
    expect((await engine.runOnce()).counts.batches).toBe(0);
    clock.advance(2_000);
    expect((await engine.runOnce()).counts.pushed).toBe(3);
  });

  it('503 with an HTTP-date Retry-After is measured against the server Date, not a skewed device clock (FAULTS 16)', async () => {
    // The device clock is a day behind the server.
    const clock = manualClock(Date.now() - 86_400_000);
    const { engine } = await client({ clock });
    const m = await engine.enqueue({ entity: 'activity', op: 'create', entityId: 'a1', data: {} });
    const retryAt = new Date(Date.now() + 300_000).toUTCString();
    server.faults.failNext(1, { status: 503, retryAfter: retryAt });
    const report = await engine.runOnce();
    expect(report.outcome).toBe('throttled');
    const delay = (await engine.queue.get(m.id))!.nextAttemptAt - clock.now();
    expect(delay).toBeGreaterThanOrEqual(298_000);
    expect(delay).toBeLessThanOrEqual(302_000);
  });

  it('500/502/504 retry with backoff; 400/403/413/422 are rejected with the reason while the rest drains (FAULTS 17)', async () => {
    const clock = manualClock(Date.now());
    const { engine } = await client({ clock });
    await engine.enqueue({ entity: 'contact', op: 'create', entityId: 'bad', data: {} });
    await engine.enqueue({ entity: 'activity', op: 'create', entityId: 'good', data: {} });
    server.faults.rejectWhen = (m) => (m.entityId === 'bad' ? 'name is required' : undefined);
    const report = await engine.runOnce();
    expect(report.counts).toMatchObject({ pushed: 1, failed: 1 });
    const [failed] = await engine.queue.list({ state: 'failed' });
    expect(failed).toMatchObject({
      entityId: 'bad',
      lastError: { code: 'rejected:invalid', message: 'name is required' },
    });

    for (const status of [500, 502, 504]) {
      const m = await engine.enqueue({ entity: 'activity', op: 'create', entityId: `s${status}`, data: {} });
      server.faults.failNext(1, { status });
      await engine.runOnce();
      expect(await engine.queue.get(m.id)).toMatchObject({
        state: 'pending',
        attempts: 1,
        lastError: { status },
      });
      clock.advance(3_600_000);
      await engine.runOnce();
      expect(await engine.queue.get(m.id)).toBeUndefined();
    }
  });

  it('server refuses the whole batch with 400/422: dead-lettered with the server reason', async () => {
    const { engine } = await client();
    for (const status of [400, 403, 413, 422]) {
      const m = await engine.enqueue({ entity: 'activity', op: 'create', entityId: `x${status}`, data: {} });
      server.faults.failNext(1, {
        status,
        body: JSON.stringify({ error: { code: 'nope', message: `refused ${status}` } }),
      });
      await engine.runOnce();
      expect(await engine.queue.get(m.id)).toMatchObject({ state: 'failed', lastError: { status } });
    }
  });

  it('offline: no attempt counted, the run stops; back online it drains (FAULTS 11)', async () => {
    const { engine } = await client();
    for (let i = 0; i < 5; i++)
      await engine.enqueue({ entity: 'activity', op: 'create', entityId: `a${i}`, data: {} });
    await server.goOffline();
    const report = await engine.runOnce();
    expect(report.outcome).toBe('offline');
    expect((await engine.queue.list()).every((m) => m.attempts === 0 && m.state === 'pending')).toBe(true);
    await server.goOnline();
    expect((await engine.runOnce()).counts.pushed).toBe(5);
  });

  it('expired token: one refresh, one resend; a second 401 pauses and keeps every row (FAULTS 23)', async () => {
    const { engine, auth } = await client();
    await engine.enqueue({ entity: 'activity', op: 'create', entityId: 'a1', data: {} });
    server.expireTokens();
    const ok = await engine.runOnce();
    expect(ok.outcome).toBe('ok');
    expect(auth.refreshes).toBe(1);
    expect(server.log()).toHaveLength(1);

    // Now every refreshed token is refused too.
    await engine.enqueue({ entity: 'activity', op: 'create', entityId: 'a2', data: {} });
    server.faults.failNext(2, { status: 401 });
    const paused = await engine.runOnce();
    expect(paused.outcome).toBe('auth-required');
    expect(await engine.queue.list()).toMatchObject([{ entityId: 'a2', state: 'pending', attempts: 0 }]);
  });

  it('20 concurrent 401s in REST mode: exactly one refresh (FAULTS 24)', async () => {
    const { engine, auth } = await client({
      fetch: { mode: 'rest', rest: { activity: { path: '/rest/activity' } }, restConcurrency: 20 },
      engine: { batch: { maxCount: 20 } },
    });
    for (let i = 0; i < 20; i++)
      await engine.enqueue({ entity: 'activity', op: 'create', entityId: `a${i}`, data: {} });
    server.expireTokens();
    const report = await engine.runOnce();
    expect(auth.refreshes).toBe(1);
    expect(report.counts.pushed).toBe(20);
    expect(server.log()).toHaveLength(20);
  });

  it('partial batch: applied, rejected and retry items are each recorded on their own (FAULTS 21)', async () => {
    const clock = manualClock(Date.now());
    const { engine } = await client({ clock });
    for (let i = 0; i < 30; i++)
      await engine.enqueue({ entity: 'activity', op: 'create', entityId: `a${i}`, data: { i } });
    server.faults.rejectWhen = (m) => (m.entityId === 'a7' ? 'bad record' : undefined);
    server.faults.partial = { itemRetryRate: 0.3, retryAfterMs: 1_000 };
    const report = await engine.runOnce();
    const { pushed, failed, retried } = report.counts;
    expect(failed).toBe(1);
    expect(pushed + failed + retried).toBe(30);
    expect(retried).toBeGreaterThan(0);
    expect(server.log()).toHaveLength(pushed);
    server.faults.partial = { itemRetryRate: 0 };
    clock.advance(3_600_000);
    await engine.runOnce();
    expect((await engine.queue.stats()).pending).toBe(0);
    expect(server.log()).toHaveLength(29);
    expect(new Set(keysApplied()).size).toBe(29);
  });

  it('conflict on a stale base version stops that record; later mutations of it wait', async () => {
    const { engine, scope } = await client();
    server.put(scope, 'activity', 'a1', { title: 'server' });
    server.put(scope, 'activity', 'a1', { title: 'server again' });
    const stale = await engine.enqueue({
      entity: 'activity',
      op: 'update',
      entityId: 'a1',
      data: { title: 'mine' },
      baseVersion: 1,
    });
    const later = await engine.enqueue({ entity: 'activity', op: 'update', entityId: 'a1', data: { n: 2 } });
    const report = await engine.runOnce();
    expect(report.counts.conflicted).toBe(1);
    expect(await engine.queue.get(stale.id)).toMatchObject({ state: 'conflict' });
    expect(await engine.queue.get(later.id)).toMatchObject({ state: 'pending', attempts: 0 });
    expect(server.log()).toHaveLength(0);
  });

  it('REST-resource mode drains with one request per mutation and Idempotency-Key replays', async () => {
    const clock = manualClock(Date.now());
    const { engine } = await client({
      clock,
      fetch: { mode: 'rest', rest: { activity: { path: '/rest/activity' } } },
      entities: { activity: {} },
    });
    await engine.enqueue({ entity: 'activity', op: 'create', entityId: 'a1', data: { t: 1 } });
    await engine.enqueue({
      entity: 'activity',
      op: 'update',
      entityId: 'a1',
      data: { t: 2 },
      baseVersion: 1,
    });
    await engine.enqueue({ entity: 'activity', op: 'create', entityId: 'a2', data: { t: 1 } });
    await engine.enqueue({ entity: 'activity', op: 'delete', entityId: 'a2', baseVersion: 1 });
    server.faults.dropNext(1, 'after-apply');
    await engine.runOnce();
    clock.advance(3_600_000);
    await engine.runOnce();
    clock.advance(3_600_000);
    await engine.runOnce();
    expect((await engine.queue.stats()).total).toBe(0);
    expect(server.log().map((e) => `${e.entityId}:${e.op}`)).toEqual([
      'a1:create',
      'a2:create',
      'a1:update',
      'a2:delete',
    ]);
    expect(server.record({ userId: 'u1', orgId: 'o1' }, 'activity', 'a1')).toMatchObject({
      version: 2,
      data: { t: 2 },
    });
  });

  it('stops before the deadline on a slow server, then finishes in a later run', async () => {
    const { engine } = await client({ engine: { batch: { maxCount: 10 }, initialBatchEstimateMs: 50 } });
    for (let i = 0; i < 100; i++)
      await engine.enqueue({ entity: 'activity', op: 'create', entityId: `a${i}`, data: {} });
    server.faults.latencyMs = 60;
    const report = await engine.runOnce({ deadline: Date.now() + 400 });
    expect(report.outcome).toBe('deadline');
    expect(report.counts.pushed).toBeGreaterThan(0);
    expect(report.counts.pushed).toBeLessThan(100);
    expect(report.finishedAt).toBeLessThanOrEqual(Date.now());
    server.faults.latencyMs = 0;
    const rest = await engine.runOnce();
    expect(report.counts.pushed + rest.counts.pushed).toBe(100);
    expect(server.log()).toHaveLength(100);
  });
});
