import type { Scope } from '../contracts/records.js';
import { describeType, ValidationError } from '../errors.js';

/**
 * The canonical text stored in `sync_mutations.scope`: a JSON array `[userId, orgId|null]`, which
 * cannot collide however the ids are spelled (a separator character could).
 */
export function scopeKey(scope: Scope): string {
  return JSON.stringify([scope.userId, scope.orgId ?? null]);
}

/** The inverse of {@link scopeKey}. */
export function parseScopeKey(key: string): Scope {
  const [userId, orgId] = JSON.parse(key) as [string, string | null];
  return orgId === null ? { userId } : { userId, orgId };
}

/** Validate a scope given by the app; returns a frozen copy. */
export function checkScope(scope: unknown): Scope {
  if (typeof scope !== 'object' || scope === null) {
    throw new ValidationError('VALIDATION_FAILED', [
      { path: ['scope'], message: `expected { userId, orgId? }, got ${describeType(scope)}` },
    ]);
  }
  const { userId, orgId } = scope as { userId?: unknown; orgId?: unknown };
  if (typeof userId !== 'string' || userId.length === 0 || userId.length > 512) {
    throw new ValidationError('VALIDATION_FAILED', [
      { path: ['scope', 'userId'], message: `expected a non-empty string, got ${describeType(userId)}` },
    ]);
  }
  if (orgId !== undefined && (typeof orgId !== 'string' || orgId.length === 0 || orgId.length > 512)) {
    throw new ValidationError('VALIDATION_FAILED', [
      {
        path: ['scope', 'orgId'],
        message: `expected a non-empty string or undefined, got ${describeType(orgId)}`,
      },
    ]);
  }
  return Object.freeze(orgId === undefined ? { userId } : { userId, orgId: orgId as string });
}
