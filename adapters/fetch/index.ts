/**
 * `sync-core/fetch`: the network adapter over `fetch` — sync protocol v1 (DESIGN.md section 8) or
 * an existing REST API's routes (REST-resource mode). It pushes batches and pulls pages of
 * changes, and reports faithfully what happened to each request; every retry, backoff and conflict
 * decision stays in the core.
 *
 * How responses and errors of a push map to the network port (README.md has the full table):
 *
 * | what happened | failure (`class`, `code`) |
 * |---|---|
 * | 2xx, JSON, schema-valid, one result per mutation sent | `results` |
 * | 2xx not JSON (captive portal), wrong schema, a result missing, extra or twice | `retryable` `bad-response` |
 * | 2xx whose JSON is cut short or invalid, or a reset while reading it | `ambiguous` `invalid-json` / `response-interrupted` |
 * | 3xx, or a browser's opaque redirect (status 0) — never followed | `retryable` `bad-response` |
 * | 401 | `auth` `http-401` |
 * | 409 `application/problem+json` request-in-progress | `retryable` `in-progress` |
 * | other 409, 412 | `conflict` (with `serverVersion` / `serverData`) |
 * | 404/410 from `/sync/push` (the endpoint is missing) | `retryable` `endpoint-not-found` |
 * | 408, 425, 429, 5xx | `retryable` `http-<status>` with `retryAfterMs` from `Retry-After` |
 * | other 4xx | `rejected` `http-<status>` with the server's reason |
 * | refused, DNS failure, unreachable, TLS failure | `offline` `econnrefused`, `enotfound`… |
 * | reset, socket closed, a bare network `TypeError` | `ambiguous` `econnreset`, `und-err-socket`, `network-error` |
 * | no complete response within `timeoutMs` | `ambiguous` `timeout` |
 * | the push's `signal` aborted | `aborted` `aborted` |
 * | the credentials provider threw | `auth` `credentials-unavailable` |
 *
 * A pull maps the same way, except:
 *
 * | what happened | pull answer |
 * |---|---|
 * | 2xx, JSON, schema-valid (`{ changes, cursor, hasMore }`), at most `limit` changes | `page` |
 * | 2xx not JSON, invalid or truncated JSON, wrong schema, more than `limit` changes, `hasMore` with the cursor unchanged | `retryable` `bad-response` |
 * | 404/410 from `/sync/pull` or the REST pull route | `retryable` `endpoint-not-found` |
 * | 409, 412 (no conflict exists for a read) | `rejected` `http-<status>` with the server's reason |
 * | REST mode, the entity type's route has no `pull` | `rejected` `no-pull-route`, nothing sent |
 *
 * @packageDocumentation
 */
import type { NetworkAdapter, PushItemResult, PushRequest, PushResponse, TransportFailure } from 'sync-core';
import { type PushContext, redact } from './exchange.js';
import { type FetchNetworkOptions, resolveOptions } from './options.js';
import { pushProtocol } from './protocol.js';
import { type PullRequest, type PullResponse, pullProtocol, pullRest } from './pull.js';
import { pushRest } from './rest.js';

export type { FetchLike, FetchRequestInit, FetchResponseLike } from './fetch-like.js';
export type { FetchCredentials, FetchNetworkOptions, RestCustomRoute, RestRouteOptions } from './options.js';
export { PROTOCOL_VERSION } from './protocol.js';
export { IN_PROGRESS_PROBLEM_TYPE } from './responses.js';
export {
  fetchFromUndiciRequest,
  type UndiciRequest,
  type UndiciRequestFetchOptions,
  type UndiciRequestOptions,
  type UndiciResponseData,
} from './undici-request.js';

function scrubFailure(failure: TransportFailure, secrets: ReadonlySet<string>): TransportFailure {
  const message = redact(failure.message, secrets);
  return message === failure.message ? failure : { ...failure, message };
}

function scrubItem(result: PushItemResult, secrets: ReadonlySet<string>): PushItemResult {
  if (result.status === 'failed') return { ...result, failure: scrubFailure(result.failure, secrets) };
  if (result.status === 'rejected') {
    return {
      ...result,
      error: { code: redact(result.error.code, secrets), message: redact(result.error.message, secrets) },
    };
  }
  return result;
}

