import { type BackoffPolicy, isExhausted, nextAttemptDelay } from '../backoff/index.js';
import type { RandomSource } from '../contracts/clock.js';
import type { PushItemResult, TransportFailure } from '../contracts/network-adapter.js';
import type { Mutation, MutationError, Version } from '../contracts/records.js';
import type { MutationOutcome } from '../queue/mutation-queue.js';

/** How one mutation's result counts in the run report and which event it raises. */
export type OutcomeKind = 'confirmed' | 'retried' | 'failed' | 'conflicted' | 'released';

/** A decided outcome for one claimed mutation. */
export interface Decision {
  readonly mutation: Mutation;
  readonly outcome: MutationOutcome;
  readonly kind: OutcomeKind;
  /** For confirmations: the version the server reported. */
  readonly version?: Version;
  /** The failure class behind a non-confirmation, for run-level decisions (offline stops the run). */
  readonly failureClass?: TransportFailure['class'];
}

/** What the decision functions need besides the result. */
export interface DecisionContext {
  readonly now: number;
  readonly policy: BackoffPolicy;
  readonly random: RandomSource;
  readonly retryAfterCeilingMs: number;
}

function errorOf(failure: TransportFailure): MutationError {
  return failure.status === undefined
    ? { code: failure.code, message: failure.message }
    : { code: failure.code, message: failure.message, status: failure.status };
}

/**
 * A retryable outcome with per-mutation backoff, or a dead letter when the attempt budget is
 * spent (`exhausted`). Never scheduled before the server's Retry-After (DESIGN.md invariant 4).
 */
function retry(
  mutation: Mutation,
  error: MutationError,
  ctx: DecisionContext,
  retryAfterMs?: number,
): Decision {
  const attempt = mutation.attempts + 1;
  if (isExhausted(ctx.policy, attempt)) {
    return {
      mutation,
      kind: 'failed',
      outcome: {
        type: 'failed',
        countsAttempt: true,
        error: {
          ...error,
          code: 'exhausted',
          message: `gave up after ${attempt} attempts; last: ${error.code}`,
        },
      },
    };
  }
  const delay = nextAttemptDelay(ctx.policy, {
    attempt,
    random: ctx.random,
    retryAfterMs,
    retryAfterCeilingMs: ctx.retryAfterCeilingMs,
  });
  return {
    mutation,
    kind: 'retried',
    outcome: { type: 'retry', countsAttempt: true, nextAttemptAt: ctx.now + delay, error },
  };
}

function release(mutation: Mutation, failureClass: TransportFailure['class']): Decision {
  return { mutation, kind: 'released', outcome: { type: 'release' }, failureClass };
}

function conflict(mutation: Mutation, serverVersion: Version | null | undefined, message?: string): Decision {
  const detail =
    serverVersion === undefined || serverVersion === null ? '' : ` (server version ${String(serverVersion)})`;
  return {
    mutation,
    kind: 'conflicted',
    failureClass: 'conflict',
    outcome: {
      type: 'conflict',
      countsAttempt: true,
      error: { code: 'conflict', message: message ?? `the record changed on the server${detail}` },
    },
  };
}

/**
 * Decide what a transport failure means for one mutation, per DESIGN.md section 5.
 * `auth` is decided by the caller (refresh, resend, pause); here it only releases the claim.
 */
export function decideFailure(mutation: Mutation, failure: TransportFailure, ctx: DecisionContext): Decision {
  switch (failure.class) {
    case 'offline':
    case 'aborted':
    case 'auth':
      // Nothing reached the server, or it refused who we are: no attempt counted.
      return release(mutation, failure.class);
    case 'ambiguous':
    case 'retryable':
      return { ...retry(mutation, errorOf(failure), ctx, failure.retryAfterMs), failureClass: failure.class };
    case 'conflict':
      return conflict(mutation, failure.serverVersion);
    case 'gone':
      // A delete of a record that no longer exists achieved what it wanted; an update cannot.
      if (mutation.op === 'delete') return { mutation, kind: 'confirmed', outcome: { type: 'confirmed' } };
      if (mutation.op === 'update')
        return conflict(mutation, null, 'the record no longer exists on the server');
      return {
        mutation,
        kind: 'failed',
        failureClass: 'rejected',
        outcome: { type: 'failed', countsAttempt: true, error: errorOf(failure) },
      };
    case 'rejected':
      return {
        mutation,
        kind: 'failed',
        failureClass: 'rejected',
        outcome: { type: 'failed', countsAttempt: true, error: errorOf(failure) },
      };
  }
}

/** Decide what one per-item result means for its mutation. */
export function decideResult(mutation: Mutation, result: PushItemResult, ctx: DecisionContext): Decision {
  switch (result.status) {
    case 'applied':
    case 'duplicate':
      return {
        mutation,
        kind: 'confirmed',
        outcome: { type: 'confirmed' },
        ...(result.version === undefined ? {} : { version: result.version }),
      };
    case 'conflict':
      return conflict(mutation, result.version);
    case 'rejected':
      return {
        mutation,
        kind: 'failed',
        failureClass: 'rejected',
        outcome: {
          type: 'failed',
          countsAttempt: true,
          error: { code: `rejected:${result.error.code}`, message: result.error.message },
        },
      };
    case 'retry':
      return {
        ...retry(
          mutation,
          { code: 'server-retry', message: 'the server asked to retry this mutation later' },
          ctx,
          result.retryAfterMs,
        ),
        failureClass: 'retryable',
      };
    case 'failed':
      return decideFailure(mutation, result.failure, ctx);
  }
}

/** The decision for a mutation the server's answer did not mention: it may or may not be applied. */
export function decideMissing(mutation: Mutation, ctx: DecisionContext): Decision {
  return {
    ...retry(
      mutation,
      { code: 'bad-response', message: 'the response had no result for this mutation' },
      ctx,
    ),
    failureClass: 'ambiguous',
  };
}
