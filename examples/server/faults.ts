/**
 * Fault injection for the reference server: random and scripted HTTP errors, latency, dropped and
 * hanging connections, damaged responses, redirects and per-item retries. Randomness comes from a
 * seeded PRNG so a failing run can be replayed with the same seed.
 *
 * Faults apply to `/sync/*` and `/rest/*` only — never to `/auth/*`, so a client can always
 * refresh its credentials.
 *
 * @packageDocumentation
 */

import type { Scope } from './types.js';

/** The mutation a {@link FaultOptions.rejectWhen} hook sees (push item or REST write). */
export interface RejectableMutation {
  readonly entity: string;
  readonly op: string;
  /** The id the client sent (before any assigned-id translation). */
  readonly entityId: string;
  /** The idempotency key; `null` for a REST `PATCH`/`DELETE` without `Idempotency-Key`. */
  readonly key: string | null;
  readonly baseVersion: number | null;
  readonly data: unknown;
  readonly clientId: string | null;
  readonly scope: Scope;
}

/** Per-item chaos for `POST /sync/push`. */
export interface PartialFaultOptions {
  /**
   * Probability (0..1) that an item is answered `{ status: 'retry', retryAfterMs }` without being
   * applied or remembered.
   * @default 0
   */
  readonly itemRetryRate?: number;
  /**
   * `retryAfterMs` of those results.
   * @default 1000
   */
  readonly retryAfterMs?: number;
}

/** Fault injection settings, at start ({@link ReferenceServerOptions.faults}) or at runtime. */
export interface FaultOptions {
  /**
   * Probability (0..1) that a request is answered with a random status from `errorStatuses`
   * before anything is applied.
   * @default 0
   */
  readonly errorRate?: number;
  /**
   * Statuses `errorRate` picks from (uniformly).
   * @default [500, 502, 503, 504]
   */
  readonly errorStatuses?: readonly number[];
  /**
   * `Retry-After` header value (delta-seconds like `'120'` or an HTTP-date) attached to every
   * injected 429 and 503 that has none of its own. Deliberately not validated, so malformed
   * values can be tested.
   * @default undefined (no header)
   */
  readonly retryAfter?: string;
  /**
   * Delay before each request is processed: a fixed number of milliseconds, or `[min, max]` drawn
   * uniformly. Idempotency keys of the request count as in progress during the delay.
   * @default 0
   */
  readonly latencyMs?: number | readonly [number, number];
  /** Per-item retry chaos for push requests. */
  readonly partial?: PartialFaultOptions;
  /**
   * Validation hook: return a message to reject the mutation (`rejected` with code `'invalid'` on
   * push, 422 over REST), `undefined` to accept it. Runs inside the mutation's transaction after
   * the idempotency check, so it must be synchronous; a throw answers 500.
   */
  readonly rejectWhen?: ((mutation: RejectableMutation) => string | undefined) | undefined;
}

/** A scripted response for {@link FaultController.failNext}. */
export interface ScriptedResponse {
  /** HTTP status, e.g. 503, 429, or 200 for a captive portal. */
  readonly status: number;
  /** `Retry-After` header value. Defaults to {@link FaultOptions.retryAfter} for 429 and 503. */
  readonly retryAfter?: string;
  /**
   * Response body: a string is sent as is, anything else as JSON.
   * @default `{ error: { code: 'injected-fault', message } }`
   */
  readonly body?: unknown;
  /**
   * `Content-Type` header.
   * @default 'text/plain; charset=utf-8' for a string body, else 'application/json; charset=utf-8'
   */
  readonly contentType?: string;
  /** Extra response headers. */
  readonly headers?: Readonly<Record<string, string>>;
}

/** When a dropped or hanging connection happens relative to the write. */
export type FaultTiming = 'before' | 'after-apply';

/**
 * How {@link FaultController.malformNext} damages a 200 (always sent after the request was applied):
 *
 * - `truncated-json`: a complete HTTP response whose JSON body is cut in half.
 * - `wrong-schema`: valid JSON of the wrong shape (`{ "results": "damaged" }` for push,
 *   `{ "unexpected": true }` elsewhere).
 * - `missing-result`: push results without the last one (elsewhere: as `wrong-schema`).
 * - `extra-result`: push results plus one for a mutation never sent (elsewhere: as `wrong-schema`).
 * - `reset-mid-body`: headers and half the body, then the connection is destroyed.
 */
