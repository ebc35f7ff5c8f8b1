import type { Clock } from '../contracts/clock.js';
import type { GuardedStorage } from '../storage/guarded-storage.js';

const LEASE = 'sync';

/**
 * The run lease: at most one sync run per database at a time, across processes (DESIGN.md
 * invariant 6). A row in `sync_lease` names the holder and an expiry; it is taken in an immediate
 * transaction (so two processes cannot both see it free), renewed every round, and released at
 * the end of the run. A holder that crashed stops renewing, and the next run takes over once the
 * lease expires.
 */
export class RunLease {
  readonly #storage: GuardedStorage;
  readonly #clock: Clock;
  readonly #ttlMs: number;

  constructor(storage: GuardedStorage, clock: Clock, ttlMs: number) {
    this.#storage = storage;
    this.#clock = clock;
    this.#ttlMs = ttlMs;
  }

  /**
   * Take the lease for `holder`.
   * @returns `true` when taken; `false` when a live holder has it.
   */
  acquire(holder: string): Promise<boolean> {
    return this.#storage.transaction('immediate', async (tx) => {
      const now = this.#clock.now();
      const [row] = await tx.all<{ holder: string; expires_at: number; renewed_at: number }>(
        'SELECT holder, expires_at, renewed_at FROM sync_lease WHERE name = ?',
        [LEASE],
      );
      if (row && row.holder !== holder) {
        // A lease renewed "in the future" can only come from a wall clock that went back: re-base
        // it on the new clock with the time it had left (the holder's own TTL, stored in the row,
        // so processes configured with different TTLs agree). A live holder keeps renewing it; a
        // dead one's lease expires one TTL later — never stranded until the clock catches up,
        // never taken from a run that still has requests in flight.
        let expiresAt = row.expires_at;
        if (row.renewed_at > now) {
          expiresAt = now + Math.max(0, row.expires_at - row.renewed_at);
          await tx.run('UPDATE sync_lease SET expires_at = ?, renewed_at = ? WHERE name = ?', [
            expiresAt,
            now,
            LEASE,
          ]);
          // The holder's claims move with its lease, so they expire together on the new clock.
          await tx.run(
            `UPDATE sync_mutations SET claim_expires_at = ? + MAX(0, claim_expires_at - updated_at), updated_at = ?
             WHERE state = 'inflight' AND claim_token = ? AND updated_at > ?`,
            [now, now, row.holder, now],
          );
        }
        if (expiresAt > now) return false;
      }
      await tx.run(
        `INSERT INTO sync_lease (name, holder, acquired_at, expires_at, renewed_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, acquired_at = excluded.acquired_at,
           expires_at = excluded.expires_at, renewed_at = excluded.renewed_at`,
        [LEASE, holder, now, now + this.#ttlMs, now],
      );
      return true;
    });
  }

  /**
   * Extend the lease. @returns `false` when `holder` no longer holds it (it expired and another
   * run took it): the caller must stop sending.
   */
  async renew(holder: string): Promise<boolean> {
    const now = this.#clock.now();
    const { changes } = await this.#storage.run(
      'UPDATE sync_lease SET expires_at = ?, renewed_at = ? WHERE name = ? AND holder = ?',
      [now + this.#ttlMs, now, LEASE, holder],
    );
    return changes === 1;
  }

  /** Give the lease up (only if still held by `holder`). */
  async release(holder: string): Promise<void> {
    await this.#storage.run('DELETE FROM sync_lease WHERE name = ? AND holder = ?', [LEASE, holder]);
  }
}
