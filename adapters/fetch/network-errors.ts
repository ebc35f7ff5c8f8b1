/**
 * Classifying a rejected `fetch` call (DESIGN.md section 5, FAULTS.md 11–13). Node's fetch
 * (undici) rejects with `TypeError('fetch failed')` whose `cause` — sometimes an `AggregateError`
 * of one error per address tried — carries the system or undici code; browsers and React Native
 * reject with a bare `TypeError` that says nothing more.
 *
 * @packageDocumentation
 */
import type { TransportFailure } from 'sync-core';

/** Codes that prove no connection was made, so nothing reached the server. */
const OFFLINE_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EAI_NONAME',
  'EAI_NODATA',
  'EAI_FAIL',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'ENETDOWN',
  'EHOSTDOWN',
  'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT',
  // A TLS handshake that failed (often a captive portal intercepting HTTPS): no request was sent.
  'CERT_HAS_EXPIRED',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** Codes of a connection lost after the request may have been sent. */
const AMBIGUOUS_CODES = new Set([
  'ECONNRESET',
  'EPIPE',
  'ECONNABORTED',
  'ETIMEDOUT',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
]);

/**
 * Codes after which an immediate resend is worth it: the connection was refused (a server
 * restarting) or dropped before any response (a keep-alive connection the server had just closed).
 * Safe even if the server did receive the request: the resend carries the same idempotency key.
 */
const RESENDABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET']);

const MAX_DEPTH = 6;

/**
 * The most telling error code in an error's `cause` chain (and an `AggregateError`'s `errors`):
 * the first known one, else the first code found.
 */
export function networkErrorCode(error: unknown): string | undefined {
  const codes: string[] = [];
  const visit = (value: unknown, depth: number): void => {
    if (depth > MAX_DEPTH || typeof value !== 'object' || value === null) return;
    const record = value as { code?: unknown; cause?: unknown; errors?: unknown };
    if (typeof record.code === 'string') codes.push(record.code);
    if (Array.isArray(record.errors)) for (const inner of record.errors) visit(inner, depth + 1);
    visit(record.cause, depth + 1);
  };
  visit(error, 0);
  return codes.find((code) => OFFLINE_CODES.has(code) || AMBIGUOUS_CODES.has(code)) ?? codes[0];
}

/** Whether a request that failed with this error before any response may be resent at once. */
export function isResendable(error: unknown): boolean {
  const code = networkErrorCode(error);
  return code !== undefined && RESENDABLE_CODES.has(code);
}

/** `ECONNREFUSED` → `econnrefused`, `UND_ERR_SOCKET` → `und-err-socket`. */
function failureCode(code: string): string {
  return code.toLowerCase().replace(/_/g, '-');
}

/**
 * Classify a rejected fetch call that was neither aborted nor timed out. Never echoes the error's
 * message (it may hold a URL with a token in it); names only its code or class.
 *
 * @param override - The `networkErrorClass` option.
 */
export function classifyNetworkError(
  error: unknown,
  override?: (error: unknown) => 'offline' | 'ambiguous' | undefined,
): TransportFailure {
  const code = networkErrorCode(error);
  const forced = override?.(error);
  if (
    code !== undefined &&
    (OFFLINE_CODES.has(code) || code.startsWith('ERR_TLS_') || code.startsWith('ERR_SSL_'))
  ) {
    return {
      class: forced ?? 'offline',
      code: failureCode(code),
      message: `no connection to the server (${code})`,
    };
  }
  if (code !== undefined) {
    return {
      class: forced ?? 'ambiguous',
      code: failureCode(code),
      message: `the connection failed before a complete response (${code})`,
    };
  }
  // A browser's or React Native's bare TypeError: offline, refused, reset or CORS look the same.
  // When the platform itself says it is offline, nothing was sent (no attempt must be counted);
  // otherwise `ambiguous` is the safe reading: the request may have reached the server.
  const name = error instanceof Error ? error.name : typeof error;
  if (
    forced === undefined &&
    (globalThis as { navigator?: { onLine?: boolean } }).navigator?.onLine === false
  ) {
    return { class: 'offline', code: 'navigator-offline', message: `the device is offline (${name})` };
  }
  return {
    class: forced ?? 'ambiguous',
    code: 'network-error',
    message: `the request failed without a response (${name})`,
  };
}
