/**
 * Options of `createFetchNetwork`, documented where they are declared, and their validation
 * (invalid values fail fast with a {@link ConfigError}: "expected X, got Y").
 *
 * @packageDocumentation
 */
import { ConfigError, type JsonValue, type OutgoingMutation, type Scope, type Version } from 'sync-core';
import type { FetchLike, FetchResponseLike } from './fetch-like.js';

/**
 * What a credentials provider returns for one request: a bearer token (sent as
 * `Authorization: Bearer <token>`), or the headers to send as they are (an API key, a cookie, a
 * signature…). Either way they are merged last, over every other header.
 *
 * @example
 * ```ts
 * import type { FetchCredentials } from 'sync-core/fetch';
 * const bearer: FetchCredentials = { token: 'eyJhbGciOi…' };
 * const apiKey: FetchCredentials = { headers: { 'x-api-key': 'k-123' } };
 * ```
 */
export type FetchCredentials =
  | { readonly token: string }
  | { readonly headers: Readonly<Record<string, string>> };

/**
 * A route of a custom operation in REST-resource mode, e.g. `archive` →
 * `POST /activities/a1/archive`.
 *
 * @example
 * ```ts
 * import type { RestCustomRoute } from 'sync-core/fetch';
 * const archive: RestCustomRoute = {
 *   method: 'POST',
 *   path: (m) => `/activities/${encodeURIComponent(m.entityId)}/archive`,
 * };
 * ```
 */
export interface RestCustomRoute {
  readonly method: 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** The path below `baseUrl` (starting with `/`); encode the parts you interpolate. */
  readonly path: (mutation: OutgoingMutation) => string;
}

/**
 * How the mutations of one entity type map to a REST API (REST-resource mode, DESIGN.md
 * section 8). With only `path` set:
 *
 * | op | request |
 * |---|---|
 * | `create` | `POST {path}` with `Idempotency-Key` and `X-Entity-Id`; body `m.data` |
 * | `update` | `PATCH {path}/{entityId}` with `Idempotency-Key` and `If-Match: "<baseVersion>"`; body `m.data` |
 * | `delete` | `DELETE {path}/{entityId}` with `Idempotency-Key` and `If-Match: "<baseVersion>"`; no body |
 * | custom | `custom[op]`, or an item `failed` `rejected` `unsupported-op` when absent |
 * | pull (only with `pull` set) | `GET {pull.path}?limit=N&cursor=C`, answered like protocol v1's pull |
 *
 * `If-Match` is sent only when the mutation has a base version; `{entityId}` is
 * `encodeURIComponent(entityId)`.
 *
 * @example
 * ```ts
 * import type { RestRouteOptions } from 'sync-core/fetch';
 * const activities: RestRouteOptions = {
 *   path: '/activities',
 *   update: { method: 'PUT' },
 *   body: (m) => ({ ...(m.data as object), clientTime: m.clientTime }),
 *   idFrom: (body) => (typeof body === 'object' && body !== null && 'uuid' in body ? String(body.uuid) : undefined),
 * };
 * ```
 */
export interface RestRouteOptions {
  /** The collection's path below `baseUrl`, starting with `/`, e.g. `'/activities'`. */
  readonly path: string;
  readonly create?: {
    /** @default 'POST' */
    readonly method?: 'POST' | 'PUT';
    /**
     * The path of the create request.
     * @default `{path}` for POST, `{path}/{entityId}` for PUT
     */
    readonly path?: (mutation: OutgoingMutation) => string;
  };
  readonly update?: {
    /** @default 'PATCH' */
    readonly method?: 'PATCH' | 'PUT';
    /** @default `{path}/{entityId}` */
    readonly path?: (mutation: OutgoingMutation) => string;
  };
  readonly delete?: {
    /** @default 'DELETE' */
    readonly method?: 'DELETE';
    /** @default `{path}/{entityId}` */
    readonly path?: (mutation: OutgoingMutation) => string;
  };
  /** Routes of the entity type's custom operations, by op name. */
  readonly custom?: Readonly<Record<string, RestCustomRoute>>;
  /**
   * Where pages of this entity type's changes are pulled from: `GET {pull.path}?limit=N` (plus
   * `&cursor=C` after the first page), answered with protocol v1's pull body
   * `{ changes, cursor, hasMore }` (docs/protocol.md section 6). Without it, the entity type is not
   * pullable: `pull` answers `rejected` `no-pull-route` and sends nothing.
   * @default none
   */
  readonly pull?: {
    /**
     * The path below `baseUrl`, starting with `/`, without query or fragment.
     * @default `{path}/changes`
     */
    readonly path?: string;
  };
  /**
   * The request body of a mutation; `undefined` sends none.
   * @default `m.data` (no body for `delete`, nor when `m.data` is `null`)
   */
  readonly body?: (mutation: OutgoingMutation) => JsonValue | undefined;
  /**
   * The record's version after a 2xx, or the server's current version in a 409/412 body.
   * `body` is `undefined` when the response had none.
   * @default a strong `ETag` (`"3"` → `3`, `"abc"` → `'abc'`), else `body.version`
   */
  readonly versionFrom?: (
    body: JsonValue | undefined,
    headers: FetchResponseLike['headers'],
  ) => Version | undefined;
  /**
   * The id the server gave a created record; reported as the result's `entityId` when it differs
   * from the client's id.
   * @default `body.id` when it is a non-empty string
   */
  readonly idFrom?: (body: JsonValue | undefined) => string | undefined;
  /**
   * The server's current data in a 409/412 body, for the conflict detector.
   * @default `body.data`
   */
  readonly dataFrom?: (body: JsonValue | undefined) => JsonValue | null | undefined;
}