export type MalformKind =
  | 'truncated-json'
  | 'wrong-schema'
  | 'missing-result'
  | 'extra-result'
  | 'reset-mid-body';

/** Scripted faults still queued, from {@link FaultController.pending}. */
export interface PendingFaults {
  readonly fail: number;
  readonly redirect: number;
  readonly dropBefore: number;
  readonly dropAfterApply: number;
  readonly hangBefore: number;
  readonly hangAfterApply: number;
  readonly malform: number;
}

/**
 * Runtime control of fault injection ({@link ReferenceServer.faults}). The setting properties may
 * be assigned directly (`server.faults.errorRate = 1`); invalid values throw a `RangeError`.
 * Scripted faults are consumed by the next requests to `/sync/*` or `/rest/*` that pass
 * authentication and validation; a request consumes at most one "before" fault, checked in the
 * order failNext, redirectNext, dropNext, hangNext, then `errorRate`, and at most one
 * "after-apply" fault, checked in the order dropNext, hangNext, malformNext.
 */
export interface FaultController {
  errorRate: number;
  errorStatuses: readonly number[];
  retryAfter: string | undefined;
  latencyMs: number | readonly [number, number];
  partial: PartialFaultOptions;
  rejectWhen: ((mutation: RejectableMutation) => string | undefined) | undefined;
  /** Apply several settings at once; omitted settings keep their value. */
  set(options: FaultOptions): this;
  /** Answer the next `count` requests with `response`, before applying anything. */
  failNext(count: number, response: ScriptedResponse): this;
  /** Destroy the socket of the next `count` requests without answering, before or after the write commits. */
  dropNext(count: number, when?: FaultTiming): this;
  /** Never answer the next `count` requests (until the client gives up or the server closes). */
  hangNext(count: number, when?: FaultTiming): this;
  /** Apply the next `count` requests, then answer a damaged 200. */
  malformNext(count: number, kind: MalformKind): this;
  /** Answer the next `count` requests with a redirect to `location`, before applying anything. */
  redirectNext(count: number, location: string, status?: 301 | 302 | 303 | 307 | 308): this;
  /** Scripted faults not yet consumed. */
  pending(): PendingFaults;
  /** Clear every setting and scripted fault (the PRNG keeps its state). */
  reset(): this;
}

/** A fault that answers (or doesn't) instead of the route. */
export type BeforeFault =
  | { readonly kind: 'respond'; readonly response: ScriptedResponse }
  | { readonly kind: 'redirect'; readonly location: string; readonly status: number }
  | { readonly kind: 'drop' }
  | { readonly kind: 'hang' };

/** A fault that replaces the answer of an applied request. */
export type AfterFault =
  | { readonly kind: 'drop' }
  | { readonly kind: 'hang' }
  | { readonly kind: 'malform'; readonly malform: MalformKind };

/** The mulberry32 PRNG: fast, 32-bit state, good enough for test chaos. Returns floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

const DEFAULT_ERROR_STATUSES: readonly number[] = Object.freeze([500, 502, 503, 504]);
const MALFORM_KINDS: ReadonlySet<string> = new Set([
  'truncated-json',
  'wrong-schema',
  'missing-result',
  'extra-result',
  'reset-mid-body',
]);
const REDIRECT_STATUSES: ReadonlySet<number> = new Set([301, 302, 303, 307, 308]);

function describe(value: unknown): string {
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (typeof value === 'string') return JSON.stringify(value);
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value;
}

function fail(name: string, expected: string, got: unknown): never {
  throw new RangeError(`faults.${name}: expected ${expected}, got ${describe(got)}`);
}

function checkRate(name: string, value: unknown): number {
  if (typeof value !== 'number' || !(value >= 0 && value <= 1)) fail(name, 'a number in [0, 1]', value);
  return value;
}

function checkCount(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
    fail(name, 'a non-negative integer count', value);
  }
  return value;
}

function checkStatus(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 200 || value > 599) {
    fail(name, 'an HTTP status in [200, 599]', value);
  }
  return value;
}

function checkTiming(name: string, value: unknown): FaultTiming {
  if (value !== 'before' && value !== 'after-apply') fail(name, "'before' or 'after-apply'", value);
  return value;
}

function checkMs(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    fail(name, 'a finite number of milliseconds ≥ 0', value);
  }
  return value;
}

/**
 * The fault injector behind {@link FaultController}, with the methods the request pipeline uses to
 * consume faults. Not exported from the package entry: tests only see {@link FaultController}.
 */
