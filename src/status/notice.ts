/**
 * Notices: what the foreground app should show, quietly, on its next launch ("12 activities synced
 * while you were away", "1 change needs your attention"). Written by background runs into
 * `sync_notices`; unseen until the app acknowledges them.
 *
 * @packageDocumentation
 */

import type { Scope } from '../contracts/records.js';

/** The kinds of notice. */
export type NoticeKind = 'synced' | 'failed' | 'conflict' | 'auth-required' | 'stuck';

/** Fields every notice has. */
export interface NoticeBase {
  /** Stable id, for `acknowledge`. */
  readonly id: string;
  readonly kind: NoticeKind;
  /** The user the notice belongs to. */
  readonly scope: Scope;
  /** When it was first raised (ms since epoch). */
  readonly createdAt: number;
  /** When it last changed (a `synced` notice accumulates counts until acknowledged). */
  readonly updatedAt: number;
  /** When the app acknowledged it, or `null` while unseen. */
  readonly seenAt: number | null;
}

/**
 * Changes delivered by runs since the last acknowledged `synced` notice, per entity type. One
 * unseen `synced` notice per scope accumulates until acknowledged.
 */
export interface SyncedNotice extends NoticeBase {
  readonly kind: 'synced';
  /** Mutations confirmed, per entity type. */
  readonly counts: Readonly<Record<string, number>>;
  /** The sum of `counts`. */
  readonly total: number;
}

/** A mutation was dead-lettered (rejected by the server, or out of attempts). One per mutation. */
export interface FailedNotice extends NoticeBase {
  readonly kind: 'failed';
  readonly entity: string;
  readonly entityId: string;
  readonly mutationId: string;
  /** The failure code (`rejected:invalid`, `exhausted`, `http-422`…). */
  readonly code: string;
  /** The server's reason, when it gave one. May be shown to the user. */
  readonly message: string;
}

/** A conflict waits for the user (strategy `manual`). One per conflicted mutation. */
export interface ConflictNotice extends NoticeBase {
  readonly kind: 'conflict';
  readonly entity: string;
  readonly entityId: string;
  readonly mutationId: string;
}

/** Credentials were refused after a refresh: the user must sign in again. At most one unseen. */
export interface AuthRequiredNotice extends NoticeBase {
  readonly kind: 'auth-required';
}

/**
 * A mutation is still unconfirmed `stuckAfter` (default 24 h) after it was queued, and keeps
 * retrying. One per mutation.
 */
export interface StuckNotice extends NoticeBase {
  readonly kind: 'stuck';
  readonly entity: string;
  readonly entityId: string;
  readonly mutationId: string;
  /** When the mutation was queued. */
  readonly since: number;
}

/** Any notice. Narrow on `kind`. */
export type Notice = SyncedNotice | FailedNotice | ConflictNotice | AuthRequiredNotice | StuckNotice;
