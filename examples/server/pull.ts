/**
 * `GET /sync/pull` (protocol v1): pages of a partition's change log for one entity type, after an
 * opaque cursor.
 *
 * @packageDocumentation
 */

import { errorReply, type Reply, type RequestContext } from './context.js';
import type { PullChange, PullResponse } from './types.js';

/** Page size when the request names none. */
export const DEFAULT_PULL_LIMIT = 500;
/** Largest page size; larger `limit` values are clamped to it. */
export const MAX_PULL_LIMIT = 1000;

/**
 * The cursor after change-log seq `seq`: base64url of its decimal digits. Opaque to clients; the
 * encoding only has to round-trip and reject garbage.
 */
export function encodeCursor(seq: number): string {
  return Buffer.from(String(seq), 'utf8').toString('base64url');
}

/** The change-log seq a cursor names, or `undefined` if it is not one this server issued. */
export function decodeCursor(cursor: string): number | undefined {
  if (!/^[A-Za-z0-9_-]{1,24}$/.test(cursor)) return undefined;
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  if (!/^(0|[1-9][0-9]{0,14})$/.test(text)) return undefined;
  const seq = Number(text);
  // Canonical form only, so two spellings never name the same position.
  return encodeCursor(seq) === cursor ? seq : undefined;
}

/** Answer a pull request. */
export function handlePull(ctx: RequestContext, query: URLSearchParams): Reply {
  const entity = query.get('entity');
  if (entity === null || entity === '') {
    return errorReply(400, 'invalid-request', 'entity: a non-empty query parameter is required');
  }
  let limit = DEFAULT_PULL_LIMIT;
  const limitText = query.get('limit');
  if (limitText !== null) {
    if (!/^[0-9]{1,9}$/.test(limitText) || Number(limitText) < 1) {
      return errorReply(400, 'invalid-request', 'limit: expected a positive integer');
    }
    limit = Math.min(Number(limitText), MAX_PULL_LIMIT);
  }
  let after = 0;
  const cursorText = query.get('cursor');
  if (cursorText !== null && cursorText !== '') {
    const decoded = decodeCursor(cursorText);
    if (decoded === undefined)
      return errorReply(400, 'invalid-request', 'cursor: not a cursor this server issued');
    after = decoded;
  }

  // One row beyond the page tells whether there is more without a second query.
  const rows = ctx.store.changesAfter(ctx.partition, entity, after, limit + 1);
  const page = rows.slice(0, limit);
  const changes = page.map(
    (row): PullChange =>
      row.op === 'delete' || row.data === null
        ? { entityId: row.entityId, op: 'delete', version: row.version }
        : { entityId: row.entityId, op: 'upsert', version: row.version, data: row.data },
  );
  const last = page[page.length - 1];
  const body: PullResponse = {
    changes,
    cursor: encodeCursor(last === undefined ? after : last.seq),
    hasMore: rows.length > limit,
  };
  return { status: 200, body };
}