export class FaultInjector implements FaultController {
  #random: () => number;
  #errorRate = 0;
  #errorStatuses: readonly number[] = DEFAULT_ERROR_STATUSES;
  #retryAfter: string | undefined;
  #latencyMs: number | readonly [number, number] = 0;
  #partial: PartialFaultOptions = {};
  #rejectWhen: FaultOptions['rejectWhen'];
  #fail: ScriptedResponse[] = [];
  #redirect: { location: string; status: number }[] = [];
  #dropBefore = 0;
  #dropAfter = 0;
  #hangBefore = 0;
  #hangAfter = 0;
  #malform: MalformKind[] = [];

  /**
   * @param options initial settings
   * @param seed PRNG seed (an integer; only its low 32 bits are used)
   */
  constructor(options: FaultOptions = {}, seed = 1) {
    if (typeof seed !== 'number' || !Number.isInteger(seed)) fail('seed', 'an integer', seed);
    this.#random = mulberry32(seed);
    this.set(options);
  }

  get errorRate(): number {
    return this.#errorRate;
  }
  set errorRate(value: number) {
    this.#errorRate = checkRate('errorRate', value);
  }

  get errorStatuses(): readonly number[] {
    return this.#errorStatuses;
  }
  set errorStatuses(value: readonly number[]) {
    if (!Array.isArray(value) || value.length === 0)
      fail('errorStatuses', 'a non-empty array of statuses', value);
    this.#errorStatuses = Object.freeze(value.map((status, i) => checkStatus(`errorStatuses[${i}]`, status)));
  }

  get retryAfter(): string | undefined {
    return this.#retryAfter;
  }
  set retryAfter(value: string | undefined) {
    if (value !== undefined && typeof value !== 'string') fail('retryAfter', 'a string or undefined', value);
    this.#retryAfter = value;
  }

  get latencyMs(): number | readonly [number, number] {
    return this.#latencyMs;
  }
  set latencyMs(value: number | readonly [number, number]) {
    if (Array.isArray(value)) {
      const [min, max] = value as readonly unknown[];
      if (value.length !== 2) fail('latencyMs', 'a number or a [min, max] pair', value);
      const lo = checkMs('latencyMs[0]', min);
      const hi = checkMs('latencyMs[1]', max);
      if (hi < lo) fail('latencyMs', 'min ≤ max', value);
      this.#latencyMs = Object.freeze([lo, hi] as const);
    } else {
      this.#latencyMs = checkMs('latencyMs', value);
    }
  }

  get partial(): PartialFaultOptions {
    return this.#partial;
  }
  set partial(value: PartialFaultOptions) {
    if (typeof value !== 'object' || value === null) fail('partial', 'an object', value);
    if (value.itemRetryRate !== undefined) checkRate('partial.itemRetryRate', value.itemRetryRate);
    if (value.retryAfterMs !== undefined) checkMs('partial.retryAfterMs', value.retryAfterMs);
    this.#partial = Object.freeze({ ...value });
  }

  get rejectWhen(): FaultOptions['rejectWhen'] {
    return this.#rejectWhen;
  }
  set rejectWhen(value: FaultOptions['rejectWhen']) {
    if (value !== undefined && typeof value !== 'function')
      fail('rejectWhen', 'a function or undefined', value);
    this.#rejectWhen = value;
  }

  set(options: FaultOptions): this {
    if (typeof options !== 'object' || options === null) fail('options', 'an object', options);
    if (options.errorRate !== undefined) this.errorRate = options.errorRate;
    if (options.errorStatuses !== undefined) this.errorStatuses = options.errorStatuses;
    if (options.retryAfter !== undefined) this.retryAfter = options.retryAfter;
    if (options.latencyMs !== undefined) this.latencyMs = options.latencyMs;
    if (options.partial !== undefined) this.partial = options.partial;
    if (options.rejectWhen !== undefined) this.rejectWhen = options.rejectWhen;
    return this;
  }

  failNext(count: number, response: ScriptedResponse): this {
    checkCount('failNext count', count);
    if (typeof response !== 'object' || response === null) fail('failNext response', 'an object', response);
    checkStatus('failNext status', response.status);
    const frozen = Object.freeze({ ...response });
    for (let i = 0; i < count; i++) this.#fail.push(frozen);
    return this;
  }

  dropNext(count: number, when: FaultTiming = 'before'): this {
    checkCount('dropNext count', count);
    if (checkTiming('dropNext when', when) === 'before') this.#dropBefore += count;
    else this.#dropAfter += count;
    return this;
  }

