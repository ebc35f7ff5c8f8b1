import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { transform } from 'esbuild';
import {
  ConfigError,
  NotFoundError,
  StateError,
  StorageError,
  SyncError,
  type SyncErrorCode,
  ValidationError,
} from 'sync-core';
import { describe, expect, it } from 'vitest';
import { describeType, formatPath } from '../../src/errors.js';
import { tempDir } from '../helpers/storage-factories.js';

type ErrorsModule = typeof import('../../src/errors.js');

const ERRORS_SOURCE = new URL('../../src/errors.ts', import.meta.url);

/** A second, independent instance of src/errors.ts, as a second install of the package would be. */
async function loadSecondCopy(tag: string): Promise<ErrorsModule> {
  const specifier = `../../src/errors.ts?copy=${tag}`;
  return (await import(/* @vite-ignore */ specifier)) as ErrorsModule;
}

/** A minified copy (class names mangled), as an app's production bundler would ship it. */
async function loadMinifiedCopy(): Promise<ErrorsModule> {
  const { code } = await transform(readFileSync(ERRORS_SOURCE, 'utf8'), {
    loader: 'ts',
    format: 'esm',
    minify: true,
    target: 'es2022',
  });
  const { dir, remove } = tempDir('sync-core-errors-');
  const file = join(dir, 'errors.min.mjs');
  writeFileSync(file, code);
  try {
    return (await import(/* @vite-ignore */ pathToFileURL(file).href)) as ErrorsModule;
  } finally {
    remove();
  }
}

/** Every code, with the class that carries it: a new code fails to compile here until it is listed. */
const CODE_CLASS: Record<SyncErrorCode, string> = {
  VALIDATION_FAILED: 'ValidationError',
  UNKNOWN_ENTITY: 'ValidationError',
  UNKNOWN_OP: 'ValidationError',
  INVALID_ENTITY_ID: 'ValidationError',
  PAYLOAD_NOT_JSON: 'ValidationError',
  PAYLOAD_TOO_LARGE: 'ValidationError',
  INVALID_DEPENDENCY: 'ValidationError',
  STORAGE_BUSY: 'StorageError',
  STORAGE_FULL: 'StorageError',
  STORAGE_CORRUPT: 'StorageError',
  STORAGE_READONLY: 'StorageError',
  STORAGE_CLOSED: 'StorageError',
  STORAGE_SCHEMA_TOO_NEW: 'StorageError',
  STORAGE_FAILED: 'StorageError',
  INVALID_OPTION: 'ConfigError',
  ENGINE_NOT_OPEN: 'StateError',
  ENGINE_CLOSED: 'StateError',
  NO_ACTIVE_SCOPE: 'StateError',
  MUTATION_INFLIGHT: 'StateError',
  MUTATION_NOT_FOUND: 'NotFoundError',
  CONFLICT_NOT_FOUND: 'NotFoundError',
  PULL_HANDLER_FAILED: 'SyncError',
  HOOK_FAILED: 'SyncError',
  STORAGE_NOT_PERSISTED: 'StorageError',
};

/** One error of every class, made by `m`. */
function oneOfEach(m: ErrorsModule) {
  return {
    sync: new m.SyncError('STORAGE_FAILED', 'base'),
    validation: new m.ValidationError('UNKNOWN_OP', [{ path: ['op'], message: 'bad op' }]),
    storage: new m.StorageError('STORAGE_BUSY', 'busy'),
    config: new m.ConfigError('x: expected y, got z'),
    state: new m.StateError('ENGINE_NOT_OPEN', 'call open() first'),
    notFound: new m.NotFoundError('MUTATION_NOT_FOUND', 'gone'),
  };
}

