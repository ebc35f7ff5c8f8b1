/**
 * Failure classification (DESIGN.md section 5): what an HTTP status means for the mutations it
 * answered, and whether the failure counts as an attempt.
 *
 * @packageDocumentation
 */

/**
 * Why a delivery did not confirm a mutation; decides what happens next (DESIGN.md section 5).
 *
 * - `'offline'`: no connection (DNS failure, refused, device offline). The run stops; no attempt is
 *   counted; run-level backoff or a connectivity change restarts it.
 * - `'ambiguous'`: sent, but no answer (timeout, reset mid-response). Resent later with the same
 *   idempotency key; counts as an attempt.
 * - `'retryable'`: the server (or something in between) answered with a transient failure, or the
 *   response was malformed. Per-mutation backoff, never before `Retry-After`; counts.
 * - `'auth'`: 401. Credentials are refreshed once and the request resent; no attempt counted.
 * - `'conflict'`: 409/412 or a per-item conflict; goes to the conflict detector.
 * - `'gone'`: 404/410 on an update or delete; the caller maps it (delete → confirmed, update →
 *   conflict).
 * - `'rejected'`: the server refused the data (other 4xx, a per-item `rejected`): dead letter.
 *
 * @example
 * ```ts
 * import { attemptCounts, type FailureClass } from 'sync-core';
 * const cls: FailureClass = 'offline';
 * attemptCounts(cls); // false
 * ```
 */
export type FailureClass = 'offline' | 'ambiguous' | 'retryable' | 'auth' | 'conflict' | 'gone' | 'rejected';

/**
 * What {@link classifyHttpStatus} returns: a {@link FailureClass}, or `'success'` for 2xx.
 *
 * @example
 * ```ts
 * import { classifyHttpStatus, type HttpStatusClass } from 'sync-core';
 * const cls: HttpStatusClass = classifyHttpStatus(204); // 'success'
 * ```
 */
export type HttpStatusClass = FailureClass | 'success';

/** Statuses that say "try again later" about a request that was fine. */
const RETRYABLE_4XX = new Set([408, 425, 429]);

/**
 * Classify the HTTP status of a response (DESIGN.md section 5's table):
 *
 * | status | class |
 * |---|---|
 * | 2xx | `'success'` |
 * | 408, 425, 429 | `'retryable'` |
 * | 401 | `'auth'` |
 * | 409, 412 (a failed `If-Match`) | `'conflict'` |
 * | 404, 410 | `'gone'` for `update`, `delete` or no `op`; `'rejected'` for `create` and custom ops |
 * | other 4xx (400, 403, 413, 422 …) | `'rejected'` |
 * | every 5xx (500, 502, 503, 504, and 501, 505, 507 …) | `'retryable'` |
 * | 3xx | `'retryable'` |
 * | 1xx, or anything outside 100–599 | `'retryable'` |
 *
 * Choices beyond the table, and why:
 *
 * - **Every 5xx is retryable**, also those that sound permanent (501, 505): a 5xx is the server
 *   admitting its own fault, not a verdict on the data, and is far more often a bad deploy or an
 *   overloaded proxy than a lasting state. Retrying is safe (bounded backoff, same idempotency key,
 *   a `stuck` notice after `stuckAfter`), while dead-lettering would need the user to act.
 * - **A redirect is never a success** (FAULTS.md 14): a 301/302/307 on a write means a
 *   misconfigured proxy, a captive portal or a moved API, usually temporary, so it is retried with
 *   backoff — and never followed with credentials by the fetch adapter.
 * - **A final 1xx or a status outside 100–599** is a malformed response: retryable, like any other
 *   malformed response in the table.
 * - **404/410 → `'gone'`** only means "the record is gone" where a record was addressed: the caller
 *   maps gone-on-delete to confirmed (the goal is reached) and gone-on-update to a conflict (the
 *   record was deleted on the server). For a `create` or a custom op nothing existing was
 *   addressed, so the table's "other 4xx" row applies: `'rejected'`. Without `op` (a batch-level
 *   status) `'gone'` is returned and the caller decides — note that a 404 from a batch endpoint such
 *   as protocol v1's `/sync/push` means the *endpoint* is missing and must not confirm deletes.
 * - **409 is always `'conflict'`** here; telling apart a "request with this key still in progress"
 *   409 (FAULTS.md 19, retry unchanged) needs the response body, which is the adapter's job.
 *
 * @param status - The response's HTTP status code.
 * @param op - The operation of the mutation the response answers, when it answers exactly one.
 * @returns The class of the outcome.
 *
 * @example
 * ```ts
 * import { classifyHttpStatus } from 'sync-core';
 * classifyHttpStatus(503); // 'retryable'
 * classifyHttpStatus(404, 'delete'); // 'gone' → treat as confirmed
 * classifyHttpStatus(422, 'create'); // 'rejected'
 * ```
 */
export function classifyHttpStatus(status: number, op?: string): HttpStatusClass {
  if (!Number.isInteger(status) || status < 100 || status > 599) return 'retryable';
  if (status >= 200 && status < 300) return 'success';
  // 1xx, 3xx and 5xx.
  if (status < 400 || status >= 500) return 'retryable';
  if (RETRYABLE_4XX.has(status)) return 'retryable';
  if (status === 401) return 'auth';
  if (status === 409 || status === 412) return 'conflict';
  if (status === 404 || status === 410) {
    return op === undefined || op === 'update' || op === 'delete' ? 'gone' : 'rejected';
  }
  return 'rejected';
}

/**
 * Whether a failure of this class counts towards the mutation's `attempts` (and so towards its
 * backoff and `maxAttempts`).
 *
 * `'offline'` and `'auth'` never count (DESIGN.md invariant 4): the request never reached the
 * server, or was refused for the device's credentials, not for the mutation — a week offline must
 * not exhaust a queue. Every other class counts: `'ambiguous'` and `'retryable'` so that a batch
 * that hangs or breaks the server backs off instead of hammering it, and `'conflict'`, `'gone'` and
 * `'rejected'` because the server did receive and judge the mutation (a client-wins conflict that
 * keeps recurring is bounded by `maxAttempts` too).
 *
 * @example
 * ```ts
 * import { attemptCounts } from 'sync-core';
 * attemptCounts('offline'); // false
 * attemptCounts('retryable'); // true
 * ```
 */
export function attemptCounts(cls: FailureClass): boolean {
  return cls !== 'offline' && cls !== 'auth';
}
