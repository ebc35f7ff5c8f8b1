/**
 * REST-resource mode (DESIGN.md section 8): `POST /rest/:entity`, `GET|PATCH|DELETE
 * /rest/:entity/:id`, over the same records, versions and idempotency keys as the sync protocol.
 * Versions travel as strong entity tags (`ETag: "3"`, `If-Match: "3"`).
 *
 * @packageDocumentation
 */

import type { IncomingHttpHeaders } from 'node:http';
import { errorReply, type Reply, type RequestContext } from './context.js';
import {
  createRecord,
  deleteRecord,
  isJsonObject,
  updateRecord,
  type WriteOutcome,
  type WriteTarget,
} from './records.js';
import type { AppliedOp, JsonObject } from './types.js';

/** Longest accepted `Idempotency-Key`. */
const MAX_KEY_LENGTH = 512;

/** A validated REST request, ready to run. */
export type RestCommand =
  | {
      readonly kind: 'create';
      readonly entity: string;
      /** The client's id from the body's `id` or `X-Entity-Id`; `undefined` lets the server pick. */
      readonly clientEntityId: string | undefined;
      readonly data: JsonObject;
      readonly key: string;
      readonly clientId: string | null;
    }
  | {
      readonly kind: 'update' | 'delete';
      readonly entity: string;
      readonly id: string;
      /** `null` for a patch; ignored for a delete. */
      readonly data: JsonObject | null;
      readonly key: string | null;
      /** Versions listed in `If-Match`; `'*'` or `null` (absent) skip the version check. */
      readonly ifMatch: readonly number[] | '*' | null;
      readonly clientId: string | null;
    }
  | { readonly kind: 'read'; readonly entity: string; readonly id: string };

/** The strong entity tag of a version. */
export function etagOf(version: number): string {
  return `"${version}"`;
}

