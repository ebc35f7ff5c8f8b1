/**
 * fast-check arbitraries for app teams' own property tests: mutations to enqueue, network faults
 * and fault schedules, wall-clock jumps, scopes.
 *
 * fast-check is an optional peer dependency of sync-core, so this module never imports it at run
 * time: each arbitrary takes the fast-check module as its first argument (`import fc from
 * 'fast-check'`, then `arbFault(fc)`). `sync-core/testing` therefore loads without fast-check
 * installed, and only these functions need it.
 *
 * @packageDocumentation
 */

import type * as FastCheck from 'fast-check';
import type { Arbitrary } from 'fast-check';
import type { JsonObject, MutationInput, Scope } from '../contracts/records.js';
import { ConfigError } from '../errors.js';
import { FAULT_KINDS, type Fault, type FaultKind, type PartialItemFault } from './fault.js';

/**
 * The parts of the fast-check module the arbitraries use. Pass the module itself: `import fc from
 * 'fast-check'` or `import * as fc from 'fast-check'` (version 4).
 *
 * @example
 * ```ts
 * import fc from 'fast-check';
 * import { arbFault, type FastCheckModule } from 'sync-core/testing';
 * const module: FastCheckModule = fc;
 * const faults = arbFault(module);
 * ```
 */
export type FastCheckModule = Pick<
  typeof FastCheck,
  'array' | 'constant' | 'constantFrom' | 'integer' | 'oneof' | 'option' | 'record' | 'string' | 'tuple'
>;

const ONE_SECOND = 1_000;
const ONE_HOUR = 3_600_000;
const ONE_DAY = 86_400_000;
const ONE_YEAR = 365 * ONE_DAY;

function requireFastCheck(fc: unknown, what: string): FastCheckModule {
  const candidate = fc as Partial<Record<keyof FastCheckModule, unknown>> | null | undefined;
  const missing = (
    ['array', 'constant', 'constantFrom', 'integer', 'oneof', 'option', 'record', 'string', 'tuple'] as const
  ).filter((name) => typeof candidate?.[name] !== 'function');
  if (typeof fc !== 'object' || fc === null || missing.length > 0) {
    throw new ConfigError(
      `${what}(fc, …): expected the fast-check module as first argument (import fc from 'fast-check'), got ${
        fc === null || fc === undefined ? String(fc) : `an object without ${missing.join(', ')}`
      }. fast-check is an optional peer dependency of sync-core: npm install --save-dev fast-check`,
    );
  }
  return fc as FastCheckModule;
}

function nonEmptyStrings(what: string, value: unknown): readonly string[] {
  if (!Array.isArray(value) || value.length === 0 || value.some((v) => typeof v !== 'string' || v === '')) {
    throw new ConfigError(
      `${what}: expected a non-empty array of non-empty strings, got ${JSON.stringify(value)}`,
    );
  }
  return value as readonly string[];
}

/**
 * Options of {@link arbMutationInput}.
 *
 * @example
 * ```ts
 * import type { ArbMutationInputOptions } from 'sync-core/testing';
 * const options: ArbMutationInputOptions = { entities: ['activity'], ids: ['a1', 'a2'], ops: ['create', 'update'] };
 * ```
 */
export interface ArbMutationInputOptions {
  /** Entity types to pick from; each must be registered with the engine. */
  readonly entities: readonly string[];
  /** Record ids to pick from. Few ids make many mutations per record: ordering gets tested. */
  readonly ids: readonly string[];
  /** Operations to pick from. @default ['create', 'update', 'delete'] */
  readonly ops?: readonly string[];
  /** Payload field names (each a small integer or a short string). @default ['title', 'minutes'] */
  readonly fields?: readonly string[];
}

/**
 * Mutations to enqueue: an entity type, a record id and an op from the given lists, and for
 * anything but a delete a small JSON object payload.
 *
 * @param fc - The fast-check module.
 * @throws ConfigError when `fc` is not fast-check or a list is empty.
 *
 * @example
 * ```ts
 * import fc from 'fast-check';
 * import { arbMutationInput } from 'sync-core/testing';
 * const inputs = fc.array(arbMutationInput(fc, { entities: ['activity'], ids: ['a1', 'a2'] }), { maxLength: 20 });
 * ```
 */
export function arbMutationInput(
  fc: FastCheckModule,
  options: ArbMutationInputOptions,
): Arbitrary<MutationInput> {
  const f = requireFastCheck(fc, 'arbMutationInput');
  const entities = nonEmptyStrings('arbMutationInput(fc, options).entities', options?.entities);
  const ids = nonEmptyStrings('arbMutationInput(fc, options).ids', options?.ids);
  const ops = nonEmptyStrings(
    'arbMutationInput(fc, options).ops',
    options.ops ?? ['create', 'update', 'delete'],
  );
  const fields = nonEmptyStrings(
    'arbMutationInput(fc, options).fields',
    options.fields ?? ['title', 'minutes'],
  );
  const value = f.oneof(f.integer({ min: 0, max: 1_000 }), f.string({ maxLength: 12 }));
  const payload: Arbitrary<JsonObject> = f
    .array(f.tuple(f.constantFrom(...fields), value), { minLength: 1, maxLength: fields.length })
    .map((pairs) => Object.fromEntries(pairs) as JsonObject);
  return f
    .tuple(f.constantFrom(...entities), f.constantFrom(...ids), f.constantFrom(...ops), payload)
    .map(
      ([entity, entityId, op, data]): MutationInput =>
        op === 'delete' ? { entity, op, entityId } : { entity, op, entityId, data },
    );
}

