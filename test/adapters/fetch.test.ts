/**
 * The fetch adapter against real HTTP servers on loopback (node:http, port 0): every row of the
 * status / error mapping, both modes, credentials, and the immediate resend of p-retry.
 */
import { getEventListeners } from 'node:events';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  ConfigError,
  type NetworkAdapter,
  type OutgoingMutation,
  type PushItemResult,
  type PushRequest,
  type PushResponse,
  type Scope,
  type TransportFailure,
} from 'sync-core';
import {
  createFetchNetwork,
  type FetchLike,
  type FetchNetworkOptions,
  fetchFromUndiciRequest,
  IN_PROGRESS_PROBLEM_TYPE,
} from 'sync-core/fetch';
import { Agent, fetch as undiciFetch, request as undiciRequest } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { type ReferenceServer, startServer as startReferenceServer } from '../../examples/server/index.js';

const TOKEN = 'tok-secret-7f3a9c1e';
const SCOPE: Scope = { userId: 'u1', orgId: 'o1' };

// ---------------------------------------------------------------------------------------------
// Loopback servers

interface Recorded {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

type Handler = (req: IncomingMessage, res: ServerResponse, body: string, index: number) => void;

interface TestServer {
  readonly url: string;
  readonly port: number;
  readonly requests: Recorded[];
  /** Connections accepted, including those destroyed before a request was read. */
  connections: number;
  close(): Promise<void>;
}

const servers: TestServer[] = [];

async function startServer(handler: Handler): Promise<TestServer> {
  const requests: Recorded[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const index = requests.length;
      requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      handler(req, res, body, index);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const testServer: TestServer = {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    connections: 0,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  server.on('connection', () => {
    testServer.connections++;
  });
  servers.push(testServer);
  return testServer;
}

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

/** A port nothing listens on: opened, then closed. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function json(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(text);
}

/** Answer a protocol push with `applied` for every mutation, in reverse order. */
function applyAll(res: ServerResponse, body: string): void {
  const { mutations } = JSON.parse(body) as { mutations: { id: string }[] };
  json(res, 200, { results: mutations.map((m) => ({ id: m.id, status: 'applied', version: 1 })).reverse() });
}

// ---------------------------------------------------------------------------------------------
// Requests and adapters

function mutation(id: string, overrides: Partial<OutgoingMutation> = {}): OutgoingMutation {
  return {
    id,
    key: `key-${id}`,
    op: 'create',
    entityId: `e-${id}`,
    baseVersion: null,
    data: { title: `title ${id}` },
    clientTime: '2026-11-25T10:00:00.000Z',
    dependsOn: [],
    ...overrides,
  };
}

function pushRequest(
  mutations: readonly OutgoingMutation[],
  signal: AbortSignal = new AbortController().signal,
  entity = 'activity',
): PushRequest {
  return { entity, scope: SCOPE, clientId: 'device-1', mutations, signal };
}

// The port's pull types, derived from `NetworkAdapter` (the package index does not export them yet).
type PullFunction = NonNullable<NetworkAdapter['pull']>;
type PullRequest = Parameters<PullFunction>[0];
type PullResponse = Awaited<ReturnType<PullFunction>>;
type PullPage = Extract<PullResponse, { type: 'page' }>;

interface Harness {
  readonly push: (request: PushRequest) => Promise<PushResponse>;
  readonly pull: (request: PullRequest) => Promise<PullResponse>;
  readonly scopes: Scope[];
  readonly network: ReturnType<typeof createFetchNetwork>;
}

/** Every message of a response, to check that no credential leaks into one (FAULTS.md 33). */
function messagesOf(response: PushResponse): string[] {
  if (response.type === 'failure') return [response.failure.message, response.failure.code];
  return response.results.flatMap((r) => {
    if (r.status === 'failed') return [r.failure.message, r.failure.code];
    if (r.status === 'rejected') return [r.error.message, r.error.code];
    return [];
  });
}

function harness(options: Partial<FetchNetworkOptions> & { baseUrl: string }): Harness {
  const scopes: Scope[] = [];
  const network = createFetchNetwork({
    credentials: async (scope) => {
      scopes.push(scope);
      return { token: TOKEN };
    },
    ...options,
  });
  return {
    scopes,
    network,
    push: async (request) => {
      const response = await network.push(request);
      for (const message of messagesOf(response)) expect(message).not.toContain(TOKEN);
      return response;
    },
    pull: async (request) => {
      if (network.pull === undefined) throw new Error('the adapter has no pull');
      const response = await network.pull(request);
      if (response.type === 'failure') {
        expect(response.failure.message).not.toContain(TOKEN);
        expect(response.failure.code).not.toContain(TOKEN);
      }
      return response;
    },
  };
}

function failureOf(response: PushResponse): TransportFailure {
  if (response.type !== 'failure') throw new Error(`expected a failure, got ${JSON.stringify(response)}`);
  return response.failure;
}

function resultsOf(response: PushResponse): readonly PushItemResult[] {
  if (response.type !== 'results') throw new Error(`expected results, got ${JSON.stringify(response)}`);
  return response.results;
}

function itemFailure(result: PushItemResult | undefined): TransportFailure {
  if (result?.status !== 'failed') throw new Error(`expected a failed item, got ${JSON.stringify(result)}`);
  return result.failure;
}

// ---------------------------------------------------------------------------------------------

describe('fetch adapter: options', () => {
  const credentials = async () => ({ token: TOKEN });

  it('rejects invalid options with a ConfigError naming the option, never echoing secrets', () => {
    const make = (options: Partial<FetchNetworkOptions>) => () =>
      createFetchNetwork({ baseUrl: 'https://api.example.com', credentials, ...options });
    expect(make({ baseUrl: 'not a url' })).toThrow(/baseUrl: expected an absolute http: or https: URL/);
    expect(make({ baseUrl: 'ftp://example.com' })).toThrow(ConfigError);
    expect(make({ baseUrl: 'https://user:hunter22@example.com' })).toThrow(/no user name or password/);
    expect(make({ baseUrl: 'https://user:hunter22@example.com' })).not.toThrow(/hunter22/);
    expect(make({ baseUrl: 'https://example.com/?a=1' })).toThrow(/without query or fragment/);
    expect(make({ timeoutMs: 0 })).toThrow(/timeoutMs: expected an integer from 1 to 2147483647, got 0/);
    expect(make({ connectRetries: -1 })).toThrow(/connectRetries/);
    expect(make({ restConcurrency: 0, mode: 'rest', rest: { a: { path: '/a' } } })).toThrow(
      /restConcurrency/,
    );
    expect(make({ mode: 'rest' })).toThrow(/rest: expected routes by entity type/);
    expect(make({ rest: { a: { path: '/a' } } })).toThrow(/no REST routes unless mode is 'rest'/);
    expect(make({ mode: 'rest', rest: { a: { path: 'a' } } })).toThrow(/rest\["a"\]\.path/);
    expect(make({ mode: 'rest', rest: { a: { path: '/a', update: { method: 'POST' as 'PUT' } } } })).toThrow(
      /rest\["a"\]\.update\.method: expected one of PATCH, PUT/,
    );
    expect(make({ headers: { 'x-api-key': 'line\nbreak-secret' } })).toThrow(/headers\["x-api-key"\]/);
    expect(make({ headers: { 'x-api-key': 'line\nbreak-secret' } })).not.toThrow(/break-secret/);
    expect(make({ mode: 'other' as 'rest' })).toThrow(/mode/);
    expect(() =>
      createFetchNetwork({ baseUrl: 'https://api.example.com' } as unknown as FetchNetworkOptions),
    ).toThrow(/credentials: expected a function/);
  });

  it('exposes refresh as refreshCredentials, passing scope and signal through, and omits it otherwise', async () => {
    const calls: [Scope, AbortSignal][] = [];
    const network = createFetchNetwork({
      baseUrl: 'https://api.example.com',
      credentials,
      refresh: async (scope, signal) => {
        calls.push([scope, signal]);
        return true;
      },
    });
    const signal = new AbortController().signal;
    await expect(network.refreshCredentials?.(SCOPE, signal)).resolves.toBe(true);
    expect(calls).toEqual([[SCOPE, signal]]);
    expect(createFetchNetwork({ baseUrl: 'https://api.example.com', credentials }).refreshCredentials).toBe(
      undefined,
    );
  });
});

describe('fetch adapter: protocol v1', () => {
  it('posts the batch as protocol v1 and maps every result of a valid 200, in the order sent', async () => {
    const server = await startServer((_req, res) =>
      json(res, 200, {
        results: [
          { id: 'm5', status: 'retry', retryAfterMs: 5000 },
          { id: 'm4', status: 'rejected', error: { code: 'invalid', message: 'title is required' } },
          { id: 'm3', status: 'conflict', version: 5, data: { title: 'theirs' } },
          { id: 'm2', status: 'duplicate', version: 3, entityId: 'srv-2' },
          { id: 'm1', status: 'applied', version: 3, entityId: 'srv-17' },
        ],
      }),
    );
    const h = harness({ baseUrl: `${server.url}/api/`, headers: { 'X-App-Version': '1.2.3' } });
    const mutations = [
      mutation('m1'),
      mutation('m2', { dependsOn: ['m0'] }),
      mutation('m3', { op: 'update', baseVersion: 4 }),
      mutation('m4'),
      mutation('m5', { op: 'delete', data: null, baseVersion: 2 }),
    ];
    const response = await h.push(pushRequest(mutations));

    expect(resultsOf(response)).toEqual([
      { id: 'm1', status: 'applied', version: 3, entityId: 'srv-17' },
      { id: 'm2', status: 'duplicate', version: 3, entityId: 'srv-2' },
      { id: 'm3', status: 'conflict', version: 5, data: { title: 'theirs' } },
      { id: 'm4', status: 'rejected', error: { code: 'invalid', message: 'title is required' } },
      { id: 'm5', status: 'retry', retryAfterMs: 5000 },
    ]);
    const [request] = server.requests;
    expect(request?.method).toBe('POST');
    expect(request?.url).toBe('/api/sync/push');
    expect(request?.headers['content-type']).toBe('application/json');
    expect(request?.headers['accept']).toBe('application/json');
    expect(request?.headers['authorization']).toBe(`Bearer ${TOKEN}`);
    expect(request?.headers['x-app-version']).toBe('1.2.3');
    const body = JSON.parse(request!.body);
    expect(body).toEqual({
      protocol: 1,
      clientId: 'device-1',
      entity: 'activity',
      mutations: mutations.map((m) => ({
        id: m.id,
        key: m.key,
        op: m.op,
        entityId: m.entityId,
        baseVersion: m.baseVersion,
        data: m.data,
        clientTime: m.clientTime,
        ...(m.dependsOn.length > 0 ? { dependsOn: m.dependsOn } : {}),
      })),
    });
    expect(h.scopes).toEqual([SCOPE]);
  });

  it('drops an entityId that only echoes the client id', async () => {
    const server = await startServer((_req, res) =>
      json(res, 200, { results: [{ id: 'm1', status: 'applied', version: 1, entityId: 'e-m1' }] }),
    );
    const response = await harness({ baseUrl: server.url }).push(pushRequest([mutation('m1')]));
    expect(resultsOf(response)).toEqual([{ id: 'm1', status: 'applied', version: 1 }]);
  });

  it.each([
    [
      'a wrong schema',
      {
        results: [
          { id: 'm1', status: 'done' },
          { id: 'm2', status: 'applied' },
        ],
      },
    ],
    ['no results array', { ok: true }],
    ['a missing result', { results: [{ id: 'm1', status: 'applied' }] }],
    [
      'a result for a mutation not sent',
      {
        results: [
          { id: 'm1', status: 'applied' },
          { id: 'm2', status: 'applied' },
          { id: 'zz', status: 'applied' },
        ],
      },
    ],
    [
      'a duplicate result id',
      {
        results: [
          { id: 'm1', status: 'applied' },
          { id: 'm1', status: 'applied' },
        ],
      },
    ],
  ])('a 200 with %s is a retryable bad-response for the whole batch (FAULTS 22)', async (_name, body) => {
    const server = await startServer((_req, res) => json(res, 200, body));
    const response = await harness({ baseUrl: server.url }).push(
      pushRequest([mutation('m1'), mutation('m2')]),
    );
    expect(failureOf(response)).toMatchObject({ class: 'retryable', code: 'bad-response', status: 200 });
  });

  it("a captive portal's 200 text/html is a retryable bad-response, never a success (FAULTS 15)", async () => {
    const server = await startServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end('<html><body>{"results":[]} Please log in to the hotel Wi-Fi</body></html>');
    });
    const failure = failureOf(await harness({ baseUrl: server.url }).push(pushRequest([mutation('m1')])));
    expect(failure).toMatchObject({ class: 'retryable', code: 'bad-response', status: 200 });
    expect(failure.message).toMatch(/text\/html/);
  });

  it('a 200 whose body is cut off mid-response is ambiguous (FAULTS 13)', async () => {
    const server = await startServer((_req, res, body) => {
      const { mutations } = JSON.parse(body) as { mutations: { id: string }[] };
      const full = Buffer.from(
        JSON.stringify({ results: mutations.map((m) => ({ id: m.id, status: 'applied', version: 1 })) }),
      );
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(full.length) });
      res.write(full.subarray(0, Math.floor(full.length / 2)), () => res.destroy());
    });
    const failure = failureOf(await harness({ baseUrl: server.url }).push(pushRequest([mutation('m1')])));
    expect(failure.class).toBe('ambiguous');
  });