  hangNext(count: number, when: FaultTiming = 'before'): this {
    checkCount('hangNext count', count);
    if (checkTiming('hangNext when', when) === 'before') this.#hangBefore += count;
    else this.#hangAfter += count;
    return this;
  }

  malformNext(count: number, kind: MalformKind): this {
    checkCount('malformNext count', count);
    if (!MALFORM_KINDS.has(kind)) fail('malformNext kind', [...MALFORM_KINDS].join(' | '), kind);
    for (let i = 0; i < count; i++) this.#malform.push(kind);
    return this;
  }

  redirectNext(count: number, location: string, status: 301 | 302 | 303 | 307 | 308 = 307): this {
    checkCount('redirectNext count', count);
    if (typeof location !== 'string' || location.length === 0) {
      fail('redirectNext location', 'a non-empty string', location);
    }
    if (!REDIRECT_STATUSES.has(status)) fail('redirectNext status', '301, 302, 303, 307 or 308', status);
    for (let i = 0; i < count; i++) this.#redirect.push({ location, status });
    return this;
  }

  pending(): PendingFaults {
    return {
      fail: this.#fail.length,
      redirect: this.#redirect.length,
      dropBefore: this.#dropBefore,
      dropAfterApply: this.#dropAfter,
      hangBefore: this.#hangBefore,
      hangAfterApply: this.#hangAfter,
      malform: this.#malform.length,
    };
  }

  reset(): this {
    this.#errorRate = 0;
    this.#errorStatuses = DEFAULT_ERROR_STATUSES;
    this.#retryAfter = undefined;
    this.#latencyMs = 0;
    this.#partial = {};
    this.#rejectWhen = undefined;
    this.#fail = [];
    this.#redirect = [];
    this.#dropBefore = 0;
    this.#dropAfter = 0;
    this.#hangBefore = 0;
    this.#hangAfter = 0;
    this.#malform = [];
    return this;
  }

  /** The delay to apply to the next request, in milliseconds (draws from the PRNG for a range). */
  nextLatency(): number {
    const latency = this.#latencyMs;
    if (typeof latency === 'number') return latency;
    const [min, max] = latency;
    return max === min ? min : min + this.#random() * (max - min);
  }

  /** Consume the fault (if any) that replaces the request before it is applied. */
  takeBeforeApply(): BeforeFault | undefined {
    const scripted = this.#fail.shift();
    if (scripted !== undefined) return { kind: 'respond', response: this.#withRetryAfter(scripted) };
    const redirect = this.#redirect.shift();
    if (redirect !== undefined) return { kind: 'redirect', ...redirect };
    if (this.#dropBefore > 0) {
      this.#dropBefore--;
      return { kind: 'drop' };
    }
    if (this.#hangBefore > 0) {
      this.#hangBefore--;
      return { kind: 'hang' };
    }
    // Draw only when enabled, so enabling one fault kind does not shift another kind's sequence.
    if (this.#errorRate > 0 && this.#random() < this.#errorRate) {
      const statuses = this.#errorStatuses;
      const status = statuses[Math.floor(this.#random() * statuses.length)] ?? 500;
      return { kind: 'respond', response: this.#withRetryAfter({ status }) };
    }
    return undefined;
  }

  /** Consume the fault (if any) that replaces the answer of an applied request. */
  takeAfterApply(): AfterFault | undefined {
    if (this.#dropAfter > 0) {
      this.#dropAfter--;
      return { kind: 'drop' };
    }
    if (this.#hangAfter > 0) {
      this.#hangAfter--;
      return { kind: 'hang' };
    }
    const malform = this.#malform.shift();
    if (malform !== undefined) return { kind: 'malform', malform };
    return undefined;
  }

  /** For one push item: the `retryAfterMs` to answer `retry` with, or `undefined` to process it. */
  takeItemRetry(): number | undefined {
    const rate = this.#partial.itemRetryRate ?? 0;
    if (rate > 0 && this.#random() < rate) return this.#partial.retryAfterMs ?? 1000;
    return undefined;
  }

  #withRetryAfter(response: ScriptedResponse): ScriptedResponse {
    if (response.retryAfter !== undefined || this.#retryAfter === undefined) return response;
    if (response.status !== 429 && response.status !== 503) return response;
    return { ...response, retryAfter: this.#retryAfter };
  }
}