/**
 * Options of {@link arbFault}.
 *
 * @example
 * ```ts
 * import type { ArbFaultOptions } from 'sync-core/testing';
 * const serverTrouble: ArbFaultOptions = { kinds: ['status'], statuses: [429, 503], maxRetryAfterMs: 60_000 };
 * ```
 */
export interface ArbFaultOptions {
  /** Fault kinds to pick from. @default every kind ({@link FAULT_KINDS}) */
  readonly kinds?: readonly FaultKind[];
  /**
   * Statuses of `status` faults.
   * @default [400, 401, 403, 404, 408, 409, 422, 429, 500, 502, 503, 504]
   */
  readonly statuses?: readonly number[];
  /** Largest `retryAfterMs` generated. @default 3_600_000 (1 h) */
  readonly maxRetryAfterMs?: number;
}

const DEFAULT_STATUSES: readonly number[] = [400, 401, 403, 404, 408, 409, 422, 429, 500, 502, 503, 504];

/**
 * One network fault, of any kind by default (see `Fault` for what each does). `partial` faults
 * carry a `pattern`, since a schedule is generated before the mutation ids exist.
 *
 * @param fc - The fast-check module.
 * @throws ConfigError when `fc` is not fast-check or an option is invalid.
 *
 * @example
 * ```ts
 * import fc from 'fast-check';
 * import { arbFault } from 'sync-core/testing';
 * const transient = arbFault(fc, { kinds: ['offline', 'reset-after', 'timeout-after-commit'] });
 * ```
 */
export function arbFault(fc: FastCheckModule, options: ArbFaultOptions = {}): Arbitrary<Fault> {
  const f = requireFastCheck(fc, 'arbFault');
  const kinds = options.kinds ?? FAULT_KINDS;
  if (!Array.isArray(kinds) || kinds.length === 0 || kinds.some((k) => !FAULT_KINDS.includes(k))) {
    throw new ConfigError(
      `arbFault(fc, options).kinds: expected a non-empty array of ${FAULT_KINDS.join(' | ')}`,
    );
  }
  const statuses = options.statuses ?? DEFAULT_STATUSES;
  if (
    !Array.isArray(statuses) ||
    statuses.length === 0 ||
    statuses.some((s) => !Number.isInteger(s) || s < 100 || s > 599 || (s >= 200 && s < 300))
  ) {
    throw new ConfigError('arbFault(fc, options).statuses: expected a non-empty array of non-2xx statuses');
  }
  const maxRetryAfterMs = options.maxRetryAfterMs ?? ONE_HOUR;
  if (!Number.isInteger(maxRetryAfterMs) || maxRetryAfterMs < 0) {
    throw new ConfigError(
      `arbFault(fc, options).maxRetryAfterMs: expected an integer ≥ 0, got ${maxRetryAfterMs}`,
    );
  }
  const retryAfter = f.option(f.integer({ min: 0, max: maxRetryAfterMs }), { nil: undefined });
  const byKind = (kind: FaultKind): Arbitrary<Fault> => {
    switch (kind) {
      case 'status':
        return f
          .tuple(f.constantFrom(...statuses), retryAfter)
          .map(
            ([status, retryAfterMs]): Fault =>
              retryAfterMs === undefined ? { kind, status } : { kind, status, retryAfterMs },
          );
      case 'partial':
        return f
          .tuple(
            f.array(f.constantFrom<PartialItemFault>('apply', 'retry', 'reject'), {
              minLength: 1,
              maxLength: 4,
            }),
            f.option(f.integer({ min: 0, max: Math.min(maxRetryAfterMs, 60 * ONE_SECOND) }), {
              nil: undefined,
            }),
          )
          .map(
            ([pattern, retryAfterMs]): Fault =>
              retryAfterMs === undefined ? { kind, pattern } : { kind, pattern, retryAfterMs },
          );
      default:
        return f.constant({ kind } as Fault);
    }
  };
  return f.oneof(...kinds.map(byKind));
}

/**
 * Options of {@link arbFaultSchedule}: those of {@link arbFault}, plus the schedule's length.
 *
 * @example
 * ```ts
 * import type { ArbFaultScheduleOptions } from 'sync-core/testing';
 * const options: ArbFaultScheduleOptions = { maxLength: 30, kinds: ['reset-after', 'timeout-after-commit'] };
 * ```
 */
export interface ArbFaultScheduleOptions extends ArbFaultOptions {
  /** Most calls the schedule covers; calls after it get no fault. @default 12 */
  readonly maxLength?: number;
}

