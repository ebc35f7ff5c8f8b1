/**
 * The server's counters ({@link ServerStats}), mutable inside the server and copied out by
 * `stats()`.
 *
 * @packageDocumentation
 */

import type { ServerStats } from './types.js';

/** {@link ServerStats} with writable counters. */
export type MutableStats = { -readonly [K in Exclude<keyof ServerStats, 'statusCounts'>]: number } & {
  statusCounts: Record<number, number>;
};

/** Fresh counters, all zero. */
export function createStats(): MutableStats {
  return {
    requests: 0,
    pushRequests: 0,
    pullRequests: 0,
    restRequests: 0,
    applied: 0,
    duplicates: 0,
    conflicts: 0,
    rejected: 0,
    retries: 0,
    statusCounts: {},
    refreshes: 0,
    unauthorized: 0,
    droppedConnections: 0,
    injectedFaults: 0,
  };
}

/** A deep copy that later requests do not change. */
export function snapshotStats(stats: MutableStats): ServerStats {
  return { ...stats, statusCounts: { ...stats.statusCounts } };
}