  it('a complete 200 whose JSON is truncated is ambiguous invalid-json', async () => {
    const server = await startServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"results":[{"id":"m1","sta');
    });
    const failure = failureOf(await harness({ baseUrl: server.url }).push(pushRequest([mutation('m1')])));
    expect(failure).toMatchObject({ class: 'ambiguous', code: 'invalid-json', status: 200 });
  });

  it('401 is auth and sends nothing else', async () => {
    const server = await startServer((_req, res) => json(res, 401, { error: { code: 'expired' } }));
    const failure = failureOf(await harness({ baseUrl: server.url }).push(pushRequest([mutation('m1')])));
    expect(failure).toMatchObject({ class: 'auth', code: 'http-401', status: 401 });
    expect(server.requests).toHaveLength(1);
  });

  it('a 409 request-in-progress problem is retryable in-progress, not a conflict (FAULTS 19)', async () => {
    const server = await startServer((_req, res) =>
      json(
        res,
        409,
        { type: IN_PROGRESS_PROBLEM_TYPE, title: 'in progress', status: 409 },
        { 'content-type': 'application/problem+json', 'retry-after': '2' },
      ),
    );
    const failure = failureOf(await harness({ baseUrl: server.url }).push(pushRequest([mutation('m1')])));
    expect(failure).toMatchObject({
      class: 'retryable',
      code: 'in-progress',
      status: 409,
      retryAfterMs: 2000,
    });
  });

  it('any other 409 or 412 is a conflict with the server version and data', async () => {
    const server = await startServer((_req, res, _body, index) => {
      if (index === 0) json(res, 409, { version: 7, data: { title: 'server' } });
      else if (index === 1) json(res, 412, {}, { 'content-type': 'application/problem+json' });
      else json(res, 409, { type: 'urn:example:other' }, { 'content-type': 'application/problem+json' });
    });
    const h = harness({ baseUrl: server.url });
    expect(failureOf(await h.push(pushRequest([mutation('m1')])))).toEqual({
      class: 'conflict',
      code: 'http-409',
      message: 'the server reported a conflict (409)',
      status: 409,
      serverVersion: 7,
      serverData: { title: 'server' },
    });
    expect(failureOf(await h.push(pushRequest([mutation('m1')])))).toMatchObject({
      class: 'conflict',
      code: 'http-412',
    });
    expect(failureOf(await h.push(pushRequest([mutation('m1')])))).toMatchObject({ class: 'conflict' });
  });

  it('429 with Retry-After in seconds is retryable with retryAfterMs (FAULTS 16)', async () => {
    const server = await startServer((_req, res) => json(res, 429, {}, { 'retry-after': '120' }));
    const failure = failureOf(await harness({ baseUrl: server.url }).push(pushRequest([mutation('m1')])));
    expect(failure).toMatchObject({
      class: 'retryable',
      code: 'http-429',
      status: 429,
      retryAfterMs: 120_000,
    });
  });

  it("503 with an HTTP-date Retry-After is measured against the server's Date, not a skewed device clock", async () => {
    const server = await startServer((_req, res) => {
      res.setHeader('date', 'Wed, 21 Oct 2026 07:28:00 GMT');
      json(res, 503, {}, { 'retry-after': 'Wed, 21 Oct 2026 07:29:30 GMT' });
    });
    // The device believes it is 1970.
    const h = harness({ baseUrl: server.url, now: () => 0 });
    const failure = failureOf(await h.push(pushRequest([mutation('m1')])));
    expect(failure).toMatchObject({ class: 'retryable', code: 'http-503', retryAfterMs: 90_000 });
  });

  it('503 with an HTTP-date and no Date header falls back to the injected clock; a malformed value is ignored', async () => {
    const server = await startServer((_req, res, _body, index) => {
      res.sendDate = false;
      json(res, 503, {}, { 'retry-after': index === 0 ? 'Wed, 21 Oct 2026 07:29:30 GMT' : 'soon' });
    });
    const h = harness({ baseUrl: server.url, now: () => Date.UTC(2026, 9, 21, 7, 29, 0) });
    expect(failureOf(await h.push(pushRequest([mutation('m1')])))).toMatchObject({ retryAfterMs: 30_000 });
    const second = failureOf(await h.push(pushRequest([mutation('m1')])));
    expect(second).toMatchObject({ class: 'retryable', code: 'http-503' });
    expect(second.retryAfterMs).toBeUndefined();
  });

  it.each([301, 302, 307, 308])(
    'a %i is a retryable bad-response and the Location receives nothing (FAULTS 14)',
    async (status) => {
      const target = await startServer((_req, res, body) => applyAll(res, body));
      const server = await startServer((_req, res) => {
        res.writeHead(status, { location: `${target.url}/sync/push` });
        res.end();
      });
      const failure = failureOf(await harness({ baseUrl: server.url }).push(pushRequest([mutation('m1')])));
      expect(failure).toMatchObject({ class: 'retryable', code: 'bad-response', status });
      expect(server.requests).toHaveLength(1);
      expect(target.requests).toHaveLength(0);
      expect(target.connections).toBe(0);
    },
  );

