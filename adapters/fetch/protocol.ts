/**
 * Sync protocol v1 (DESIGN.md section 8, docs/protocol.md): one `POST {baseUrl}/sync/push` per
 * batch, answered by exactly one result per mutation. Every 2xx is checked for a JSON content type
 * and validated with zod; what fails is a `retryable` `bad-response`, never a confirmation.
 *
 * @packageDocumentation
 */
import {
  type JsonValue,
  type OutgoingMutation,
  type PushItemResult,
  type PushRequest,
  type PushResponse,
  RETRY_AFTER_MAX_MS,
  type TransportFailure,
  type Version,
} from 'sync-core';
import * as z from 'zod';
import { exchange, type PushContext } from './exchange.js';
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

/**
 * The protocol version this adapter speaks, sent as `protocol` in every push.
 *
 * @example
 * ```ts
 * import { PROTOCOL_VERSION } from 'sync-core/fetch';
 * if (body.protocol !== PROTOCOL_VERSION) reply(400, 'unsupported protocol');
 * ```
 */
export const PROTOCOL_VERSION = 1;

/** A record version: a non-negative integer or an opaque non-empty string. */
export const versionSchema = z.union([z.number().int().nonnegative(), z.string().min(1)]);
const idSchema = z.string().min(1);
const appliedSchema = {
  id: idSchema,
  version: versionSchema.optional(),
  entityId: z.string().min(1).optional(),
};

const resultSchema = z.discriminatedUnion('status', [
  z.object({ ...appliedSchema, status: z.literal('applied') }),
  z.object({ ...appliedSchema, status: z.literal('duplicate') }),
  z.object({
    id: idSchema,
    status: z.literal('conflict'),
    version: versionSchema.nullable().optional(),
    data: z.json().optional(),
  }),
  z.object({
    id: idSchema,
    status: z.literal('rejected'),
    error: z.object({ code: z.string().min(1), message: z.string().optional() }),
  }),
  z.object({ id: idSchema, status: z.literal('retry'), retryAfterMs: z.number().nonnegative().optional() }),
]);

const pushResponseSchema = z.object({ results: z.array(resultSchema) });

type WireResult = z.infer<typeof resultSchema>;

/** The push body of one batch (DESIGN.md section 8). */
function pushBody(request: PushRequest): string {
  return JSON.stringify({
    protocol: PROTOCOL_VERSION,
    clientId: request.clientId,
    entity: request.entity,
    mutations: request.mutations.map((m) => ({
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
}

/** A zod issue's path for a message: `changes[3].version`, or `(root)`. */
export function formatIssuePath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) out += typeof part === 'number' ? `[${part}]` : `.${String(part)}`;
  return out === '' ? '(root)' : out.replace(/^\./, '');
}

function toItemResult(result: WireResult, mutation: OutgoingMutation): PushItemResult {
  switch (result.status) {
    case 'applied':
    case 'duplicate':
      return {
        id: result.id,
        status: result.status,
        ...(result.version === undefined ? {} : { version: result.version }),
        // Only a server-assigned id is news; an echo of the client's id is not.
        ...(result.entityId === undefined || result.entityId === mutation.entityId
          ? {}
          : { entityId: result.entityId }),
      };
    case 'conflict':
      return {
        id: result.id,
        status: 'conflict',
        ...(result.version === undefined ? {} : { version: result.version }),
        ...(result.data === undefined ? {} : { data: result.data as JsonValue }),
      };
    case 'rejected':
      return {
        id: result.id,
        status: 'rejected',
        error: { code: clean(result.error.code), message: clean(result.error.message ?? '') },
      };
    case 'retry':
      return {
        id: result.id,
        status: 'retry',
        ...(result.retryAfterMs === undefined
          ? {}
          : { retryAfterMs: Math.min(Math.ceil(result.retryAfterMs), RETRY_AFTER_MAX_MS) }),
      };
  }
}

/** A 2xx answer: JSON, schema-valid, exactly one result per mutation sent. */
function resultsOf(response: ReadResponse, request: PushRequest): PushResponse {
  const fail = (failure: TransportFailure): PushResponse => ({ type: 'failure', failure });
  if (!response.body.ok) return fail(response.body.failure);
  const contentType = response.headers.get('content-type');
  if (!isJsonMediaType(contentType)) {
    // A captive portal's login page, a proxy's error page (FAULTS.md 15).
    const type = clean(mediaType(contentType)) || 'no content type';
    return fail(badResponse(response, `expected a JSON response, got ${type}`));
  }
  const json = parseJson(response.body.text);
  if (json === undefined) {
    // Cut short on the way: the server may well have applied the batch.
    return fail({
      class: 'ambiguous',
      code: 'invalid-json',
      message: 'the response is not valid JSON (truncated?)',
      status: response.status,
    });
  }
  const parsed = pushResponseSchema.safeParse(json.value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue === undefined ? '' : ` at ${formatIssuePath(issue.path)} (${issue.code})`;
    return fail(badResponse(response, `the response does not match protocol v1${where}`));
  }

  const byId = new Map(request.mutations.map((m) => [m.id, m] as const));
  const answered = new Map<string, PushItemResult>();
  for (const result of parsed.data.results) {
    const mutation = byId.get(result.id);
    if (mutation === undefined)
      return fail(badResponse(response, 'a result names a mutation that was not sent'));
    if (answered.has(result.id)) return fail(badResponse(response, 'two results name the same mutation'));
    answered.set(result.id, toItemResult(result, mutation));
  }
  const missing = request.mutations.length - answered.size;
  if (missing > 0) return fail(badResponse(response, `no result for ${missing} of the mutations sent`));
  return { type: 'results', results: request.mutations.map((m) => answered.get(m.id)!) };
}

function versionOf(value: JsonValue | undefined): Version | null {
  const parsed = versionSchema.safeParse(value);
  return parsed.success ? parsed.data : null;
}

/** Send one batch with protocol v1. */
export async function pushProtocol(ctx: PushContext, request: PushRequest): Promise<PushResponse> {
  const outcome = await exchange(ctx, {
    url: `${ctx.options.baseUrl}/sync/push`,
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: pushBody(request),
  });
  if (outcome.kind === 'failure') return { type: 'failure', failure: outcome.failure };
  const { response } = outcome;

  const failure = failureOfStatus(response, { kind: 'batch' }, ctx.options.now);
  if (failure === 'success') return resultsOf(response, request);
  if (failure !== 'conflict') return { type: 'failure', failure };
  if (response.status === 409 && !response.body.ok) {
    // Without the body a 409 cannot be told apart from "a request with this key is in progress".
    return { type: 'failure', failure: response.body.failure };
  }
  const body = jsonBodyOf(response);
  const record = isJsonObject(body) ? body : {};
  return {
    type: 'failure',
    failure: {
      class: 'conflict',
      code: `http-${response.status}`,
      message: `the server reported a conflict (${response.status})`,
      status: response.status,
      ...('version' in record ? { serverVersion: versionOf(record['version']) } : {}),
      ...('data' in record ? { serverData: record['data'] ?? null } : {}),
    },
  };
}