/**
 * A fault schedule for `createFaultyNetwork({ schedule })`: the i-th element is the fault of the
 * (i + 1)-th push, `null` for none. Finite, so every run eventually meets a healthy network.
 *
 * @param fc - The fast-check module.
 * @throws ConfigError when `fc` is not fast-check or an option is invalid.
 *
 * @example
 * ```ts
 * import fc from 'fast-check';
 * import { arbFaultSchedule, createFaultyNetwork, createModelServer } from 'sync-core/testing';
 * fc.assert(fc.property(arbFaultSchedule(fc), (schedule) => {
 *   const network = createFaultyNetwork(createModelServer(), { schedule });
 *   return network.requests().length === 0;
 * }));
 * ```
 */
export function arbFaultSchedule(
  fc: FastCheckModule,
  options: ArbFaultScheduleOptions = {},
): Arbitrary<(Fault | null)[]> {
  const f = requireFastCheck(fc, 'arbFaultSchedule');
  const maxLength = options.maxLength ?? 12;
  if (!Number.isInteger(maxLength) || maxLength < 0) {
    throw new ConfigError(
      `arbFaultSchedule(fc, options).maxLength: expected an integer ≥ 0, got ${maxLength}`,
    );
  }
  return f.array(f.option(arbFault(f, options), { nil: null }), { maxLength });
}

/**
 * Options of {@link arbClockJump}.
 *
 * @example
 * ```ts
 * import type { ArbClockJumpOptions } from 'sync-core/testing';
 * const withinAnHour: ArbClockJumpOptions = { maxMs: 3_600_000 };
 * ```
 */
export interface ArbClockJumpOptions {
  /** Largest jump in either direction, besides the fixed FAULTS.md cases. @default 86_400_000 (1 day) */
  readonly maxMs?: number;
}

/**
 * A wall-clock jump in ms for `clock.jump(ms)`: FAULTS.md 28 (a year ahead) and 29 (a day back),
 * an hour either way, or any jump up to `maxMs` in either direction.
 *
 * @param fc - The fast-check module.
 * @throws ConfigError when `fc` is not fast-check or `maxMs` is invalid.
 *
 * @example
 * ```ts
 * import fc from 'fast-check';
 * import { arbClockJump, createFakeClock } from 'sync-core/testing';
 * const clock = createFakeClock();
 * fc.assert(fc.property(arbClockJump(fc), (ms) => { clock.jump(ms); return Number.isFinite(clock.now()); }));
 * ```
 */
export function arbClockJump(fc: FastCheckModule, options: ArbClockJumpOptions = {}): Arbitrary<number> {
  const f = requireFastCheck(fc, 'arbClockJump');
  const maxMs = options.maxMs ?? ONE_DAY;
  if (!Number.isSafeInteger(maxMs) || maxMs < 0) {
    throw new ConfigError(`arbClockJump(fc, options).maxMs: expected an integer ≥ 0, got ${maxMs}`);
  }
  return f.oneof(
    f.constantFrom(ONE_YEAR, -ONE_DAY, ONE_HOUR, -ONE_HOUR),
    f.integer({ min: -maxMs, max: maxMs }),
  );
}

/**
 * Options of {@link arbScope}.
 *
 * @example
 * ```ts
 * import type { ArbScopeOptions } from 'sync-core/testing';
 * const usersOnly: ArbScopeOptions = { userIds: ['alice', 'bob'], orgIds: [] };
 * ```
 */
export interface ArbScopeOptions {
  /** User ids to pick from. @default ['u1', 'u2'] */
  readonly userIds?: readonly string[];
  /** Org ids to pick from; an empty array makes user-only scopes. @default ['o1', 'o2'] */
  readonly orgIds?: readonly string[];
}

/**
 * A scope (`{ userId, orgId? }`) for `engine.start(scope)` and scope-isolation tests.
 *
 * @param fc - The fast-check module.
 * @throws ConfigError when `fc` is not fast-check or `userIds` is empty.
 *
 * @example
 * ```ts
 * import fc from 'fast-check';
 * import { arbScope } from 'sync-core/testing';
 * const scopes = fc.uniqueArray(arbScope(fc), { minLength: 2, maxLength: 2, selector: (s) => `${s.userId}/${s.orgId}` });
 * ```
 */
export function arbScope(fc: FastCheckModule, options: ArbScopeOptions = {}): Arbitrary<Scope> {
  const f = requireFastCheck(fc, 'arbScope');
  const userIds = nonEmptyStrings('arbScope(fc, options).userIds', options.userIds ?? ['u1', 'u2']);
  const orgIds = options.orgIds ?? ['o1', 'o2'];
  if (orgIds.length === 0) return f.constantFrom(...userIds).map((userId): Scope => ({ userId }));
  nonEmptyStrings('arbScope(fc, options).orgIds', orgIds);
  return f
    .tuple(f.constantFrom(...userIds), f.option(f.constantFrom(...orgIds), { nil: undefined }))
    .map(([userId, orgId]): Scope => (orgId === undefined ? { userId } : { userId, orgId }));
}