/**
 * Options of `createFetchNetwork`.
 *
 * @example
 * ```ts
 * import { createFetchNetwork, type FetchNetworkOptions } from 'sync-core/fetch';
 * const options: FetchNetworkOptions = {
 *   baseUrl: 'https://api.example.com/v1',
 *   credentials: async (scope) => ({ token: await auth.tokenFor(scope.userId) }),
 *   refresh: (scope, signal) => auth.refresh(scope.userId, signal),
 *   timeoutMs: 20_000,
 * };
 * const network = createFetchNetwork(options);
 * ```
 */
export interface FetchNetworkOptions {
  /**
   * The API's base URL, `http:` or `https:`, without query, fragment or user info. Protocol v1
   * posts to `{baseUrl}/sync/push` and pulls from `{baseUrl}/sync/pull`; REST paths are appended
   * to it. A trailing `/` is ignored.
   */
  readonly baseUrl: string;
  /**
   * The fetch function to call, e.g. undici's `fetch` bound to a pooled `Agent`.
   * @default `globalThis.fetch` (a ConfigError when there is none)
   */
  readonly fetch?: FetchLike;
  /**
   * The credentials of a scope. Called for every HTTP request (once per push in protocol mode,
   * once per mutation in REST mode, once per pulled page; immediate resends reuse them) and never
   * cached by the adapter, so a token refreshed in between is picked up. A throw or an invalid
   * value makes the request an `auth` failure (`credentials-unavailable`) without sending
   * anything.
   */
  readonly credentials: (scope: Scope) => FetchCredentials | Promise<FetchCredentials>;
  /**
   * Refresh the credentials of a scope after a 401 (exposed as the port's `refreshCredentials`;
   * the core calls it single-flight). Resolve `false` when they cannot be refreshed.
   * @default none: a 401 pauses sync with `auth-required`
   */
  readonly refresh?: (scope: Scope, signal: AbortSignal) => Promise<boolean>;
  /**
   * The longest one HTTP exchange may take, in ms: connecting, the immediate resends
   * (`connectRetries`) and reading the whole response. A timeout is an `ambiguous` failure with
   * code `'timeout'` (the server may have applied the request).
   * @default 30000
   */
  readonly timeoutMs?: number;
  /**
   * `'protocol'`: sync protocol v1, one `POST /sync/push` per batch and `GET /sync/pull` per
   * page. `'rest'`: one request per mutation on the routes of `rest`, and pulls only from the
   * routes that set `pull`.
   * @default 'protocol'
   */
  readonly mode?: 'protocol' | 'rest';
  /** REST routes by entity type; required with `mode: 'rest'`, refused otherwise. */
  readonly rest?: Readonly<Record<string, RestRouteOptions>>;
  /**
   * How many REST requests of one batch are in flight at once.
   * @default 4
   */
  readonly restConcurrency?: number;
  /**
   * Static headers sent with every request (names are case-insensitive). The adapter's own
   * headers override them, and the credentials override everything.
   * @default {}
   */
  readonly headers?: Readonly<Record<string, string>>;
  /**
   * How many times a request is resent at once (after 50 ms, then 100 ms, …) when it failed
   * before any response arrived with a connection refused or reset — typically a keep-alive
   * connection the server had just closed. Resending is safe: it carries the same idempotency
   * key. HTTP statuses are never retried here; the core decides about those.
   * @default 2
   */
  readonly connectRetries?: number;
  /**
   * The wall clock, in ms since the epoch, used only to turn a `Retry-After` HTTP-date into a
   * delay when the response has no `Date` header. Adapters may read time; the core never does.
   * @default Date.now
   */
  readonly now?: () => number;
  /**
   * Override how a rejected `fetch` call is classified: return `'offline'` or `'ambiguous'`, or
   * `undefined` for the default. Useful on platforms whose fetch rejects with a bare
   * `TypeError('Network request failed')` when the device is offline (React Native), which the
   * adapter cannot tell from a connection lost after sending, and so classifies as `ambiguous`.
   * @default none
   */
  readonly networkErrorClass?: (error: unknown) => 'offline' | 'ambiguous' | undefined;
}

