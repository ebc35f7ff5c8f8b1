/**
 * Errors thrown by sync-core.
 *
 * Every error is a {@link SyncError} with a stable, documented `code` (docs/errors.md). Subclasses
 * are split by what the caller should do next, not by where the error was thrown:
 *
 * - {@link ValidationError}: fix the input; nothing was stored.
 * - {@link StorageError}: the database refused (busy, full, corrupt, closed…); see its `code`.
 * - {@link ConfigError}: a programming error in the options passed to a factory.
 * - {@link StateError}: the call does not fit the engine's lifecycle (not open, closed, no scope…).
 * - {@link NotFoundError}: the mutation or conflict named does not exist (any more).
 *
 * `instanceof` works across two copies of the package (a monorepo with two installs, a bundle and
 * a test runner): each class answers `instanceof` by a brand registered with `Symbol.for`, not by
 * prototype identity.
 *
 * Messages never contain payloads or credentials (FAULTS.md 33): they name paths, codes and ids.
 *
 * @packageDocumentation
 */

/** Every stable error code sync-core throws. Documented in docs/errors.md. */
export type SyncErrorCode =
  // validation
  | 'VALIDATION_FAILED'
  | 'UNKNOWN_ENTITY'
  | 'UNKNOWN_OP'
  | 'INVALID_ENTITY_ID'
  | 'PAYLOAD_NOT_JSON'
  | 'PAYLOAD_TOO_LARGE'
  | 'INVALID_DEPENDENCY'
  // storage
  | 'STORAGE_BUSY'
  | 'STORAGE_FULL'
  | 'STORAGE_CORRUPT'
  | 'STORAGE_READONLY'
  | 'STORAGE_CLOSED'
  | 'STORAGE_SCHEMA_TOO_NEW'
  | 'STORAGE_FAILED'
  | 'STORAGE_NOT_PERSISTED'
  // configuration
  | 'INVALID_OPTION'
  // lifecycle
  | 'ENGINE_NOT_OPEN'
  | 'ENGINE_CLOSED'
  | 'NO_ACTIVE_SCOPE'
  | 'MUTATION_INFLIGHT'
  // lookups
  | 'MUTATION_NOT_FOUND'
  | 'CONFLICT_NOT_FOUND'
  // the app's own code
  | 'PULL_HANDLER_FAILED'
  | 'HOOK_FAILED';

const BRAND = Symbol.for('sync-core.error');
// Each class names itself with a string literal, not `constructor.name`: an app's minifier may
// rename classes differently in two copies of the package.
const KIND = Symbol.for('sync-core.error-kind');

type Branded = { readonly [BRAND]?: readonly string[] };

function hasBrand(value: unknown, name: string): boolean {
  if (typeof value !== 'object' || value === null) return false;
  const brands = (value as Branded)[BRAND];
  return Array.isArray(brands) && brands.includes(name);
}

/** Options accepted by every sync-core error constructor. */
export interface SyncErrorOptions {
  /** The underlying error (a driver's SqliteError, a fetch TypeError…). Kept, never swallowed. */
  cause?: unknown;
}

/**
 * Base class of every error sync-core throws. Check `code` for the precise reason.
 *
 * @example
 * ```ts
 * import { SyncError } from 'sync-core';
 * try { await engine.enqueue(input); }
 * catch (error) { if (error instanceof SyncError && error.code === 'STORAGE_FULL') showDiskFull(); }
 * ```
 */
export class SyncError extends Error {
  /** The stable code of this failure; see docs/errors.md. */
  readonly code: SyncErrorCode;

  declare readonly [BRAND]: readonly string[];
  static readonly [KIND]: string = 'SyncError';

  constructor(code: SyncErrorCode, message: string, options: SyncErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    // Every class in the chain adds its kind, so `instanceof StorageError` and
    // `instanceof SyncError` both hold for an error made by another copy of the package.
    const kinds: string[] = [];
    for (let ctor = new.target as { [KIND]?: string } | null; ctor && ctor !== Error; ) {
      if (Object.hasOwn(ctor, KIND)) kinds.push(ctor[KIND]!);
      ctor = Object.getPrototypeOf(ctor) as { [KIND]?: string } | null;
    }
    this.name = kinds[0] ?? 'SyncError';
    Object.defineProperty(this, BRAND, { value: Object.freeze(kinds), enumerable: false });
  }

  static override [Symbol.hasInstance](value: unknown): boolean {
    // biome-ignore lint/complexity/noThisInStatic: `this` is the class `instanceof` was asked about (a subclass too).
    return hasBrand(value, this[KIND]);
  }
}

/** One problem found in an input, named by its path (`data.tags[2]`). */
export interface ValidationIssue {
  /** Path from the root of the input, e.g. `['data', 'tags', 2]`. */
  readonly path: readonly (string | number)[];
  /** What is wrong, without echoing the value. */
  readonly message: string;
}

