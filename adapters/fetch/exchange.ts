/**
 * One HTTP exchange: credentials, the timeout, the push's (or pull's) abort signal, the immediate
 * bounded resend of a refused or dropped connection (p-retry), and reading the whole body.
 * Whatever happens, it resolves: with the response, or with a classified failure.
 *
 * @packageDocumentation
 */
import pRetry from 'p-retry';
import type { Scope, TransportFailure } from 'sync-core';
import type { FetchResponseLike } from './fetch-like.js';
import { classifyNetworkError, isResendable, networkErrorCode } from './network-errors.js';
import { normalizeHeaders, type ResolvedOptions } from './options.js';
import type { ReadResponse } from './responses.js';

/** What one push (or one pulled page) shares between its exchanges. */
export interface PushContext {
  readonly options: ResolvedOptions;
  readonly scope: Scope;
  /** The push or pull request's signal. */
  readonly signal: AbortSignal;
  /** Every credential value used by this push or pull, to scrub from failure messages (FAULTS.md 33). */
  readonly secrets: Set<string>;
}

/** A request to send; `headers` are the adapter's own (lower-case), credentials are added here. */
export interface HttpRequest {
  readonly url: string;
  readonly method: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body?: string;
}

/** The response of an exchange (its body possibly unreadable), or why there was none. */
export type ExchangeResult =
  | { readonly kind: 'response'; readonly response: ReadResponse }
  | { readonly kind: 'failure'; readonly failure: TransportFailure };

/** The first resend waits this long, the next twice as long, and so on. */
const RESEND_MIN_DELAY_MS = 50;
/** Shorter credential parts are not scrubbed: they would mangle ordinary words. */
const MIN_SECRET_LENGTH = 6;

/** The failure of a request aborted through the push's signal: no attempt is counted. */
export const ABORTED: TransportFailure = {
  class: 'aborted',
  code: 'aborted',
  message: 'the request was aborted',
};

/** Carries a fetch rejection through p-retry, which otherwise refuses to retry most TypeErrors. */
class FetchAttemptError extends Error {
  readonly original: unknown;
  constructor(original: unknown) {
    super('fetch attempt failed');
    this.original = original;
  }
}

/** Listeners of {@link onAbort}, per push signal. */
const abortListeners = new WeakMap<AbortSignal, Set<() => void>>();

/**
 * Call `listener` when `signal` aborts; returns the unsubscribe. However many requests share the
 * signal (a run's concurrent pushes, a REST batch's concurrent requests), the signal gets one
 * listener: Node warns past ten ("possible EventTarget memory leak"), and adding and removing one
 * per request costs more than a Set.
 */
function onAbort(signal: AbortSignal, listener: () => void): () => void {
  let listeners = abortListeners.get(signal);
  if (listeners === undefined) {
    const created = new Set<() => void>();
    abortListeners.set(signal, created);
    signal.addEventListener(
      'abort',
      () => {
        for (const notify of [...created]) notify();
        created.clear();
      },
      { once: true },
    );
    listeners = created;
  }
  listeners.add(listener);
  return listeners.delete.bind(listeners, listener);
}

/** Settle with `promise`, or reject as soon as `signal` aborts (some fetches ignore signals). */
function raceAbort<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  // The loser's rejection must not surface as an unhandled rejection.
  promise.catch(() => undefined);
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    (typeof value === 'object' || typeof value === 'function') &&
    value !== null &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

function rememberSecret(secrets: Set<string>, value: string): void {
  // The same credential comes back on every request of a push: split it once.
  if (secrets.has(value)) return;
  if (value.length >= MIN_SECRET_LENGTH) secrets.add(value);
  // `Bearer abc…`, `Basic …`: the credential part alone may be echoed too.
  for (const part of value.split(/\s+/)) if (part.length >= MIN_SECRET_LENGTH) secrets.add(part);
}

function credentialsUnavailable(message: string): TransportFailure {
  return { class: 'auth', code: 'credentials-unavailable', message };
}

/** The credential headers of the push's scope, obtained now (never cached). */
async function credentialHeaders(
  ctx: PushContext,
  signal: AbortSignal,
): Promise<{ readonly headers: Record<string, string> } | { readonly failure: TransportFailure }> {
  let credentials: unknown;
  try {
    const provided: unknown = ctx.options.credentials(ctx.scope);
    // A provider that answers synchronously (a token held in memory) needs no race with the signal.
    credentials = isThenable(provided) ? await raceAbort(Promise.resolve(provided), signal) : provided;
  } catch {
    if (signal.aborted) return { failure: ABORTED };
    // The provider's error is not echoed: it may quote the credential it failed to produce.
    return { failure: credentialsUnavailable('the credentials provider failed') };
  }
  if (typeof credentials === 'object' && credentials !== null) {
    const { token, headers } = credentials as { token?: unknown; headers?: unknown };
    if (typeof token === 'string' && token !== '' && !/[\r\n\0]/.test(token)) {
      rememberSecret(ctx.secrets, `Bearer ${token}`);
      return { headers: { authorization: `Bearer ${token}` } };
    }
    if (token === undefined && headers !== undefined) {
      try {
        const normalized = normalizeHeaders('credentials', headers);
        for (const value of Object.values(normalized)) rememberSecret(ctx.secrets, value);
        return { headers: normalized };
      } catch {
        // Falls through to the failure below.
      }
    }
  }
  return {
    failure: credentialsUnavailable(
      'the credentials provider returned neither { token: string } nor { headers: { name: string } }',
    ),
  };
}

