import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type BackoffOptions,
  backoffBaseDelay,
  backoffBounds,
  backoffDelay,
  clampScheduledTime,
  DEFAULT_RETRY_AFTER_CEILING_MS,
  nextAttemptDelay,
  parseRetryAfter,
  RETRY_AFTER_MAX_MS,
  resolveBackoffPolicy,
  runBackoffDelay,
} from '../../src/backoff/index.js';

const NUM_RUNS = 200;

/** Valid backoff options, including fractional and extreme ones. */
const backoffOptions: fc.Arbitrary<BackoffOptions> = fc
  .record({
    initialMs: fc.oneof(
      fc.integer({ min: 1, max: 600_000 }),
      fc.double({ min: 0.001, max: 1e6, noNaN: true }),
    ),
    extraMs: fc.oneof(
      fc.constant(0),
      fc.integer({ min: 0, max: 86_400_000 }),
      fc.double({ min: 0, max: 1e12, noNaN: true }),
    ),
    multiplier: fc.oneof(fc.constant(1), fc.constant(2), fc.double({ min: 1, max: 10, noNaN: true })),
    jitter: fc.constantFrom('equal' as const, 'full' as const, 'none' as const),
  })
  .map(({ initialMs, extraMs, multiplier, jitter }) => ({
    initialMs,
    maxMs: initialMs + extraMs,
    multiplier,
    jitter,
  }));

const attempts = fc.oneof(fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1, max: 1_000_000 }));

/** Random draws, including the edge values a faulty source might produce. */
const draws = fc.oneof(
  fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
  fc.constantFrom(0, 1, 1.5, -0.1, Number.NaN, Number.POSITIVE_INFINITY, 1 - Number.EPSILON / 2),
);

const times = fc.integer({ min: 0, max: 4_102_444_800_000 });