/** Render a path as `data.tags[2]`; the empty path is `(root)`. */
export function formatPath(path: readonly (string | number)[]): string {
  if (path.length === 0) return '(root)';
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else if (/^[A-Za-z_$][\w$]*$/.test(part)) out += out === '' ? part : `.${part}`;
    else out += `[${JSON.stringify(part)}]`;
  }
  return out;
}

/**
 * The input was refused before anything was stored. `path` names where; `issues` lists every
 * problem found (a schema may report several).
 */
export class ValidationError extends SyncError {
  static override readonly [KIND]: string = 'ValidationError';
  /** Path of the first issue. */
  readonly path: readonly (string | number)[];
  /** Every issue found. */
  readonly issues: readonly ValidationIssue[];

  constructor(
    code: Extract<
      SyncErrorCode,
      | 'VALIDATION_FAILED'
      | 'UNKNOWN_ENTITY'
      | 'UNKNOWN_OP'
      | 'INVALID_ENTITY_ID'
      | 'PAYLOAD_NOT_JSON'
      | 'PAYLOAD_TOO_LARGE'
      | 'INVALID_DEPENDENCY'
    >,
    issues: readonly ValidationIssue[],
    options: SyncErrorOptions = {},
  ) {
    const first = issues[0] ?? { path: [], message: 'invalid input' };
    const more = issues.length > 1 ? ` (and ${issues.length - 1} more)` : '';
    super(code, `${formatPath(first.path)}: ${first.message}${more}`, options);
    this.path = first.path;
    this.issues = issues;
  }
}

/** Codes a {@link StorageError} may carry. */
export type StorageErrorCode = Extract<
  SyncErrorCode,
  | 'STORAGE_BUSY'
  | 'STORAGE_FULL'
  | 'STORAGE_CORRUPT'
  | 'STORAGE_READONLY'
  | 'STORAGE_CLOSED'
  | 'STORAGE_SCHEMA_TOO_NEW'
  | 'STORAGE_FAILED'
  | 'STORAGE_NOT_PERSISTED'
>;

/**
 * The database refused an operation. Whatever was being written was not saved (its transaction
 * rolled back), and what was queued before is intact.
 *
 * - `STORAGE_BUSY`: another connection held the write lock past the busy timeout (with
 *   `openIndexedDbStorage`: another tab or the service worker held the queue's Web Lock past
 *   `lockTimeoutMs`); try again later.
 * - `STORAGE_FULL`: the disk (or `max_page_count`) is full; free space.
 * - `STORAGE_CORRUPT`: the file is not a readable SQLite database; restore it, never recreate it
 *   silently (the queue would be lost).
 * - `STORAGE_READONLY`: the file or directory is read-only.
 * - `STORAGE_CLOSED`: the storage was closed.
 * - `STORAGE_SCHEMA_TOO_NEW`: a newer sync-core wrote this database; upgrade the library.
 * - `STORAGE_FAILED`: any other driver failure (see `cause`).
 * - `STORAGE_NOT_PERSISTED`: the write committed in memory (it IS queued and will be sent) but
 *   saving the database image failed (sql.js); it is saved again by the next successful save.
 *   Do not enqueue it again: that would queue a second copy with a new idempotency key.
 */
export class StorageError extends SyncError {
  static override readonly [KIND]: string = 'StorageError';
  declare readonly code: StorageErrorCode;
  constructor(code: StorageErrorCode, message: string, options: SyncErrorOptions = {}) {
    super(code, message, options);
  }
}

/** An option passed to a factory is invalid: "expected X, got Y". Fix the code. */
export class ConfigError extends SyncError {
  static override readonly [KIND]: string = 'ConfigError';
  constructor(message: string, options: SyncErrorOptions = {}) {
    super('INVALID_OPTION', message, options);
  }
}

/** The call does not fit the engine's lifecycle: open it, start a scope, or stop using it. */
export class StateError extends SyncError {
  static override readonly [KIND]: string = 'StateError';
  constructor(
    code: Extract<
      SyncErrorCode,
      'ENGINE_NOT_OPEN' | 'ENGINE_CLOSED' | 'NO_ACTIVE_SCOPE' | 'MUTATION_INFLIGHT'
    >,
    message: string,
    options: SyncErrorOptions = {},
  ) {
    super(code, message, options);
  }
}

/** The mutation named does not exist: it was confirmed, discarded, or never queued. */
export class NotFoundError extends SyncError {
  static override readonly [KIND]: string = 'NotFoundError';
  constructor(
    code: Extract<SyncErrorCode, 'MUTATION_NOT_FOUND' | 'CONFLICT_NOT_FOUND'>,
    message: string,
    options: SyncErrorOptions = {},
  ) {
    super(code, message, options);
  }
}

/** Describe a value's type for "expected X, got Y" messages, without echoing the value. */
export function describeType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') {
    if (Number.isNaN(value)) return 'NaN';
    if (!Number.isFinite(value)) return value > 0 ? 'Infinity' : '-Infinity';
  }
  if (typeof value === 'object') {
    const ctor = Object.getPrototypeOf(value)?.constructor?.name;
    return ctor && ctor !== 'Object' ? ctor : 'object';
  }
  return typeof value;
}