/** Which classes of `m` each error of {@link oneOfEach} must (and must not) be an instance of. */
function expectClassRelations(made: ReturnType<typeof oneOfEach>, m: ErrorsModule): void {
  const classes = {
    SyncError: m.SyncError,
    ValidationError: m.ValidationError,
    StorageError: m.StorageError,
    ConfigError: m.ConfigError,
    StateError: m.StateError,
    NotFoundError: m.NotFoundError,
  };
  const expected: Record<keyof typeof made, string[]> = {
    sync: ['SyncError'],
    validation: ['SyncError', 'ValidationError'],
    storage: ['SyncError', 'StorageError'],
    config: ['SyncError', 'ConfigError'],
    state: ['SyncError', 'StateError'],
    notFound: ['SyncError', 'NotFoundError'],
  };
  for (const [key, error] of Object.entries(made) as [keyof typeof made, SyncError][]) {
    expect(error).toBeInstanceOf(Error);
    for (const [name, cls] of Object.entries(classes)) {
      expect({ error: key, of: name, is: error instanceof cls }).toEqual({
        error: key,
        of: name,
        is: expected[key].includes(name),
      });
    }
  }
}

describe('SyncError and its subclasses', () => {
  it('keep code, name, message and cause', () => {
    const cause = new Error('SQLITE_FULL: database or disk is full');
    const made = [
      [new SyncError('STORAGE_FAILED', 'm0', { cause }), 'SyncError', 'STORAGE_FAILED'],
      [new StorageError('STORAGE_FULL', 'm1', { cause }), 'StorageError', 'STORAGE_FULL'],
      [new ConfigError('m2', { cause }), 'ConfigError', 'INVALID_OPTION'],
      [new StateError('NO_ACTIVE_SCOPE', 'm3', { cause }), 'StateError', 'NO_ACTIVE_SCOPE'],
      [new NotFoundError('MUTATION_NOT_FOUND', 'm4', { cause }), 'NotFoundError', 'MUTATION_NOT_FOUND'],
    ] as const;
    made.forEach(([error, name, code], i) => {
      expect(error.name).toBe(name);
      expect(error.code).toBe(code);
      expect(error.message).toBe(`m${i}`);
      expect(error.cause).toBe(cause);
      expect(String(error)).toBe(`${name}: m${i}`);
      expect(error.stack).toContain(`${name}: m${i}`);
    });
  });

  it('has no cause property when none was given', () => {
    const error = new StorageError('STORAGE_BUSY', 'busy');
    expect('cause' in error).toBe(false);
    expect(new StorageError('STORAGE_BUSY', 'busy', { cause: undefined })).not.toHaveProperty('cause');
  });

  it('keeps a falsy cause such as 0 or null', () => {
    expect(new SyncError('STORAGE_FAILED', 'x', { cause: 0 }).cause).toBe(0);
    expect(new SyncError('STORAGE_FAILED', 'x', { cause: null }).cause).toBeNull();
  });

  it('answers instanceof by class: a StorageError is a SyncError, not a ValidationError', async () => {
    const m = await import('../../src/errors.js');
    expectClassRelations(oneOfEach(m), m);
  });

  it('builds a ValidationError message from the first issue and counts the rest', () => {
    const error = new ValidationError('VALIDATION_FAILED', [
      { path: ['data', 'nested', 2], message: 'expected a string' },
      { path: ['data', 'other'], message: 'expected a number' },
      { path: [], message: 'third' },
    ]);
    expect(error.path).toEqual(['data', 'nested', 2]);
    expect(error.issues).toHaveLength(3);
    expect(error.message).toBe('data.nested[2]: expected a string (and 2 more)');
  });

  it('gives a ValidationError without issues the root path and a generic message', () => {
    const error = new ValidationError('VALIDATION_FAILED', []);
    expect(error.path).toEqual([]);
    expect(error.message).toBe('(root): invalid input');
  });

  it('serialises to JSON with its code and path but no cause', () => {
    const error = new ValidationError('UNKNOWN_ENTITY', [{ path: ['entity'], message: 'unknown' }], {
      cause: new Error('secret cause'),
    });
    const json = JSON.parse(JSON.stringify(error)) as Record<string, unknown>;
    expect(json.code).toBe('UNKNOWN_ENTITY');
    expect(json.path).toEqual(['entity']);
    expect(JSON.stringify(error)).not.toContain('secret cause');
  });

  it('documents a class for every code (the table in docs/errors.md lists each one)', () => {
    const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
    const source = readFileSync(ERRORS_SOURCE, 'utf8');
    const union = source.slice(source.indexOf('export type SyncErrorCode'), source.indexOf('const BRAND'));
    const codes = [...union.matchAll(/'([A-Z_]+)'/g)].map((match) => match[1]!);
    expect(codes.sort()).toEqual(Object.keys(CODE_CLASS).sort());
    for (const [code, cls] of Object.entries(CODE_CLASS)) {
      const row = doc.split('\n').find((line) => line.startsWith(`| \`${code}\``));
      expect(row, `docs/errors.md has a table row for ${code}`).toBeDefined();
      expect(row).toContain(`\`${cls}\``);
    }
  });
});

