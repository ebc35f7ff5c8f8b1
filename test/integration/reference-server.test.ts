import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  type IssuedToken,
  type PullResponse,
  type PushMutation,
  type PushResponse,
  type ReferenceServer,
  type ReferenceServerOptions,
  type Scope,
  startServer,
} from '../../examples/server/index.js';

// Every test starts its own server on a free loopback port and closes it, keep-alive sockets included.
async function withServer(
  options: ReferenceServerOptions,
  run: (server: ReferenceServer) => Promise<void>,
): Promise<void> {
  const server = await startServer({ port: 0, host: '127.0.0.1', onError: () => {}, ...options });
  try {
    await run(server);
  } finally {
    await server.close();
  }
}

/** Poll `condition` every 5 ms, for at most 2 s (no timing is asserted, only the condition). */
async function waitFor(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error(`gave up waiting for ${what}`);
}

let counter = 0;
/** A push mutation with a fresh id and key unless given. */
function mutation(op: string, entityId: string, fields: Partial<PushMutation> = {}): PushMutation {
  counter++;
  return {
    id: `m${counter}`,
    key: `k${counter}`,
    op,
    entityId,
    baseVersion: null,
    data: op === 'delete' ? undefined : {},
    clientTime: '2026-11-25T10:00:00.000Z',
    ...fields,
  };
}