function bodyFailure(error: unknown): TransportFailure {
  const code = networkErrorCode(error);
  return {
    class: 'ambiguous',
    code: code === undefined ? 'response-interrupted' : code.toLowerCase().replace(/_/g, '-'),
    message: `the connection failed while reading the response${code === undefined ? '' : ` (${code})`}`,
  };
}

/**
 * Send one request and read its whole response, within `timeoutMs` and the push's signal.
 *
 * - Aborted through the push's signal → `aborted` (at any point: before sending, while connecting
 *   or resending, while reading the body).
 * - Out of time → `ambiguous` `timeout`.
 * - `fetch` rejected → resent at once up to `connectRetries` times when the connection was
 *   refused or dropped before any response; then classified by `classifyNetworkError`.
 * - The body could not be read → a response whose `body` carries an `ambiguous` failure: the
 *   caller decides whether the status alone is enough.
 */
export async function exchange(ctx: PushContext, request: HttpRequest): Promise<ExchangeResult> {
  const { options } = ctx;
  if (ctx.signal.aborted) return { kind: 'failure', failure: ABORTED };

  const controller = new AbortController();
  let ended: 'aborted' | 'timeout' | undefined;
  const unsubscribe = onAbort(ctx.signal, () => {
    ended ??= 'aborted';
    controller.abort(ctx.signal.reason);
  });
  const timer = setTimeout(() => {
    ended ??= 'timeout';
    controller.abort(new Error('timeout'));
  }, options.timeoutMs);
  const endedFailure = (): TransportFailure | undefined => {
    if (ended === 'aborted') return ABORTED;
    if (ended === 'timeout') {
      return {
        class: 'ambiguous',
        code: 'timeout',
        message: `no complete response within ${options.timeoutMs} ms`,
      };
    }
    return undefined;
  };

  try {
    const credentials = await credentialHeaders(ctx, controller.signal);
    if ('failure' in credentials) return { kind: 'failure', failure: endedFailure() ?? credentials.failure };

    const init = {
      method: request.method,
      headers: { ...options.headers, ...request.headers, ...credentials.headers },
      ...(request.body === undefined ? {} : { body: request.body }),
      signal: controller.signal,
      redirect: 'manual' as const,
    };

    const send = async (): Promise<FetchResponseLike> => {
      try {
        return await raceAbort(options.fetch(request.url, init), controller.signal);
      } catch (error) {
        throw new FetchAttemptError(error);
      }
    };
    const shouldResend = (error: unknown): boolean =>
      !controller.signal.aborted && error instanceof FetchAttemptError && isResendable(error.original);
    let response: FetchResponseLike;
    try {
      try {
        response = await send();
      } catch (first) {
        if (options.connectRetries === 0 || !shouldResend(first)) throw first;
        // Only a failed first send pays for the retry machinery (a drain's requests nearly all
        // succeed at once). p-retry sees that failure as its first attempt, so the resends keep
        // their delays (50 ms, then ×2) and their count.
        response = await pRetry((attempt) => (attempt === 1 ? Promise.reject(first) : send()), {
          retries: options.connectRetries,
          minTimeout: RESEND_MIN_DELAY_MS,
          factor: 2,
          signal: controller.signal,
          shouldRetry: ({ error }) => shouldResend(error),
        });
      }
    } catch (error) {
      const original = error instanceof FetchAttemptError ? error.original : error;
      return {
        kind: 'failure',
        failure: endedFailure() ?? classifyNetworkError(original, options.networkErrorClass),
      };
    }

    let body: ReadResponse['body'];
    try {
      body = { ok: true, text: await raceAbort(response.text(), controller.signal) };
    } catch (error) {
      body = { ok: false, failure: endedFailure() ?? bodyFailure(error) };
    }
    return { kind: 'response', response: { status: response.status, headers: response.headers, body } };
  } finally {
    clearTimeout(timer);
    unsubscribe();
  }
}

/** Replace every credential value in `text` (FAULTS.md 33). */
export function redact(text: string, secrets: ReadonlySet<string>): string {
  let out = text;
  // Longest first, so a token inside a longer header value is not left half-scrubbed.
  for (const secret of [...secrets].sort((a, b) => b.length - a.length)) {
    out = out.split(secret).join('[redacted]');
  }
  return out;
}