describe('instanceof across two copies of the package', () => {
  it('loads a genuinely separate module instance', async () => {
    const copy = await loadSecondCopy('separate');
    expect(copy.SyncError).not.toBe(SyncError);
    expect(copy.ValidationError).not.toBe(ValidationError);
    expect(Object.getPrototypeOf(new copy.SyncError('STORAGE_FAILED', 'x'))).not.toBe(SyncError.prototype);
  });

  it('recognises errors made by copy 2 as copy 1 classes, and the reverse', async () => {
    const copy = await loadSecondCopy('2');
    const main = await import('../../src/errors.js');
    expectClassRelations(oneOfEach(copy), main);
    expectClassRelations(oneOfEach(main), copy);
  });

  it('keeps names and instanceof in a minified copy whose class names were mangled', async () => {
    const minified = await loadMinifiedCopy();
    // The test only means something if the minifier really renamed the classes.
    expect(minified.ValidationError.name).not.toBe('ValidationError');
    const made = oneOfEach(minified);
    expect(made.validation.name).toBe('ValidationError');
    expect(made.storage.name).toBe('StorageError');
    expectClassRelations(made, await import('../../src/errors.js'));
    expectClassRelations(oneOfEach(await import('../../src/errors.js')), minified);
  });

  it('never answers true for plain errors, look-alike objects or primitives', async () => {
    const copy = await loadSecondCopy('plain');
    const lookAlikes: unknown[] = [
      new Error('x'),
      new TypeError('x'),
      Object.assign(new Error('x'), { name: 'ValidationError', code: 'UNKNOWN_OP' }),
      { name: 'SyncError', code: 'STORAGE_BUSY', message: 'x' },
      Object.create(SyncError.prototype) as object,
      null,
      undefined,
      'SyncError',
      42,
    ];
    for (const value of lookAlikes) {
      for (const cls of [SyncError, ValidationError, StorageError, copy.SyncError, copy.StorageError]) {
        expect(value instanceof cls).toBe(false);
      }
    }
  });
});

describe('formatPath', () => {
  it.each([
    [[], '(root)'],
    [['data'], 'data'],
    [['data', 'nested', 2], 'data.nested[2]'],
    [[3, 'data', 'title'], '[3].data.title'],
    [[0, 1], '[0][1]'],
    [['data', 'with space'], 'data["with space"]'],
    [['data', ''], 'data[""]'],
    [['data', 'quote"d'], 'data["quote\\"d"]'],
    [['data', '1st'], 'data["1st"]'],
    [['data', 'ä'], 'data["ä"]'],
    [['$ok', '_also'], '$ok._also'],
    [['a-b', 'c'], '["a-b"].c'],
  ] as const)('renders %j as %s', (path, expected) => {
    expect(formatPath(path)).toBe(expected);
  });
});

describe('describeType', () => {
  class Point {
    x = 1;
  }
  it.each([
    [null, 'null'],
    [undefined, 'undefined'],
    [[1, 2], 'array'],
    [Number.NaN, 'NaN'],
    [Number.POSITIVE_INFINITY, 'Infinity'],
    [Number.NEGATIVE_INFINITY, '-Infinity'],
    [1.5, 'number'],
    ['SECRET-TOKEN-123', 'string'],
    [true, 'boolean'],
    [10n, 'bigint'],
    [Symbol('s'), 'symbol'],
    [() => 1, 'function'],
    [{ a: 1 }, 'object'],
    [Object.create(null), 'object'],
    [new Date(0), 'Date'],
    [new Map(), 'Map'],
    [new Point(), 'Point'],
  ])('describes %s as %s without echoing the value', (value, expected) => {
    expect(describeType(value)).toBe(expected);
  });
});
