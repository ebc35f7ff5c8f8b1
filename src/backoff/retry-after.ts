/**
 * Parsing the `Retry-After` response header (RFC 9110 §10.2.3): delay-seconds or an HTTP-date.
 *
 * @packageDocumentation
 */

/**
 * The largest delay {@link parseRetryAfter} returns: 365 days, in ms. A larger value is clamped to
 * it, not rejected: a server asking for a very long pause should get a long pause, not our shortest
 * backoff. The scheduler applies its own, much lower ceiling on top (`nextAttemptDelay`: 24 h by
 * default); this one only keeps the parser's results sane numbers.
 *
 * @example
 * ```ts
 * import { parseRetryAfter, RETRY_AFTER_MAX_MS } from 'sync-core';
 * parseRetryAfter('99999999999', { now: Date.now() }) === RETRY_AFTER_MAX_MS; // true
 * ```
 */
export const RETRY_AFTER_MAX_MS = 365 * 24 * 60 * 60 * 1000;

/**
 * What {@link parseRetryAfter} needs besides the header value.
 *
 * @example
 * ```ts
 * import { parseRetryAfter, type RetryAfterContext } from 'sync-core';
 * const context: RetryAfterContext = { now: clock.now(), serverDate: response.headers.get('date') };
 * const delayMs = parseRetryAfter(response.headers.get('retry-after'), context);
 * ```
 */
export interface RetryAfterContext {
  /** The device's wall clock when the response arrived, in ms since the epoch. */
  now: number;
  /**
   * The response's `Date` header, if any. When it parses as an HTTP-date, an HTTP-date
   * `Retry-After` is measured against it instead of `now`, which makes the delay immune to a
   * skewed device clock (FAULTS.md 16).
   */
  serverDate?: string | null;
}

const DELAY_SECONDS = /^[0-9]+$/;
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const MONTH = `(${MONTHS.join('|')})`;
const TIME = '([0-9]{2}):([0-9]{2}):([0-9]{2})';
/** `Sun, 06 Nov 1994 08:49:37 GMT` — the form every sender must use. */
const IMF_FIXDATE = new RegExp(
  `^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), ([0-9]{2}) ${MONTH} ([0-9]{4}) ${TIME} GMT$`,
);
/** `Sunday, 06-Nov-94 08:49:37 GMT` — obsolete, still accepted by recipients. */
const RFC850_DATE = new RegExp(
  `^(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), ([0-9]{2})-${MONTH}-([0-9]{2}) ${TIME} GMT$`,
);
/** `Sun Nov  6 08:49:37 1994` — obsolete C asctime(); always UTC in HTTP. */
const ASCTIME_DATE = new RegExp(
  `^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) ${MONTH} ( [0-9]|[0-9]{2}) ${TIME} ([0-9]{4})$`,
);

/** Strip HTTP optional whitespace (SP / HTAB) around a field value, nothing else. */
function trimOws(value: string): string {
  return value.replace(/^[ \t]+|[ \t]+$/g, '');
}

/**
 * RFC 9110 §5.6.7: a two-digit year that would be more than 50 years in the future is the most
 * recent past year with those digits. Resolved into the 100-year window ending 50 years after
 * `referenceYear`.
 */
function expandTwoDigitYear(yy: number, referenceYear: number): number {
  let year = Math.floor(referenceYear / 100) * 100 + yy;
  if (year > referenceYear + 50) year -= 100;
  else if (year <= referenceYear - 50) year += 100;
  return year;
}

/**
 * Build a UTC timestamp, refusing out-of-range fields instead of letting `Date` roll them over
 * (`31 Feb` must not become `3 Mar`). A leap second (`:60`) is accepted and counts as the next
 * second. Uses `setUTCFullYear`, because `Date.UTC` maps years 0–99 to 1900–1999.
 */
function utcTime(year: number, month: number, day: number, hour: number, minute: number, second: number) {
  if (hour > 23 || minute > 59 || second > 60 || day < 1) return undefined;
  const date = new Date(0);
  date.setUTCFullYear(year, month + 1, 0);
  if (day > date.getUTCDate()) return undefined;
  date.setUTCFullYear(year, month, day);
  date.setUTCHours(hour, minute, second, 0);
  const time = date.getTime();
  return Number.isFinite(time) ? time : undefined;
}