interface Client {
  readonly credentials: IssuedToken;
  push(entity: string, mutations: readonly PushMutation[], init?: RequestInit): Promise<Response>;
  pushJson(entity: string, mutations: readonly PushMutation[]): Promise<PushResponse>;
  pull(entity: string, cursor?: string, limit?: number): Promise<Response>;
  rest(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<Response>;
}

function client(server: ReferenceServer, scope: Scope = { userId: 'u1' }): Client {
  const credentials = server.issueToken(scope);
  const auth = { authorization: `Bearer ${credentials.token}` };
  const push = (entity: string, mutations: readonly PushMutation[], init: RequestInit = {}) =>
    fetch(`${server.url}/sync/push`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ protocol: 1, clientId: 'device-1', entity, mutations }),
      ...init,
    });
  return {
    credentials,
    push,
    async pushJson(entity, mutations) {
      const response = await push(entity, mutations);
      expect(response.status).toBe(200);
      return (await response.json()) as PushResponse;
    },
    pull(entity, cursor, limit) {
      const query = new URLSearchParams({ entity });
      if (cursor !== undefined) query.set('cursor', cursor);
      if (limit !== undefined) query.set('limit', String(limit));
      return fetch(`${server.url}/sync/pull?${query}`, { headers: auth });
    },
    rest(method, path, body, headers = {}) {
      return fetch(`${server.url}/rest/${path}`, {
        method,
        headers: { ...auth, 'content-type': 'application/json', ...headers },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
    },
  };
}

async function pullAll(c: Client, entity: string, limit: number): Promise<PullResponse[]> {
  const pages: PullResponse[] = [];
  let cursor: string | undefined;
  for (let i = 0; i < 50; i++) {
    const response = await c.pull(entity, cursor, limit);
    expect(response.status).toBe(200);
    const page = (await response.json()) as PullResponse;
    pages.push(page);
    cursor = page.cursor;
    if (!page.hasMore) return pages;
  }
  throw new Error('pull never ended');
}

function errorCode(error: unknown): unknown {
  return error instanceof Error && error.cause instanceof Error
    ? (error.cause as Error & { code?: unknown }).code
    : undefined;
}

describe('reference server: auth', () => {
  it('issues tokens over HTTP, answers 401 for missing, unknown and expired tokens, and rotates refresh tokens', async () => {
    let clock = 1_000_000;
    await withServer({ now: () => clock, tokenTtlMs: 60_000 }, async (server) => {
      const issued = await fetch(`${server.url}/auth/token`, {
        method: 'POST',
        body: JSON.stringify({ userId: 'u1', orgId: 'o1' }),
      });
      expect(issued.status).toBe(200);
      const credentials = (await issued.json()) as IssuedToken;
      expect(credentials.expiresAt).toBe(1_060_000);
      expect(credentials.token).toMatch(/^[A-Za-z0-9_-]{40,}$/);
      const pull = (token?: string) =>
        fetch(`${server.url}/sync/pull?entity=a`, {
          headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
        });

      expect((await pull(credentials.token)).status).toBe(200);
      const missing = await pull();
      expect(missing.status).toBe(401);
      expect(missing.headers.get('content-type')).toBe('application/json; charset=utf-8');
      expect(((await missing.json()) as { error: { code: string } }).error.code).toBe('unauthorized');
      expect((await pull('not-a-token')).status).toBe(401);

      clock += 60_000;
      expect((await pull(credentials.token)).status).toBe(401);

      const refresh = (refreshToken: string) =>
        fetch(`${server.url}/auth/refresh`, { method: 'POST', body: JSON.stringify({ refreshToken }) });
      const refreshed = await refresh(credentials.refreshToken);
      expect(refreshed.status).toBe(200);
      const next = (await refreshed.json()) as IssuedToken;
      expect(next.token).not.toBe(credentials.token);
      expect(next.expiresAt).toBe(clock + 60_000);
      expect((await pull(next.token)).status).toBe(200);
      // Single use: the old refresh token is gone.
      expect((await refresh(credentials.refreshToken)).status).toBe(401);

      server.expireTokens();
      expect((await pull(next.token)).status).toBe(401);
      const stats = server.stats();
      expect(stats.refreshes).toBe(1);
      expect(stats.unauthorized).toBe(5);
    });
  });

  it('keeps /auth out of fault injection so a client can always refresh', async () => {
    await withServer({ faults: { errorRate: 1 } }, async (server) => {
      const { refreshToken } = server.issueToken({ userId: 'u1' });
      const refreshed = await fetch(`${server.url}/auth/refresh`, {
        method: 'POST',
        body: JSON.stringify({ refreshToken }),
      });
      expect(refreshed.status).toBe(200);
      const bad = await fetch(`${server.url}/auth/token`, {
        method: 'POST',
        body: JSON.stringify({ orgId: 'o' }),
      });
      expect(bad.status).toBe(400);
    });
  });
});

describe('reference server: push', () => {
  it('applies create, update and delete with integer versions and logs each effect once', async () => {
    await withServer({}, async (server) => {
      const c = client(server, { userId: 'u1', orgId: 'o1' });
      const created = await c.pushJson('activity', [
        mutation('create', 'a1', { id: 'c', data: { title: 'Walk', minutes: 30 } }),
      ]);
      expect(created.results).toEqual([{ id: 'c', status: 'applied', version: 1 }]);

      const updated = await c.pushJson('activity', [
        mutation('update', 'a1', { id: 'u', baseVersion: 1, data: { minutes: 45 } }),
      ]);
      expect(updated.results).toEqual([{ id: 'u', status: 'applied', version: 2 }]);
      expect(server.record({ userId: 'u1', orgId: 'o1' }, 'activity', 'a1')).toEqual({
        version: 2,
        data: { title: 'Walk', minutes: 45 },
        deleted: false,
      });

      const deleted = await c.pushJson('activity', [mutation('delete', 'a1', { id: 'd', baseVersion: 2 })]);
      expect(deleted.results).toEqual([{ id: 'd', status: 'applied', version: 3 }]);
      expect(server.record({ userId: 'u1', orgId: 'o1' }, 'activity', 'a1')).toEqual({
        version: 3,
        data: null,
        deleted: true,
      });

      const log = server.log();
      expect(log.map((row) => [row.op, row.entityId, row.version, row.baseVersion])).toEqual([
        ['create', 'a1', 1, null],
        ['update', 'a1', 2, 1],
        ['delete', 'a1', 3, 2],
      ]);
      expect(log[0]).toMatchObject({
        seq: 1,
        clientId: 'device-1',
        scope: { userId: 'u1', orgId: 'o1' },
        entity: 'activity',
        data: { title: 'Walk', minutes: 30 },
        via: 'push',
      });
      expect(log[1]?.data).toEqual({ minutes: 45 });
    });
  });

  it('replays a seen key as duplicate, with one log entry, and replays conflicts and rejections as they were', async () => {
    await withServer({}, async (server) => {
      const c = client(server);
      const create = mutation('create', 'a1', { data: { n: 1 } });
      expect((await c.pushJson('activity', [create])).results[0]).toMatchObject({
        status: 'applied',
        version: 1,
      });
      const again = await c.pushJson('activity', [{ ...create, id: 'resend' }]);
      expect(again.results).toEqual([{ id: 'resend', status: 'duplicate', version: 1 }]);
      expect(server.log()).toHaveLength(1);

      server.put({ userId: 'u1' }, 'activity', 'a1', { n: 99 });
      const stale = mutation('update', 'a1', { baseVersion: 1, data: { n: 2 } });
      const conflict = await c.pushJson('activity', [stale]);
      expect(conflict.results[0]).toEqual({ id: stale.id, status: 'conflict', version: 2, data: { n: 99 } });
      // The record moved on, but the replay answers what was answered the first time.
      server.put({ userId: 'u1' }, 'activity', 'a1', { n: 100 });
      expect((await c.pushJson('activity', [stale])).results[0]).toEqual({
        id: stale.id,
        status: 'conflict',
        version: 2,
        data: { n: 99 },
      });

      const bad = mutation('archive', 'a1');
      const rejected = await c.pushJson('activity', [bad]);
      expect(rejected.results[0]).toMatchObject({ status: 'rejected', error: { code: 'unknown-op' } });
      expect((await c.pushJson('activity', [bad])).results[0]).toEqual(rejected.results[0]);

      expect(server.log()).toHaveLength(1);
      expect(server.stats()).toMatchObject({ applied: 1, duplicates: 3, conflicts: 1, rejected: 1 });
    });
  });

  it('answers conflict for a stale base version and applies a null base version (last writer wins)', async () => {
    await withServer({}, async (server) => {
      const c = client(server);
      await c.pushJson('note', [mutation('create', 'n1', { data: { a: 1 } })]);
      server.put({ userId: 'u1' }, 'note', 'n1', { a: 2, b: 2 });
      const results = await c.pushJson('note', [
        mutation('update', 'n1', { id: 'stale', baseVersion: 1, data: { a: 3 } }),
        mutation('delete', 'n1', { id: 'stale-delete', baseVersion: 1 }),
        mutation('create', 'n1', { id: 'exists', data: { a: 4 } }),
        mutation('update', 'n1', { id: 'blind', baseVersion: null, data: { c: 3 } }),
      ]);
      expect(results.results).toEqual([
        { id: 'stale', status: 'conflict', version: 2, data: { a: 2, b: 2 } },
        { id: 'stale-delete', status: 'conflict', version: 2, data: { a: 2, b: 2 } },
        { id: 'exists', status: 'conflict', version: 2, data: { a: 2, b: 2 } },
        { id: 'blind', status: 'applied', version: 3 },
      ]);
      expect(server.record({ userId: 'u1' }, 'note', 'n1')?.data).toEqual({ a: 2, b: 2, c: 3 });
    });
  });

  it('answers conflict for an update of a missing or deleted record and applied for a delete of one', async () => {
    await withServer({}, async (server) => {
      const c = client(server);
      await c.pushJson('note', [mutation('create', 'gone', { data: {} }), mutation('delete', 'gone')]);
      const results = await c.pushJson('note', [
        mutation('update', 'never', { id: 'u-missing', data: { a: 1 } }),
        mutation('update', 'gone', { id: 'u-deleted', baseVersion: 2, data: { a: 1 } }),
        mutation('delete', 'never', { id: 'd-missing' }),
        mutation('delete', 'gone', { id: 'd-deleted', baseVersion: 1 }),
      ]);
      expect(results.results).toEqual([
        { id: 'u-missing', status: 'conflict', version: 0, data: null },
        { id: 'u-deleted', status: 'conflict', version: 2, data: null },
        { id: 'd-missing', status: 'applied', version: 0 },
        { id: 'd-deleted', status: 'applied', version: 2 },
      ]);
      // No effect, no log row: only the create and the first delete.
      expect(server.log().map((row) => row.op)).toEqual(['create', 'delete']);
    });
  });

  it('rejects one record through rejectWhen while the rest of the batch applies', async () => {
    await withServer(
      {
        faults: {
          rejectWhen: (m) =>
            m.data !== null && typeof m.data === 'object' && 'bad' in m.data ? 'bad field' : undefined,
        },
      },
      async (server) => {
        const c = client(server);
        const results = await c.pushJson('activity', [
          mutation('create', 'a1', { id: 'ok1', data: { ok: true } }),
          mutation('create', 'a2', { id: 'bad', data: { bad: true } }),
          mutation('create', 'a3', { id: 'ok2', data: { ok: true } }),
          mutation('create', 'a4', { id: 'no-data', data: 'text' }),
        ]);
        expect(results.results).toEqual([
          { id: 'ok1', status: 'applied', version: 1 },
          { id: 'bad', status: 'rejected', error: { code: 'invalid', message: 'bad field' } },
          { id: 'ok2', status: 'applied', version: 1 },
          {
            id: 'no-data',
            status: 'rejected',
            error: { code: 'invalid', message: 'data: expected a JSON object for create' },
          },
        ]);
        expect(server.log().map((row) => row.entityId)).toEqual(['a1', 'a3']);
      },
    );
  });

  it('assigns server ids, replays them in duplicates and translates the client id afterwards', async () => {
    await withServer({ assignIds: ['activity'] }, async (server) => {
      const c = client(server);
      const create = mutation('create', 'local-1', { data: { title: 'x' } });
      expect((await c.pushJson('activity', [create])).results).toEqual([
        { id: create.id, status: 'applied', version: 1, entityId: 'srv-1' },
      ]);
      expect((await c.pushJson('activity', [create])).results).toEqual([
        { id: create.id, status: 'duplicate', version: 1, entityId: 'srv-1' },
      ]);
      // A client that has not rewritten its id yet still reaches the record.
      const update = mutation('update', 'local-1', { baseVersion: 1, data: { title: 'y' } });
      expect((await c.pushJson('activity', [update])).results).toEqual([
        { id: update.id, status: 'applied', version: 2 },
      ]);
      const byServerId = mutation('update', 'srv-1', { baseVersion: 2, data: { done: true } });
      expect((await c.pushJson('activity', [byServerId])).results[0]).toMatchObject({
        status: 'applied',
        version: 3,
      });
      expect(server.record({ userId: 'u1' }, 'activity', 'srv-1')?.data).toEqual({ title: 'y', done: true });
      expect(server.log().map((row) => row.entityId)).toEqual(['srv-1', 'srv-1', 'srv-1']);
      // Entity types not listed keep the client's ids.
      expect((await c.pushJson('note', [mutation('create', 'n1', { id: 'n' })])).results).toEqual([
        { id: 'n', status: 'applied', version: 1 },
      ]);
      const pulled = (await (await c.pull('activity')).json()) as PullResponse;
      expect(pulled.changes.map((change) => change.entityId)).toEqual(['srv-1', 'srv-1', 'srv-1']);
    });
  });

  it('answers 400 invalid-request for bodies that are not protocol v1 push requests', async () => {
    await withServer({}, async (server) => {
      const { token } = server.issueToken({ userId: 'u1' });
      const post = (body: string) =>
        fetch(`${server.url}/sync/push`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}` },
          body,
        });
      const cases = [
        '{not json',
        JSON.stringify({ protocol: 2, clientId: 'c', entity: 'a', mutations: [] }),
        JSON.stringify({ protocol: 1, clientId: 'c', entity: 'a' }),
        JSON.stringify({ protocol: 1, clientId: 'c', entity: 'a', mutations: [{ id: 'x', op: 'create' }] }),
        JSON.stringify({
          protocol: 1,
          clientId: 'c',
          entity: 'a',
          mutations: [mutation('create', 'a', { id: 'same' }), mutation('create', 'b', { id: 'same' })],
        }),
      ];
      for (const body of cases) {
        const response = await post(body);
        expect(response.status).toBe(400);
        const error = ((await response.json()) as { error: { code: string; message: string } }).error;
        expect(error.code).toBe('invalid-request');
        expect(error.message.length).toBeGreaterThan(0);
      }
      expect(server.log()).toEqual([]);
      const empty = await post(JSON.stringify({ protocol: 1, clientId: 'c', entity: 'a', mutations: [] }));
      expect(await empty.json()).toEqual({ results: [] });
    });
  });

  it('keeps idempotency keys per partition', async () => {
    await withServer({}, async (server) => {
      const a = client(server, { userId: 'u1', orgId: 'A' });
      const b = client(server, { userId: 'u2', orgId: 'B' });
      const create = mutation('create', 'x', { data: { owner: 'A' } });
      expect((await a.pushJson('note', [create])).results[0]?.status).toBe('applied');
      expect((await b.pushJson('note', [{ ...create, data: { owner: 'B' } }])).results[0]?.status).toBe(
        'applied',
      );
      expect(server.record({ userId: 'u1', orgId: 'A' }, 'note', 'x')?.data).toEqual({ owner: 'A' });
      expect(server.record({ userId: 'u9', orgId: 'B' }, 'note', 'x')?.data).toEqual({ owner: 'B' });
      expect(server.record({ userId: 'u1' }, 'note', 'x')).toBeUndefined();
    });
  });
});

describe('reference server: pull', () => {
  it('pages changes with an opaque cursor and hasMore, per partition and entity type', async () => {
    await withServer({}, async (server) => {
      const a = client(server, { userId: 'u1', orgId: 'A' });
      const a2 = client(server, { userId: 'u2', orgId: 'A' });
      const b = client(server, { userId: 'u3', orgId: 'B' });
      await a.pushJson(
        'activity',
        ['a1', 'a2', 'a3', 'a4', 'a5'].map((id) => mutation('create', id, { data: { id } })),
      );
      await b.pushJson('activity', [mutation('create', 'b1', { data: {} })]);
      await a.pushJson('note', [mutation('create', 'n1', { data: {} })]);

      const pages = await pullAll(a2, 'activity', 2);
      expect(pages.map((page) => page.changes.map((change) => change.entityId))).toEqual([
        ['a1', 'a2'],
        ['a3', 'a4'],
        ['a5'],
      ]);
      expect(pages.map((page) => page.hasMore)).toEqual([true, true, false]);
      expect(pages[0]?.changes[0]).toEqual({ entityId: 'a1', op: 'upsert', version: 1, data: { id: 'a1' } });

      // From the last cursor: only what changed since, deletes without data.
      const last = pages[2]?.cursor;
      await a.pushJson('activity', [mutation('delete', 'a2'), mutation('update', 'a3', { data: { x: 1 } })]);
      const since = (await (await a.pull('activity', last)).json()) as PullResponse;
      expect(since.changes).toEqual([
        { entityId: 'a2', op: 'delete', version: 2 },
        { entityId: 'a3', op: 'upsert', version: 2, data: { id: 'a3', x: 1 } },
      ]);
      expect(since.hasMore).toBe(false);
      const nothingNew = (await (await a.pull('activity', since.cursor)).json()) as PullResponse;
      expect(nothingNew).toEqual({ changes: [], cursor: since.cursor, hasMore: false });

      const orgB = await pullAll(b, 'activity', 500);
      expect(orgB.flatMap((page) => page.changes.map((change) => change.entityId))).toEqual(['b1']);
      const personal = client(server, { userId: 'u1' });
      expect(((await (await personal.pull('activity')).json()) as PullResponse).changes).toEqual([]);
    });
  });

  it('answers 400 for a malformed cursor, a missing entity or a bad limit, and clamps large limits', async () => {
    await withServer({}, async (server) => {
      const c = client(server);
      for (const cursor of ['!!', 'bm90LWEtbnVtYmVy', 'MQ==']) {
        const response = await c.pull('activity', cursor);
        expect(response.status).toBe(400);
        expect(((await response.json()) as { error: { code: string } }).error.code).toBe('invalid-request');
      }
      expect((await c.pull('', undefined)).status).toBe(400);
      expect((await c.pull('activity', undefined, 0)).status).toBe(400);
      const clamped = await c.pull('activity', undefined, 5000);
      expect(clamped.status).toBe(200);
    });
  });
});

describe('reference server: REST resources', () => {
  it('creates, patches with If-Match, deletes, and replays Idempotency-Key answers', async () => {
    await withServer({}, async (server) => {
      const c = client(server, { userId: 'u1', orgId: 'o1' });
      expect((await c.rest('POST', 'contact', { name: 'A' })).status).toBe(400);

      const created = await c.rest('POST', 'contact', { id: 'c1', name: 'Ann' }, { 'idempotency-key': 'r1' });
      expect(created.status).toBe(201);
      expect(created.headers.get('etag')).toBe('"1"');
      expect(created.headers.get('location')).toBe('/rest/contact/c1');
      const createdBody = await created.json();
      expect(createdBody).toEqual({ id: 'c1', version: 1, data: { name: 'Ann' } });

      const replay = await c.rest('POST', 'contact', { id: 'c1', name: 'Ann' }, { 'idempotency-key': 'r1' });
      expect(replay.status).toBe(201);
      expect(await replay.json()).toEqual(createdBody);
      expect(replay.headers.get('idempotent-replayed')).toBe('true');

      const exists = await c.rest(
        'POST',
        'contact',
        { name: 'Other' },
        { 'idempotency-key': 'r2', 'x-entity-id': 'c1' },
      );
      expect(exists.status).toBe(409);

      const stale = await c.rest('PATCH', 'contact/c1', { name: 'Bo' }, { 'if-match': '"7"' });
      expect(stale.status).toBe(412);
      expect(await stale.json()).toEqual({ id: 'c1', version: 1, data: { name: 'Ann' } });

      const patched = await c.rest(
        'PATCH',
        'contact/c1',
        { phone: '1' },
        { 'if-match': '"1"', 'idempotency-key': 'r3' },
      );
      expect(patched.status).toBe(200);
      expect(patched.headers.get('etag')).toBe('"2"');
      expect(await patched.json()).toEqual({ id: 'c1', version: 2, data: { name: 'Ann', phone: '1' } });
      const fetched = await c.rest('GET', 'contact/c1');
      expect(await fetched.json()).toEqual({ id: 'c1', version: 2, data: { name: 'Ann', phone: '1' } });

      expect((await c.rest('PATCH', 'contact/nope', { a: 1 })).status).toBe(404);
      expect((await c.rest('PATCH', 'contact/c1', { a: 1 }, { 'if-match': 'garbage' })).status).toBe(400);

      const deleted = await c.rest('DELETE', 'contact/c1', undefined, { 'idempotency-key': 'r4' });
      expect(deleted.status).toBe(204);
      expect(deleted.headers.get('etag')).toBe('"3"');
      expect((await c.rest('DELETE', 'contact/c1', undefined, { 'idempotency-key': 'r4' })).status).toBe(204);
      expect((await c.rest('DELETE', 'contact/c1')).status).toBe(404);
      expect((await c.rest('GET', 'contact/c1')).status).toBe(404);

      const log = server.log();
      expect(log.map((row) => [row.op, row.key, row.version, row.via])).toEqual([
        ['create', 'r1', 1, 'rest'],
        ['update', 'r3', 2, 'rest'],
        ['delete', 'r4', 3, 'rest'],
      ]);
      expect(server.stats()).toMatchObject({ duplicates: 2, conflicts: 2 });
    });
  });

  it('assigns ids for REST creates without one and shares records with the sync protocol', async () => {
    await withServer({}, async (server) => {
      const c = client(server);
      const created = await c.rest('POST', 'note', { text: 'hi' }, { 'idempotency-key': 'k' });
      expect(await created.json()).toEqual({ id: 'srv-1', version: 1, data: { text: 'hi' } });
      const pushed = await c.pushJson('note', [
        mutation('update', 'srv-1', { baseVersion: 1, data: { text: 'yo' } }),
      ]);
      expect(pushed.results[0]).toMatchObject({ status: 'applied', version: 2 });
      // The same key through the other API is not silently replayed as something it was not.
      const reused = await c.pushJson('note', [mutation('delete', 'srv-1', { key: 'k' })]);
      expect(reused.results[0]).toMatchObject({
        status: 'rejected',
        error: { code: 'idempotency-key-reused' },
      });
    });
  });
});

describe('reference server: requests in progress', () => {
  it('answers 409 problem+json while a request with the same key is processed, then serves it', async () => {
    await withServer({}, async (server) => {
      const c = client(server);
      server.faults.hangNext(1, 'before');
      const create = mutation('create', 'a1', { data: {} });
      const first = new AbortController();
      const hanging = c.push('activity', [create], { signal: first.signal });
      await waitFor(() => server.faults.pending().hangBefore === 0, 'the first request to hang');

      const second = await c.push('activity', [mutation('update', 'other'), create]);
      expect(second.status).toBe(409);
      expect(second.headers.get('content-type')).toBe('application/problem+json');
      expect(await second.json()).toEqual({
        type: 'urn:sync-core:problem:request-in-progress',
        title: 'A request with this idempotency key is in progress',
        status: 409,
      });
      const restSameKey = await c.rest('POST', 'activity', { id: 'x' }, { 'idempotency-key': create.key });
      expect(restSameKey.status).toBe(409);

      first.abort();
      await expect(hanging).rejects.toThrow();
      // The hanging request ends with its connection (the server may notice a moment after the
      // client); then the key is free again.
      let retry = await c.push('activity', [create]);
      for (let i = 0; i < 200 && retry.status === 409; i++) {
        await new Promise((resolve) => setTimeout(resolve, 5));
        retry = await c.push('activity', [create]);
      }
      expect(retry.status).toBe(200);
      expect(((await retry.json()) as PushResponse).results[0]).toMatchObject({
        status: 'applied',
        version: 1,
      });
      expect(server.log()).toHaveLength(1);
    });
  });
});

describe('reference server: fault injection', () => {
  it('errorRate 1 answers an error status from errorStatuses, with Retry-After for 503, before applying', async () => {
    await withServer(
      { faults: { errorRate: 1, errorStatuses: [503], retryAfter: '120' } },
      async (server) => {
        const c = client(server);
        const response = await c.push('activity', [mutation('create', 'a1')]);
        expect(response.status).toBe(503);
        expect(response.headers.get('retry-after')).toBe('120');
        expect(response.headers.get('content-type')).toBe('application/json; charset=utf-8');
        expect(((await response.json()) as { error: { code: string } }).error.code).toBe('injected-fault');
        expect((await c.pull('activity')).status).toBe(503);
        expect(server.log()).toEqual([]);

        server.faults.errorStatuses = [500, 502, 504];
        const statuses = new Set<number>();
        for (let i = 0; i < 20; i++) statuses.add((await c.pull('activity')).status);
        expect([...statuses].every((status) => [500, 502, 504].includes(status))).toBe(true);
        expect(statuses.size).toBeGreaterThan(1);

        server.faults.reset();
        expect((await c.pull('activity')).status).toBe(200);
        expect(server.stats().injectedFaults).toBe(22);
      },
    );
  });

  it('draws the same random faults for the same seed', async () => {
    const run = async (seed: number): Promise<number[]> => {
      const statuses: number[] = [];
      await withServer({ seed, faults: { errorRate: 0.5 } }, async (server) => {
        const c = client(server);
        for (let i = 0; i < 16; i++) statuses.push((await c.pull('a')).status);
      });
      return statuses;
    };
    const first = await run(42);
    expect(await run(42)).toEqual(first);
    expect(first.some((status) => status === 200)).toBe(true);
    expect(first.some((status) => status >= 500)).toBe(true);
  });

  it('failNext scripts the next responses, including a captive portal 200 text/html', async () => {
    await withServer({}, async (server) => {
      const c = client(server);
      server.faults.failNext(2, { status: 429, retryAfter: 'Wed, 21 Oct 2026 07:28:00 GMT' }).failNext(1, {
        status: 200,
        body: '<html><body>Sign in to Wi-Fi</body></html>',
        contentType: 'text/html',
      });
      const create = mutation('create', 'a1');
      for (let i = 0; i < 2; i++) {
        const limited = await c.push('activity', [create]);
        expect(limited.status).toBe(429);
        expect(limited.headers.get('retry-after')).toBe('Wed, 21 Oct 2026 07:28:00 GMT');
      }
      const portal = await c.push('activity', [create]);
      expect(portal.status).toBe(200);
      expect(portal.headers.get('content-type')).toBe('text/html');
      expect(await portal.text()).toContain('Sign in');
      expect(server.log()).toEqual([]);
      expect((await c.pushJson('activity', [create])).results[0]?.status).toBe('applied');
    });
  });

  it('dropNext before applying loses nothing; after applying the write is committed though the client saw a reset', async () => {
    await withServer({}, async (server) => {
      const c = client(server);
      const create = mutation('create', 'a1', { data: { n: 1 } });

      server.faults.dropNext(1, 'before');
      const before = await c.push('activity', [create]).catch((error: unknown) => error);
      expect(before).toBeInstanceOf(TypeError);
      expect(errorCode(before)).toBe('UND_ERR_SOCKET');
      expect(server.log()).toEqual([]);

      server.faults.dropNext(1, 'after-apply');
      const after = await c.push('activity', [create]).catch((error: unknown) => error);
      expect(after).toBeInstanceOf(TypeError);
      expect(server.log()).toHaveLength(1);
      expect(server.log()[0]).toMatchObject({ key: create.key, version: 1 });

      // The resend with the same key is recognised.
      expect((await c.pushJson('activity', [create])).results[0]).toMatchObject({
        status: 'duplicate',
        version: 1,
      });
      expect(server.log()).toHaveLength(1);
      expect(server.stats().droppedConnections).toBe(2);
    });
  });

  it('hangNext after applying commits the write and never answers', async () => {
    await withServer({}, async (server) => {
      const c = client(server);
      server.faults.hangNext(1, 'after-apply');
      const controller = new AbortController();
      const pending = c.push('activity', [mutation('create', 'a1')], { signal: controller.signal });
      await waitFor(() => server.log().length === 1, 'the write to commit');
      controller.abort();
      await expect(pending).rejects.toThrow(/abort/i);
      expect(server.stats().statusCounts[200]).toBeUndefined();
    });
  });

  it('malformNext damages the 200 of an applied request in each of its ways', async () => {
    await withServer({}, async (server) => {
      const c = client(server);
      const batch = () => [mutation('create', `a${counter}`), mutation('create', `b${counter}`)];

      server.faults.malformNext(1, 'truncated-json');
      const truncated = await c.push('activity', batch());
      expect(truncated.status).toBe(200);
      await expect(truncated.json()).rejects.toThrow(SyntaxError);

      server.faults.malformNext(1, 'wrong-schema');
      expect(await (await c.push('activity', batch())).json()).toEqual({ results: 'damaged' });

      server.faults.malformNext(1, 'missing-result');
      const sentMissing = batch();
      const missing = (await (await c.push('activity', sentMissing)).json()) as PushResponse;
      expect(missing.results.map((result) => result.id)).toEqual([sentMissing[0]?.id]);

      server.faults.malformNext(1, 'extra-result');
      const sentExtra = batch();
      const extra = (await (await c.push('activity', sentExtra)).json()) as PushResponse;
      expect(extra.results).toHaveLength(3);
      expect(sentExtra.map((m) => m.id)).not.toContain(extra.results[2]?.id);

      server.faults.malformNext(1, 'reset-mid-body');
      const reset = await c.push('activity', batch());
      await expect(reset.text()).rejects.toThrow();

      server.faults.malformNext(1, 'wrong-schema');
      expect(await (await c.pull('activity')).json()).toEqual({ unexpected: true });

      // Every damaged answer came after the writes were applied.
      expect(server.log()).toHaveLength(10);
    });
  });

  it('redirectNext answers a redirect before applying anything', async () => {
    await withServer({}, async (server) => {
      const c = client(server);
      server.faults.redirectNext(1, 'https://portal.example/login').redirectNext(1, '/elsewhere', 302);
      const first = await c.push('activity', [mutation('create', 'a1')], { redirect: 'manual' });
      expect(first.status).toBe(307);
      expect(first.headers.get('location')).toBe('https://portal.example/login');
      const second = await c.push('activity', [mutation('create', 'a1')], { redirect: 'manual' });
      expect(second.status).toBe(302);
      expect(server.log()).toEqual([]);
    });
  });

  it('partial itemRetryRate answers retry per item without applying or remembering it', async () => {
    await withServer({ faults: { partial: { itemRetryRate: 1, retryAfterMs: 5000 } } }, async (server) => {
      const c = client(server);
      const create = mutation('create', 'a1');
      expect((await c.pushJson('activity', [create])).results).toEqual([
        { id: create.id, status: 'retry', retryAfterMs: 5000 },
      ]);
      expect(server.log()).toEqual([]);
      server.faults.partial = { itemRetryRate: 0 };
      expect((await c.pushJson('activity', [create])).results[0]?.status).toBe('applied');
      expect(server.stats().retries).toBe(1);
    });
  });

  it('latency delays requests and validates its settings', async () => {
    await withServer({ faults: { latencyMs: [1, 3] } }, async (server) => {
      const c = client(server);
      expect((await c.pull('a')).status).toBe(200);
      expect(() => {
        server.faults.latencyMs = [5, 1];
      }).toThrow(RangeError);
      expect(() => {
        server.faults.errorRate = 2;
      }).toThrow(/expected a number in \[0, 1\], got 2/);
      expect(() => server.faults.dropNext(1, 'later' as 'before')).toThrow(RangeError);
      expect(server.faults.latencyMs).toEqual([1, 3]);
    });
  });

  it('goOffline refuses connections and goOnline listens again on the same port', async () => {
    await withServer({}, async (server) => {
      const c = client(server);
      expect((await c.pull('a')).status).toBe(200);
      const port = server.port;
      await server.goOffline();
      expect(server.isOnline).toBe(false);
      const refused = await c.pull('a').catch((error: unknown) => error);
      expect(refused).toBeInstanceOf(TypeError);
      expect(errorCode(refused)).toBe('ECONNREFUSED');
      await server.goOnline();
      expect(server.port).toBe(port);
      expect((await c.pull('a')).status).toBe(200);
    });
  });
});

describe('reference server: HTTP details', () => {
  it('answers 413 for a body over the limit (8 MiB by default)', async () => {
    await withServer({}, async (server) => {
      const c = client(server);
      const huge = await fetch(`${server.url}/sync/push`, {
        method: 'POST',
        headers: { authorization: `Bearer ${c.credentials.token}` },
        body: 'x'.repeat(8 * 1024 * 1024 + 1),
      });
      expect(huge.status).toBe(413);
      expect(((await huge.json()) as { error: { code: string } }).error.code).toBe('payload-too-large');
      expect((await c.pull('a')).status).toBe(200);
    });
    await withServer({ maxBodyBytes: 1024 }, async (server) => {
      const c = client(server);
      const response = await c.push('a', [mutation('create', 'a1', { data: { blob: 'y'.repeat(2048) } })]);
      expect(response.status).toBe(413);
    });
  });

  it('answers unknown routes with 404 JSON and sets Date from the server clock', async () => {
    await withServer({ now: () => Date.UTC(2030, 0, 2, 3, 4, 5) }, async (server) => {
      const response = await fetch(`${server.url}/nope`);
      expect(response.status).toBe(404);
      expect(response.headers.get('content-type')).toBe('application/json; charset=utf-8');
      expect(response.headers.get('date')).toBe('Wed, 02 Jan 2030 03:04:05 GMT');
      expect(((await response.json()) as { error: { code: string } }).error.code).toBe('not-found');
      expect((await fetch(`${server.url}/sync/push`)).status).toBe(405);
      expect((await fetch(`${server.url}/health`)).status).toBe(200);
    });
  });

  it('keeps records, idempotency keys and tokens in a database file across restarts', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'reference-server-'));
    const dbPath = join(dir, 'server.db');
    try {
      let credentials: IssuedToken | undefined;
      const create = mutation('create', 'a1', { data: { kept: true } });
      await withServer({ dbPath, assignIds: ['activity'] }, async (server) => {
        const c = client(server);
        credentials = c.credentials;
        expect((await c.pushJson('activity', [create])).results[0]).toMatchObject({ entityId: 'srv-1' });
      });
      await withServer({ dbPath, assignIds: ['activity'] }, async (server) => {
        const response = await fetch(`${server.url}/sync/push`, {
          method: 'POST',
          headers: { authorization: `Bearer ${credentials?.token}` },
          body: JSON.stringify({
            protocol: 1,
            clientId: 'device-1',
            entity: 'activity',
            mutations: [create],
          }),
        });
        expect(await response.json()).toEqual({
          results: [{ id: create.id, status: 'duplicate', version: 1, entityId: 'srv-1' }],
        });
        expect(server.log()).toHaveLength(1);
        expect(server.record({ userId: 'u1' }, 'activity', 'a1')?.data).toEqual({ kept: true });
        // The id counter is durable too: no second srv-1.
        await expect(client(server).pushJson('activity', [mutation('create', 'a2')])).resolves.toMatchObject({
          results: [{ entityId: 'srv-2' }],
        });
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
