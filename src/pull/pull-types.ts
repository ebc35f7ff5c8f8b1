import type { AppTransaction } from '../contracts/app-transaction.js';
import type { PullChange } from '../contracts/network-adapter.js';
import type { Scope } from '../contracts/records.js';

/** One page of server changes, handed to the entity type's pull handler. */
export interface PullPage {
  readonly entity: string;
  readonly scope: Scope;
  readonly changes: readonly PullChange[];
  /**
   * Ids (among this page's changes) of records that still have unconfirmed local mutations. A
   * handler usually keeps the local row for those: the local change is on its way and overwriting
   * it would make the app show stale data until it is confirmed.
   */
  readonly pendingEntityIds: ReadonlySet<string>;
}

/**
 * Applies a page of server changes to the app's own tables, through `tx`: the page is applied in
 * the same transaction that advances the pull cursor, so a crash or a deadline between pages never
 * skips or repeats a change. Throwing rolls the page back (the cursor stays) and ends the run with
 * outcome `error` and code `PULL_HANDLER_FAILED`; the next run retries the same page.
 *
 * @example
 * ```ts
 * const pull: PullHandler = async (tx, page) => {
 *   for (const change of page.changes) {
 *     if (page.pendingEntityIds.has(change.entityId)) continue;
 *     if (change.op === 'delete') await tx.run('DELETE FROM activities WHERE id = ?', [change.entityId]);
 *     else await tx.run('INSERT OR REPLACE INTO activities (id, json, version) VALUES (?, ?, ?)',
 *       [change.entityId, JSON.stringify(change.data), change.version]);
 *   }
 * };
 * ```
 */
export type PullHandler = (tx: AppTransaction, page: PullPage) => Promise<void>;
