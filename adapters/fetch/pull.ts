/**
 * Pulling changes (DESIGN.md section 8, docs/protocol.md section 6): one `GET` per page, after an
 * opaque cursor. Protocol mode asks `{baseUrl}/sync/pull`; REST mode asks the entity type's
 * `rest[entity].pull` route, and only when it has one. Every 2xx is checked for a JSON content type
 * and validated with zod; what fails is a `retryable` `bad-response`, never a page.
 *
 * @packageDocumentation
 */
import type { JsonValue, NetworkAdapter, TransportFailure } from 'sync-core';
import * as z from 'zod';
import { exchange, type HttpRequest, type PushContext } from './exchange.js';
import { formatIssuePath, versionSchema } from './protocol.js';
import {
  badResponse,
  clean,
  failureOfStatus,
  isJsonMediaType,
  jsonBodyOf,
  mediaType,
  parseJson,
  type ReadResponse,
  serverReason,
} from './responses.js';

// Derived from the port so that they follow it exactly.
type PullFunction = NonNullable<NetworkAdapter['pull']>;
/** The port's `PullRequest`. */
export type PullRequest = Parameters<PullFunction>[0];
/** The port's `PullResponse`. */
export type PullResponse = Awaited<ReturnType<PullFunction>>;
type PullChange = Extract<PullResponse, { readonly type: 'page' }>['changes'][number];

const entityIdSchema = z.string().min(1);

const changeSchema = z.discriminatedUnion('op', [
  z.object({ entityId: entityIdSchema, op: z.literal('upsert'), version: versionSchema, data: z.json() }),
  z.object({ entityId: entityIdSchema, op: z.literal('delete'), version: versionSchema }),
]);

const pullResponseSchema = z.object({
  changes: z.array(changeSchema),
  cursor: z.string(),
  hasMore: z.boolean(),
});

type WireChange = z.infer<typeof changeSchema>;

function failure(failure: TransportFailure): PullResponse {
  return { type: 'failure', failure };
}

function rejected(code: string, message: string): PullResponse {
  return failure({ class: 'rejected', code, message });
}

function toChange(change: WireChange): PullChange {
  // Rebuilt field by field: nothing the schema did not check reaches the app.
  return change.op === 'upsert'
    ? { entityId: change.entityId, op: 'upsert', version: change.version, data: change.data as JsonValue }
    : { entityId: change.entityId, op: 'delete', version: change.version };
}

/** The query string of a page: `limit`, then `cursor` unless this is the first pull. */
function pageQuery(request: PullRequest, first: readonly (readonly [string, string])[]): string {
  const params: (readonly [string, string])[] = [...first, ['limit', String(request.limit)]];
  if (request.cursor !== null) params.push(['cursor', request.cursor]);
  return params.map(([name, value]) => `${name}=${encodeURIComponent(value)}`).join('&');
}

/** A 2xx answer: JSON, schema-valid, at most `limit` changes, a cursor that moves while `hasMore`. */
function pageOf(response: ReadResponse, request: PullRequest): PullResponse {
  if (!response.body.ok) return failure(response.body.failure);
  const contentType = response.headers.get('content-type');
  if (!isJsonMediaType(contentType)) {
    // A captive portal's login page, a proxy's error page (FAULTS.md 15).
    const type = clean(mediaType(contentType)) || 'no content type';
    return failure(badResponse(response, `expected a JSON response, got ${type}`));
  }
  const json = parseJson(response.body.text);
  if (json === undefined) {
    // A pull changes nothing on the server: an unreadable page is just a bad answer, not ambiguous.
    return failure(badResponse(response, 'the response is not valid JSON (truncated?)'));
  }
  const parsed = pullResponseSchema.safeParse(json.value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue === undefined ? '' : ` at ${formatIssuePath(issue.path)} (${issue.code})`;
    return failure(badResponse(response, `the response does not match protocol v1${where}`));
  }
  const { changes, cursor, hasMore } = parsed.data;
  if (changes.length > request.limit) {
    return failure(
      badResponse(
        response,
        `the page has ${changes.length} changes, more than the limit of ${request.limit}`,
      ),
    );
  }
  if (hasMore && cursor === request.cursor) {
    // Asking again with the same cursor would get the same page, forever.
    return failure(badResponse(response, 'hasMore is true but the cursor did not move'));
  }
  return { type: 'page', changes: changes.map(toChange), cursor, hasMore };
}

/** A 409 or 412 to a GET names no version the client sent: an ordinary 4xx refusal. */
function refusal(response: ReadResponse): TransportFailure {
  const reason = serverReason(jsonBodyOf(response));
  const { status } = response;
  return {
    class: 'rejected',
    code: `http-${status}`,
    message: `the server rejected the request (${status})${reason === undefined ? '' : `: ${reason}`}`,
    status,
  };
}

/** Send one page request; map the answer as a push's, except that there is no conflict. */
async function pullPage(ctx: PushContext, request: PullRequest, http: HttpRequest): Promise<PullResponse> {
  const outcome = await exchange(ctx, http);
  if (outcome.kind === 'failure') return failure(outcome.failure);
  const { response } = outcome;
  // `batch`: a 404/410 means the endpoint is missing, never that a record is gone.
  const status = failureOfStatus(response, { kind: 'batch' }, ctx.options.now);
  if (status === 'success') return pageOf(response, request);
  return failure(status === 'conflict' ? refusal(response) : status);
}

function invalidLimit(request: PullRequest): PullResponse | undefined {
  const { limit } = request;
  if (typeof limit === 'number' && Number.isSafeInteger(limit) && limit >= 1) return undefined;
  return rejected('invalid-limit', 'the pull limit must be a positive integer');
}

/** Fetch one page with protocol v1: `GET {baseUrl}/sync/pull?entity=E&limit=N[&cursor=C]`. */
export async function pullProtocol(ctx: PushContext, request: PullRequest): Promise<PullResponse> {
  const invalid = invalidLimit(request);
  if (invalid !== undefined) return invalid;
  return pullPage(ctx, request, {
    url: `${ctx.options.baseUrl}/sync/pull?${pageQuery(request, [['entity', request.entity]])}`,
    method: 'GET',
    headers: { accept: 'application/json' },
  });
}

/**
 * Fetch one page in REST-resource mode: `GET {baseUrl}{pull.path}?limit=N[&cursor=C]` of the entity
 * type's route, answered like protocol v1's pull. An entity type without `pull` in its route is
 * `rejected` `no-pull-route`, and nothing is sent.
 */
export async function pullRest(ctx: PushContext, request: PullRequest): Promise<PullResponse> {
  const route = ctx.options.rest.get(request.entity);
  if (route?.pull === undefined) {
    return rejected(
      'no-pull-route',
      `no REST pull route for the entity type ${JSON.stringify(request.entity)}`,
    );
  }
  const invalid = invalidLimit(request);
  if (invalid !== undefined) return invalid;
  const path = route.pull.path ?? `${route.path}/changes`;
  return pullPage(ctx, request, {
    url: `${ctx.options.baseUrl}${path}?${pageQuery(request, [])}`,
    method: 'GET',
    headers: { accept: 'application/json', 'x-client-id': request.clientId },
  });
}
