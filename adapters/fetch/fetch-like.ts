/**
 * The few parts of `fetch` the adapter uses, typed structurally: the global fetch of browsers,
 * Node ≥ 18, Deno, Bun and React Native, undici's `fetch`, or any wrapper of them fits, and the
 * package never imports undici at run time (it is an optional peer dependency).
 *
 * @packageDocumentation
 */

/**
 * What the adapter passes as `fetch`'s second argument. A subset of the standard `RequestInit`.
 *
 * @example
 * ```ts
 * import type { FetchRequestInit } from 'sync-core/fetch';
 * const init: FetchRequestInit = { method: 'POST', headers: { accept: 'application/json' }, redirect: 'manual' };
 * ```
 */
export interface FetchRequestInit {
  /** `'POST'`, `'PATCH'`, `'PUT'` or `'DELETE'`; `'GET'` for a pull. */
  method: string;
  /** Header names are lower-case; credentials are among them, so never log this object. */
  headers: Record<string, string>;
  /** A JSON text, when the request has a body. */
  body?: string;
  /** Aborted on the push's or pull's abort signal, or the adapter's timeout. */
  signal?: AbortSignal;
  /**
   * Always `'manual'`: a redirect is never followed, so credentials never travel to another
   * location (FAULTS.md 14). The adapter treats the 3xx (or a browser's opaque-redirect response,
   * status 0) as a `retryable` `bad-response`.
   */
  redirect?: 'manual';
}

/**
 * The few members of a fetch `Response` the adapter reads.
 *
 * @example
 * ```ts
 * import type { FetchResponseLike } from 'sync-core/fetch';
 * const response: FetchResponseLike = await fetch('https://api.example.com/health');
 * ```
 */
export interface FetchResponseLike {
  /** The HTTP status; `0` for a browser's opaque-redirect response. */
  readonly status: number;
  readonly headers: {
    /** A header's value, or `null` when absent. Names are case-insensitive. */
    get(name: string): string | null;
  };
  /** The whole body as text; rejects when the connection breaks while reading it. */
  text(): Promise<string>;
}

/**
 * A `fetch` function as the adapter calls it. The global `fetch`, undici's `fetch` and React
 * Native's `fetch` are all assignable to it; so is a wrapper that adds, say, an undici
 * `dispatcher`.
 *
 * @example
 * ```ts
 * import { Agent, fetch as undiciFetch } from 'undici';
 * import { createFetchNetwork, type FetchLike } from 'sync-core/fetch';
 *
 * const dispatcher = new Agent({ connections: 4, keepAliveTimeout: 10_000 });
 * const pooledFetch: FetchLike = (url, init) => undiciFetch(url, { ...init, dispatcher });
 * const network = createFetchNetwork({
 *   baseUrl: 'https://api.example.com',
 *   fetch: pooledFetch,
 *   credentials: async () => ({ token: await tokenStore.accessToken() }),
 * });
 * ```
 */
export type FetchLike = (input: string, init: FetchRequestInit) => Promise<FetchResponseLike>;