/** No credential reaches a message, even one the server echoed back (FAULTS.md 33). */
function scrub(response: PushResponse, secrets: ReadonlySet<string>): PushResponse {
  if (secrets.size === 0) return response;
  if (response.type === 'failure')
    return { type: 'failure', failure: scrubFailure(response.failure, secrets) };
  return { type: 'results', results: response.results.map((result) => scrubItem(result, secrets)) };
}

/** No credential reaches the message of a pull's failure either; a page is the server's data. */
function scrubPull(response: PullResponse, secrets: ReadonlySet<string>): PullResponse {
  if (secrets.size === 0 || response.type === 'page') return response;
  return { type: 'failure', failure: scrubFailure(response.failure, secrets) };
}

/**
 * Create the network adapter that speaks HTTP through `fetch`.
 *
 * - **Protocol mode** (default): `POST {baseUrl}/sync/push` per batch with
 *   `{ protocol: 1, clientId, entity, mutations }`; a 2xx must be JSON and carry exactly one
 *   valid result per mutation sent. `pull` asks
 *   `GET {baseUrl}/sync/pull?entity=E&limit=N&cursor=C` (no `cursor` on the first pull); a 2xx
 *   must be JSON `{ changes, cursor, hasMore }` with at most `limit` valid changes.
 * - **REST mode** (`mode: 'rest'`): one request per mutation on the routes of `rest`, each with
 *   `Idempotency-Key`, `If-Match` from the base version and `X-Entity-Id` on creates. `pull` asks
 *   `GET {pull.path}?limit=N&cursor=C` of entity types whose route sets `pull` (default path
 *   `{path}/changes`), answered like protocol v1's pull; for any other entity type it answers
 *   `rejected` `no-pull-route` without sending anything.
 *
 * Every request: `redirect: 'manual'` (a redirect is a `retryable` `bad-response` and credentials
 * never follow it), `Accept: application/json`, the credentials of the request's scope obtained
 * for that request, a timeout, and an immediate bounded resend when the connection was refused
 * or dropped before any response. `push` and `pull` never reject for a network or server
 * failure: those are `failure` results, classified as the tables in this module's documentation
 * say.
 *
 * @param options - See {@link FetchNetworkOptions}.
 * @returns The {@link NetworkAdapter} to pass to `createSyncEngine`.
 * @throws ConfigError for an invalid option ("expected X, got Y"), or when no `fetch` is given
 *   and `globalThis.fetch` does not exist.
 *
 * @example
 * ```ts
 * import { createSyncEngine } from 'sync-core';
 * import { createFetchNetwork } from 'sync-core/fetch';
 *
 * const network = createFetchNetwork({
 *   baseUrl: 'https://api.example.com',
 *   credentials: async (scope) => ({ token: await auth.accessToken(scope.userId) }),
 *   refresh: (scope, signal) => auth.refresh(scope.userId, signal),
 * });
 * const engine = createSyncEngine({ storage, network, entities: { activity: {} } });
 * ```
 *
 * @example REST-resource mode
 * ```ts
 * import { createFetchNetwork } from 'sync-core/fetch';
 *
 * const network = createFetchNetwork({
 *   baseUrl: 'https://api.example.com/v2',
 *   mode: 'rest',
 *   rest: { activity: { path: '/activities', update: { method: 'PUT' }, pull: { path: '/activities/changes' } } },
 *   credentials: async () => ({ headers: { 'x-api-key': await keychain.get('api-key') } }),
 * });
 * ```
 */
export function createFetchNetwork(options: FetchNetworkOptions): NetworkAdapter {
  const resolved = resolveOptions(options);
  const adapter: NetworkAdapter = {
    async push(request: PushRequest): Promise<PushResponse> {
      const ctx: PushContext = {
        options: resolved,
        scope: request.scope,
        signal: request.signal,
        secrets: new Set(),
      };
      const response =
        resolved.mode === 'rest' ? await pushRest(ctx, request) : await pushProtocol(ctx, request);
      return scrub(response, ctx.secrets);
    },
    async pull(request: PullRequest): Promise<PullResponse> {
      const ctx: PushContext = {
        options: resolved,
        scope: request.scope,
        signal: request.signal,
        secrets: new Set(),
      };
      const response =
        resolved.mode === 'rest' ? await pullRest(ctx, request) : await pullProtocol(ctx, request);
      return scrubPull(response, ctx.secrets);
    },
  };
  const { refresh } = resolved;
  if (refresh !== undefined) {
    adapter.refreshCredentials = (scope, signal) => refresh(scope, signal);
  }
  return adapter;
}