  it.each([404, 410])(
    'a %i from /sync/push means the endpoint is missing: retryable, never gone',
    async (status) => {
      const server = await startServer((_req, res) => json(res, status, { error: { code: 'not-found' } }));
      const response = await harness({ baseUrl: server.url }).push(
        pushRequest([mutation('m1', { op: 'delete', data: null })]),
      );
      expect(failureOf(response)).toMatchObject({ class: 'retryable', code: 'endpoint-not-found', status });
    },
  );

  it("other 4xx are rejected with the server's reason; 5xx are retryable", async () => {
    const server = await startServer((_req, res, _body, index) => {
      if (index === 0)
        json(res, 422, { error: { code: 'invalid', message: 'entity "activity" is unknown' } });
      else json(res, 500, { error: 'boom' });
    });
    const h = harness({ baseUrl: server.url });
    expect(failureOf(await h.push(pushRequest([mutation('m1')])))).toEqual({
      class: 'rejected',
      code: 'http-422',
      message: 'the server rejected the request (422): entity "activity" is unknown',
      status: 422,
    });
    const failure = failureOf(await h.push(pushRequest([mutation('m1')])));
    expect(failure).toMatchObject({ class: 'retryable', code: 'http-500', status: 500 });
    expect(failure.retryAfterMs).toBeUndefined();
  });

  it('a credential the server echoes back never appears in a failure or rejection message (FAULTS 33)', async () => {
    const server = await startServer((req, res, body, index) => {
      const auth = String(req.headers['authorization']);
      if (index === 0) {
        json(res, 400, { error: { code: 'bad', message: `header ${auth} is not accepted` } });
        return;
      }
      const { mutations } = JSON.parse(body) as { mutations: { id: string }[] };
      json(res, 200, {
        results: mutations.map((m) => ({
          id: m.id,
          status: 'rejected',
          error: { code: 'bad', message: auth },
        })),
      });
    });
    const network = createFetchNetwork({ baseUrl: server.url, credentials: async () => ({ token: TOKEN }) });
    const first = failureOf(await network.push(pushRequest([mutation('m1')])));
    expect(first.message).toBe('the server rejected the request (400): header [redacted] is not accepted');
    const second = resultsOf(await network.push(pushRequest([mutation('m1')])));
    expect(second).toEqual([{ id: 'm1', status: 'rejected', error: { code: 'bad', message: '[redacted]' } }]);
  });

  it('gets credentials for every request, for the batch scope, and merges header credentials last', async () => {
    const server = await startServer((_req, res, body) => applyAll(res, body));
    const seen: Scope[] = [];
    let n = 0;
    const network = createFetchNetwork({
      baseUrl: server.url,
      headers: { 'X-Api-Key': 'static', 'Content-Type': 'text/plain' },
      credentials: async (scope) => {
        seen.push(scope);
        n++;
        return { headers: { 'X-Api-Key': `key-${n}` } };
      },
    });
    await network.push(pushRequest([mutation('m1')]));
    await network.push({ ...pushRequest([mutation('m2')]), scope: { userId: 'u2' } });
    expect(seen).toEqual([SCOPE, { userId: 'u2' }]);
    expect(server.requests.map((r) => r.headers['x-api-key'])).toEqual(['key-1', 'key-2']);
    // The adapter's own content type wins over a static header.
    expect(server.requests[0]?.headers['content-type']).toBe('application/json');
  });

  it('a credentials provider that throws is auth credentials-unavailable and nothing is sent', async () => {
    const server = await startServer((_req, res, body) => applyAll(res, body));
    const network = createFetchNetwork({
      baseUrl: server.url,
      credentials: async () => {
        throw new Error(`keychain locked, last token ${TOKEN}`);
      },
    });
    const failure = failureOf(await network.push(pushRequest([mutation('m1')])));
    expect(failure).toMatchObject({ class: 'auth', code: 'credentials-unavailable' });
    expect(failure.message).not.toContain(TOKEN);
    expect(server.requests).toHaveLength(0);
    const invalid = createFetchNetwork({
      baseUrl: server.url,
      credentials: async () => ({ token: 42 }) as unknown as { token: string },
    });
    expect(failureOf(await invalid.push(pushRequest([mutation('m1')])))).toMatchObject({
      class: 'auth',
      code: 'credentials-unavailable',
    });
  });

  it('works with undici fetch on a pooled Agent (dispatcher) as the injected fetch', async () => {
    const server = await startServer((_req, res, body) => applyAll(res, body));
    let dispatched = 0;
    // Counts what goes through the pool, to prove the injected fetch really used it.
    const dispatcher = new Agent({ connections: 2, keepAliveTimeout: 1000 }).compose(
      (dispatch) => (opts, handler) => {
        dispatched++;
        return dispatch(opts, handler);
      },
    );
    try {
      // undici's fetch itself fits FetchLike, so does a wrapper that adds the dispatcher.
      const plain: FetchLike = undiciFetch;
      expect(typeof plain).toBe('function');
      const pooled: FetchLike = (url, init) => undiciFetch(url, { ...init, dispatcher });
      const h = harness({ baseUrl: server.url, fetch: pooled });
      for (const id of ['m1', 'm2', 'm3']) {
        expect(resultsOf(await h.push(pushRequest([mutation(id)])))).toEqual([
          { id, status: 'applied', version: 1 },
        ]);
      }
      expect(server.requests).toHaveLength(3);
      expect(dispatched).toBe(3);
    } finally {
      await dispatcher.close();
    }
  });
});

