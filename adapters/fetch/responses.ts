/**
 * Reading HTTP responses: content types, JSON bodies, the server's reason, and the failure an
 * HTTP status stands for (DESIGN.md section 5 through `classifyHttpStatus`, plus what only the
 * adapter can see: redirects, the "request in progress" problem, a missing batch endpoint).
 *
 * @packageDocumentation
 */
import { classifyHttpStatus, type JsonValue, parseRetryAfter, type TransportFailure } from 'sync-core';
import type { FetchResponseLike } from './fetch-like.js';

/**
 * The RFC 9457 problem type of a 409 that means "a request with this idempotency key is still
 * being processed" (FAULTS.md 19): retry unchanged, it is not a conflict.
 *
 * @example
 * ```ts
 * import { IN_PROGRESS_PROBLEM_TYPE } from 'sync-core/fetch';
 * res.writeHead(409, { 'content-type': 'application/problem+json' });
 * res.end(JSON.stringify({ type: IN_PROGRESS_PROBLEM_TYPE, title: 'in progress', status: 409 }));
 * ```
 */
export const IN_PROGRESS_PROBLEM_TYPE = 'urn:sync-core:problem:request-in-progress';

/** Longest server-supplied reason kept in a failure or rejection message. */
const MAX_REASON_LENGTH = 500;

/** A response whose body has been read, or whose body could not be read. */
export interface ReadResponse {
  readonly status: number;
  readonly headers: FetchResponseLike['headers'];
  /** The body text, or the failure met while reading it. */
  readonly body:
    | { readonly ok: true; readonly text: string }
    | { readonly ok: false; readonly failure: TransportFailure };
}

/** The media type of a `Content-Type` value, lower-case, without parameters. */
export function mediaType(contentType: string | null): string {
  return (contentType ?? '').split(';')[0]!.trim().toLowerCase();
}

/** `application/json`, or a `+json` structured syntax suffix (`application/problem+json`). */
export function isJsonMediaType(contentType: string | null): boolean {
  const type = mediaType(contentType);
  return type === 'application/json' || /^application\/[^/\s]+\+json$/.test(type);
}

/** Parse a JSON text; `undefined` when it is not JSON. */
export function parseJson(text: string): { readonly value: JsonValue } | undefined {
  try {
    return { value: JSON.parse(text) as JsonValue };
  } catch {
    return undefined;
  }
}

/** The body as JSON when the response says it is JSON and it parses; else `undefined`. */
export function jsonBodyOf(response: ReadResponse): JsonValue | undefined {
  if (!response.body.ok || !isJsonMediaType(response.headers.get('content-type'))) return undefined;
  return parseJson(response.body.text)?.value;
}