/**
 * Parse an HTTP-date (RFC 9110 §5.6.7) in any of its three forms, strictly: exact layout, English
 * names in their exact case, `GMT`, valid field ranges. The weekday name is checked for form, not
 * against the date (RFC 9110 does not ask recipients to). `Date.parse` is not used: it accepts far
 * more than HTTP-dates and reads asctime as local time.
 *
 * @param referenceMs - Used only to expand the two-digit year of the RFC 850 form.
 */
function parseHttpDate(value: string, referenceMs: number): number | undefined {
  let match = IMF_FIXDATE.exec(value);
  if (match) {
    const [, day, month, year, hour, minute, second] = match;
    return utcTime(
      Number(year),
      MONTHS.indexOf(month!),
      Number(day),
      Number(hour),
      Number(minute),
      Number(second),
    );
  }
  match = RFC850_DATE.exec(value);
  if (match) {
    const [, day, month, yy, hour, minute, second] = match;
    const referenceYear = new Date(Number.isFinite(referenceMs) ? referenceMs : 0).getUTCFullYear();
    const year = expandTwoDigitYear(Number(yy), referenceYear);
    return utcTime(year, MONTHS.indexOf(month!), Number(day), Number(hour), Number(minute), Number(second));
  }
  match = ASCTIME_DATE.exec(value);
  if (match) {
    const [, month, day, hour, minute, second, year] = match;
    return utcTime(
      Number(year),
      MONTHS.indexOf(month!),
      Number(day!.trim()),
      Number(hour),
      Number(minute),
      Number(second),
    );
  }
  return undefined;
}

/**
 * Parse a `Retry-After` header value into a delay in ms, or `undefined` when the header is absent
 * or malformed (a malformed value is ignored, FAULTS.md 16: the backoff policy alone decides).
 *
 * Accepted forms (RFC 9110 §10.2.3), after stripping surrounding spaces and tabs:
 *
 * - **delay-seconds**: one or more ASCII digits (`'120'` → `120_000`, `'0'` → `0`). A sign, a
 *   decimal point, an exponent or any other character makes the value malformed.
 * - **HTTP-date**: IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), or the obsolete RFC 850
 *   (`Sunday, 06-Nov-94 08:49:37 GMT`) and asctime (`Sun Nov  6 08:49:37 1994`) forms, parsed
 *   strictly. The delay is `retryAt − serverDate` when `context.serverDate` (the response's `Date`
 *   header) parses — both times come from the server's clock, so a device clock that is a day off
 *   does not matter — and `retryAt − now` otherwise. A date in the past gives `0`.
 *
 * Results are whole ms in `[0, RETRY_AFTER_MAX_MS]` (365 days): larger values are clamped, not
 * rejected. The scheduler caps what it honours much lower (`nextAttemptDelay`).
 *
 * @param value - The header value (`response.headers.get('retry-after')`).
 * @param context - `now`: the device clock in ms since the epoch; `serverDate`: the `Date` header.
 * @returns The delay in ms, or `undefined`.
 *
 * @example
 * ```ts
 * import { parseRetryAfter } from 'sync-core';
 * parseRetryAfter('120', { now: Date.now() }); // 120_000
 * parseRetryAfter('Wed, 21 Oct 2026 07:28:00 GMT', {
 *   now: Date.now(),
 *   serverDate: response.headers.get('date'),
 * });
 * parseRetryAfter('soon', { now: Date.now() }); // undefined
 * ```
 */
export function parseRetryAfter(
  value: string | null | undefined,
  context: RetryAfterContext,
): number | undefined {
  if (typeof value !== 'string') return undefined;
  const text = trimOws(value);
  if (text === '') return undefined;

  if (DELAY_SECONDS.test(text)) {
    // Thousands of digits parse to Infinity; the clamp turns that into the cap, never NaN.
    return Math.min(Number(text) * 1000, RETRY_AFTER_MAX_MS);
  }

  const retryAt = parseHttpDate(text, context.now);
  if (retryAt === undefined) return undefined;

  const serverNow =
    typeof context.serverDate === 'string'
      ? parseHttpDate(trimOws(context.serverDate), context.now)
      : undefined;
  const reference = serverNow ?? context.now;
  if (!Number.isFinite(reference)) return undefined;
  const delay = Math.ceil(retryAt - reference);
  return Math.min(Math.max(delay, 0), RETRY_AFTER_MAX_MS);
}
