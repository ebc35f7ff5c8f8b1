/**
 * The faults a {@link FaultyNetwork} injects, and the transport failure each one produces —
 * classified as the fetch adapter classifies the real thing (DESIGN.md section 5, FAULTS.md 11–24).
 *
 * @packageDocumentation
 */

import { classifyHttpStatus } from '../backoff/classify.js';
import type { TransportFailure } from '../contracts/network-adapter.js';
import { ConfigError } from '../errors.js';

/**
 * What a `partial` fault does with one item of the batch.
 *
 * @example
 * ```ts
 * import type { Fault, PartialItemFault } from 'sync-core/testing';
 * const pattern: PartialItemFault[] = ['apply', 'retry', 'reject'];
 * const fault: Fault = { kind: 'partial', pattern };
 * ```
 */
export type PartialItemFault = 'apply' | 'retry' | 'reject';

/**
 * One injected fault, for one request.
 *
 * | kind | reaches the server? | the client gets |
 * |---|---|---|
 * | `offline` | no | `offline` `econnrefused` (no attempt counted, the run stops) |
 * | `reset-before` | no | `ambiguous` `econnreset` |
 * | `reset-after` | yes, committed | `ambiguous` `econnreset`: applied, but the client cannot know |
 * | `timeout-after-commit` | yes, committed | `ambiguous` `timeout` |
 * | `status` | no (answered before applying) | the status as the fetch adapter classifies it: 401 `auth`; 408, 425, 429, 5xx `retryable` with `retryAfterMs`; 409/412 `conflict`; 404/410 `retryable` `endpoint-not-found`; 3xx `retryable` `bad-response`; other 4xx `rejected` |
 * | `partial` | yes | per item: `retry` (not applied), `rejected` (not applied, remembered) or the server's own result |
 * | `malformed` | yes, committed | `retryable` `bad-response`: a 200 whose body fails the schema must never confirm |
 * | `unauthorized-until-refresh` | no | `auth` `http-401` for this and every later request until `refreshCredentials` succeeds |
 *
 * Pull requests take the same faults; `partial` does nothing to a pull, and for a pull
 * "committed" only means the page was read.
 *
 * @example
 * ```ts
 * import type { Fault } from 'sync-core/testing';
 * const schedule: Fault[] = [
 *   { kind: 'timeout-after-commit' },
 *   { kind: 'status', status: 503, retryAfterMs: 120_000 },
 *   { kind: 'partial', pattern: ['apply', 'retry', 'reject'] },
 * ];
 * ```
 */
export type Fault =
  | { readonly kind: 'offline' }
  | { readonly kind: 'reset-before' }
  | { readonly kind: 'reset-after' }
  | { readonly kind: 'timeout-after-commit' }
  | {
      readonly kind: 'status';
      /** A non-2xx HTTP status (100–599). */
      readonly status: number;
      /** The server's Retry-After as a delay, reported on retryable statuses only. */
      readonly retryAfterMs?: number;
    }
  | {
      readonly kind: 'partial';
      /** Mutation ids answered `retry`. */
      readonly retryIds?: readonly string[];
      /** Mutation ids answered `rejected`. */
      readonly rejectIds?: readonly string[];
      /**
       * For items named by neither list: what happens to the i-th item of the batch is
       * `pattern[i % pattern.length]`. Without ids and pattern, items are picked with the
       * network's {@link FaultyNetworkOptions.random}: a third `retry`, a sixth `reject`.
       */
      readonly pattern?: readonly PartialItemFault[];
      /** `retryAfterMs` of the `retry` results. @default 1000 */
      readonly retryAfterMs?: number;
    }
  | { readonly kind: 'malformed' }
  | { readonly kind: 'unauthorized-until-refresh' };

/**
 * The `kind` of a {@link Fault}.
 *
 * @example
 * ```ts
 * import { FAULT_KINDS, type FaultKind } from 'sync-core/testing';
 * const transient: FaultKind[] = FAULT_KINDS.filter((k) => k !== 'status' && k !== 'partial');
 * ```
 */
export type FaultKind = Fault['kind'];

/**
 * Every fault kind, in the order of the table of {@link Fault}.
 *
 * @example
 * ```ts
 * import { FAULT_KINDS } from 'sync-core/testing';
 * FAULT_KINDS.includes('malformed'); // true
 * ```
 */
export const FAULT_KINDS: readonly FaultKind[] = Object.freeze([
  'offline',
  'reset-before',
  'reset-after',
  'timeout-after-commit',
  'status',
  'partial',
  'malformed',
  'unauthorized-until-refresh',
]);

/**
 * Whether the server processes (and, for a push, commits) a request that meets this fault.
 *
 * @example
 * ```ts
 * import { faultReachesServer } from 'sync-core/testing';
 * faultReachesServer({ kind: 'reset-after' }); // true: applied, the client sees a reset
 * faultReachesServer({ kind: 'offline' }); // false
 * ```
 */
export function faultReachesServer(fault: Fault | undefined): boolean {
  if (fault === undefined) return true;
  switch (fault.kind) {
    case 'reset-after':
    case 'timeout-after-commit':
    case 'partial':
    case 'malformed':
      return true;
    default:
      return false;
  }
}

const PARTIAL_ITEMS: ReadonlySet<string> = new Set<PartialItemFault>(['apply', 'retry', 'reject']);

function stringArray(value: unknown): boolean {
  return Array.isArray(value) && value.every((v) => typeof v === 'string');
}

