/**
 * Development-grade bearer auth: `POST /auth/token` issues credentials for any `{ userId, orgId? }`
 * (no password — this server is a test tool), `POST /auth/refresh` rotates them. Tokens are random
 * (256 bits from node:crypto) and stored only as SHA-256 hashes.
 *
 * @packageDocumentation
 */

import { createHash, randomBytes } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import * as z from 'zod';
import { describeIssues, errorReply, type Reply, type ServerContext } from './context.js';
import type { IssuedToken, Scope } from './types.js';

const identitySchema = z.object({
  userId: z.string().min(1).max(512),
  orgId: z.string().min(1).max(512).nullable().optional(),
});

const refreshSchema = z.object({ refreshToken: z.string().min(1).max(512) });

function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

function newToken(): string {
  return randomBytes(32).toString('base64url');
}

/** Issue an access token (valid for `ctx.tokenTtlMs`) and a refresh token for `scope`. */
export function issueToken(ctx: ServerContext, scope: Scope): IssuedToken {
  const normalized: Scope =
    scope.orgId === undefined ? { userId: scope.userId } : { userId: scope.userId, orgId: scope.orgId };
  const token = newToken();
  const refreshToken = newToken();
  const expiresAt = ctx.now() + ctx.tokenTtlMs;
  ctx.store.transaction(() => {
    ctx.store.insertAccessToken(hashToken(token), normalized, expiresAt);
    ctx.store.insertRefreshToken(hashToken(refreshToken), normalized);
  });
  return { token, refreshToken, expiresAt };
}

function unauthorized(ctx: ServerContext, message: string): Reply {
  ctx.stats.unauthorized++;
  return {
    ...errorReply(401, 'unauthorized', message),
    headers: { 'www-authenticate': 'Bearer realm="sync", error="invalid_token"' },
  };
}

/** The scope of a request's `Authorization: Bearer` token, or the 401 reply to send. */
export function authenticate(ctx: ServerContext, headers: IncomingHttpHeaders): Scope | Reply {
  const match = /^Bearer +([A-Za-z0-9._~+/=-]+) *$/i.exec(headers.authorization ?? '');
  const token = match?.[1];
  if (token === undefined) return unauthorized(ctx, 'a bearer token is required');
  const found = ctx.store.findAccessToken(hashToken(token));
  if (found === undefined) return unauthorized(ctx, 'unknown token');
  if (found.expiresAt <= ctx.now()) return unauthorized(ctx, 'token expired');
  return found.scope;
}

/** `POST /auth/token`. */
export function handleTokenRequest(ctx: ServerContext, body: unknown): Reply {
  const parsed = identitySchema.safeParse(body);
  if (!parsed.success) return errorReply(400, 'invalid-request', describeIssues(parsed.error));
  const { userId, orgId } = parsed.data;
  const scope: Scope = orgId === null || orgId === undefined ? { userId } : { userId, orgId };
  return { status: 200, body: issueToken(ctx, scope) };
}

/** `POST /auth/refresh`: rotates the refresh token (the old one stops working). */
export function handleRefreshRequest(ctx: ServerContext, body: unknown): Reply {
  const parsed = refreshSchema.safeParse(body);
  if (!parsed.success) return errorReply(400, 'invalid-request', describeIssues(parsed.error));
  // Taking the old token and issuing the new pair commit together: a failure keeps the old one.
  const issued = ctx.store.transaction(() => {
    const scope = ctx.store.takeRefreshToken(hashToken(parsed.data.refreshToken));
    return scope === undefined ? undefined : issueToken(ctx, scope);
  });
  if (issued === undefined) return unauthorized(ctx, 'unknown refresh token');
  ctx.stats.refreshes++;
  return { status: 200, body: issued };
}

/** Make every access token issued so far expired at the server's current time. */
export function expireTokens(ctx: ServerContext): void {
  ctx.store.expireAccessTokens(ctx.now());
}
