import type { ConflictStrategy } from './conflict/conflict-strategy.js';
import type { AppTransaction } from './contracts/app-transaction.js';
import type { StandardSchemaV1 } from './contracts/standard-schema.js';
import { ConfigError, describeType } from './errors.js';
import type { PullHandler } from './pull/pull-types.js';

/**
 * How one entity type is queued. Register every entity type the app enqueues; an unknown type
 * is refused at `enqueue` (`UNKNOWN_ENTITY`).
 *
 * @example
 * ```ts
 * import * as z from 'zod';
 * const entities = {
 *   activity: { schema: z.object({ title: z.string(), minutes: z.number().int() }), coalesce: true },
 *   contact: { schema: contactSchema, updateSchema: contactSchema.partial() },
 * };
 * ```
 */
export interface EntityOptions {
  /**
   * Validates `create` payloads, and `update` payloads unless {@link EntityOptions.updateSchema} is
   * given. Any Standard Schema v1 validator works (zod 4, valibot, arktype). The validated output
   * is what gets stored. Default: no schema (payloads are still checked to be plain JSON).
   */
  readonly schema?: StandardSchemaV1;
  /** Validates `update` payloads (typically a partial of `schema`). Default: `schema`. */
  readonly updateSchema?: StandardSchemaV1;
  /**
   * Merge a new mutation into the record's last queued one when that one was never sent:
   * update+update → one update (fields merged, later wins), create+update → create,
   * create+delete → nothing is sent, update+delete → delete. Keeps a record edited 50 times
   * offline to one request. Default is `false`.
   */
  readonly coalesce?: boolean;
  /**
   * Custom operation names this entity type accepts beyond create/update/delete, each with an
   * optional schema for its payload (`null`: any plain JSON). Custom ops are never coalesced.
   * Default: none.
   */
  readonly customOps?: Readonly<Record<string, StandardSchemaV1 | null>>;
  /**
   * Largest accepted payload, in UTF-8 bytes of its JSON. Default: the engine's
   * {@link QueueLimits.maxPayloadBytes}.
   */
  readonly maxPayloadBytes?: number;
  /**
   * How conflicts the server reports for this entity type are resolved; see
   * {@link ConflictStrategy}. Default is `'manual'`.
   */
  readonly conflict?: ConflictStrategy;
  /**
   * Payload fields that hold the id of a record of another entity type, e.g.
   * `{ activityId: 'activity' }` on a `note`. When the server assigns its own id to a record
   * created offline, queued mutations referring to it through these fields are rewritten in the
   * same transaction, so children created offline under a parent are not rejected. Top-level
   * fields only. Default: none.
   */
  readonly references?: Readonly<Record<string, string>>;
  /**
   * Called when the server assigned its own id to a record of this type created offline, inside
   * the transaction that records the confirmation: update the app's own rows to the server id
   * there, atomically with sync-core's rewrite of queued mutations.
   */
  readonly onIdAssigned?: (
    tx: AppTransaction,
    ids: { readonly clientId: string; readonly serverId: string },
  ) => Promise<void>;
  /**
   * Applies pulled server changes of this entity type to the app's tables. Entity types without a
   * handler are not pulled. See {@link PullHandler}.
   */
  readonly pull?: PullHandler;
}

/** Limits the queue enforces. */
export interface QueueLimits {
  /**
   * Largest accepted payload in UTF-8 bytes of its JSON text. A payload this size still has to fit
   * in one request with its batch.
   * @default 262_144 (256 KiB)
   */
  readonly maxPayloadBytes?: number;
}

/** Entity options after validation. */
export interface ResolvedEntity {
  readonly name: string;
  readonly schema: StandardSchemaV1 | undefined;
  readonly updateSchema: StandardSchemaV1 | undefined;
  readonly coalesce: boolean;
  readonly customOps: ReadonlyMap<string, StandardSchemaV1 | null>;
  readonly maxPayloadBytes: number;
  readonly conflict: ConflictStrategy;
  readonly references: ReadonlyMap<string, string>;
  readonly onIdAssigned: EntityOptions['onIdAssigned'];
  readonly pull: PullHandler | undefined;
}

export const DEFAULT_MAX_PAYLOAD_BYTES = 262_144;
const BUILTIN_OPS = new Set(['create', 'update', 'delete']);

function isStandardSchema(value: unknown): value is StandardSchemaV1 {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { '~standard'?: { validate?: unknown } })['~standard']?.validate === 'function'
  );
}

/** Throw a {@link ConfigError} "<name>: expected <expected>, got <type>". */
export function invalidOption(name: string, expected: string, got: unknown): never {
  throw new ConfigError(`${name}: expected ${expected}, got ${describeType(got)}`);
}