/** Parse `If-Match`: a list of entity tags (`"3"`, `W/"3"` or a bare `3`) or `*`. */
export function parseIfMatch(header: string): readonly number[] | '*' | undefined {
  const trimmed = header.trim();
  if (trimmed === '*') return '*';
  const versions: number[] = [];
  for (const part of trimmed.split(',')) {
    const match = /^(?:W\/)?(?:"(\d{1,15})"|(\d{1,15}))$/.exec(part.trim());
    const digits = match?.[1] ?? match?.[2];
    if (digits === undefined) return undefined;
    versions.push(Number(digits));
  }
  return versions;
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/**
 * Validate a REST request. Returns the command, or the 400/404/405 reply to send.
 *
 * @param segments the decoded path segments after `/rest/` (one or two)
 * @param body the parsed JSON body (`undefined` when empty)
 */
export function parseRest(
  method: string,
  segments: readonly string[],
  headers: IncomingHttpHeaders,
  body: unknown,
): RestCommand | Reply {
  const [entity, id] = segments;
  if (entity === undefined || entity === '' || segments.length > 2 || id === '') {
    return errorReply(404, 'not-found', 'no such route');
  }
  const key = header(headers, 'idempotency-key');
  if (key !== undefined && (key.length === 0 || key.length > MAX_KEY_LENGTH)) {
    return errorReply(400, 'invalid-request', `Idempotency-Key: expected 1 to ${MAX_KEY_LENGTH} characters`);
  }
  const clientId = header(headers, 'x-client-id') ?? null;

  if (id === undefined) {
    if (method !== 'POST') return methodNotAllowed('POST');
    if (key === undefined)
      return errorReply(400, 'invalid-request', 'the Idempotency-Key header is required');
    if (!isJsonObject(body)) return errorReply(400, 'invalid-request', 'body: expected a JSON object');
    const { id: bodyId, ...data } = body;
    if (bodyId !== undefined && (typeof bodyId !== 'string' || bodyId === '')) {
      return errorReply(400, 'invalid-request', 'id: expected a non-empty string');
    }
    const clientEntityId = bodyId ?? header(headers, 'x-entity-id');
    return {
      kind: 'create',
      entity,
      clientEntityId: clientEntityId === '' ? undefined : clientEntityId,
      data,
      key,
      clientId,
    };
  }

  if (method === 'GET') return { kind: 'read', entity, id };
  if (method !== 'PATCH' && method !== 'DELETE') return methodNotAllowed('GET, PATCH, DELETE');
  const ifMatchHeader = header(headers, 'if-match');
  const ifMatch = ifMatchHeader === undefined ? null : parseIfMatch(ifMatchHeader);
  if (ifMatch === undefined) return errorReply(400, 'invalid-request', 'If-Match: expected "<version>" or *');
  if (method === 'PATCH') {
    if (!isJsonObject(body)) return errorReply(400, 'invalid-request', 'body: expected a JSON object');
    return { kind: 'update', entity, id, data: body, key: key ?? null, ifMatch, clientId };
  }
  return { kind: 'delete', entity, id, data: null, key: key ?? null, ifMatch, clientId };
}

function methodNotAllowed(allow: string): Reply {
  return { ...errorReply(405, 'method-not-allowed'), headers: { allow } };
}

function recordReply(status: number, id: string, version: number, data: JsonObject | null): Reply {
  return { status, body: { id, version, data }, headers: { etag: etagOf(version) } };
}

/** Run a validated REST command. */
export function executeRest(ctx: RequestContext, command: RestCommand): Reply {
  const { store, partition, stats } = ctx;
  if (command.kind === 'read') {
    const id = store.resolveId(partition, command.entity, command.id);
    const record = store.getRecord(partition, command.entity, id);
    if (record === undefined || record.deleted) return errorReply(404, 'not-found', 'no such record');
    return recordReply(200, id, record.version, record.data);
  }
  const key = command.key;
  const outcome = store.transaction((): { replay: boolean; reply: Reply } => {
    if (key !== null) {
      const remembered = store.findKey(partition, key);
      if (remembered !== undefined) {
        if (remembered.kind !== 'rest') {
          return {
            replay: true,
            reply: errorReply(422, 'idempotency-key-reused', 'this idempotency key was used by a sync push'),
          };
        }
        // Written below from a Reply.
        const original = remembered.response as Reply;
        return {
          replay: true,
          reply: { ...original, headers: { ...original.headers, 'idempotent-replayed': 'true' } },
        };
      }
    }
    const reply = applyCommand(ctx, command);
    if (key !== null) store.rememberKey(partition, key, 'rest', reply);
    return { replay: false, reply };
  });
  const { status } = outcome.reply;
  if (outcome.replay) stats.duplicates++;
  else if (status >= 200 && status < 300) stats.applied++;
  else if (status === 409 || status === 412) stats.conflicts++;
  else if (status === 422) stats.rejected++;
  return outcome.reply;
}

function applyCommand(ctx: RequestContext, command: Exclude<RestCommand, { kind: 'read' }>): Reply {
  const target: WriteTarget = { store: ctx.store, partition: ctx.partition, entity: command.entity };
  const op: AppliedOp = command.kind;
  let baseVersion: number | null = null;
  if (command.kind !== 'create' && Array.isArray(command.ifMatch)) {
    // Any listed tag may match (RFC 9110 section 13.1.1); otherwise the first one is the stale base.
    const current = ctx.store.getRecord(
      ctx.partition,
      command.entity,
      ctx.store.resolveId(ctx.partition, command.entity, command.id),
    );
    const versions: readonly number[] = command.ifMatch;
    baseVersion =
      current !== undefined && versions.includes(current.version) ? current.version : (versions[0] ?? null);
  }
  const clientEntityId = command.kind === 'create' ? command.clientEntityId : command.id;
  const reason = ctx.faults.rejectWhen?.({
    entity: command.entity,
    op,
    entityId: clientEntityId ?? '',
    key: command.key,
    baseVersion,
    data: command.data,
    clientId: command.clientId,
    scope: ctx.scope,
  });
  if (reason !== undefined) return errorReply(422, 'invalid', reason);

  let outcome: WriteOutcome;
  if (command.kind === 'create') {
    outcome = createRecord(target, command.clientEntityId, command.data, ctx.assignIds.has(command.entity));
  } else if (command.kind === 'update') {
    outcome = updateRecord(target, command.id, command.data ?? {}, baseVersion);
  } else {
    outcome = deleteRecord(target, command.id, baseVersion);
  }

  switch (outcome.kind) {
    case 'missing':
      return errorReply(404, 'not-found', 'no such record');
    case 'conflict':
      return recordReply(
        command.kind === 'create' ? 409 : 412,
        outcome.entityId,
        outcome.version,
        outcome.data,
      );
    case 'applied': {
      ctx.store.appendApplied({
        key: command.key,
        clientId: command.clientId,
        scope: ctx.scope,
        entity: command.entity,
        entityId: outcome.entityId,
        op,
        baseVersion,
        version: outcome.version,
        data: command.data,
        via: 'rest',
      });
      if (command.kind === 'delete') return { status: 204, headers: { etag: etagOf(outcome.version) } };
      const reply = recordReply(
        command.kind === 'create' ? 201 : 200,
        outcome.entityId,
        outcome.version,
        outcome.data,
      );
      if (command.kind !== 'create') return reply;
      const location = `/rest/${encodeURIComponent(command.entity)}/${encodeURIComponent(outcome.entityId)}`;
      return { ...reply, headers: { ...reply.headers, location } };
    }
  }
}
