/**
 * The network port: how the core sends a batch of mutations and learns what became of each.
 *
 * The port speaks in batches and results, not HTTP: an adapter maps them to a wire protocol
 * (`sync-core/fetch` implements protocol v1 and a REST-resource mode). Every retry, backoff and
 * conflict decision stays in the core; an adapter only reports what happened, faithfully.
 *
 * @packageDocumentation
 */

import type { JsonValue, Scope, Version } from './records.js';

/** A mutation as it goes over the wire. */
export interface OutgoingMutation {
  /** The mutation's id: results are matched to it. */
  readonly id: string;
  /** The idempotency key, identical on every resend of this mutation. */
  readonly key: string;
  readonly op: string;
  readonly entityId: string;
  readonly baseVersion: Version | null;
  readonly data: JsonValue | null;
  /** When the mutation was enqueued, as an ISO-8601 string (the device's clock). */
  readonly clientTime: string;
  /** Ids of mutations it depends on (already confirmed by the time it is sent). */
  readonly dependsOn: readonly string[];
}

/** One batch: mutations of one entity type, one scope. */
export interface PushRequest {
  readonly entity: string;
  /** The scope the mutations belong to; send them with this scope's credentials only. */
  readonly scope: Scope;
  /** The device id (stable per database). */
  readonly clientId: string;
  /** At least one; at most one per record (the core never sends two mutations of one record). */
  readonly mutations: readonly OutgoingMutation[];
  /**
   * Aborted when the run's deadline arrives or the host aborts the run. The adapter must abort
   * its requests and answer (resolve or reject) promptly; the core releases the claims of an
   * aborted batch without counting an attempt.
   */
  readonly signal: AbortSignal;
}

/**
 * Why a request (or a whole batch) did not produce results, classified as DESIGN.md section 5 says.
 *
 * - `offline`: no connection was made (DNS failure, refused, device offline). Nothing reached the
 *   server. No attempt is counted; the run stops.
 * - `ambiguous`: sent, but no usable answer (timeout, reset mid-response): the server may have
 *   applied it. Resent later with the same key; counts an attempt.
 * - `retryable`: the server answered "not now" (408, 425, 429, 5xx) or answered something that is
 *   not a valid response (`code: 'bad-response'`: HTML from a captive portal, wrong schema, a
 *   redirect). Counts an attempt; `retryAfterMs` is honoured.
 * - `auth`: 401. The core refreshes credentials once and resends; a second 401 pauses sync.
 * - `conflict`: 409/412 (a version conflict on the whole request).
 * - `gone`: 404/410 for the record.
 * - `rejected`: any other 4xx: the server refused the content; dead letter.
 * - `aborted`: the request was aborted through `signal`. No attempt is counted.
 */
export interface TransportFailure {
  readonly class:
    | 'offline'
    | 'ambiguous'
    | 'retryable'
    | 'auth'
    | 'conflict'
    | 'gone'
    | 'rejected'
    | 'aborted';
  /** A stable code: `'http-503'`, `'bad-response'`, `'timeout'`, `'econnrefused'`, `'in-progress'`… */
  readonly code: string;
  /** Short reason for logs and the status store; never contains payloads or credentials. */
  readonly message: string;
  /** The HTTP status, when there was a response. */
  readonly status?: number;
  /** The server's Retry-After, resolved to a delay in ms (against the server's `Date` header). */
  readonly retryAfterMs?: number;
  /** For `conflict`: the server's current version and data, when it sent them. */
  readonly serverVersion?: Version | null;
  readonly serverData?: JsonValue | null;
}

/** What the server said about one mutation. */
export type PushItemResult =
  /** Applied now. `entityId` is set when the server assigned its own id to a create. */
  | {
      readonly id: string;
      readonly status: 'applied';
      readonly version?: Version;
      readonly entityId?: string;
    }
  /** Applied earlier (a resend): the original result's version and id are replayed. */
  | {
      readonly id: string;
      readonly status: 'duplicate';
      readonly version?: Version;
      readonly entityId?: string;
    }
  /** Not applied: the record changed since `baseVersion`. */
  | {
      readonly id: string;
      readonly status: 'conflict';
      readonly version?: Version | null;
      readonly data?: JsonValue | null;
    }
  /** Not applied, and never will be as is: dead letter with the server's reason. */
  | {
      readonly id: string;
      readonly status: 'rejected';
      readonly error: { readonly code: string; readonly message: string };
    }
  /** Not applied now; send again later (not before `retryAfterMs`). */
  | { readonly id: string; readonly status: 'retry'; readonly retryAfterMs?: number }
  /** This mutation's own request failed (REST-resource mode sends one request per mutation). */
  | { readonly id: string; readonly status: 'failed'; readonly failure: TransportFailure };