/** Validate a positive integer option, returning the default when undefined. */
export function positiveInteger(
  name: string,
  value: unknown,
  fallback: number,
  max = Number.MAX_SAFE_INTEGER,
) {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > max) {
    invalidOption(name, `an integer from 1 to ${max}`, value);
  }
  return value;
}

/** Validate and resolve the `entities` option. */
export function resolveEntities(
  entities: unknown,
  limits: QueueLimits | undefined,
): ReadonlyMap<string, ResolvedEntity> {
  if (typeof entities !== 'object' || entities === null || Array.isArray(entities)) {
    invalidOption('entities', 'an object mapping entity type names to options', entities);
  }
  const defaultMax = positiveInteger(
    'limits.maxPayloadBytes',
    limits?.maxPayloadBytes,
    DEFAULT_MAX_PAYLOAD_BYTES,
  );
  const out = new Map<string, ResolvedEntity>();
  for (const [name, raw] of Object.entries(entities)) {
    if (name.length === 0 || name.length > 128) {
      throw new ConfigError(`entities: entity type names must have 1 to 128 characters, got ${name.length}`);
    }
    const options = (raw ?? {}) as EntityOptions;
    if (typeof options !== 'object') invalidOption(`entities.${name}`, 'an object', raw);
    if (options.schema !== undefined && !isStandardSchema(options.schema)) {
      invalidOption(
        `entities.${name}.schema`,
        'a Standard Schema (zod 4, valibot, arktype…)',
        options.schema,
      );
    }
    if (options.updateSchema !== undefined && !isStandardSchema(options.updateSchema)) {
      invalidOption(`entities.${name}.updateSchema`, 'a Standard Schema', options.updateSchema);
    }
    if (options.coalesce !== undefined && typeof options.coalesce !== 'boolean') {
      invalidOption(`entities.${name}.coalesce`, 'a boolean', options.coalesce);
    }
    const customOps = new Map<string, StandardSchemaV1 | null>();
    if (options.customOps !== undefined) {
      if (typeof options.customOps !== 'object' || options.customOps === null) {
        invalidOption(
          `entities.${name}.customOps`,
          'an object of op name → schema or null',
          options.customOps,
        );
      }
      for (const [op, schema] of Object.entries(options.customOps)) {
        if (BUILTIN_OPS.has(op) || op.length === 0 || op.length > 64) {
          throw new ConfigError(
            `entities.${name}.customOps: expected a name of 1 to 64 characters other than create/update/delete, got "${op.slice(0, 64)}"`,
          );
        }
        if (schema !== null && !isStandardSchema(schema)) {
          invalidOption(`entities.${name}.customOps.${op}`, 'a Standard Schema or null', schema);
        }
        customOps.set(op, schema);
      }
    }
    const conflict = options.conflict ?? 'manual';
    if (typeof conflict !== 'function' && !['manual', 'server-wins', 'client-wins'].includes(conflict)) {
      invalidOption(
        `entities.${name}.conflict`,
        "'manual', 'server-wins', 'client-wins' or a merge function",
        conflict,
      );
    }
    const references = new Map<string, string>();
    if (options.references !== undefined) {
      if (typeof options.references !== 'object' || options.references === null) {
        invalidOption(`entities.${name}.references`, 'an object of field → entity type', options.references);
      }
      for (const [field, target] of Object.entries(options.references)) {
        if (!/^[A-Za-z_$][\w$]*$/.test(field) || typeof target !== 'string') {
          throw new ConfigError(
            `entities.${name}.references: expected identifier field names mapped to entity types, got "${field.slice(0, 64)}"`,
          );
        }
        references.set(field, target);
      }
    }
    for (const hook of ['onIdAssigned', 'pull'] as const) {
      if (options[hook] !== undefined && typeof options[hook] !== 'function') {
        invalidOption(`entities.${name}.${hook}`, 'a function', options[hook]);
      }
    }
    out.set(name, {
      name,
      schema: options.schema,
      updateSchema: options.updateSchema ?? options.schema,
      coalesce: options.coalesce ?? false,
      customOps,
      maxPayloadBytes: positiveInteger(
        `entities.${name}.maxPayloadBytes`,
        options.maxPayloadBytes,
        defaultMax,
      ),
      conflict,
      references,
      onIdAssigned: options.onIdAssigned,
      pull: options.pull,
    });
  }
  for (const entity of out.values()) {
    for (const [field, target] of entity.references) {
      if (!out.has(target)) {
        throw new ConfigError(
          `entities.${entity.name}.references.${field}: "${target}" is not a registered entity type`,
        );
      }
    }
  }
  return out;
}

/** Is `op` one of create/update/delete? */
export function isBuiltinOp(op: string): op is 'create' | 'update' | 'delete' {
  return BUILTIN_OPS.has(op);
}