describe('fetch adapter: network errors, timeout, abort', () => {
  it('connection refused is offline, resent at once at most connectRetries times (FAULTS 11)', async () => {
    const port = await closedPort();
    for (const connectRetries of [0, 2]) {
      let calls = 0;
      const counting: FetchLike = (url, init) => {
        calls++;
        return fetch(url, init);
      };
      const h = harness({ baseUrl: `http://127.0.0.1:${port}`, fetch: counting, connectRetries });
      const failure = failureOf(await h.push(pushRequest([mutation('m1')])));
      expect(failure).toMatchObject({ class: 'offline', code: 'econnrefused' });
      expect(failure.status).toBeUndefined();
      expect(calls).toBe(connectRetries + 1);
    }
  });

  it.each([
    ['ENOTFOUND', 'offline'],
    ['EAI_AGAIN', 'offline'],
    ['ENETUNREACH', 'offline'],
    ['UND_ERR_CONNECT_TIMEOUT', 'offline'],
    ['ECONNRESET', 'ambiguous'],
    ['UND_ERR_SOCKET', 'ambiguous'],
  ] as const)('undici\'s "fetch failed" caused by %s is %s', async (code, cls) => {
    // The shape of Node's fetch errors, without depending on the machine's DNS or routes.
    const cause = Object.assign(new Error(`${code.toLowerCase()} somewhere.example:443`), { code });
    const failing: FetchLike = async () => {
      throw new TypeError('fetch failed', { cause });
    };
    const h = harness({ baseUrl: 'https://api.example.com', fetch: failing, connectRetries: 0 });
    const failure = failureOf(await h.push(pushRequest([mutation('m1')])));
    expect(failure).toMatchObject({ class: cls, code: code.toLowerCase().replace(/_/g, '-') });
    expect(failure.message).not.toMatch(/somewhere/);
  });

  it('finds the code inside an AggregateError of one error per address (happy eyeballs)', async () => {
    const refused = (address: string) =>
      Object.assign(new Error(`connect ECONNREFUSED ${address}`), { code: 'ECONNREFUSED' });
    const cause = new AggregateError([refused('::1:443'), refused('127.0.0.1:443')]);
    let calls = 0;
    const failing: FetchLike = async () => {
      calls++;
      throw new TypeError('fetch failed', { cause });
    };
    const h = harness({ baseUrl: 'https://api.example.com', fetch: failing, connectRetries: 1 });
    expect(failureOf(await h.push(pushRequest([mutation('m1')])))).toMatchObject({
      class: 'offline',
      code: 'econnrefused',
    });
    expect(calls).toBe(2);
  });

  it('a connection dropped before the response is resent with the same key, then succeeds', async () => {
    const server = await startServer((req, res, body, index) => {
      if (index < 2) req.socket.destroy();
      else applyAll(res, body);
    });
    const h = harness({ baseUrl: server.url, connectRetries: 2 });
    const response = await h.push(pushRequest([mutation('m1')]));
    expect(resultsOf(response)).toEqual([{ id: 'm1', status: 'applied', version: 1 }]);
    expect(server.requests).toHaveLength(3);
    const keys = server.requests.map(
      (r) => (JSON.parse(r.body) as { mutations: { key: string }[] }).mutations[0]?.key,
    );
    expect(keys).toEqual(['key-m1', 'key-m1', 'key-m1']);
    // Immediate resends reuse the request's credentials.
    expect(h.scopes).toHaveLength(1);
  });

  it('a connection dropped after the request, more often than connectRetries allows, is ambiguous', async () => {
    const server = await startServer((req) => req.socket.destroy());
    const h = harness({ baseUrl: server.url, connectRetries: 1 });
    const failure = failureOf(await h.push(pushRequest([mutation('m1')])));
    expect(failure.class).toBe('ambiguous');
    expect(server.requests).toHaveLength(2);
  });

  it('no answer within timeoutMs is ambiguous timeout (FAULTS 12)', async () => {
    const server = await startServer(() => {
      // Never answers.
    });
    const h = harness({ baseUrl: server.url, timeoutMs: 200 });
    const failure = failureOf(await h.push(pushRequest([mutation('m1')])));
    expect(failure).toMatchObject({ class: 'ambiguous', code: 'timeout' });
    expect(server.requests).toHaveLength(1);
  });

  it('aborting the push signal answers aborted, also before anything was sent', async () => {
    let arrived: () => void = () => undefined;
    const requestArrived = new Promise<void>((resolve) => {
      arrived = resolve;
    });
    const server = await startServer(() => arrived());
    const h = harness({ baseUrl: server.url });
    const controller = new AbortController();
    const pending = h.push(pushRequest([mutation('m1')], controller.signal));
    await requestArrived;
    controller.abort();
    expect(failureOf(await pending)).toMatchObject({ class: 'aborted', code: 'aborted' });

    const response = await h.push(pushRequest([mutation('m2')], AbortSignal.abort()));
    expect(failureOf(response)).toMatchObject({ class: 'aborted' });
    expect(server.requests).toHaveLength(1);
  });

  it('aborting while the body is being read answers aborted', async () => {
    const server = await startServer((_req, res) => {
      // Headers and the start of the body, then nothing.
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"results":[');
    });
    let gotResponse: () => void = () => undefined;
    const responded = new Promise<void>((resolve) => {
      gotResponse = resolve;
    });
    const controller = new AbortController();
    const h = harness({
      baseUrl: server.url,
      fetch: async (url, init) => {
        const response = await fetch(url, init);
        gotResponse();
        return response;
      },
    });
    const pending = h.push(pushRequest([mutation('m1')], controller.signal));
    await responded;
    controller.abort();
    expect(failureOf(await pending)).toMatchObject({ class: 'aborted' });
  });

  it('a fetch that rejects with a bare TypeError is ambiguous network-error, unless networkErrorClass says offline', async () => {
    const bare: FetchLike = async () => {
      throw new TypeError('Network request failed');
    };
    const h = harness({ baseUrl: 'https://api.example.com', fetch: bare });
    expect(failureOf(await h.push(pushRequest([mutation('m1')])))).toMatchObject({
      class: 'ambiguous',
      code: 'network-error',
    });
    const rn = harness({
      baseUrl: 'https://api.example.com',
      fetch: bare,
      networkErrorClass: (error) =>
        error instanceof TypeError && error.message === 'Network request failed' ? 'offline' : undefined,
    });
    expect(failureOf(await rn.push(pushRequest([mutation('m1')])))).toMatchObject({
      class: 'offline',
      code: 'network-error',
    });
  });
});

describe('fetch adapter: REST-resource mode', () => {
  const rest = (baseUrl: string, extra: Partial<FetchNetworkOptions> = {}) =>
    harness({
      baseUrl,
      mode: 'rest',
      rest: {
        activity: {
          path: '/activities',
          custom: {
            archive: { method: 'POST', path: (m) => `/activities/${encodeURIComponent(m.entityId)}/archive` },
          },
        },
      },
      ...extra,
    });

  it('maps create, update and delete to requests with Idempotency-Key, X-Entity-Id and If-Match', async () => {
    const server = await startServer((req, res) => {
      if (req.method === 'POST') json(res, 201, { id: 'srv-1', version: 1, data: {} }, { etag: '"1"' });
      else if (req.method === 'PATCH') json(res, 200, { id: 'a/2', version: 4, data: {} }, { etag: '"4"' });
      else {
        res.writeHead(204, { etag: '"9"' });
        res.end();
      }
    });
    const h = rest(`${server.url}/v2`);
    const mutations = [
      mutation('c', { op: 'create', entityId: 'a1', data: { title: 'new' } }),
      mutation('u', { op: 'update', entityId: 'a/2', baseVersion: 3, data: { title: 'edited' } }),
      mutation('d', { op: 'delete', entityId: 'a3', baseVersion: 8, data: null }),
    ];
    const response = await h.push(pushRequest(mutations));
    expect(resultsOf(response)).toEqual([
      { id: 'c', status: 'applied', version: 1, entityId: 'srv-1' },
      { id: 'u', status: 'applied', version: 4 },
      { id: 'd', status: 'applied', version: 9 },
    ]);

    const byMethod = new Map(server.requests.map((r) => [r.method, r]));
    const create = byMethod.get('POST');
    expect(create?.url).toBe('/v2/activities');
    expect(create?.headers['idempotency-key']).toBe('key-c');
    expect(create?.headers['x-entity-id']).toBe('a1');
    expect(create?.headers['x-client-id']).toBe('device-1');
    expect(create?.headers['content-type']).toBe('application/json');
    expect(create?.headers['authorization']).toBe(`Bearer ${TOKEN}`);
    expect(create?.headers['if-match']).toBeUndefined();
    expect(JSON.parse(create!.body)).toEqual({ title: 'new' });

    const update = byMethod.get('PATCH');
    expect(update?.url).toBe('/v2/activities/a%2F2');
    expect(update?.headers['if-match']).toBe('"3"');
    expect(update?.headers['idempotency-key']).toBe('key-u');
    expect(JSON.parse(update!.body)).toEqual({ title: 'edited' });

    const remove = byMethod.get('DELETE');
    expect(remove?.url).toBe('/v2/activities/a3');
    expect(remove?.headers['if-match']).toBe('"8"');
    expect(remove?.headers['idempotency-key']).toBe('key-d');
    expect(remove?.body).toBe('');

    // Credentials are obtained for every request, for the batch's scope.
    expect(h.scopes).toEqual([SCOPE, SCOPE, SCOPE]);
  });

  it('reports a replayed request as duplicate and takes string versions from a strong ETag', async () => {
    const server = await startServer((_req, res) =>
      json(res, 200, { id: 'e-m1' }, { etag: '"v7-abc"', 'idempotent-replayed': 'true' }),
    );
    const response = await rest(server.url).push(
      pushRequest([mutation('m1', { op: 'update', baseVersion: 'v6-xyz' })]),
    );
    expect(resultsOf(response)).toEqual([{ id: 'm1', status: 'duplicate', version: 'v7-abc' }]);
    expect(server.requests[0]?.headers['if-match']).toBe('"v6-xyz"');
  });

  it('412 and 409 are conflict items with the server version and data', async () => {
    const server = await startServer((req, res) => {
      if (req.method === 'PATCH')
        json(res, 412, { id: 'a1', version: 5, data: { title: 'theirs' } }, { etag: '"5"' });
      else json(res, 409, { id: 'a2', version: 2, data: { title: 'exists' } });
    });
    const response = await rest(server.url).push(
      pushRequest([mutation('u', { op: 'update', entityId: 'a1', baseVersion: 4 }), mutation('c')]),
    );
    expect(resultsOf(response)).toEqual([
      { id: 'u', status: 'conflict', version: 5, data: { title: 'theirs' } },
      { id: 'c', status: 'conflict', version: 2, data: { title: 'exists' } },
    ]);
  });

  it('404 on a delete is an item failed with class gone; on a create it is rejected', async () => {
    const server = await startServer((_req, res) => json(res, 404, { error: { code: 'not-found' } }));
    const response = await rest(server.url).push(
      pushRequest([mutation('d', { op: 'delete', data: null }), mutation('c')]),
    );
    const [gone, created] = resultsOf(response);
    expect(itemFailure(gone)).toMatchObject({ class: 'gone', code: 'http-404', status: 404 });
    expect(itemFailure(created)).toMatchObject({ class: 'rejected', code: 'http-404' });
  });

  it('other statuses fail only their own item; the rest of the batch is reported', async () => {
    const server = await startServer((req, res) => {
      const key = req.headers['idempotency-key'];
      if (key === 'key-m2') json(res, 503, {}, { 'retry-after': '30' });
      else if (key === 'key-m3') json(res, 422, { error: { code: 'invalid', message: 'title too long' } });
      else if (key === 'key-m4') {
        json(res, 409, { type: IN_PROGRESS_PROBLEM_TYPE }, { 'content-type': 'application/problem+json' });
      } else json(res, 201, { id: `e-${String(key).slice(4)}`, version: 1 });
    });
    const response = await rest(server.url).push(
      pushRequest([mutation('m1'), mutation('m2'), mutation('m3'), mutation('m4')]),
    );
    const [m1, m2, m3, m4] = resultsOf(response);
    expect(m1).toEqual({ id: 'm1', status: 'applied', version: 1 });
    expect(itemFailure(m2)).toMatchObject({ class: 'retryable', code: 'http-503', retryAfterMs: 30_000 });
    expect(itemFailure(m3)).toMatchObject({
      class: 'rejected',
      code: 'http-422',
      message: 'the server rejected the request (422): title too long',
    });
    expect(itemFailure(m4)).toMatchObject({ class: 'retryable', code: 'in-progress' });
  });

  it('a 2xx text/html (captive portal) is an item bad-response, and a redirect is never followed', async () => {
    const target = await startServer((_req, res) => json(res, 201, {}));
    const server = await startServer((req, res) => {
      if (req.method === 'POST') {
        res.writeHead(200, { 'content-type': 'text/html' });
        res.end('<html>login</html>');
      } else {
        res.writeHead(302, { location: `${target.url}/activities/x` });
        res.end();
      }
    });
    const response = await rest(server.url).push(
      pushRequest([mutation('c'), mutation('u', { op: 'update', baseVersion: 1 })]),
    );
    const [c, u] = resultsOf(response);
    expect(itemFailure(c)).toMatchObject({ class: 'retryable', code: 'bad-response', status: 200 });
    expect(itemFailure(u)).toMatchObject({ class: 'retryable', code: 'bad-response', status: 302 });
    expect(target.requests).toHaveLength(0);
  });

  it('20 concurrent requests of one push put one abort listener on its signal (no MaxListeners warning), and an abort still reaches every one', async () => {
    const controller = new AbortController();
    const observed: number[] = [];
    let inFlight = 0;
    let release: () => void = () => undefined;
    const allStarted = new Promise<void>((resolve) => {
      release = resolve;
    });
    // Every request hangs until the push is aborted (a fetch that honours its signal).
    const hanging: FetchLike = (_url, init) => {
      inFlight++;
      if (inFlight === 20) release();
      return new Promise((_resolve, reject) => {
        init.signal?.addEventListener('abort', () => reject(init.signal?.reason), { once: true });
      });
    };
    const h = rest('https://api.example.com', { fetch: hanging, restConcurrency: 20 });
    const mutations = Array.from({ length: 20 }, (_, i) => mutation(`m${i}`));
    const pushed = h.push(pushRequest(mutations, controller.signal));
    await allStarted;
    observed.push(getEventListeners(controller.signal, 'abort').length);
    controller.abort();
    const results = resultsOf(await pushed);
    expect(observed).toEqual([1]);
    expect(results.map((r) => itemFailure(r)?.class)).toEqual(new Array(20).fill('aborted'));
  });

  it('once a request finds the network offline, no further request starts', async () => {
    const server = await startServer((_req, res) => json(res, 201, { version: 1 }));
    const port = await closedPort();
    let calls = 0;
    // The first request reaches the server; then the network "goes away".
    const flaky: FetchLike = (url, init) => {
      calls++;
      return fetch(calls === 1 ? url : url.replace(`:${server.port}/`, `:${port}/`), init);
    };
    const h = rest(server.url, { fetch: flaky, restConcurrency: 1, connectRetries: 0 });
    const response = await h.push(
      pushRequest([mutation('m1'), mutation('m2'), mutation('m3'), mutation('m4')]),
    );
    const [m1, m2, m3, m4] = resultsOf(response);
    expect(m1).toEqual({ id: 'm1', status: 'applied', version: 1 });
    const offline = itemFailure(m2);
    expect(offline).toMatchObject({ class: 'offline', code: 'econnrefused' });
    expect(itemFailure(m3)).toBe(offline);
    expect(itemFailure(m4)).toBe(offline);
    expect(calls).toBe(2);
    expect(server.requests).toHaveLength(1);
  });

  it('sends custom ops on their route and fails unknown ones as unsupported-op', async () => {
    const server = await startServer((_req, res) => json(res, 200, { version: 2 }));
    const response = await rest(server.url).push(
      pushRequest([
        mutation('a', { op: 'archive', entityId: 'a1', data: null, baseVersion: 1 }),
        mutation('b', { op: 'explode', data: null }),
        mutation('c', { op: 'toString', data: null }),
      ]),
    );
    const [archived, unknown, inherited] = resultsOf(response);
    expect(archived).toEqual({ id: 'a', status: 'applied', version: 2 });
    expect(itemFailure(unknown)).toMatchObject({ class: 'rejected', code: 'unsupported-op' });
    expect(itemFailure(inherited)).toMatchObject({ class: 'rejected', code: 'unsupported-op' });
    expect(server.requests.map((r) => `${r.method} ${r.url} ${r.headers['if-match']}`)).toEqual([
      'POST /activities/a1/archive "1"',
    ]);
  });

  it('an entity type without a route fails the whole batch as rejected no-route', async () => {
    const response = await rest('https://api.example.com').push(
      pushRequest([mutation('m1')], undefined, 'comment'),
    );
    expect(failureOf(response)).toMatchObject({ class: 'rejected', code: 'no-route' });
  });

  it('honours route overrides: PUT creates, body and idFrom mappers', async () => {
    const server = await startServer((_req, res) => json(res, 201, { uuid: 'srv-9', rev: 3 }));
    const h = harness({
      baseUrl: server.url,
      mode: 'rest',
      rest: {
        activity: {
          path: '/activities',
          create: { method: 'PUT' },
          body: (m) => ({ payload: m.data, at: m.clientTime }),
          idFrom: (body) =>
            typeof body === 'object' &&
            body !== null &&
            !Array.isArray(body) &&
            typeof body['uuid'] === 'string'
              ? body['uuid']
              : undefined,
          versionFrom: (body) =>
            typeof body === 'object' &&
            body !== null &&
            !Array.isArray(body) &&
            typeof body['rev'] === 'number'
              ? body['rev']
              : undefined,
        },
      },
    });
    const response = await h.push(pushRequest([mutation('m1', { entityId: 'a1' })]));
    expect(resultsOf(response)).toEqual([{ id: 'm1', status: 'applied', version: 3, entityId: 'srv-9' }]);
    expect(server.requests[0]?.method).toBe('PUT');
    expect(server.requests[0]?.url).toBe('/activities/a1');
    expect(JSON.parse(server.requests[0]!.body)).toEqual({
      payload: { title: 'title m1' },
      at: '2026-11-25T10:00:00.000Z',
    });
  });

  it('runs at most restConcurrency requests at once', async () => {
    let inFlight = 0;
    let peak = 0;
    const server = await startServer((_req, res) => {
      inFlight++;
      peak = Math.max(peak, inFlight);
      setImmediate(() => {
        inFlight--;
        json(res, 201, { version: 1 });
      });
    });
    const h = rest(server.url, { restConcurrency: 2 });
    const mutations = Array.from({ length: 7 }, (_, i) => mutation(`m${i}`));
    const results = resultsOf(await h.push(pushRequest(mutations)));
    expect(results.map((r) => r.status)).toEqual(Array(7).fill('applied'));
    expect(peak).toBeLessThanOrEqual(2);
    expect(server.requests).toHaveLength(7);
  });
});

describe('fetch adapter: pull', () => {
  const ORG_A: Scope = { userId: 'u1', orgId: 'A' };
  const ORG_B: Scope = { userId: 'u2', orgId: 'B' };

  function pullRequest(overrides: Partial<PullRequest> = {}): PullRequest {
    return {
      entity: 'activity',
      scope: SCOPE,
      clientId: 'device-1',
      cursor: null,
      limit: 500,
      signal: new AbortController().signal,
      ...overrides,
    };
  }

  function pageOf(response: PullResponse): PullPage {
    if (response.type !== 'page') throw new Error(`expected a page, got ${JSON.stringify(response)}`);
    return response;
  }

  function pullFailureOf(response: PullResponse): TransportFailure {
    if (response.type !== 'failure') throw new Error(`expected a failure, got ${JSON.stringify(response)}`);
    return response.failure;
  }

  const page = (body: unknown) => (_req: IncomingMessage, res: ServerResponse) => json(res, 200, body);
  const EMPTY = { changes: [], cursor: 'c0', hasMore: false };

  describe('against the reference server', () => {
    let reference: ReferenceServer | undefined;
    afterEach(async () => {
      await reference?.close();
      reference = undefined;
    });

    /** The reference server, and a harness with a token per org (an unknown one for other orgs). */
    async function start(
      extra: Partial<FetchNetworkOptions> = {},
    ): Promise<{ server: ReferenceServer; h: Harness; urls: string[]; scopes: Scope[] }> {
      const server = await startReferenceServer({ onError: () => undefined });
      reference = server;
      const tokens = new Map([
        ['A', server.issueToken(ORG_A).token],
        ['B', server.issueToken(ORG_B).token],
      ]);
      const urls: string[] = [];
      const scopes: Scope[] = [];
      const h = harness({
        baseUrl: server.url,
        credentials: (scope) => {
          scopes.push(scope);
          return { token: tokens.get(scope.orgId ?? '') ?? 'unknown-token-123' };
        },
        fetch: (url, init) => {
          urls.push(url);
          return fetch(url, init);
        },
        ...extra,
      });
      return { server, h, urls, scopes };
    }

    it('pages with cursor and hasMore, reports deletes, and keeps each org to its own partition', async () => {
      const { server, h, urls, scopes } = await start();
      server.put(ORG_A, 'activity', 'a1', { title: 'one' });
      server.put(ORG_A, 'activity', 'a2', { title: 'two' });
      server.put(ORG_A, 'comment', 'c1', { text: 'another entity type' });
      server.put(ORG_B, 'activity', 'b1', { title: 'org B only' });
      server.put(ORG_A, 'activity', 'a1', { title: 'one, edited' });
      server.remove(ORG_A, 'activity', 'a2');

      const first = pageOf(await h.pull(pullRequest({ scope: ORG_A, limit: 2 })));
      expect(first.changes).toEqual([
        { entityId: 'a1', op: 'upsert', version: 1, data: { title: 'one' } },
        { entityId: 'a2', op: 'upsert', version: 1, data: { title: 'two' } },
      ]);
      expect(first.hasMore).toBe(true);

      const second = pageOf(await h.pull(pullRequest({ scope: ORG_A, limit: 2, cursor: first.cursor })));
      expect(second.changes).toEqual([
        { entityId: 'a1', op: 'upsert', version: 2, data: { title: 'one, edited' } },
        { entityId: 'a2', op: 'delete', version: 2 },
      ]);
      expect(second.hasMore).toBe(false);
      expect(second.cursor).not.toBe(first.cursor);

      // Nothing new: an empty page whose cursor stays where it was.
      const third = pageOf(await h.pull(pullRequest({ scope: ORG_A, limit: 2, cursor: second.cursor })));
      expect(third).toEqual({ type: 'page', changes: [], cursor: second.cursor, hasMore: false });

      // A later write shows up after the stored cursor.
      server.put(ORG_A, 'activity', 'a3', { title: 'three' });
      const fourth = pageOf(await h.pull(pullRequest({ scope: ORG_A, cursor: second.cursor })));
      expect(fourth.changes).toEqual([
        { entityId: 'a3', op: 'upsert', version: 1, data: { title: 'three' } },
      ]);

      // Org B sees its own change only, with org B's token.
      const other = pageOf(await h.pull(pullRequest({ scope: ORG_B })));
      expect(other.changes).toEqual([
        { entityId: 'b1', op: 'upsert', version: 1, data: { title: 'org B only' } },
      ]);
      expect(other.hasMore).toBe(false);

      expect(urls[0]).toBe(`${server.url}/sync/pull?entity=activity&limit=2`);
      expect(urls[1]).toBe(
        `${server.url}/sync/pull?entity=activity&limit=2&cursor=${encodeURIComponent(first.cursor)}`,
      );
      expect(scopes).toEqual([ORG_A, ORG_A, ORG_A, ORG_A, ORG_B]);
      expect(server.stats().pullRequests).toBe(5);
    });

    it('maps its refusals: malformed cursor, unknown and expired tokens, missing endpoint', async () => {
      const { server, h } = await start();
      const badCursor = pullFailureOf(await h.pull(pullRequest({ scope: ORG_A, cursor: 'not a cursor!' })));
      expect(badCursor).toEqual({
        class: 'rejected',
        code: 'http-400',
        message: 'the server rejected the request (400): cursor: not a cursor this server issued',
        status: 400,
      });
      expect(pullFailureOf(await h.pull(pullRequest({ scope: { userId: 'u9', orgId: 'Z' } })))).toMatchObject(
        { class: 'auth', code: 'http-401', status: 401 },
      );

      const missing = harness({
        baseUrl: `${server.url}/v9`,
        credentials: () => ({ token: server.issueToken(ORG_A).token }),
      });
      expect(pullFailureOf(await missing.pull(pullRequest({ scope: ORG_A })))).toMatchObject({
        class: 'retryable',
        code: 'endpoint-not-found',
        status: 404,
      });

      server.expireTokens();
      expect(pullFailureOf(await h.pull(pullRequest({ scope: ORG_A })))).toMatchObject({
        class: 'auth',
        code: 'http-401',
      });
    });

    it('maps its injected faults: 503 and 429 with Retry-After, captive portal, redirect, malformed bodies', async () => {
      const { server, h } = await start();
      server.put(ORG_A, 'activity', 'a1', { title: 'one' });
      const pull = () => h.pull(pullRequest({ scope: ORG_A }));

      server.faults.failNext(1, { status: 503, retryAfter: '7' });
      expect(pullFailureOf(await pull())).toMatchObject({
        class: 'retryable',
        code: 'http-503',
        status: 503,
        retryAfterMs: 7000,
      });
      server.faults.failNext(1, { status: 429, retryAfter: '3' });
      expect(pullFailureOf(await pull())).toMatchObject({
        class: 'retryable',
        code: 'http-429',
        retryAfterMs: 3000,
      });
      server.faults.failNext(1, {
        status: 200,
        body: '<html>log in to the Wi-Fi</html>',
        contentType: 'text/html',
      });
      expect(pullFailureOf(await pull())).toMatchObject({
        class: 'retryable',
        code: 'bad-response',
        status: 200,
      });
      server.faults.redirectNext(1, `${server.url}/elsewhere`, 302);
      expect(pullFailureOf(await pull())).toMatchObject({
        class: 'retryable',
        code: 'bad-response',
        status: 302,
      });
      server.faults.malformNext(1, 'wrong-schema');
      expect(pullFailureOf(await pull())).toMatchObject({
        class: 'retryable',
        code: 'bad-response',
        status: 200,
      });
      server.faults.malformNext(1, 'truncated-json');
      expect(pullFailureOf(await pull())).toMatchObject({
        class: 'retryable',
        code: 'bad-response',
        status: 200,
      });
      server.faults.malformNext(1, 'reset-mid-body');
      expect(pullFailureOf(await pull()).class).toBe('ambiguous');

      // After all that, the page is still there.
      expect(pageOf(await pull()).changes).toEqual([
        { entityId: 'a1', op: 'upsert', version: 1, data: { title: 'one' } },
      ]);
    });

    it('resends a dropped GET at once; a hang is a timeout; a server gone away is offline', async () => {
      const { server, h } = await start({ timeoutMs: 300 });
      server.put(ORG_A, 'activity', 'a1', { title: 'one' });
      const pull = () => h.pull(pullRequest({ scope: ORG_A }));

      server.faults.dropNext(1);
      expect(pageOf(await pull()).changes).toHaveLength(1);
      expect(server.stats().pullRequests).toBe(2);

      server.faults.hangNext(1);
      expect(pullFailureOf(await pull())).toMatchObject({ class: 'ambiguous', code: 'timeout' });

      await server.goOffline();
      expect(pullFailureOf(await pull())).toMatchObject({ class: 'offline', code: 'econnrefused' });
      await server.goOnline();
      expect(pageOf(await pull()).changes).toHaveLength(1);
    });
  });

  it('sends GET /sync/pull with entity, limit and an encoded cursor, Accept, and fresh credentials per page', async () => {
    const server = await startServer(page({ changes: [], cursor: 'next', hasMore: false }));
    const h = harness({ baseUrl: `${server.url}/api/`, headers: { 'X-App-Version': '1.2.3' } });
    await h.pull(pullRequest({ entity: 'time entry/v2', limit: 50 }));
    await h.pull(pullRequest({ entity: 'time entry/v2', limit: 50, cursor: 'a+b/c=&d é' }));

    const [first, second] = server.requests;
    expect(first?.method).toBe('GET');
    expect(first?.url).toBe('/api/sync/pull?entity=time%20entry%2Fv2&limit=50');
    expect(second?.url).toBe(
      '/api/sync/pull?entity=time%20entry%2Fv2&limit=50&cursor=a%2Bb%2Fc%3D%26d%20%C3%A9',
    );
    expect(new URL(second!.url, server.url).searchParams.get('cursor')).toBe('a+b/c=&d é');
    expect(first?.headers['accept']).toBe('application/json');
    expect(first?.headers['authorization']).toBe(`Bearer ${TOKEN}`);
    expect(first?.headers['x-app-version']).toBe('1.2.3');
    expect(first?.headers['content-type']).toBeUndefined();
    expect(first?.body).toBe('');
    expect(h.scopes).toEqual([SCOPE, SCOPE]);
  });

  it('returns a valid page: any JSON data, string versions, unknown fields dropped', async () => {
    const server = await startServer(
      page({
        changes: [
          { entityId: 'a1', op: 'upsert', version: 3, data: { title: 'x', tags: ['a'] }, extra: 1 },
          { entityId: 'a2', op: 'upsert', version: 'v7-abc', data: [1, 2] },
          { entityId: 'a3', op: 'delete', version: 5, data: { ignored: true } },
        ],
        cursor: 'MTQ',
        hasMore: true,
        serverTime: '2026-11-25T10:00:00Z',
      }),
    );
    const response = await harness({ baseUrl: server.url }).pull(pullRequest({ cursor: 'MTI', limit: 3 }));
    expect(response).toEqual({
      type: 'page',
      changes: [
        { entityId: 'a1', op: 'upsert', version: 3, data: { title: 'x', tags: ['a'] } },
        { entityId: 'a2', op: 'upsert', version: 'v7-abc', data: [1, 2] },
        { entityId: 'a3', op: 'delete', version: 5 },
      ],
      cursor: 'MTQ',
      hasMore: true,
    });
  });

  it.each([
    ['no changes array', { cursor: 'c', hasMore: false }],
    ['no cursor', { changes: [], hasMore: false }],
    ['no hasMore', { changes: [], cursor: 'c' }],
    ['a top-level array', []],
    [
      'an unknown op',
      { changes: [{ entityId: 'a1', op: 'patch', version: 1, data: {} }], cursor: 'c', hasMore: false },
    ],
    [
      'an upsert without data',
      { changes: [{ entityId: 'a1', op: 'upsert', version: 1 }], cursor: 'c', hasMore: false },
    ],
    [
      'an empty entityId',
      { changes: [{ entityId: '', op: 'delete', version: 1 }], cursor: 'c', hasMore: false },
    ],
    [
      'a negative version',
      { changes: [{ entityId: 'a1', op: 'delete', version: -1 }], cursor: 'c', hasMore: false },
    ],
    ['a missing version', { changes: [{ entityId: 'a1', op: 'delete' }], cursor: 'c', hasMore: false }],
    ['hasMore as a string', { changes: [], cursor: 'c', hasMore: 'false' }],
  ])('a 200 with %s is a retryable bad-response', async (_name, body) => {
    const server = await startServer(page(body));
    const failure = pullFailureOf(await harness({ baseUrl: server.url }).pull(pullRequest()));
    expect(failure).toMatchObject({ class: 'retryable', code: 'bad-response', status: 200 });
    expect(failure.message).toMatch(/does not match protocol v1/);
  });

  it('more changes than the limit is a bad-response', async () => {
    const change = (id: string) => ({ entityId: id, op: 'delete', version: 1 });
    const server = await startServer(
      page({ changes: [change('a'), change('b'), change('c')], cursor: 'c', hasMore: true }),
    );
    const h = harness({ baseUrl: server.url });
    const failure = pullFailureOf(await h.pull(pullRequest({ limit: 2 })));
    expect(failure).toMatchObject({ class: 'retryable', code: 'bad-response', status: 200 });
    expect(failure.message).toMatch(/more than the limit of 2/);
    expect(pageOf(await h.pull(pullRequest({ limit: 3 }))).changes).toHaveLength(3);
  });

  it('hasMore with the cursor sent back unchanged is a bad-response (it would loop forever)', async () => {
    const server = await startServer(page({ changes: [], cursor: 'same', hasMore: true }));
    const h = harness({ baseUrl: server.url });
    expect(pullFailureOf(await h.pull(pullRequest({ cursor: 'same' })))).toMatchObject({
      class: 'retryable',
      code: 'bad-response',
    });
    // The same answer to a different cursor moves on: fine.
    expect(pageOf(await h.pull(pullRequest({ cursor: 'before' }))).cursor).toBe('same');
  });

  it("a captive portal's 200 text/html and a 200 without JSON are bad-responses", async () => {
    const server = await startServer((_req, res, _body, index) => {
      if (index === 0) {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
        res.end(`<html>${JSON.stringify(EMPTY)} Please log in</html>`);
      } else if (index === 1) {
        res.writeHead(204);
        res.end();
      } else {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"changes":[{"entityId":"a1","op":"ups');
      }
    });
    const h = harness({ baseUrl: server.url });
    const portal = pullFailureOf(await h.pull(pullRequest()));
    expect(portal).toMatchObject({ class: 'retryable', code: 'bad-response', status: 200 });
    expect(portal.message).toMatch(/text\/html/);
    expect(pullFailureOf(await h.pull(pullRequest()))).toMatchObject({ code: 'bad-response', status: 204 });
    expect(pullFailureOf(await h.pull(pullRequest()))).toMatchObject({
      class: 'retryable',
      code: 'bad-response',
      message: 'the response is not valid JSON (truncated?)',
    });
  });

  it('a body cut off mid-response is ambiguous', async () => {
    const server = await startServer((_req, res) => {
      const full = Buffer.from(JSON.stringify(EMPTY));
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(full.length) });
      res.write(full.subarray(0, 10), () => res.destroy());
    });
    expect(pullFailureOf(await harness({ baseUrl: server.url }).pull(pullRequest())).class).toBe('ambiguous');
  });

  it.each([301, 302, 303, 307, 308])(
    'a %i is a bad-response and the Location receives nothing',
    async (status) => {
      const target = await startServer(page(EMPTY));
      const server = await startServer((_req, res) => {
        res.writeHead(status, { location: `${target.url}/sync/pull?entity=activity` });
        res.end();
      });
      const failure = pullFailureOf(await harness({ baseUrl: server.url }).pull(pullRequest()));
      expect(failure).toMatchObject({ class: 'retryable', code: 'bad-response', status });
      expect(target.connections).toBe(0);
    },
  );

  it.each([404, 410])('a %i from /sync/pull is a retryable endpoint-not-found', async (status) => {
    const server = await startServer((_req, res) =>
      json(res, status, { error: { code: 'not-found' } }, { 'retry-after': '60' }),
    );
    expect(pullFailureOf(await harness({ baseUrl: server.url }).pull(pullRequest()))).toMatchObject({
      class: 'retryable',
      code: 'endpoint-not-found',
      status,
      retryAfterMs: 60_000,
    });
  });

  it('401 is auth', async () => {
    const server = await startServer((_req, res) => json(res, 401, { error: { code: 'expired' } }));
    expect(pullFailureOf(await harness({ baseUrl: server.url }).pull(pullRequest()))).toMatchObject({
      class: 'auth',
      code: 'http-401',
      status: 401,
    });
  });

  it.each([
    [
      400,
      { error: { code: 'invalid-request', message: 'cursor: not a cursor this server issued' } },
      ': cursor: not a cursor this server issued',
    ],
    [403, { title: 'Forbidden', detail: 'not a member of this org' }, ': not a member of this org'],
    [409, { version: 3, data: {} }, ''],
    [412, {}, ''],
    [422, { message: 'unknown entity type' }, ': unknown entity type'],
  ])("a %i is rejected with the server's reason (never a conflict)", async (status, body, reason) => {
    const server = await startServer((_req, res) => json(res, status, body));
    expect(pullFailureOf(await harness({ baseUrl: server.url }).pull(pullRequest()))).toEqual({
      class: 'rejected',
      code: `http-${status}`,
      message: `the server rejected the request (${status})${reason}`,
      status,
    });
  });

  it.each([408, 425, 429, 500, 502, 503, 504])('a %i is retryable with Retry-After', async (status) => {
    const server = await startServer((_req, res) => json(res, status, {}, { 'retry-after': '30' }));
    expect(pullFailureOf(await harness({ baseUrl: server.url }).pull(pullRequest()))).toMatchObject({
      class: 'retryable',
      code: `http-${status}`,
      status,
      retryAfterMs: 30_000,
    });
  });

  it('a credential the server echoes back never appears in the failure message', async () => {
    const server = await startServer((req, res) =>
      json(res, 400, {
        error: { code: 'bad', message: `header ${String(req.headers['authorization'])} refused` },
      }),
    );
    const network = createFetchNetwork({ baseUrl: server.url, credentials: async () => ({ token: TOKEN }) });
    const failure = pullFailureOf(await network.pull!(pullRequest()));
    expect(failure.message).toBe('the server rejected the request (400): header [redacted] refused');
  });

  it('a credentials provider that throws is auth credentials-unavailable, and nothing is sent', async () => {
    const server = await startServer(page(EMPTY));
    const h = harness({
      baseUrl: server.url,
      credentials: () => {
        throw new Error(`no token (had ${TOKEN})`);
      },
    });
    expect(pullFailureOf(await h.pull(pullRequest()))).toMatchObject({
      class: 'auth',
      code: 'credentials-unavailable',
    });
    expect(server.requests).toHaveLength(0);
  });

  it('a refused connection is offline after the immediate resends', async () => {
    const port = await closedPort();
    let calls = 0;
    const h = harness({
      baseUrl: `http://127.0.0.1:${port}`,
      fetch: (url, init) => {
        calls++;
        return fetch(url, init);
      },
    });
    expect(pullFailureOf(await h.pull(pullRequest()))).toMatchObject({
      class: 'offline',
      code: 'econnrefused',
    });
    expect(calls).toBe(3);
  });

  it('a connection dropped before any response is resent at once, then the page is returned', async () => {
    const server = await startServer((req, res, _body, index) => {
      if (index === 0) req.socket.destroy();
      else json(res, 200, EMPTY);
    });
    const h = harness({ baseUrl: server.url });
    expect(pageOf(await h.pull(pullRequest()))).toEqual({
      type: 'page',
      changes: [],
      cursor: 'c0',
      hasMore: false,
    });
    expect(server.requests).toHaveLength(2);
    expect(h.scopes).toHaveLength(1);
  });

  it('no answer within timeoutMs is ambiguous timeout', async () => {
    const server = await startServer(() => {
      // Never answers.
    });
    const h = harness({ baseUrl: server.url, timeoutMs: 200 });
    expect(pullFailureOf(await h.pull(pullRequest()))).toMatchObject({ class: 'ambiguous', code: 'timeout' });
    expect(server.requests).toHaveLength(1);
  });

  it('aborting the signal answers aborted, also before anything was sent', async () => {
    let arrived: () => void = () => undefined;
    const requestArrived = new Promise<void>((resolve) => {
      arrived = resolve;
    });
    const server = await startServer(() => arrived());
    const h = harness({ baseUrl: server.url });
    const controller = new AbortController();
    const pending = h.pull(pullRequest({ signal: controller.signal }));
    await requestArrived;
    controller.abort();
    expect(pullFailureOf(await pending)).toEqual({
      class: 'aborted',
      code: 'aborted',
      message: 'the request was aborted',
    });

    expect(pullFailureOf(await h.pull(pullRequest({ signal: AbortSignal.abort() })))).toMatchObject({
      class: 'aborted',
    });
    expect(server.requests).toHaveLength(1);
  });

  it('an invalid limit is rejected without sending anything', async () => {
    const server = await startServer(page(EMPTY));
    const h = harness({ baseUrl: server.url });
    for (const limit of [0, -1, 1.5, Number.NaN]) {
      expect(pullFailureOf(await h.pull(pullRequest({ limit })))).toMatchObject({
        class: 'rejected',
        code: 'invalid-limit',
      });
    }
    expect(server.requests).toHaveLength(0);
  });

  describe('REST-resource mode', () => {
    const restHarness = (baseUrl: string) =>
      harness({
        baseUrl,
        mode: 'rest',
        rest: {
          activity: { path: '/activities', pull: {} },
          comment: { path: '/comments', pull: { path: '/feeds/comments' } },
          tag: { path: '/tags' },
        },
      });

    it('GETs {path}/changes or pull.path with limit, cursor and X-Client-Id, answered like protocol v1', async () => {
      const server = await startServer(
        page({
          changes: [{ entityId: 'a1', op: 'upsert', version: 2, data: { title: 'x' } }],
          cursor: 'n1',
          hasMore: false,
        }),
      );
      const h = restHarness(`${server.url}/v2`);
      const activity = pageOf(await h.pull(pullRequest({ limit: 10 })));
      expect(activity).toEqual({
        type: 'page',
        changes: [{ entityId: 'a1', op: 'upsert', version: 2, data: { title: 'x' } }],
        cursor: 'n1',
        hasMore: false,
      });
      await h.pull(pullRequest({ entity: 'comment', limit: 10, cursor: 'n/1' }));

      const [first, second] = server.requests;
      expect(first?.method).toBe('GET');
      expect(first?.url).toBe('/v2/activities/changes?limit=10');
      expect(first?.headers['x-client-id']).toBe('device-1');
      expect(first?.headers['accept']).toBe('application/json');
      expect(first?.headers['authorization']).toBe(`Bearer ${TOKEN}`);
      expect(second?.url).toBe('/v2/feeds/comments?limit=10&cursor=n%2F1');
    });

    it('an entity type without pull, or without a route, is rejected no-pull-route and sends nothing', async () => {
      const server = await startServer(page(EMPTY));
      const h = restHarness(server.url);
      expect(pullFailureOf(await h.pull(pullRequest({ entity: 'tag' })))).toMatchObject({
        class: 'rejected',
        code: 'no-pull-route',
      });
      expect(pullFailureOf(await h.pull(pullRequest({ entity: 'unknown' })))).toMatchObject({
        class: 'rejected',
        code: 'no-pull-route',
      });
      expect(server.requests).toHaveLength(0);
    });

    it('maps statuses as protocol mode: 404 endpoint-not-found, bad body bad-response', async () => {
      const server = await startServer((_req, res, _body, index) => {
        if (index === 0) json(res, 404, {});
        else json(res, 200, { items: [] });
      });
      const h = restHarness(server.url);
      expect(pullFailureOf(await h.pull(pullRequest()))).toMatchObject({
        class: 'retryable',
        code: 'endpoint-not-found',
      });
      expect(pullFailureOf(await h.pull(pullRequest()))).toMatchObject({
        class: 'retryable',
        code: 'bad-response',
      });
    });

    it('validates the pull option', () => {
      const make = (pull: unknown) => () =>
        createFetchNetwork({
          baseUrl: 'https://api.example.com',
          credentials: async () => ({ token: TOKEN }),
          mode: 'rest',
          rest: { a: { path: '/a', pull: pull as { path?: string } } },
        });
      expect(make('yes')).toThrow(/rest\["a"\]\.pull: expected an object/);
      expect(make({ path: 'changes' })).toThrow(
        /rest\["a"\]\.pull\.path: expected a path starting with '\/'/,
      );
      expect(make({ path: '/a/changes?since=0' })).toThrow(/without query or fragment/);
      expect(make({ path: 7 })).toThrow(ConfigError);
      expect(make({})).not.toThrow();
      expect(make({ path: '/a/feed' })).not.toThrow();
    });
  });
});

describe("fetchFromUndiciRequest: undici's request as the adapter's fetch", () => {
  const dispatchers: Agent[] = [];
  afterEach(async () => {
    await Promise.all(dispatchers.splice(0).map((d) => d.close()));
  });
  const viaRequest = (): FetchLike => {
    const dispatcher = new Agent({ connections: 2 });
    dispatchers.push(dispatcher);
    return fetchFromUndiciRequest(undiciRequest, { dispatcher });
  };

  it('rejects anything but a function with a ConfigError', () => {
    expect(() => fetchFromUndiciRequest(undefined as never)).toThrow(ConfigError);
  });

  it('pushes a batch: method, headers, body and the results reach the adapter as with fetch', async () => {
    const server = await startServer((_req, res, body) => applyAll(res, body));
    const h = harness({ baseUrl: server.url, fetch: viaRequest() });
    const results = resultsOf(await h.push(pushRequest([mutation('m1'), mutation('m2')])));
    expect(results.map((r) => [r.id, r.status])).toEqual([
      ['m1', 'applied'],
      ['m2', 'applied'],
    ]);
    expect(server.requests).toHaveLength(1);
    expect(server.requests[0]).toMatchObject({ method: 'POST', url: '/sync/push' });
    expect(server.requests[0]!.headers.authorization).toBe(`Bearer ${TOKEN}`);
    expect(JSON.parse(server.requests[0]!.body).mutations).toHaveLength(2);
  });

  it('reads headers case-insensitively: Retry-After of a 503 is honoured', async () => {
    const server = await startServer((_req, res) => json(res, 503, {}, { 'Retry-After': '120' }));
    const h = harness({ baseUrl: server.url, fetch: viaRequest() });
    expect(failureOf(await h.push(pushRequest([mutation('m1')])))).toMatchObject({
      class: 'retryable',
      code: 'http-503',
      retryAfterMs: 120_000,
    });
  });

  it('never follows a redirect: the Location receives nothing (FAULTS 14)', async () => {
    const target = await startServer((_req, res, body) => applyAll(res, body));
    const server = await startServer((_req, res) => {
      res.writeHead(307, { location: `${target.url}/sync/push` });
      res.end();
    });
    const h = harness({ baseUrl: server.url, fetch: viaRequest() });
    expect(failureOf(await h.push(pushRequest([mutation('m1')])))).toMatchObject({
      class: 'retryable',
      code: 'bad-response',
      status: 307,
    });
    expect(target.requests).toHaveLength(0);
  });

  it('connection refused is offline; a reset mid-request is ambiguous; a hang is a timeout', async () => {
    const port = await closedPort();
    const refused = harness({ baseUrl: `http://127.0.0.1:${port}`, fetch: viaRequest(), connectRetries: 0 });
    expect(failureOf(await refused.push(pushRequest([mutation('m1')])))).toMatchObject({
      class: 'offline',
      code: 'econnrefused',
    });

    const resetting = await startServer((req) => req.socket.destroy());
    const reset = harness({ baseUrl: resetting.url, fetch: viaRequest(), connectRetries: 0 });
    expect(failureOf(await reset.push(pushRequest([mutation('m1')])))).toMatchObject({ class: 'ambiguous' });

    const hanging = await startServer(() => {
      // Never answers.
    });
    const slow = harness({ baseUrl: hanging.url, fetch: viaRequest(), timeoutMs: 200 });
    expect(failureOf(await slow.push(pushRequest([mutation('m1')])))).toMatchObject({
      class: 'ambiguous',
      code: 'timeout',
    });
  });

  it('drains the reference server through an engine, each mutation applied once', async () => {
    const server = await startReferenceServer({ port: 0 });
    try {
      const { createSyncEngine } = await import('sync-core');
      const { createSqlJsStorage } = await import('sync-core/sql-js');
      const SQL = await (await import('sql.js')).default();
      const { token } = server.issueToken(SCOPE);
      const engine = createSyncEngine({
        storage: createSqlJsStorage(new SQL.Database()),
        entities: { activity: {} },
        network: createFetchNetwork({
          baseUrl: server.url,
          credentials: () => ({ token }),
          fetch: viaRequest(),
        }),
      });
      await engine.open();
      await engine.start(SCOPE);
      await engine.enqueueMany(
        Array.from({ length: 250 }, (_, i) => ({
          entity: 'activity',
          op: 'create' as const,
          entityId: `a${i}`,
          data: { i },
        })),
      );
      const report = await engine.runOnce();
      expect(report).toMatchObject({ outcome: 'ok', counts: { pushed: 250 } });
      expect(server.stats().applied).toBe(250);
      await engine.close();
    } finally {
      await server.close();
    }
  });
});