/**
 * The answer to a {@link PushRequest}: one result per mutation sent (in any order), or one failure
 * for the whole batch.
 */
export type PushResponse =
  | { readonly type: 'results'; readonly results: readonly PushItemResult[] }
  | { readonly type: 'failure'; readonly failure: TransportFailure };

/** One page of changes to pull: DESIGN.md section 8, `GET /sync/pull`. */
export interface PullRequest {
  readonly entity: string;
  /** The scope whose data is pulled, with its credentials. */
  readonly scope: Scope;
  readonly clientId: string;
  /** The cursor the previous page returned, or `null` for the first pull of this entity type. */
  readonly cursor: string | null;
  /** At most this many changes. */
  readonly limit: number;
  readonly signal: AbortSignal;
}

/** A change the server reports for one record. */
export type PullChange =
  | { readonly entityId: string; readonly op: 'upsert'; readonly version: Version; readonly data: JsonValue }
  | { readonly entityId: string; readonly op: 'delete'; readonly version: Version };

/** The answer to a {@link PullRequest}. */
export type PullResponse =
  | {
      readonly type: 'page';
      readonly changes: readonly PullChange[];
      /** Where the next page starts; stored only once this page is applied. */
      readonly cursor: string;
      readonly hasMore: boolean;
    }
  | { readonly type: 'failure'; readonly failure: TransportFailure };

/**
 * Sends batches for the core. Implement it to speak any protocol; `sync-core/fetch` is the
 * built-in one.
 *
 * Guarantees an adapter must give:
 * - {@link NetworkAdapter.push} resolves with a {@link PushResponse}; it rejects only for a bug,
 *   never for a network or server failure (those are `failure` responses). A rejection is treated
 *   as an `ambiguous` failure of the batch.
 * - Results are reported only for mutations of the request, at most one each; a mutation missing
 *   from `results` is retried as a `bad-response` with an attempt counted (the core cannot know
 *   whether it was applied, and resends it with the same key).
 * - An adapter that sends one request per mutation reports each request's failure as a `failed`
 *   item. After an `offline`, `auth` or `aborted` failure it should not start the remaining
 *   requests, and report them with the same failure: the core stops the run on `offline` and
 *   `aborted`, and refreshes credentials then resends the `auth` items once.
 * - `gone` is for a record that does not exist. A 404 from a batch endpoint means the endpoint is
 *   missing; reporting it as `gone` would confirm every delete of the batch falsely.
 * - A credentials provider that fails is an `auth` failure: the core refreshes once, then pauses.
 * - A success is reported only on a valid answer from the server: a redirect, an HTML page or a
 *   body that fails the protocol's schema is a `retryable` `bad-response`, never a confirmation.
 * - Credentials are those of `request.scope`, obtained per request; the adapter never stores them
 *   beyond the request.
 */
export interface NetworkAdapter {
  /** Send one batch of one entity type. */
  push(request: PushRequest): Promise<PushResponse>;
  /**
   * Refresh the credentials of `scope` after a 401, e.g. with a refresh token. The core calls it
   * at most once at a time (single flight), then resends. Resolve `false` (or omit the method)
   * when credentials cannot be refreshed: sync then pauses with `auth-required`.
   */
  refreshCredentials?(scope: Scope, signal: AbortSignal): Promise<boolean>;
  /**
   * Fetch one page of changes since a cursor. Optional: without it, entity types with a pull
   * handler are not pulled. Same rules as `push`: never rejects for network or server failures,
   * and a page is returned only for a valid answer (validated against the protocol's schema).
   */
  pull?(request: PullRequest): Promise<PullResponse>;
}