/** The options after validation, with their defaults applied. */
export interface ResolvedOptions {
  /** Without a trailing slash. */
  readonly baseUrl: string;
  readonly origin: string;
  readonly fetch: FetchLike;
  readonly credentials: (scope: Scope) => FetchCredentials | Promise<FetchCredentials>;
  readonly refresh: ((scope: Scope, signal: AbortSignal) => Promise<boolean>) | undefined;
  readonly timeoutMs: number;
  readonly mode: 'protocol' | 'rest';
  readonly rest: ReadonlyMap<string, RestRouteOptions>;
  readonly restConcurrency: number;
  /** Lower-case names. */
  readonly headers: Readonly<Record<string, string>>;
  readonly connectRetries: number;
  readonly now: () => number;
  readonly networkErrorClass: ((error: unknown) => 'offline' | 'ambiguous' | undefined) | undefined;
}

/** The largest delay `setTimeout` accepts. */
const MAX_TIMER_MS = 2_147_483_647;
const MAX_CONNECT_RETRIES = 10;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const HEADER_VALUE = /^[^\r\n\0]*$/;

/** Describe a value for "got …" without echoing strings, which may be secrets. */
function got(value: unknown): string {
  if (typeof value === 'number') return String(value);
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'string' ? 'a string' : typeof value;
}

function fail(path: string, expected: string, value: unknown, gotText = got(value)): never {
  throw new ConfigError(`createFetchNetwork: ${path}: expected ${expected}, got ${gotText}`);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function optionalFunction(path: string, value: unknown): void {
  if (value !== undefined && typeof value !== 'function') fail(path, 'a function', value);
}

function integer(path: string, value: unknown, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    fail(path, `an integer from ${min} to ${max}`, value);
  }
  return value;
}

/** Validate and lower-case a header map; the values are never echoed in errors. */
export function normalizeHeaders(path: string, value: unknown): Record<string, string> {
  if (!isRecord(value)) fail(path, 'an object of header names to strings', value);
  const out: Record<string, string> = {};
  for (const [name, headerValue] of Object.entries(value)) {
    if (!TOKEN.test(name)) fail(path, 'valid header names', name, 'an invalid name');
    if (typeof headerValue !== 'string' || !HEADER_VALUE.test(headerValue)) {
      fail(`${path}[${JSON.stringify(name)}]`, 'a string without CR, LF or NUL', headerValue);
    }
    out[name.toLowerCase()] = headerValue;
  }
  return out;
}