describe('DESIGN.md invariant 4 — bounded backoff', () => {
  it('Bounded backoff: every delay within the policy bounds for its attempt', () => {
    fc.assert(
      fc.property(backoffOptions, attempts, draws, (options, attempt, draw) => {
        const policy = resolveBackoffPolicy(options);
        const delay = backoffDelay(policy, attempt, () => draw);
        const { minMs, maxMs } = backoffBounds(policy, attempt);
        expect(Number.isInteger(delay)).toBe(true);
        expect(delay).toBeGreaterThanOrEqual(minMs);
        expect(delay).toBeLessThanOrEqual(maxMs);
        expect(maxMs).toBeLessThanOrEqual(Math.ceil(policy.maxMs));
        const base = backoffBaseDelay(policy, attempt);
        expect(maxMs).toBe(Math.ceil(base));
        const expectedMin = policy.jitter === 'equal' ? base / 2 : policy.jitter === 'full' ? 0 : base;
        expect(minMs).toBe(Math.ceil(expectedMin));
        expect(runBackoffDelay(policy, attempt, () => draw)).toBe(delay);
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it('Bounded backoff: base delay is monotone non-decreasing in attempt, from initialMs to maxMs', () => {
    fc.assert(
      fc.property(backoffOptions, attempts, (options, attempt) => {
        const policy = resolveBackoffPolicy(options);
        const current = backoffBaseDelay(policy, attempt);
        const next = backoffBaseDelay(policy, attempt + 1);
        expect(Number.isFinite(current)).toBe(true);
        expect(next).toBeGreaterThanOrEqual(current);
        expect(current).toBeGreaterThanOrEqual(policy.initialMs);
        expect(current).toBeLessThanOrEqual(policy.maxMs);
        expect(backoffBaseDelay(policy, 1)).toBe(policy.initialMs);
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it('Bounded backoff: the next attempt is never earlier than Retry-After (up to the ceiling), nor than the backoff', () => {
    fc.assert(
      fc.property(
        backoffOptions,
        attempts,
        draws,
        fc.option(fc.oneof(fc.integer({ min: 0, max: 2 * DEFAULT_RETRY_AFTER_CEILING_MS }), fc.double()), {
          nil: undefined,
        }),
        fc.option(fc.integer({ min: 0, max: 7 * DEFAULT_RETRY_AFTER_CEILING_MS }), { nil: undefined }),
        (options, attempt, draw, retryAfterMs, retryAfterCeilingMs) => {
          const policy = resolveBackoffPolicy(options);
          const delay = nextAttemptDelay(policy, {
            attempt,
            random: () => draw,
            retryAfterMs,
            retryAfterCeilingMs,
          });
          const ceiling = retryAfterCeilingMs ?? DEFAULT_RETRY_AFTER_CEILING_MS;
          const honoured =
            retryAfterMs !== undefined && retryAfterMs > 0 ? Math.min(retryAfterMs, ceiling) : 0;
          const { minMs, maxMs } = backoffBounds(policy, attempt);
          expect(Number.isInteger(delay)).toBe(true);
          expect(delay).toBeGreaterThanOrEqual(honoured);
          expect(delay).toBeGreaterThanOrEqual(minMs);
          expect(delay).toBeLessThanOrEqual(Math.max(maxMs, ceiling));
          expect(delay).toBe(
            Math.max(
              backoffDelay(policy, attempt, () => draw),
              Math.ceil(honoured),
            ),
          );
        },
      ),
      { numRuns: NUM_RUNS },
    );
  });

  it('Bounded backoff: clampScheduledTime never returns more than now + the largest possible delay', () => {
    fc.assert(
      fc.property(
        backoffOptions,
        times,
        fc.oneof(
          fc.integer({ min: -400 * 86_400_000, max: 400 * 86_400_000 }),
          fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY),
        ),
        fc.option(fc.integer({ min: 0, max: 7 * DEFAULT_RETRY_AFTER_CEILING_MS }), { nil: undefined }),
        (options, now, offset, retryAfterCeilingMs) => {
          const policy = resolveBackoffPolicy(options);
          const scheduledAt = now + offset;
          const result = clampScheduledTime(policy, { scheduledAt, now, retryAfterCeilingMs });
          const largest = Math.max(
            Math.ceil(policy.maxMs),
            retryAfterCeilingMs ?? DEFAULT_RETRY_AFTER_CEILING_MS,
          );
          expect(result).toBeLessThanOrEqual(now + largest);
          // Within bounds, a schedule is left alone; beyond, it moves to now + maxMs.
          if (offset <= largest) expect(result).toBe(scheduledAt);
          else expect(result).toBe(now + policy.maxMs);
        },
      ),
      { numRuns: NUM_RUNS },
    );
  });

  it('Bounded backoff: every delay a device skewed by up to a year schedules is clamped back within bounds', () => {
    fc.assert(
      fc.property(
        backoffOptions,
        attempts,
        draws,
        times,
        fc.integer({ min: -365 * 86_400_000, max: 365 * 86_400_000 }),
        (options, attempt, draw, then, jump) => {
          const policy = resolveBackoffPolicy(options);
          const scheduledAt = then + nextAttemptDelay(policy, { attempt, random: () => draw });
          const now = then + jump;
          const due = clampScheduledTime(policy, { scheduledAt, now });
          expect(due).toBeLessThanOrEqual(
            now + Math.max(Math.ceil(policy.maxMs), DEFAULT_RETRY_AFTER_CEILING_MS),
          );
        },
      ),
      { numRuns: NUM_RUNS },
    );
  });
});

describe('Retry-After parsing', () => {
  it('parse of delay-seconds round-trips for every non-negative integer string', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.nat(), fc.nat({ max: 100_000 }), fc.bigInt({ min: 0n, max: 10n ** 40n })),
        fc.nat({ max: 3 }),
        fc.constantFrom('', ' ', '\t', '  '),
        times,
        (seconds, zeros, pad, now) => {
          const text = `${pad}${'0'.repeat(zeros)}${seconds.toString()}${pad}`;
          const expected = Math.min(Number(seconds) * 1000, RETRY_AFTER_MAX_MS);
          expect(parseRetryAfter(text, { now })).toBe(expected);
        },
      ),
      { numRuns: NUM_RUNS },
    );
  });

  it('an IMF-fixdate Retry-After gives retryAt − serverDate whatever the device clock says', () => {
    fc.assert(
      fc.property(
        times,
        fc.integer({ min: -86_400, max: 7 * 86_400 }),
        fc.integer({ min: -365 * 86_400_000, max: 365 * 86_400_000 }),
        (serverSeconds, aheadSeconds, skew) => {
          const serverNow = Math.floor(serverSeconds / 1000) * 1000;
          const retryAt = serverNow + aheadSeconds * 1000;
          const header = new Date(retryAt).toUTCString();
          const serverDate = new Date(serverNow).toUTCString();
          const delay = parseRetryAfter(header, { now: serverNow + skew, serverDate });
          expect(delay).toBe(Math.max(0, aheadSeconds * 1000));
        },
      ),
      { numRuns: NUM_RUNS },
    );
  });

  it('never accepts a string that is neither delay-seconds nor an HTTP-date, and never returns a bad number', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), times, (value, now) => {
        const result = parseRetryAfter(value, { now });
        if (result === undefined) return;
        expect(Number.isInteger(result)).toBe(true);
        expect(result).toBeGreaterThanOrEqual(0);
        expect(result).toBeLessThanOrEqual(RETRY_AFTER_MAX_MS);
        expect(/^[ \t]*[0-9]+[ \t]*$/.test(value) || / GMT[ \t]*$|[0-9]{4}[ \t]*$/.test(value)).toBe(true);
      }),
      { numRuns: NUM_RUNS },
    );
  });
});
