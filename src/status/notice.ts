/**
 * Notices: what the foreground app should show, quietly, on its next launch ("12 activities synced
 * while you were away", "1 change needs your attention"). Written by background runs into
 * `sync_notices`; unseen until the app acknowledges them.
 *
 * @packageDocumentation
 */

import type { Scope, Version } from '../contracts/records.js';

/** The kinds of notice. */
export type NoticeKind = 'synced' | 'failed' | 'conflict' | 'overwritten' | 'auth-required' | 'stuck';

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

/**
 * A change made on this device was dropped because the server's version won a conflict: raised when
 * the entity type's conflict strategy is `'server-wins'` and the server answers a mutation with a
 * version conflict (a stale base version, or an update of a record the server no longer has). One
 * per dropped mutation, in the transaction that removes it from the queue, so the notice and the
 * drop survive a crash together. The app's own row keeps the local edit until a pull brings the
 * server's version over it; the user may want to look at the record and make the change again.
 *
 * Not raised when the app itself keeps the server's side of a manual conflict
 * (`resolveConflict(id, { keep: 'server' })`): the user chose it. Holds no payload, local or
 * server's.
 *
 * @example
 * ```ts
 * import type { Notice, OverwrittenNotice } from 'sync-core';
 *
 * const notices: Notice[] = await engine.status.unseenNotices();
 * const overwritten = notices.filter((n): n is OverwrittenNotice => n.kind === 'overwritten');
 * for (const n of overwritten) markRecordForReview(n.entity, n.entityId, n.serverVersion);
 * ```
 */
export interface OverwrittenNotice extends NoticeBase {
  readonly kind: 'overwritten';
  readonly entity: string;
  readonly entityId: string;
  /** The dropped mutation (it is no longer in the queue). */
  readonly mutationId: string;
  /**
   * The version the server reported for the record, or `null` when it reported none (a `404`/`410`
   * to an update: the record is gone on the server).
   */
  readonly serverVersion: Version | null;
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
export type Notice =
  | SyncedNotice
  | FailedNotice
  | ConflictNotice
  | OverwrittenNotice
  | AuthRequiredNotice
  | StuckNotice;