/** A JSON object (not an array, not null). */
export function isJsonObject(value: unknown): value is { [key: string]: JsonValue } {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A server-supplied text made printable, single-line and bounded, for a message. */
export function clean(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is removed.
  const flat = text.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim();
  return flat.length > MAX_REASON_LENGTH ? `${flat.slice(0, MAX_REASON_LENGTH)}…` : flat;
}

/**
 * The server's own reason in an error body: protocol v1's `{ error: { code, message } }`, a
 * problem's `detail` or `title`, or a top-level `message`.
 */
export function serverReason(body: JsonValue | undefined): string | undefined {
  if (!isJsonObject(body)) return undefined;
  const error = body['error'];
  if (isJsonObject(error)) {
    const message = error['message'];
    const code = error['code'];
    if (typeof message === 'string' && message !== '') return clean(message);
    if (typeof code === 'string' && code !== '') return clean(code);
  }
  if (typeof error === 'string' && error !== '') return clean(error);
  for (const name of ['detail', 'title', 'message']) {
    const value = body[name];
    if (typeof value === 'string' && value !== '') return clean(value);
  }
  return undefined;
}

/** Whether a 409 is the "request with this key still in progress" problem (FAULTS.md 19). */
export function isInProgressProblem(response: ReadResponse): boolean {
  if (
    response.status !== 409 ||
    mediaType(response.headers.get('content-type')) !== 'application/problem+json'
  ) {
    return false;
  }
  const body = jsonBodyOf(response);
  return isJsonObject(body) && body['type'] === IN_PROGRESS_PROBLEM_TYPE;
}

/** The response's `Retry-After` as a delay, against its `Date` header when it has one. */
export function retryAfterOf(response: ReadResponse, now: () => number): number | undefined {
  return parseRetryAfter(response.headers.get('retry-after'), {
    now: now(),
    serverDate: response.headers.get('date'),
  });
}

/** A `retryable` failure, with the response's `Retry-After` when it has one. */
function retryable(
  response: ReadResponse,
  code: string,
  message: string,
  now: () => number,
): TransportFailure {
  const retryAfterMs = retryAfterOf(response, now);
  return {
    class: 'retryable',
    code,
    message,
    status: response.status,
    ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
  };
}

/** The failure of a 2xx response that is not a valid answer. */
export function badResponse(response: ReadResponse, message: string): TransportFailure {
  return { class: 'retryable', code: 'bad-response', message, status: response.status };
}

/** Where a non-2xx status was received: the protocol's batch endpoint, or one REST mutation. */
export type StatusTarget = { readonly kind: 'batch' } | { readonly kind: 'item'; readonly op: string };

/**
 * The failure a non-2xx response stands for, except conflicts (409/412 that are not the
 * in-progress problem), which the caller reports with the server's version and data:
 *
 * | response | failure |
 * |---|---|
 * | status 0 (opaque redirect), 3xx | `retryable` `bad-response` — never followed, never a success |
 * | 401 | `auth` `http-401` |
 * | 409 `application/problem+json` in-progress | `retryable` `in-progress` |
 * | 404/410 from the batch endpoint | `retryable` `endpoint-not-found` (never `gone`) |
 * | 404/410 for one REST mutation | `gone` for update/delete, `rejected` for create/custom |
 * | 408, 425, 429, 5xx, 1xx | `retryable` `http-<status>`, with `retryAfterMs` |
 * | other 4xx | `rejected` `http-<status>`, with the server's reason |
 *
 * @returns the failure, or `'conflict'` for the caller to build, or `'success'` for 2xx.
 */
export function failureOfStatus(
  response: ReadResponse,
  target: StatusTarget,
  now: () => number,
): TransportFailure | 'conflict' | 'success' {
  const { status } = response;
  if (status === 0) return badResponse(response, 'an opaque redirect (status 0) was not followed');
  if (status >= 300 && status < 400) {
    return retryable(response, 'bad-response', `a redirect (${status}) was not followed`, now);
  }
  if (isInProgressProblem(response)) {
    return retryable(
      response,
      'in-progress',
      'a request with this idempotency key is still in progress',
      now,
    );
  }
  const cls = classifyHttpStatus(status, target.kind === 'item' ? target.op : undefined);
  const code = `http-${status}`;
  switch (cls) {
    case 'success':
      return 'success';
    case 'conflict':
      return 'conflict';
    case 'auth':
      return { class: 'auth', code, message: 'the server refused the credentials (401)', status };
    case 'gone':
      if (target.kind === 'batch') {
        // The push endpoint itself is missing (a wrong baseUrl, a proxy, a deploy in progress):
        // `gone` would falsely confirm every delete of the batch.
        return retryable(response, 'endpoint-not-found', `the sync endpoint answered ${status}`, now);
      }
      return { class: 'gone', code, message: `the record is gone (${status})`, status };
    case 'rejected': {
      const reason = serverReason(jsonBodyOf(response));
      const message = `the server rejected the request (${status})${reason === undefined ? '' : `: ${reason}`}`;
      return { class: 'rejected', code, message, status };
    }
    default:
      return retryable(response, code, `the server answered ${status}; try again later`, now);
  }
}
