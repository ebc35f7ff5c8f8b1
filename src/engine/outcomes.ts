import { type BackoffPolicy, backoffDelay, isExhausted, nextAttemptDelay } from '../backoff/index.js';
import type { ResolvedEntity } from '../config.js';
import { decideConflict } from '../conflict/conflict-strategy.js';
import type { RandomSource } from '../contracts/clock.js';
import type { PushItemResult, TransportFailure } from '../contracts/network-adapter.js';
import type { JsonValue, Mutation, MutationError, Version } from '../contracts/records.js';
import type { MutationOutcome } from '../queue/mutation-queue.js';

/** How one mutation's result counts in the run report and which event it raises. */
export type OutcomeKind = 'confirmed' | 'retried' | 'failed' | 'conflicted' | 'released' | 'resolved';

/** What the server said about the record in a conflict. */
export interface ServerSide {
  readonly version: Version | null;
  readonly data: JsonValue | null;
}

/** A decided outcome for one claimed mutation. */
export interface Decision {
  readonly mutation: Mutation;
  readonly outcome: MutationOutcome;
  readonly kind: OutcomeKind;
  /** For confirmations: the version the server reported. */
  readonly version?: Version;
  /** For confirmed creates: the id the server assigned, when it differs from the client's. */
  readonly assignedId?: string;
  /** For conflicts: the server's side, and how the entity's strategy resolved it. */
  readonly conflict?: ServerSide & {
    readonly resolution: 'manual' | 'server-wins' | 'client-wins' | 'merge';
  };
  /** The failure class behind a non-confirmation, for run-level decisions (offline stops the run). */
  readonly failureClass?: TransportFailure['class'];
}

/** What the decision functions need besides the result. */
export interface DecisionContext {
  readonly now: number;
  readonly policy: BackoffPolicy;
  readonly random: RandomSource;
  readonly retryAfterCeilingMs: number;
  readonly entities: ReadonlyMap<string, ResolvedEntity>;
  /** How many times one mutation may be rebased by client-wins or a merge before going manual. */
  readonly maxConflictRebases: number;
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

/**
 * A request aborted while in flight (deadline, host signal): no attempt is counted (the budget
 * ran out, not the server's patience), but it is not due again at once either: a server slower
 * than the OS's background budget would otherwise get the same batch on every wake-up.
 */
function abortedInFlight(mutation: Mutation, ctx: DecisionContext): Decision {
  const delay = backoffDelay(ctx.policy, mutation.attempts + 1, ctx.random);
  return {
    mutation,
    kind: 'released',
    failureClass: 'aborted',
    outcome: {
      type: 'retry',
      countsAttempt: false,
      nextAttemptAt: ctx.now + delay,
      error: { code: 'aborted', message: 'the request was cut off by the run deadline or an abort' },
    },
  };
}

/**
 * A version conflict, resolved by the entity type's strategy (DESIGN.md section 6): manual
 * (stored, waits for the user), server-wins (dropped; bookkeeping raises its `overwritten` notice),
 * client-wins or a merge (rebased on the server's version and sent again at once). Never retried
 * blindly: a rebase carries the version the server reported, and a record that keeps conflicting
 * falls back to manual.
 */
function conflict(mutation: Mutation, server: ServerSide, ctx: DecisionContext, message?: string): Decision {
  const entity = ctx.entities.get(mutation.entity);
  const detail = server.version === null ? '' : ` (server version ${String(server.version)})`;
  const error: MutationError = {
    code: 'conflict',
    message: message ?? `the record changed on the server${detail}`,
  };
  const decision = decideConflict(
    entity?.conflict ?? 'manual',
    mutation.data,
    server.data,
    {
      mutationId: mutation.id,
      entity: mutation.entity,
      entityId: mutation.entityId,
      op: mutation.op,
      baseVersion: mutation.baseVersion,
      serverVersion: server.version,
    },
    mutation.attempts,
    ctx.maxConflictRebases,
  );
  switch (decision.type) {
    case 'drop':
      return {
        mutation,
        kind: 'resolved',
        failureClass: 'conflict',
        outcome: { type: 'drop' },
        conflict: { ...server, resolution: 'server-wins' },
      };
    case 'rebase':
      return {
        mutation,
        kind: 'resolved',
        failureClass: 'conflict',
        outcome: { type: 'rebase', data: decision.data, baseVersion: server.version, error },
        conflict: { ...server, resolution: decision.how },
      };
    case 'manual':
      return {
        mutation,
        kind: 'conflicted',
        failureClass: 'conflict',
        outcome: { type: 'conflict', countsAttempt: true, error },
        conflict: { ...server, resolution: 'manual' },
      };
  }
}

function rejected(mutation: Mutation, error: MutationError): Decision {
  return {
    mutation,
    kind: 'failed',
    failureClass: 'rejected',
    outcome: { type: 'failed', countsAttempt: true, error },
  };
}

/**
 * Decide what a transport failure means for one mutation, per DESIGN.md section 5.
 * `auth` is decided by the caller (refresh, resend, pause); here it only releases the claim.
 *
 * @param sent - whether the request was handed to the network (an abort then cut it in flight).
 */
export function decideFailure(
  mutation: Mutation,
  failure: TransportFailure,
  ctx: DecisionContext,
  sent = true,
): Decision {
  switch (failure.class) {
    case 'offline':
    case 'auth':
      // Nothing reached the server, or it refused who we are: no attempt counted.
      return release(mutation, failure.class);
    case 'aborted':
      return sent ? abortedInFlight(mutation, ctx) : release(mutation, 'aborted');
    case 'ambiguous':
    case 'retryable':
      return { ...retry(mutation, errorOf(failure), ctx, failure.retryAfterMs), failureClass: failure.class };
    case 'conflict':
      return conflict(
        mutation,
        { version: failure.serverVersion ?? null, data: failure.serverData ?? null },
        ctx,
      );
    case 'gone':
      // A delete of a record that no longer exists achieved what it wanted; an update cannot.
      if (mutation.op === 'delete') return { mutation, kind: 'confirmed', outcome: { type: 'confirmed' } };
      if (mutation.op === 'update') {
        return conflict(
          mutation,
          { version: null, data: null },
          ctx,
          'the record no longer exists on the server',
        );
      }
      return rejected(mutation, errorOf(failure));
    case 'rejected':
      return rejected(mutation, errorOf(failure));
  }
}

/** Decide what one per-item result means for its mutation. */
export function decideResult(mutation: Mutation, result: PushItemResult, ctx: DecisionContext): Decision {
  switch (result.status) {
    case 'applied':
    case 'duplicate': {
      const assigned =
        mutation.op === 'create' &&
        typeof result.entityId === 'string' &&
        result.entityId !== mutation.entityId
          ? { assignedId: result.entityId }
          : {};
      return {
        mutation,
        kind: 'confirmed',
        outcome: { type: 'confirmed' },
        ...(result.version === undefined ? {} : { version: result.version }),
        ...assigned,
      };
    }
    case 'conflict':
      return conflict(mutation, { version: result.version ?? null, data: result.data ?? null }, ctx);
    case 'rejected':
      return rejected(mutation, { code: `rejected:${result.error.code}`, message: result.error.message });
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
