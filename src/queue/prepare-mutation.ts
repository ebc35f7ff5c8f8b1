import { isBuiltinOp, type ResolvedEntity } from '../config.js';
import type { JsonValue, MutationInput, Version } from '../contracts/records.js';
import type { StandardSchemaV1 } from '../contracts/standard-schema.js';
import { describeType, ValidationError, type ValidationIssue } from '../errors.js';
import { findJsonIssue, isWellFormed, utf8Length } from './json-safety.js';

/** The longest accepted entity id. */
export const MAX_ENTITY_ID_LENGTH = 512;
/** The most dependencies one mutation may list. */
export const MAX_DEPENDENCIES = 100;

/** A mutation input that passed every check, serialised and ready to insert. */
export interface PreparedMutation {
  readonly entity: ResolvedEntity;
  readonly op: string;
  readonly entityId: string;
  /** The validated payload (schema output), or null. */
  readonly data: JsonValue | null;
  /** `data` as JSON text, or null. */
  readonly dataJson: string | null;
  readonly bytes: number;
  readonly baseVersion: Version | null;
  readonly dependsOn: readonly string[];
}

function fail(
  code: ConstructorParameters<typeof ValidationError>[0],
  path: (string | number)[],
  message: string,
) {
  return new ValidationError(code, [{ path, message }]);
}

function schemaIssues(issues: ReadonlyArray<StandardSchemaV1.Issue>): ValidationIssue[] {
  return issues.map((issue) => ({
    path: [
      'data',
      ...(issue.path ?? []).map((segment) => {
        const key = typeof segment === 'object' && segment !== null ? segment.key : segment;
        return typeof key === 'number' ? key : String(key);
      }),
    ],
    message: issue.message,
  }));
}

/**
 * Check a {@link MutationInput} and turn it into a {@link PreparedMutation}, or throw a
 * {@link ValidationError} naming the path of the first problem. Nothing is stored either way.
 *
 * Checks, in order: the input is an object; the entity type is registered; the op is built-in or
 * declared; the entity id is a non-empty string; `baseVersion` is a finite number, a string or
 * null; `dependsOn` is a list of strings; the payload is plain JSON (FAULTS.md 25); the entity's
 * schema accepts it; its JSON fits the size limit (FAULTS.md 26).
 */
export async function prepareMutation(
  input: unknown,
  entities: ReadonlyMap<string, ResolvedEntity>,
): Promise<PreparedMutation> {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw fail('VALIDATION_FAILED', [], `expected a mutation object, got ${describeType(input)}`);
  }
  const { entity: entityName, op, entityId, data, baseVersion, dependsOn } = input as MutationInput;

  if (typeof entityName !== 'string') {
    throw fail('UNKNOWN_ENTITY', ['entity'], `expected a string, got ${describeType(entityName)}`);
  }
  const entity = entities.get(entityName);
  if (entity === undefined) {
    throw fail(
      'UNKNOWN_ENTITY',
      ['entity'],
      `"${entityName.slice(0, 128)}" is not a registered entity type (registered: ${[...entities.keys()].join(', ') || 'none'})`,
    );
  }
  if (typeof op !== 'string' || (!isBuiltinOp(op) && !entity.customOps.has(op))) {
    const allowed = ['create', 'update', 'delete', ...entity.customOps.keys()].join(', ');
    const got = typeof op === 'string' ? `"${op.slice(0, 64)}"` : describeType(op);
    throw fail('UNKNOWN_OP', ['op'], `expected one of ${allowed}, got ${got}`);
  }
  if (typeof entityId !== 'string' || entityId.length === 0 || entityId.length > MAX_ENTITY_ID_LENGTH) {
    const got =
      typeof entityId === 'string' ? `a string of ${entityId.length} characters` : describeType(entityId);
    throw fail(
      'INVALID_ENTITY_ID',
      ['entityId'],
      `expected a string of 1 to ${MAX_ENTITY_ID_LENGTH} characters, got ${got}`,
    );
  }
  if (!isWellFormed(entityId)) {
    throw fail('INVALID_ENTITY_ID', ['entityId'], 'expected well-formed Unicode, got a lone surrogate');
  }
  if (
    baseVersion !== undefined &&
    baseVersion !== null &&
    typeof baseVersion !== 'string' &&
    !(typeof baseVersion === 'number' && Number.isFinite(baseVersion))
  ) {
    throw fail(
      'VALIDATION_FAILED',
      ['baseVersion'],
      `expected a finite number, a string or null, got ${describeType(baseVersion)}`,
    );
  }
  let deps: string[] = [];
  if (dependsOn !== undefined) {
    if (!Array.isArray(dependsOn) || dependsOn.length > MAX_DEPENDENCIES) {
      throw fail(
        'INVALID_DEPENDENCY',
        ['dependsOn'],
        `expected an array of at most ${MAX_DEPENDENCIES} mutation ids, got ${describeType(dependsOn)}`,
      );
    }
    for (let i = 0; i < dependsOn.length; i++) {
      const dep: unknown = dependsOn[i];
      if (typeof dep !== 'string' || dep.length === 0) {
        throw fail(
          'INVALID_DEPENDENCY',
          ['dependsOn', i],
          `expected a mutation id string, got ${describeType(dep)}`,
        );
      }
    }
    deps = [...new Set(dependsOn)];
  }

  const needsObject = op === 'create' || op === 'update';
  if (needsObject && (typeof data !== 'object' || data === null || Array.isArray(data))) {
    throw fail('VALIDATION_FAILED', ['data'], `expected an object for ${op}, got ${describeType(data)}`);
  }
  const jsonIssue = data === undefined ? undefined : findJsonIssue(data, ['data']);
  if (jsonIssue) throw new ValidationError('PAYLOAD_NOT_JSON', [jsonIssue]);

  const schema =
    op === 'create'
      ? entity.schema
      : op === 'update'
        ? entity.updateSchema
        : op === 'delete'
          ? undefined
          : entity.customOps.get(op);
  let value: unknown = data;
  if (schema) {
    const result = await schema['~standard'].validate(data);
    if (result.issues) throw new ValidationError('VALIDATION_FAILED', schemaIssues(result.issues));
    value = result.value;
    // A schema may transform into something JSON cannot carry (a Date, say): check its output too.
    const outputIssue = findJsonIssue(value, ['data']);
    if (outputIssue) throw new ValidationError('PAYLOAD_NOT_JSON', [outputIssue]);
  }

  const dataJson = value === undefined ? null : JSON.stringify(value);
  const bytes = dataJson === null ? 0 : utf8Length(dataJson);
  if (bytes > entity.maxPayloadBytes) {
    throw fail(
      'PAYLOAD_TOO_LARGE',
      ['data'],
      `expected at most ${entity.maxPayloadBytes} bytes of JSON, got ${bytes}`,
    );
  }
  return {
    entity,
    op,
    entityId,
    data: value === undefined ? null : (value as JsonValue),
    dataJson,
    bytes,
    baseVersion: baseVersion ?? null,
    dependsOn: deps,
  };
}
