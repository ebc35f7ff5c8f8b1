/**
 * `POST /sync/push` (protocol v1, DESIGN.md section 8): validation of the request and per-mutation
 * processing, each mutation in its own transaction together with its idempotency key.
 *
 * @packageDocumentation
 */

import * as z from 'zod';
import { describeIssues, type RequestContext } from './context.js';
import { createRecord, deleteRecord, isJsonObject, updateRecord, type WriteTarget } from './records.js';
import type { AppliedOp, JsonObject, PushResponse, PushResult } from './types.js';

const mutationSchema = z.object({
  id: z.string().min(1),
  key: z.string().min(1).max(512),
  op: z.string().min(1),
  entityId: z.string().min(1),
  baseVersion: z.number().int().nonnegative().nullable().optional(),
  data: z.unknown().optional(),
  clientTime: z.string().optional(),
  dependsOn: z.array(z.string()).optional(),
});

const pushRequestSchema = z.object({
  protocol: z.literal(1),
  clientId: z.string().min(1),
  entity: z.string().min(1),
  mutations: z.array(mutationSchema),
});

/** A validated push request. */
export type ParsedPush = z.infer<typeof pushRequestSchema>;

/** A validated push mutation. */
export type ParsedMutation = z.infer<typeof mutationSchema>;

/** What a push answers when remembered: its result without the per-request `id`. */
type StoredPushResult =
  | { readonly status: 'applied'; readonly version: number; readonly entityId?: string }
  | { readonly status: 'conflict'; readonly version: number; readonly data: JsonObject | null }
  | { readonly status: 'rejected'; readonly error: { readonly code: string; readonly message: string } };

/** A {@link PushResult} before its request-specific `id` is added. */
type ResultBody = DistributiveOmit<PushResult, 'id'>;

/** `Omit` applied to each member of a union. */
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** Validate a push body: `{ ok: false, message }` explains what is wrong. */
export function parsePush(body: unknown): { ok: true; value: ParsedPush } | { ok: false; message: string } {
  if (isJsonObject(body) && body['protocol'] !== undefined && body['protocol'] !== 1) {
    return {
      ok: false,
      message: `unsupported protocol ${JSON.stringify(body['protocol'])}: this server speaks protocol 1`,
    };
  }
  const parsed = pushRequestSchema.safeParse(body);
  if (!parsed.success) return { ok: false, message: describeIssues(parsed.error) };
  const ids = new Set<string>();
  for (const mutation of parsed.data.mutations) {
    if (ids.has(mutation.id)) {
      return { ok: false, message: `mutations: id ${JSON.stringify(mutation.id)} appears twice` };
    }
    ids.add(mutation.id);
  }
  return { ok: true, value: parsed.data };
}

/** Process every mutation of a validated push, in array order, and answer one result per mutation. */
export function processPush(ctx: RequestContext, request: ParsedPush): PushResponse {
  return { results: request.mutations.map((mutation) => processMutation(ctx, request, mutation)) };
}

function processMutation(ctx: RequestContext, request: ParsedPush, mutation: ParsedMutation): PushResult {
  const { store, stats, partition } = ctx;
  const retryAfterMs = ctx.faults.takeItemRetry();
  if (retryAfterMs !== undefined) {
    stats.retries++;
    stats.injectedFaults++;
    return { id: mutation.id, status: 'retry', retryAfterMs };
  }
  // The key lookup, the effect and the key's row commit together: a crash cannot leave an
  // applied effect whose key is unknown (which would apply it twice on resend), nor the reverse.
  const outcome = store.transaction((): { replay: boolean; result: ResultBody } => {
    const remembered = store.findKey(partition, mutation.key);
    if (remembered !== undefined) {
      if (remembered.kind !== 'push') {
        return { replay: true, result: keyReusedResult() };
      }
      // Written by rememberKey below from a StoredPushResult.
      return { replay: true, result: replayOf(remembered.response as StoredPushResult) };
    }
    const result = applyMutation(ctx, request, mutation);
    store.rememberKey(partition, mutation.key, 'push', result);
    return { replay: false, result };
  });
  if (outcome.replay) stats.duplicates++;
  else if (outcome.result.status === 'applied') stats.applied++;
  else if (outcome.result.status === 'conflict') stats.conflicts++;
  else stats.rejected++;
  return { id: mutation.id, ...outcome.result };
}

function keyReusedResult(): StoredPushResult {
  return {
    status: 'rejected',
    error: { code: 'idempotency-key-reused', message: 'this idempotency key was used by a REST request' },
  };
}

function replayOf(original: StoredPushResult): ResultBody {
  if (original.status !== 'applied') return original;
  return original.entityId === undefined
    ? { status: 'duplicate', version: original.version }
    : { status: 'duplicate', version: original.version, entityId: original.entityId };
}

function rejected(code: string, message: string): StoredPushResult {
  return { status: 'rejected', error: { code, message } };
}

function applyMutation(ctx: RequestContext, request: ParsedPush, mutation: ParsedMutation): StoredPushResult {
  const { op, entityId } = mutation;
  const baseVersion = mutation.baseVersion ?? null;
  if (op !== 'create' && op !== 'update' && op !== 'delete') {
    return rejected(
      'unknown-op',
      `unknown op ${JSON.stringify(op)}: this server applies create, update and delete`,
    );
  }
  const data = mutation.data;
  if (op !== 'delete' && !isJsonObject(data)) {
    return rejected('invalid', `data: expected a JSON object for ${op}`);
  }
  const reason = ctx.faults.rejectWhen?.({
    entity: request.entity,
    op,
    entityId,
    key: mutation.key,
    baseVersion,
    data,
    clientId: request.clientId,
    scope: ctx.scope,
  });
  if (reason !== undefined) return rejected('invalid', reason);

  const target: WriteTarget = { store: ctx.store, partition: ctx.partition, entity: request.entity };
  const outcome =
    op === 'create'
      ? createRecord(target, entityId, data as JsonObject, ctx.assignIds.has(request.entity))
      : op === 'update'
        ? updateRecord(target, entityId, data as JsonObject, baseVersion)
        : deleteRecord(target, entityId, baseVersion);

  switch (outcome.kind) {
    case 'conflict':
      return { status: 'conflict', version: outcome.version, data: outcome.data };
    case 'missing':
      // An update of a record that is gone is a conflict (the client must decide); a delete of
      // one already achieved what it wanted.
      return op === 'delete'
        ? { status: 'applied', version: outcome.version }
        : { status: 'conflict', version: outcome.version, data: null };
    case 'applied':
      ctx.store.appendApplied({
        key: mutation.key,
        clientId: request.clientId,
        scope: ctx.scope,
        entity: request.entity,
        entityId: outcome.entityId,
        op: op satisfies AppliedOp,
        baseVersion,
        version: outcome.version,
        data: op === 'delete' ? null : (data as JsonObject),
        via: 'push',
      });
      return outcome.assigned
        ? { status: 'applied', version: outcome.version, entityId: outcome.entityId }
        : { status: 'applied', version: outcome.version };
  }
}