/**
 * Check a fault's shape, so a typo in a schedule fails the test at once instead of looking like a
 * network failure.
 *
 * @param where - Named in the error, e.g. `'schedule[3]'`.
 * @throws ConfigError naming what is wrong ("expected X, got Y").
 *
 * @example
 * ```ts
 * import { checkFault } from 'sync-core/testing';
 * checkFault({ kind: 'status', status: 503 }); // returns it
 * // checkFault({ kind: 'status', status: 200 }) throws: a 2xx is not a fault
 * ```
 */
export function checkFault(fault: unknown, where = 'fault'): Fault {
  const kind = (fault as { kind?: unknown } | null)?.kind;
  if (typeof fault !== 'object' || fault === null || !FAULT_KINDS.includes(kind as FaultKind)) {
    throw new ConfigError(
      `${where}: expected a fault with kind ${FAULT_KINDS.join(' | ')}, got ${JSON.stringify(fault)}`,
    );
  }
  const f = fault as Fault;
  if (f.kind === 'status') {
    if (
      !Number.isInteger(f.status) ||
      f.status < 100 ||
      f.status > 599 ||
      (f.status >= 200 && f.status < 300)
    ) {
      throw new ConfigError(
        `${where}.status: expected a non-2xx HTTP status from 100 to 599, got ${String(f.status)}`,
      );
    }
    if (f.retryAfterMs !== undefined && !(Number.isFinite(f.retryAfterMs) && f.retryAfterMs >= 0)) {
      throw new ConfigError(`${where}.retryAfterMs: expected a number ≥ 0, got ${String(f.retryAfterMs)}`);
    }
  }
  if (f.kind === 'partial') {
    if (f.retryIds !== undefined && !stringArray(f.retryIds)) {
      throw new ConfigError(`${where}.retryIds: expected an array of mutation ids`);
    }
    if (f.rejectIds !== undefined && !stringArray(f.rejectIds)) {
      throw new ConfigError(`${where}.rejectIds: expected an array of mutation ids`);
    }
    if (
      f.pattern !== undefined &&
      (!Array.isArray(f.pattern) || f.pattern.length === 0 || !f.pattern.every((p) => PARTIAL_ITEMS.has(p)))
    ) {
      throw new ConfigError(`${where}.pattern: expected a non-empty array of 'apply' | 'retry' | 'reject'`);
    }
    if (f.retryAfterMs !== undefined && !(Number.isFinite(f.retryAfterMs) && f.retryAfterMs >= 0)) {
      throw new ConfigError(`${where}.retryAfterMs: expected a number ≥ 0, got ${String(f.retryAfterMs)}`);
    }
  }
  return f;
}

/**
 * The failure a whole batch gets for a non-2xx status, as the fetch adapter reports it from a
 * batch endpoint (`/sync/push`, `/sync/pull`).
 *
 * @example
 * ```ts
 * import { failureOfStatus } from 'sync-core/testing';
 * failureOfStatus(429, 120_000); // { class: 'retryable', code: 'http-429', status: 429, retryAfterMs: 120000, … }
 * failureOfStatus(422); // { class: 'rejected', code: 'http-422', status: 422, … }
 * ```
 */
export function failureOfStatus(status: number, retryAfterMs?: number): TransportFailure {
  const retryable = (code: string, message: string): TransportFailure =>
    retryAfterMs === undefined
      ? { class: 'retryable', code, message, status }
      : { class: 'retryable', code, message, status, retryAfterMs };
  if (status >= 300 && status < 400)
    return retryable('bad-response', `a redirect (${status}) was not followed`);
  switch (classifyHttpStatus(status)) {
    case 'auth':
      return { class: 'auth', code: 'http-401', message: 'the server refused the credentials (401)', status };
    case 'conflict':
      return {
        class: 'conflict',
        code: `http-${status}`,
        message: `the server reported a conflict (${status})`,
        status,
      };
    case 'gone':
      // From a batch endpoint a 404/410 means the endpoint is missing, never that records are gone.
      return retryable('endpoint-not-found', `the sync endpoint answered ${status}`);
    case 'rejected':
      return {
        class: 'rejected',
        code: `http-${status}`,
        message: `the server rejected the request (${status}) (fault)`,
        status,
      };
    case 'success':
      throw new ConfigError(`failureOfStatus(status): expected a non-2xx status, got ${status}`);
    default:
      return retryable(`http-${status}`, `the server answered ${status}; try again later`);
  }
}

/**
 * The failure the client sees for a fault that is not `status` or `partial`.
 * @internal
 */
export function failureOfFault(kind: Exclude<FaultKind, 'status' | 'partial'>): TransportFailure {
  switch (kind) {
    case 'offline':
      return {
        class: 'offline',
        code: 'econnrefused',
        message: 'the connection was refused (fault: offline)',
      };
    case 'reset-before':
      return {
        class: 'ambiguous',
        code: 'econnreset',
        message: 'the connection was reset before the request reached the server (fault: reset-before)',
      };
    case 'reset-after':
      return {
        class: 'ambiguous',
        code: 'econnreset',
        message: 'the connection was reset while reading the response (fault: reset-after)',
      };
    case 'timeout-after-commit':
      return {
        class: 'ambiguous',
        code: 'timeout',
        message: 'no complete response in time (fault: timeout-after-commit)',
      };
    case 'malformed':
      return {
        class: 'retryable',
        code: 'bad-response',
        message: 'the 200 response failed the protocol schema (fault: malformed)',
        status: 200,
      };
    case 'unauthorized-until-refresh':
      return {
        class: 'auth',
        code: 'http-401',
        message: 'the server refused the credentials (401)',
        status: 401,
      };
  }
}
