import type { SqlParams, SqlRow } from './storage-adapter.js';

/**
 * The app's view of a sync-core transaction: its own SQL, bound parameters, in the same
 * transaction as sync-core's bookkeeping. Handed to pull handlers and `onIdAssigned` hooks so the
 * app's tables change atomically with the queue, the cursor or the id map.
 */
export interface AppTransaction {
  /** Run one write statement of the app in this transaction. */
  run(sql: string, params?: SqlParams): Promise<{ readonly changes: number }>;
  /** Read rows in this transaction. */
  all<T = SqlRow>(sql: string, params?: SqlParams): Promise<T[]>;
}
