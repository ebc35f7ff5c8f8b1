/**
 * REST-resource mode (DESIGN.md section 8): one request per mutation on an existing API's routes,
 * `Idempotency-Key` on every request, versions as entity tags (`If-Match` / `ETag`).
 *
 * @packageDocumentation
 */
import type {
  JsonValue,
  OutgoingMutation,
  PushItemResult,
  PushRequest,
  PushResponse,
  TransportFailure,
  Version,
} from 'sync-core';
import { exchange, type HttpRequest, type PushContext } from './exchange.js';
import type { FetchResponseLike } from './fetch-like.js';
import type { RestRouteOptions } from './options.js';
import {
  badResponse,
  clean,
  failureOfStatus,
  isJsonMediaType,
  isJsonObject,
  jsonBodyOf,
  mediaType,
  parseJson,
  type ReadResponse,
} from './responses.js';

/** An entity tag's opaque part: visible ASCII but `"` (RFC 9110 section 8.8.3). */
const ETAG_CHARS = /^[\x21\x23-\x7e]*$/;
const STRONG_ETAG = /^"([\x21\x23-\x7e]*)"$/;
/** A version sent as an integer: no sign, no leading zero, within the safe integer range. */
const INTEGER_VERSION = /^(?:0|[1-9][0-9]{0,14})$/;
/** What a header value may carry without any encoding. */
const PLAIN_HEADER_VALUE = /^[\x20-\x7e]*$/;

/** Failure classes after which no further request of the batch is started. */
const STOPPING = new Set<TransportFailure['class']>(['offline', 'auth', 'aborted']);

function failed(id: string, failure: TransportFailure): PushItemResult {
  return { id, status: 'failed', failure };
}

/** A version as an `If-Match` entity tag: `3` → `"3"`, `abc` → `"abc"`, `"abc"` unchanged. */
function entityTag(version: Version): string | undefined {
  if (typeof version === 'number') return Number.isFinite(version) ? `"${version}"` : undefined;
  if (STRONG_ETAG.test(version)) return version;
  return ETAG_CHARS.test(version) && version !== '' ? `"${version}"` : undefined;
}

/** `ETag: "3"` → `3`, `ETag: "v7"` → `'v7'`; weak tags are skipped (`If-Match` compares strongly). */
function defaultVersionFrom(
  body: JsonValue | undefined,
  headers: FetchResponseLike['headers'],
): Version | undefined {
  const tag = STRONG_ETAG.exec((headers.get('etag') ?? '').trim())?.[1];
  if (tag !== undefined && tag !== '') return INTEGER_VERSION.test(tag) ? Number(tag) : tag;
  if (isJsonObject(body)) {
    const version = body['version'];
    if (typeof version === 'number' && Number.isFinite(version)) return version;
    if (typeof version === 'string' && version !== '') return version;
  }
  return undefined;
}

function defaultIdFrom(body: JsonValue | undefined): string | undefined {
  const id = isJsonObject(body) ? body['id'] : undefined;
  return typeof id === 'string' && id !== '' ? id : undefined;
}

function defaultDataFrom(body: JsonValue | undefined): JsonValue | null | undefined {
  return isJsonObject(body) && 'data' in body ? body['data'] : undefined;
}

function validVersion(value: unknown): Version | undefined {
  if (typeof value === 'number' && Number.isFinite(value)) return value;
  return typeof value === 'string' && value !== '' ? value : undefined;
}

function rejected(code: string, message: string): TransportFailure {
  return { class: 'rejected', code, message };
}

/** The request of one mutation, or why it cannot be sent. */
function requestFor(
  ctx: PushContext,
  route: RestRouteOptions,
  clientId: string,
  m: OutgoingMutation,
): HttpRequest | { readonly failure: TransportFailure } {
  const itemPath = `${route.path}/${encodeURIComponent(m.entityId)}`;
  let method: string;
  let path: unknown;
  switch (m.op) {
    case 'create':
      method = route.create?.method ?? 'POST';
      path = route.create?.path?.(m) ?? (method === 'PUT' ? itemPath : route.path);
      break;
    case 'update':
      method = route.update?.method ?? 'PATCH';
      path = route.update?.path?.(m) ?? itemPath;
      break;
    case 'delete':
      method = route.delete?.method ?? 'DELETE';
      path = route.delete?.path?.(m) ?? itemPath;
      break;
    default: {
      const custom =
        route.custom !== undefined && Object.hasOwn(route.custom, m.op) ? route.custom[m.op] : undefined;
      if (custom === undefined) {
        return { failure: rejected('unsupported-op', `no REST route for the op ${JSON.stringify(m.op)}`) };
      }
      method = custom.method;
      path = custom.path(m);
    }
  }

  const url = typeof path === 'string' && path.startsWith('/') ? `${ctx.options.baseUrl}${path}` : undefined;
  let sameOrigin = false;
  try {
    sameOrigin = url !== undefined && new URL(url).origin === ctx.options.origin;
  } catch {
    sameOrigin = false;
  }
  if (url === undefined || !sameOrigin) {
    // Credentials go to baseUrl's origin only.
    return {
      failure: rejected('invalid-route', `the REST path of the op ${JSON.stringify(m.op)} is invalid`),
    };
  }

  const headers: Record<string, string> = {
    accept: 'application/json',
    'idempotency-key': m.key,
    'x-client-id': clientId,
  };
  // A non-ASCII id cannot travel in a header; the server then assigns its own id (`idFrom`).
  if (m.op === 'create' && PLAIN_HEADER_VALUE.test(m.entityId)) headers['x-entity-id'] = m.entityId;
  if (m.op !== 'create' && m.baseVersion !== null) {
    const tag = entityTag(m.baseVersion);
    if (tag === undefined) {
      return {
        failure: rejected('invalid-base-version', 'the base version cannot be sent as an entity tag'),
      };
    }
    headers['if-match'] = tag;
  }
  const body =
    route.body !== undefined ? route.body(m) : m.op === 'delete' || m.data === null ? undefined : m.data;
  if (body === undefined) return { url, method, headers };
  headers['content-type'] = 'application/json';
  return { url, method, headers, body: JSON.stringify(body) };
}