function validateRoute(entity: string, route: unknown): RestRouteOptions {
  const at = `rest[${JSON.stringify(entity)}]`;
  if (!isRecord(route)) fail(at, 'an object with a path', route);
  if (typeof route['path'] !== 'string' || !route['path'].startsWith('/')) {
    fail(`${at}.path`, "a path starting with '/'", route['path']);
  }
  const methods: Record<string, readonly string[]> = {
    create: ['POST', 'PUT'],
    update: ['PATCH', 'PUT'],
    delete: ['DELETE'],
  };
  for (const [op, allowed] of Object.entries(methods)) {
    const opRoute = route[op];
    if (opRoute === undefined) continue;
    if (!isRecord(opRoute)) fail(`${at}.${op}`, 'an object', opRoute);
    const method = opRoute['method'];
    if (method !== undefined && (typeof method !== 'string' || !allowed.includes(method))) {
      fail(`${at}.${op}.method`, `one of ${allowed.join(', ')}`, method);
    }
    optionalFunction(`${at}.${op}.path`, opRoute['path']);
  }
  const custom = route['custom'];
  if (custom !== undefined) {
    if (!isRecord(custom)) fail(`${at}.custom`, 'an object of op names to routes', custom);
    for (const [op, customRoute] of Object.entries(custom)) {
      const cat = `${at}.custom[${JSON.stringify(op)}]`;
      if (!isRecord(customRoute)) fail(cat, 'an object with method and path', customRoute);
      const method = customRoute['method'];
      if (typeof method !== 'string' || !['POST', 'PUT', 'PATCH', 'DELETE'].includes(method)) {
        fail(`${cat}.method`, 'one of POST, PUT, PATCH, DELETE', method);
      }
      if (typeof customRoute['path'] !== 'function') fail(`${cat}.path`, 'a function', customRoute['path']);
    }
  }
  for (const name of ['body', 'versionFrom', 'idFrom', 'dataFrom']) {
    optionalFunction(`${at}.${name}`, route[name]);
  }
  const pull = route['pull'];
  if (pull !== undefined) {
    if (!isRecord(pull)) fail(`${at}.pull`, 'an object', pull);
    const pullPath = pull['path'];
    if (pullPath !== undefined && (typeof pullPath !== 'string' || !/^\/[^?#]*$/.test(pullPath))) {
      fail(`${at}.pull.path`, "a path starting with '/', without query or fragment", pullPath);
    }
  }
  return route as unknown as RestRouteOptions;
}

/**
 * Validate the options of `createFetchNetwork` and apply their defaults.
 *
 * @throws ConfigError naming the first invalid option.
 */
export function resolveOptions(options: FetchNetworkOptions): ResolvedOptions {
  if (!isRecord(options)) fail('options', 'an object', options);

  let url: URL | undefined;
  if (typeof options.baseUrl === 'string') {
    try {
      url = new URL(options.baseUrl);
    } catch {
      url = undefined;
    }
  }
  if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    fail('baseUrl', 'an absolute http: or https: URL', options.baseUrl);
  }
  if (url.username !== '' || url.password !== '') {
    // Never echo the URL: it holds a secret.
    throw new ConfigError(
      'createFetchNetwork: baseUrl: expected no user name or password in the URL (pass them through credentials)',
    );
  }
  if (url.search !== '' || url.hash !== '') {
    fail('baseUrl', 'a URL without query or fragment', options.baseUrl, 'a URL with one');
  }
  const baseUrl = url.href.replace(/\/+$/, '');

  let fetchFn: FetchLike;
  if (options.fetch !== undefined) {
    if (typeof options.fetch !== 'function') fail('fetch', 'a fetch function', options.fetch);
    fetchFn = options.fetch;
  } else if (typeof globalThis.fetch === 'function') {
    // Bound: browsers throw "Illegal invocation" when fetch is called detached from its global.
    fetchFn = globalThis.fetch.bind(globalThis);
  } else {
    fail('fetch', 'a fetch function (globalThis.fetch is not available)', undefined);
  }

  if (typeof options.credentials !== 'function') fail('credentials', 'a function', options.credentials);
  optionalFunction('refresh', options.refresh);
  optionalFunction('now', options.now);
  optionalFunction('networkErrorClass', options.networkErrorClass);

  const mode = options.mode ?? 'protocol';
  if (mode !== 'protocol' && mode !== 'rest') fail('mode', "'protocol' or 'rest'", mode);
  const rest = new Map<string, RestRouteOptions>();
  if (mode === 'rest') {
    if (!isRecord(options.rest)) fail('rest', "routes by entity type (mode is 'rest')", options.rest);
    for (const [entity, route] of Object.entries(options.rest))
      rest.set(entity, validateRoute(entity, route));
  } else if (options.rest !== undefined) {
    fail('rest', "no REST routes unless mode is 'rest'", options.rest);
  }

  return {
    baseUrl,
    origin: url.origin,
    fetch: fetchFn,
    credentials: options.credentials,
    refresh: options.refresh,
    timeoutMs: integer('timeoutMs', options.timeoutMs, 30_000, 1, MAX_TIMER_MS),
    mode,
    rest,
    restConcurrency: integer('restConcurrency', options.restConcurrency, 4, 1, 256),
    headers: options.headers === undefined ? {} : normalizeHeaders('headers', options.headers),
    connectRetries: integer('connectRetries', options.connectRetries, 2, 0, MAX_CONNECT_RETRIES),
    now: options.now ?? (() => Date.now()),
    networkErrorClass: options.networkErrorClass,
  };
}
