/**
 * What a route handler works with once a request is authenticated.
 *
 * @packageDocumentation
 */

import type * as z from 'zod';
import type { FaultInjector } from './faults.js';
import type { MutableStats } from './stats.js';
import type { ServerStore } from './store.js';
import type { Scope } from './types.js';

/** Server-wide state shared by every request. */
export interface ServerContext {
  readonly store: ServerStore;
  readonly faults: FaultInjector;
  readonly stats: MutableStats;
  /** Entity types whose creates get a server-assigned id. */
  readonly assignIds: ReadonlySet<string>;
  readonly now: () => number;
  readonly tokenTtlMs: number;
  readonly maxBodyBytes: number;
  readonly onError: (error: unknown) => void;
}

/** {@link ServerContext} plus the caller's identity. */
export interface RequestContext extends ServerContext {
  readonly scope: Scope;
  /** The data partition of {@link RequestContext.scope}. */
  readonly partition: string;
}

/** A JSON answer (or an empty one) before it is written. */
export interface Reply {
  readonly status: number;
  /** Serialised as JSON; omitted for an empty body (204). */
  readonly body?: unknown;
  readonly headers?: Readonly<Record<string, string>>;
  /** @default 'application/json; charset=utf-8' */
  readonly contentType?: string;
}

/** The JSON error body every non-2xx answer of the server carries. */
export function errorReply(status: number, code: string, message?: string): Reply {
  return { status, body: { error: message === undefined ? { code } : { code, message } } };
}

/** Format zod issues as `path: message; …`, naming at most five. */
export function describeIssues(error: z.ZodError): string {
  const issues = error.issues.slice(0, 5).map((issue) => {
    const path = issue.path.map(String).join('.');
    return `${path === '' ? '(body)' : path}: ${issue.message}`;
  });
  const more = error.issues.length > 5 ? `; and ${error.issues.length - 5} more` : '';
  return issues.join('; ') + more;
}
