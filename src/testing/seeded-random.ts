/**
 * A seeded, reproducible {@link RandomSource} for tests.
 *
 * @packageDocumentation
 */

import type { RandomSource } from '../contracts/clock.js';
import { ConfigError } from '../errors.js';

/**
 * Create a deterministic {@link RandomSource} (mulberry32): the same seed yields the same
 * sequence, so ids, keys and backoff jitter of an engine given it are reproducible. Not for
 * production: idempotency keys must not collide across devices.
 *
 * @param seed - Any integer; it is taken modulo 2^32. @default 42
 * @throws ConfigError when `seed` is not an integer.
 *
 * @example
 * ```ts
 * import { createSeededRandom } from 'sync-core/testing';
 * const random = createSeededRandom(7);
 * random(); // always the same first number for seed 7, in [0, 1)
 * ```
 */
export function createSeededRandom(seed = 42): RandomSource {
  if (typeof seed !== 'number' || !Number.isInteger(seed)) {
    throw new ConfigError(`createSeededRandom(seed): expected an integer, got ${String(seed)}`);
  }
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}
