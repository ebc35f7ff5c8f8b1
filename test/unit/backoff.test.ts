import { describe, expect, it } from 'vitest';
import {
  attemptCounts,
  type BackoffOptions,
  backoffBaseDelay,
  backoffBounds,
  backoffDelay,
  clampScheduledTime,
  classifyHttpStatus,
  DEFAULT_RETRY_AFTER_CEILING_MS,
  type FailureClass,
  isExhausted,
  nextAttemptDelay,
  parseRetryAfter,
  RETRY_AFTER_MAX_MS,
  resolveBackoffPolicy,
  runBackoffDelay,
} from '../../src/backoff/index.js';
import { ConfigError, SyncError } from '../../src/errors.js';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
/** 2026-11-25T10:00:00.000Z */
const NOW = Date.UTC(2026, 10, 25, 10, 0, 0);
const fixed = (value: number) => () => value;

describe('resolveBackoffPolicy', () => {
  it('defaults to DESIGN.md section 5: 30 s initial, doubling, 1 h cap, equal jitter, no limit', () => {
    expect(resolveBackoffPolicy()).toEqual({
      initialMs: 30_000,
      maxMs: 3_600_000,
      multiplier: 2,
      jitter: 'equal',
      maxAttempts: Number.POSITIVE_INFINITY,
    });
    expect(Object.isFrozen(resolveBackoffPolicy({}))).toBe(true);
  });

  it('keeps every valid option', () => {
    const policy = resolveBackoffPolicy({
      initialMs: 500,
      maxMs: 500,
      multiplier: 1,
      jitter: 'none',
      maxAttempts: 1,
    });
    expect(policy).toEqual({ initialMs: 500, maxMs: 500, multiplier: 1, jitter: 'none', maxAttempts: 1 });
  });

  it('raises the default maxMs to initialMs when initialMs is above 1 h', () => {
    expect(resolveBackoffPolicy({ initialMs: 2 * HOUR }).maxMs).toBe(2 * HOUR);
  });

  it.each<[BackoffOptions, string]>([
    [{ initialMs: -1 }, 'backoff.initialMs: expected a finite number > 0, got -1'],
    [{ initialMs: 0 }, 'backoff.initialMs: expected a finite number > 0, got 0'],
    [{ initialMs: Number.NaN }, 'backoff.initialMs: expected a finite number > 0, got NaN'],
    [
      { initialMs: Number.POSITIVE_INFINITY },
      'backoff.initialMs: expected a finite number > 0, got Infinity',
    ],
    [{ maxMs: 1000 }, 'backoff.maxMs: expected a finite number ≥ initialMs (30000), got 1000'],
    [
      { maxMs: Number.POSITIVE_INFINITY },
      'backoff.maxMs: expected a finite number ≥ initialMs (30000), got Infinity',
    ],
    [{ multiplier: 0.5 }, 'backoff.multiplier: expected a finite number ≥ 1, got 0.5'],
    [{ multiplier: Number.NaN }, 'backoff.multiplier: expected a finite number ≥ 1, got NaN'],
    [{ jitter: 'half' as never }, `backoff.jitter: expected 'equal', 'full' or 'none', got "half"`],
    [{ maxAttempts: 0 }, 'backoff.maxAttempts: expected an integer ≥ 1 or Infinity, got 0'],
    [{ maxAttempts: 2.5 }, 'backoff.maxAttempts: expected an integer ≥ 1 or Infinity, got 2.5'],
    [{ maxAttempts: Number.NaN }, 'backoff.maxAttempts: expected an integer ≥ 1 or Infinity, got NaN'],
    [{ initialMs: '30' as never }, 'backoff.initialMs: expected a finite number > 0, got "30"'],
  ])('rejects %o with a ConfigError', (options, message) => {
    let thrown: unknown;
    try {
      resolveBackoffPolicy(options);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(ConfigError);
    expect(thrown).toBeInstanceOf(SyncError);
    expect((thrown as ConfigError).code).toBe('INVALID_OPTION');
    expect((thrown as ConfigError).message).toBe(message);
  });

  it('rejects a non-object', () => {
    expect(() => resolveBackoffPolicy(null as never)).toThrow(
      new ConfigError('backoff: expected an object, got null'),
    );
  });
});

describe('backoffBaseDelay', () => {
  const policy = resolveBackoffPolicy();

  it('runs 30 s, 60 s, 2 min, 4 min … capped at 1 h', () => {
    const delays = Array.from({ length: 10 }, (_, i) => backoffBaseDelay(policy, i + 1));
    expect(delays).toEqual([
      30 * SECOND,
      60 * SECOND,
      2 * MINUTE,
      4 * MINUTE,
      8 * MINUTE,
      16 * MINUTE,
      32 * MINUTE,
      HOUR,
      HOUR,
      HOUR,
    ]);
  });

  it('never overflows for huge attempt numbers', () => {
    expect(backoffBaseDelay(policy, 10_000)).toBe(HOUR);
    expect(backoffBaseDelay(policy, Number.MAX_SAFE_INTEGER)).toBe(HOUR);
    expect(backoffBaseDelay(policy, Number.POSITIVE_INFINITY)).toBe(HOUR);
    const constant = resolveBackoffPolicy({ multiplier: 1 });
    expect(backoffBaseDelay(constant, Number.POSITIVE_INFINITY)).toBe(30 * SECOND);
  });

  it('treats attempts below 1 or NaN as the first, and floors fractions', () => {
    expect(backoffBaseDelay(policy, 0)).toBe(30 * SECOND);
    expect(backoffBaseDelay(policy, -5)).toBe(30 * SECOND);
    expect(backoffBaseDelay(policy, Number.NaN)).toBe(30 * SECOND);
    expect(backoffBaseDelay(policy, 2.9)).toBe(60 * SECOND);
  });

  it('uses the multiplier', () => {
    const triple = resolveBackoffPolicy({ initialMs: 1000, multiplier: 3, maxMs: 20_000 });
    expect([1, 2, 3, 4].map((k) => backoffBaseDelay(triple, k))).toEqual([1000, 3000, 9000, 20_000]);
  });
});

describe('jitter', () => {
  it("'equal' spreads over [d/2, d]", () => {
    const policy = resolveBackoffPolicy({ jitter: 'equal' });
    expect(backoffBounds(policy, 1)).toEqual({ minMs: 15_000, maxMs: 30_000 });
    expect(backoffDelay(policy, 1, fixed(0))).toBe(15_000);
    expect(backoffDelay(policy, 1, fixed(0.5))).toBe(22_500);
    expect(backoffDelay(policy, 1, fixed(0.999_999_999))).toBe(30_000);
    expect(backoffBounds(policy, 20)).toEqual({ minMs: HOUR / 2, maxMs: HOUR });
  });

  it("'full' spreads over [0, d]", () => {
    const policy = resolveBackoffPolicy({ jitter: 'full' });
    expect(backoffBounds(policy, 2)).toEqual({ minMs: 0, maxMs: 60_000 });
    expect(backoffDelay(policy, 2, fixed(0))).toBe(0);
    expect(backoffDelay(policy, 2, fixed(0.25))).toBe(15_000);
  });

  it("'none' is exactly d", () => {
    const policy = resolveBackoffPolicy({ jitter: 'none' });
    expect(backoffBounds(policy, 3)).toEqual({ minMs: 120_000, maxMs: 120_000 });
    expect(backoffDelay(policy, 3, fixed(0))).toBe(120_000);
    expect(backoffDelay(policy, 3, fixed(0.7))).toBe(120_000);
  });

  it('clamps a faulty random source into [0, 1)', () => {
    const policy = resolveBackoffPolicy();
    expect(backoffDelay(policy, 1, fixed(1))).toBe(30_000);
    expect(backoffDelay(policy, 1, fixed(7))).toBe(30_000);
    expect(backoffDelay(policy, 1, fixed(Number.POSITIVE_INFINITY))).toBe(30_000);
    expect(backoffDelay(policy, 1, fixed(Number.NaN))).toBe(15_000);
    expect(backoffDelay(policy, 1, fixed(-0.5))).toBe(15_000);
  });

  it('returns whole ms, rounded up, for fractional policies', () => {
    const policy = resolveBackoffPolicy({ initialMs: 1.5, maxMs: 10, jitter: 'none' });
    expect(backoffBounds(policy, 1)).toEqual({ minMs: 2, maxMs: 2 });
    expect(backoffDelay(policy, 1, fixed(0.3))).toBe(2);
  });
});

describe('parseRetryAfter', () => {
  const ctx = { now: NOW };

  it.each<[string | null | undefined, number | undefined]>([
    ['120', 120_000],
    ['0', 0],
    ['007', 7000],
    [' 120 ', 120_000],
    ['\t120', 120_000],
    ['-1', undefined],
    ['+1', undefined],
    ['1.5', undefined],
    ['1e3', undefined],
    ['0x10', undefined],
    ['12 0', undefined],
    ['120, 130', undefined],
    ['abc', undefined],
    ['120s', undefined],
    ['\n120', undefined],
    ['١٢٠', undefined],
    ['', undefined],
    ['   ', undefined],
    [null, undefined],
    [undefined, undefined],
  ])('parses delay-seconds %j as %j', (value, expected) => {
    expect(parseRetryAfter(value, ctx)).toBe(expected);
  });

  it('clamps huge delay-seconds to RETRY_AFTER_MAX_MS (365 days)', () => {
    expect(RETRY_AFTER_MAX_MS).toBe(365 * DAY);
    expect(parseRetryAfter('31536000', ctx)).toBe(RETRY_AFTER_MAX_MS);
    expect(parseRetryAfter('31536001', ctx)).toBe(RETRY_AFTER_MAX_MS);
    expect(parseRetryAfter('9'.repeat(400), ctx)).toBe(RETRY_AFTER_MAX_MS);
  });

  it('parses an IMF-fixdate in the future against now', () => {
    expect(parseRetryAfter('Wed, 25 Nov 2026 10:02:00 GMT', ctx)).toBe(2 * MINUTE);
  });

  it('gives 0 for an HTTP-date in the past', () => {
    expect(parseRetryAfter('Wed, 25 Nov 2026 09:00:00 GMT', ctx)).toBe(0);
    expect(parseRetryAfter('Sun, 06 Nov 1994 08:49:37 GMT', ctx)).toBe(0);
  });

  it('measures against the server Date header when the device clock is a day off', () => {
    const header = 'Wed, 25 Nov 2026 10:02:00 GMT';
    const serverDate = 'Wed, 25 Nov 2026 10:00:00 GMT';
    // Device a day behind: against `now` the delay would be a day and 2 min.
    expect(parseRetryAfter(header, { now: NOW - DAY, serverDate })).toBe(2 * MINUTE);
    expect(parseRetryAfter(header, { now: NOW - DAY })).toBe(DAY + 2 * MINUTE);
    // Device a day ahead: against `now` the date would be in the past.
    expect(parseRetryAfter(header, { now: NOW + DAY, serverDate })).toBe(2 * MINUTE);
    expect(parseRetryAfter(header, { now: NOW + DAY })).toBe(0);
  });

  it('falls back to now when the Date header is absent or malformed', () => {
    const header = 'Wed, 25 Nov 2026 10:02:00 GMT';
    expect(parseRetryAfter(header, { now: NOW, serverDate: null })).toBe(2 * MINUTE);
    expect(parseRetryAfter(header, { now: NOW, serverDate: 'yesterday' })).toBe(2 * MINUTE);
    expect(parseRetryAfter(header, { now: NOW, serverDate: '' })).toBe(2 * MINUTE);
  });

  it('ignores the Date header for delay-seconds', () => {
    expect(parseRetryAfter('60', { now: NOW, serverDate: 'Thu, 26 Nov 2026 10:00:00 GMT' })).toBe(MINUTE);
  });

  it('parses the obsolete RFC 850 and asctime forms as UTC', () => {
    expect(parseRetryAfter('Wednesday, 25-Nov-26 10:02:00 GMT', ctx)).toBe(2 * MINUTE);
    expect(parseRetryAfter('Wed Nov 25 10:02:00 2026', ctx)).toBe(2 * MINUTE);
    const early = Date.UTC(2026, 11, 6, 10, 0, 0);
    expect(parseRetryAfter('Sun Dec  6 10:00:30 2026', { now: early })).toBe(30 * SECOND);
  });

  it('reads a two-digit RFC 850 year within 50 years of now', () => {
    // '94' is 1994, not 2094: more than 50 years ahead of 2026.
    expect(parseRetryAfter('Sunday, 06-Nov-94 08:49:37 GMT', ctx)).toBe(0);
    // '70' is 2070 (44 years ahead), not 1970.
    expect(parseRetryAfter('Monday, 25-Nov-70 10:00:00 GMT', ctx)).toBe(RETRY_AFTER_MAX_MS);
  });

  it('accepts surrounding whitespace on a date', () => {
    expect(parseRetryAfter('  Wed, 25 Nov 2026 10:02:00 GMT\t', ctx)).toBe(2 * MINUTE);
  });

  it.each([
    'Wed, 25 Nov 2026 10:02:00',
    'Wed, 25 Nov 2026 10:02:00 UTC',
    'Wed, 25 Nov 2026 10:02:00 +0000',
    'wed, 25 nov 2026 10:02:00 gmt',
    'Wed,  25 Nov 2026 10:02:00 GMT',
    'Wed, 5 Nov 2026 10:02:00 GMT',
    'Wed, 31 Feb 2026 10:02:00 GMT',
    'Wed, 25 Nov 2026 24:00:00 GMT',
    'Wed, 25 Nov 2026 10:60:00 GMT',
    'Wed, 25 Nov 2026 10:02:61 GMT',
    'Wed, 25 Nov 2026 10:02 GMT',
    'Wed, 25 Nov 26 10:02:00 GMT',
    'Wednesday, 25 Nov 2026 10:02:00 GMT',
    'Wed, 25-Nov-26 10:02:00 GMT',
    'Wed Nov 25 10:02:00 2026 GMT',
    '2026-11-25T10:02:00Z',
    '2026-11-25',
    'Wed Nov 25 2026',
    'November 25, 2026',
    'tomorrow',
    'Mon, 25 Nov 2026 10:02:00 GMT extra',
  ])('rejects the malformed date %j', (value) => {
    expect(parseRetryAfter(value, ctx)).toBeUndefined();
  });

  it('accepts 29 Feb only in a leap year', () => {
    const now = Date.UTC(2027, 11, 1);
    expect(parseRetryAfter('Tue, 29 Feb 2028 00:00:00 GMT', { now })).toBe(Date.UTC(2028, 1, 29) - now);
    expect(parseRetryAfter('Mon, 29 Feb 2027 00:00:00 GMT', { now })).toBeUndefined();
  });

  it('returns undefined for a date when neither the Date header nor now is usable', () => {
    expect(parseRetryAfter('Wed, 25 Nov 2026 10:02:00 GMT', { now: Number.NaN })).toBeUndefined();
  });
});

describe('nextAttemptDelay', () => {
  const policy = resolveBackoffPolicy({ jitter: 'none' });
  const random = fixed(0.5);

  it('is the backoff when there is no Retry-After', () => {
    expect(nextAttemptDelay(policy, { attempt: 1, random })).toBe(30_000);
    expect(nextAttemptDelay(policy, { attempt: 4, random, retryAfterMs: undefined })).toBe(240_000);
  });

  it('is never earlier than Retry-After (429 with Retry-After: 120)', () => {
    const retryAfterMs = parseRetryAfter('120', { now: NOW });
    expect(nextAttemptDelay(policy, { attempt: 1, random, retryAfterMs })).toBe(120_000);
  });

  it('keeps the backoff when it is longer than Retry-After', () => {
    expect(nextAttemptDelay(policy, { attempt: 5, random, retryAfterMs: 5000 })).toBe(480_000);
  });

  it('honours a Retry-After above policy.maxMs up to the 24 h ceiling', () => {
    expect(DEFAULT_RETRY_AFTER_CEILING_MS).toBe(DAY);
    expect(nextAttemptDelay(policy, { attempt: 1, random, retryAfterMs: 5 * HOUR })).toBe(5 * HOUR);
    expect(nextAttemptDelay(policy, { attempt: 1, random, retryAfterMs: 400 * DAY })).toBe(DAY);
    expect(nextAttemptDelay(policy, { attempt: 1, random, retryAfterMs: Number.POSITIVE_INFINITY })).toBe(
      DAY,
    );
    expect(
      nextAttemptDelay(policy, { attempt: 1, random, retryAfterMs: 5 * HOUR, retryAfterCeilingMs: 2 * HOUR }),
    ).toBe(2 * HOUR);
  });

  it('ignores a negative or NaN Retry-After and rounds a fractional one up', () => {
    expect(nextAttemptDelay(policy, { attempt: 1, random, retryAfterMs: -1 })).toBe(30_000);
    expect(nextAttemptDelay(policy, { attempt: 1, random, retryAfterMs: Number.NaN })).toBe(30_000);
    expect(nextAttemptDelay(policy, { attempt: 1, random, retryAfterMs: 45_000.2 })).toBe(45_001);
  });

  it('rejects an invalid ceiling', () => {
    expect(() => nextAttemptDelay(policy, { attempt: 1, random, retryAfterCeilingMs: -1 })).toThrow(
      new ConfigError('retryAfterCeilingMs: expected an integer ≥ 0, got -1'),
    );
  });
});

describe('isExhausted', () => {
  it('never exhausts with the default (no limit)', () => {
    const policy = resolveBackoffPolicy();
    expect(isExhausted(policy, 1_000_000)).toBe(false);
  });

  it('exhausts once attempts reach maxAttempts', () => {
    const policy = resolveBackoffPolicy({ maxAttempts: 3 });
    expect([0, 1, 2, 3, 4].map((n) => isExhausted(policy, n))).toEqual([false, false, false, true, true]);
  });
});

describe('clampScheduledTime', () => {
  const policy = resolveBackoffPolicy();

  it('keeps a schedule within the largest possible delay', () => {
    expect(clampScheduledTime(policy, { scheduledAt: NOW + 30_000, now: NOW })).toBe(NOW + 30_000);
    expect(clampScheduledTime(policy, { scheduledAt: NOW - DAY, now: NOW })).toBe(NOW - DAY);
    // A 20 h Retry-After is within the 24 h ceiling and kept.
    expect(clampScheduledTime(policy, { scheduledAt: NOW + 20 * HOUR, now: NOW })).toBe(NOW + 20 * HOUR);
    expect(clampScheduledTime(policy, { scheduledAt: NOW + DAY, now: NOW })).toBe(NOW + DAY);
  });

  it('clamps to now + maxMs when the clock jumped a day back (FAULTS.md 29)', () => {
    const scheduledAt = NOW + 30_000;
    expect(clampScheduledTime(policy, { scheduledAt, now: NOW - DAY - 1 })).toBe(NOW - DAY - 1 + HOUR);
  });

  it('uses the Retry-After ceiling it is given', () => {
    const scheduledAt = NOW + 2 * HOUR;
    expect(clampScheduledTime(policy, { scheduledAt, now: NOW, retryAfterCeilingMs: 0 })).toBe(NOW + HOUR);
    expect(clampScheduledTime(policy, { scheduledAt, now: NOW, retryAfterCeilingMs: 2 * HOUR })).toBe(
      scheduledAt,
    );
  });

  it('clamps NaN and Infinity', () => {
    expect(clampScheduledTime(policy, { scheduledAt: Number.NaN, now: NOW })).toBe(NOW + HOUR);
    expect(clampScheduledTime(policy, { scheduledAt: Number.POSITIVE_INFINITY, now: NOW })).toBe(NOW + HOUR);
  });
});

describe('runBackoffDelay', () => {
  const policy = resolveBackoffPolicy({ jitter: 'none' });

  it('spaces offline runs with the same policy', () => {
    expect([1, 2, 3, 100].map((n) => runBackoffDelay(policy, n, fixed(0)))).toEqual([
      30_000,
      60_000,
      120_000,
      HOUR,
    ]);
    const equal = resolveBackoffPolicy();
    expect(runBackoffDelay(equal, 2, fixed(0.5))).toBe(backoffDelay(equal, 2, fixed(0.5)));
  });

  it('is 0 without any offline run, without drawing', () => {
    let draws = 0;
    const random = () => {
      draws += 1;
      return 0.5;
    };
    expect(runBackoffDelay(policy, 0, random)).toBe(0);
    expect(runBackoffDelay(policy, Number.NaN, random)).toBe(0);
    expect(draws).toBe(0);
  });
});

describe('classifyHttpStatus (DESIGN.md section 5)', () => {
  it.each<[number, string | undefined, ReturnType<typeof classifyHttpStatus>]>([
    [200, undefined, 'success'],
    [201, 'create', 'success'],
    [202, undefined, 'success'],
    [204, 'delete', 'success'],
    [299, undefined, 'success'],
    [408, undefined, 'retryable'],
    [425, undefined, 'retryable'],
    [429, undefined, 'retryable'],
    [500, undefined, 'retryable'],
    [502, undefined, 'retryable'],
    [503, undefined, 'retryable'],
    [504, undefined, 'retryable'],
    [501, undefined, 'retryable'],
    [505, undefined, 'retryable'],
    [507, undefined, 'retryable'],
    [599, undefined, 'retryable'],
    [401, undefined, 'auth'],
    [401, 'create', 'auth'],
    [409, undefined, 'conflict'],
    [409, 'update', 'conflict'],
    [412, 'update', 'conflict'],
    [404, 'update', 'gone'],
    [404, 'delete', 'gone'],
    [410, 'update', 'gone'],
    [410, 'delete', 'gone'],
    [404, undefined, 'gone'],
    [404, 'create', 'rejected'],
    [410, 'archive', 'rejected'],
    [400, undefined, 'rejected'],
    [403, undefined, 'rejected'],
    [405, undefined, 'rejected'],
    [413, 'create', 'rejected'],
    [422, 'update', 'rejected'],
    [499, undefined, 'rejected'],
    [301, undefined, 'retryable'],
    [302, 'create', 'retryable'],
    [304, undefined, 'retryable'],
    [307, undefined, 'retryable'],
    [308, undefined, 'retryable'],
    [100, undefined, 'retryable'],
    [101, undefined, 'retryable'],
    [0, undefined, 'retryable'],
    [99, undefined, 'retryable'],
    [600, undefined, 'retryable'],
    [200.5, undefined, 'retryable'],
    [Number.NaN, undefined, 'retryable'],
  ])('classifies %d (op %s) as %s', (status, op, expected) => {
    expect(classifyHttpStatus(status, op)).toBe(expected);
  });

  it('never classifies a redirect as success (FAULTS.md 14)', () => {
    for (let status = 300; status < 400; status += 1) {
      expect(classifyHttpStatus(status, 'create')).not.toBe('success');
    }
  });
});

describe('attemptCounts', () => {
  it.each<[FailureClass, boolean]>([
    ['offline', false],
    ['auth', false],
    ['ambiguous', true],
    ['retryable', true],
    ['conflict', true],
    ['gone', true],
    ['rejected', true],
  ])('%s counts: %s', (cls, expected) => {
    expect(attemptCounts(cls)).toBe(expected);
  });
});