/** What one REST response says about its mutation. */
function resultOf(
  ctx: PushContext,
  route: RestRouteOptions,
  m: OutgoingMutation,
  response: ReadResponse,
): PushItemResult {
  const versionFrom = route.versionFrom ?? defaultVersionFrom;
  const outcome = failureOfStatus(response, { kind: 'item', op: m.op }, ctx.options.now);

  if (outcome === 'success') {
    if (!response.body.ok) return failed(m.id, response.body.failure);
    let body: JsonValue | undefined;
    if (response.body.text.trim() !== '') {
      const contentType = response.headers.get('content-type');
      if (!isJsonMediaType(contentType)) {
        // A captive portal's `200 text/html` is not a confirmation (FAULTS.md 15).
        const type = clean(mediaType(contentType)) || 'no content type';
        return failed(m.id, badResponse(response, `expected a JSON response or none, got ${type}`));
      }
      const json = parseJson(response.body.text);
      if (json === undefined) {
        return failed(m.id, {
          class: 'ambiguous',
          code: 'invalid-json',
          message: 'the response is not valid JSON (truncated?)',
          status: response.status,
        });
      }
      body = json.value;
    }
    const version = validVersion(versionFrom(body, response.headers));
    const serverId = m.op === 'create' ? (route.idFrom ?? defaultIdFrom)(body) : undefined;
    const replayed = response.headers.get('idempotent-replayed')?.trim().toLowerCase() === 'true';
    return {
      id: m.id,
      status: replayed ? 'duplicate' : 'applied',
      ...(version === undefined ? {} : { version }),
      ...(typeof serverId === 'string' && serverId !== '' && serverId !== m.entityId
        ? { entityId: serverId }
        : {}),
    };
  }

  if (outcome === 'conflict') {
    // Without the body a 409 cannot be told apart from "a request with this key is in progress".
    if (response.status === 409 && !response.body.ok) return failed(m.id, response.body.failure);
    const body = jsonBodyOf(response);
    const version = validVersion(versionFrom(body, response.headers));
    const data = (route.dataFrom ?? defaultDataFrom)(body);
    return {
      id: m.id,
      status: 'conflict',
      ...(version === undefined ? {} : { version }),
      ...(data === undefined ? {} : { data }),
    };
  }
  return failed(m.id, outcome);
}

async function pushOne(
  ctx: PushContext,
  route: RestRouteOptions,
  clientId: string,
  m: OutgoingMutation,
): Promise<PushItemResult> {
  try {
    const request = requestFor(ctx, route, clientId, m);
    if ('failure' in request) return failed(m.id, request.failure);
    const outcome = await exchange(ctx, request);
    if (outcome.kind === 'failure') return failed(m.id, outcome.failure);
    return resultOf(ctx, route, m, outcome.response);
  } catch (error) {
    // A throwing route callback (`path`, `body`, `versionFrom`…). The request may have been
    // applied (`versionFrom` runs after a 2xx), so it is resent with the same key, not dropped.
    const name = error instanceof Error ? error.name : typeof error;
    return failed(m.id, {
      class: 'ambiguous',
      code: 'adapter-error',
      message: `a REST route callback threw (${name})`,
    });
  }
}

/**
 * Send one batch in REST-resource mode: one request per mutation, at most `restConcurrency` at
 * once. Once a request finds the network `offline`, the credentials refused (`auth`) or the push
 * aborted, no further request starts; the mutations not sent get that same failure.
 */
export async function pushRest(ctx: PushContext, request: PushRequest): Promise<PushResponse> {
  const route = ctx.options.rest.get(request.entity);
  if (route === undefined) {
    return {
      type: 'failure',
      failure: rejected('no-route', `no REST route for the entity type ${JSON.stringify(request.entity)}`),
    };
  }
  const { mutations } = request;
  const results = new Array<PushItemResult>(mutations.length);
  let stop: TransportFailure | undefined;
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < mutations.length; i = next++) {
      const m = mutations[i]!;
      if (stop !== undefined) {
        results[i] = failed(m.id, stop);
        continue;
      }
      const result = await pushOne(ctx, route, request.clientId, m);
      results[i] = result;
      if (result.status === 'failed' && STOPPING.has(result.failure.class)) stop ??= result.failure;
    }
  };
  await Promise.all(Array.from({ length: Math.min(ctx.options.restConcurrency, mutations.length) }, worker));
  return { type: 'results', results };
}
