import Database from 'better-sqlite3';
import fc from 'fast-check';
import {
  ConfigError,
  createSyncEngine,
  type EntityOptions,
  MAX_ENTITY_ID_LENGTH,
  MAX_JSON_DEPTH,
  type MutationInput,
  type SyncEngine,
  type SyncEngineOptions,
  SyncError,
  type SyncErrorCode,
  ValidationError,
} from 'sync-core';
import { describe, expect, it } from 'vitest';
import * as z from 'zod';
import { createBetterSqlite3Storage } from '../../adapters/better-sqlite3/index.js';
import { formatPath } from '../../src/errors.js';
import { findJsonIssue, utf8Length } from '../../src/queue/json-safety.js';
import { rejectionOf, startTestEngine, type TestEngine, thrownBy } from '../helpers/engine-harness.js';

/** A value that must never appear in an error (FAULTS.md 33). */
const SECRET = 'SECRET-TOKEN-123';

const activitySchema = z.object({
  title: z.string().transform((title) => title.trim()),
  minutes: z.number().int().default(30),
  tags: z.array(z.string()).optional(),
});
const contactSchema = z.object({ name: z.string(), phone: z.string() });

const ENTITIES = {
  note: {},
  small: { maxPayloadBytes: 100 },
  activity: { schema: activitySchema },
  contact: { schema: contactSchema, updateSchema: contactSchema.partial() },
  strict: { schema: contactSchema },
  task: { customOps: { approve: z.object({ note: z.string() }), archive: null } },
  event: { schema: z.object({ at: z.string().transform((text) => new Date(text)) }) },
  guarded: {
    schema: z.object({
      pin: z.string().length(4),
      kind: z.enum(['a', 'b']),
      flag: z.literal('on'),
      mail: z.email(),
    }),
  },
} satisfies Record<string, EntityOptions>;

type Path = readonly (string | number)[];

interface Refusal {
  readonly code: SyncErrorCode;
  readonly path: Path;
  readonly message: RegExp;
}

async function engineWithOneQueued(): Promise<TestEngine> {
  const t = await startTestEngine({ entities: ENTITIES });
  // One mutation already queued, so "nothing stored" is checked against a non-empty queue.
  await t.engine.enqueue({ entity: 'note', op: 'create', entityId: 'existing', data: { ok: true } });
  return t;
}

/** Fails when `SECRET` appears anywhere a log line could pick it up. */
function expectNoSecret(error: unknown): void {
  const error_ = error as Error;
  expect(error_.message).not.toContain(SECRET);
  expect(String(error)).not.toContain(SECRET);
  expect(JSON.stringify(error)).not.toContain(SECRET);
  expect(error_.stack ?? '').not.toContain(SECRET);
}

/** Enqueue `input`, expect the refusal described, and check nothing was stored or announced. */
async function expectRefused(t: TestEngine, input: unknown, expected: Refusal): Promise<ValidationError> {
  const before = await t.engine.queue.stats({ scope: 'all' });
  const eventsBefore = t.events.length;
  const error = await rejectionOf(t.engine.enqueue(input as MutationInput));
  expect(error).toBeInstanceOf(ValidationError);
  expect(error).toBeInstanceOf(SyncError);
  expect(error).toBeInstanceOf(Error);
  if (!(error instanceof ValidationError)) throw error;
  expect(error.name).toBe('ValidationError');
  expect(error.code).toBe(expected.code);
  expect(error.path).toEqual(expected.path);
  expect(error.issues[0]?.path).toEqual(expected.path);
  expect(error.message.startsWith(`${formatPath(expected.path)}: `)).toBe(true);
  expect(error.message).toMatch(expected.message);
  expectNoSecret(error);
  expect((await t.engine.queue.stats({ scope: 'all' })).total).toBe(before.total);
  expect(t.events.length).toBe(eventsBefore);
  return error;
}

/** Enqueue `input` and expect it stored; returns what `get` reads back. */
async function expectAccepted(t: TestEngine, input: MutationInput) {
  const before = await t.engine.queue.stats({ scope: 'all' });
  const stored = await t.engine.enqueue(input);
  expect((await t.engine.queue.stats({ scope: 'all' })).total).toBe(before.total + 1);
  const read = await t.engine.queue.get(stored.id);
  expect(read).toBeDefined();
  return read!;
}

function create(over: Record<string, unknown>): Record<string, unknown> {
  return { entity: 'note', op: 'create', entityId: 'n1', ...over };
}

/** `levels` objects nested in one another through key `a`. */
function nestedObjects(levels: number): Record<string, unknown> {
  let value: Record<string, unknown> = { secret: SECRET };
  for (let i = 1; i < levels; i++) value = { a: value };
  return value;
}

function withHole(): unknown[] {
  const list: unknown[] = ['first'];
  list[2] = SECRET; // index 1 is a hole
  return list;
}

class Money {
  readonly cents = 5;
  readonly note = SECRET;
}

/** JSON text of `{"secret":"…","s":"xxx…"}` exactly `bytes` long. */
function payloadOfBytes(bytes: number): Record<string, string> {
  const overhead = JSON.stringify({ secret: SECRET, s: '' }).length;
  return { secret: SECRET, s: 'x'.repeat(bytes - overhead) };
}

interface RefusalCase extends Refusal {
  readonly name: string;
  readonly input: () => Record<string, unknown>;
}

const DEFAULT_LIMIT = 262_144;

const REFUSALS: readonly RefusalCase[] = [
  // FAULTS.md 25: values JSON would silently change
  {
    name: 'a BigInt',
    input: () => create({ data: { secret: SECRET, count: 10n } }),
    code: 'PAYLOAD_NOT_JSON',
    path: ['data', 'count'],
    message: /expected a JSON value, got a BigInt \(store it as a string\)/,
  },
  {
    name: 'a direct cycle',
    input: () => {
      const data: Record<string, unknown> = { secret: SECRET };
      data.self = data;
      return create({ data });
    },
    code: 'PAYLOAD_NOT_JSON',
    path: ['data', 'self'],
    message: /circular reference/,
  },
  {
    name: 'a deep cycle through an array',
    input: () => {
      const data: Record<string, unknown> = { secret: SECRET };
      data.a = { b: { c: [SECRET, data] } };
      return create({ data });
    },
    code: 'PAYLOAD_NOT_JSON',
    path: ['data', 'a', 'b', 'c', 1],
    message: /circular reference/,
  },
  {
    name: 'NaN',
    input: () => create({ data: { secret: SECRET, nested: [1, 2, Number.NaN] } }),
    code: 'PAYLOAD_NOT_JSON',
    path: ['data', 'nested', 2],
    message: /expected a finite number, got NaN/,
  },
  {
    name: 'Infinity',
    input: () => create({ data: { secret: SECRET, n: Number.POSITIVE_INFINITY } }),
    code: 'PAYLOAD_NOT_JSON',
    path: ['data', 'n'],
    message: /expected a finite number, got Infinity/,
  },
  {
    name: '-Infinity',
    input: () => create({ data: { secret: SECRET, n: Number.NEGATIVE_INFINITY } }),
    code: 'PAYLOAD_NOT_JSON',
    path: ['data', 'n'],
    message: /expected a finite number, got -Infinity/,
  },
  {
    name: 'undefined as a value',
    input: () => create({ data: { secret: SECRET, gone: undefined } }),
    code: 'PAYLOAD_NOT_JSON',
    path: ['data', 'gone'],
    message: /got undefined \(use null, or omit the key\)/,
  },
  {
    name: 'undefined inside an array',
    input: () => create({ data: { list: [SECRET, undefined] } }),
    code: 'PAYLOAD_NOT_JSON',
    path: ['data', 'list', 1],
    message: /got undefined/,
  },
  {
    name: 'an array hole',
    input: () => create({ data: { secret: SECRET, list: withHole() } }),
    code: 'PAYLOAD_NOT_JSON',
    path: ['data', 'list', 1],
    message: /got an array hole/,
  },
  {
    name: 'a Date',
    input: () => create({ data: { secret: SECRET, at: new Date(Date.UTC(2026, 0, 1)) } }),
    code: 'PAYLOAD_NOT_JSON',
    path: ['data', 'at'],
    message: /expected a plain object, got Date \(store it as an ISO string\)/,
  },
  {
    name: 'a Date as the whole payload',
    input: () => create({ data: new Date(Date.UTC(2026, 0, 1)) }),
    code: 'PAYLOAD_NOT_JSON',
    path: ['data'],
    message: /got Date \(store it as an ISO string\)/,
  },
  {
    name: 'a Map',
    input: () => create({ data: { lookup: new Map([[SECRET, SECRET]]) } }),
    code: 'PAYLOAD_NOT_JSON',
    path: ['data', 'lookup'],
    message: /expected a plain object, got Map/,
  },
  {
    name: 'a Set',
    input: () => create({ data: { tags: new Set([SECRET]) } }),
    code: 'PAYLOAD_NOT_JSON',
    path: ['data', 'tags'],
    message: /expected a plain object, got Set/,
  },
  {
    name: 'a class instance',
    input: () => create({ data: { price: new Money() } }),
    code: 'PAYLOAD_NOT_JSON',
    path: ['data', 'price'],
    message: /expected a plain object, got Money/,
  },
  {
    name: 'a function',
    input: () => create({ data: { callback: () => SECRET } }),
    code: 'PAYLOAD_NOT_JSON',
    path: ['data', 'callback'],
    message: /got a function/,
  },
  {
    name: 'a symbol value',
    input: () => create({ data: { marker: Symbol(SECRET) } }),
    code: 'PAYLOAD_NOT_JSON',
    path: ['data', 'marker'],
    message: /got a symbol/,
  },
  {
    name: 'a symbol key',
    input: () => create({ data: { inner: { [Symbol('key')]: SECRET, visible: SECRET } } }),
    code: 'PAYLOAD_NOT_JSON',
    path: ['data', 'inner'],
    message: /expected string keys only, got a symbol key/,
  },
  {
    name: `nesting deeper than MAX_JSON_DEPTH (${MAX_JSON_DEPTH})`,
    input: () => create({ data: nestedObjects(MAX_JSON_DEPTH + 1) }),
    code: 'PAYLOAD_NOT_JSON',
    path: ['data', ...new Array<string>(MAX_JSON_DEPTH).fill('a')],
    message: new RegExp(`expected at most ${MAX_JSON_DEPTH} levels of nesting`),
  },
  {
    name: 'a BigInt in a delete payload',
    input: () => create({ op: 'delete', data: 10n }),
    code: 'PAYLOAD_NOT_JSON',
    path: ['data'],
    message: /BigInt/,
  },
  // FAULTS.md 26: size, entity type, op, id
  {
    name: 'a payload one byte over the default 256 KiB',
    input: () => create({ data: payloadOfBytes(DEFAULT_LIMIT + 1) }),
    code: 'PAYLOAD_TOO_LARGE',
    path: ['data'],
    message: /expected at most 262144 bytes of JSON, got 262145$/,
  },
  {
    name: "4-byte emoji counted in UTF-8 bytes against the entity's maxPayloadBytes",
    // 8 bytes of `{"s":""}` + 24 × 4 = 104 bytes, although only 56 UTF-16 code units.
    input: () => create({ entity: 'small', data: { s: '😀'.repeat(24) } }),
    code: 'PAYLOAD_TOO_LARGE',
    path: ['data'],
    message: /expected at most 100 bytes of JSON, got 104$/,
  },
  {
    name: 'an unknown entity type',
    input: () => create({ entity: 'nope', data: { secret: SECRET } }),
    code: 'UNKNOWN_ENTITY',
    path: ['entity'],
    message: /"nope" is not a registered entity type \(registered: note, small, activity, /,
  },
  {
    name: 'a non-string entity type',
    input: () => create({ entity: 42 }),
    code: 'UNKNOWN_ENTITY',
    path: ['entity'],
    message: /expected a string, got number/,
  },
  {
    name: 'an unknown op',
    input: () => create({ op: 'upsert', data: { secret: SECRET } }),
    code: 'UNKNOWN_OP',
    path: ['op'],
    message: /expected one of create, update, delete, got "upsert"$/,
  },
  {
    name: 'an op the entity type did not declare',
    input: () => create({ entity: 'task', op: 'reject' }),
    code: 'UNKNOWN_OP',
    path: ['op'],
    message: /expected one of create, update, delete, approve, archive, got "reject"$/,
  },
  {
    name: 'a missing op',
    input: () => create({ op: undefined }),
    code: 'UNKNOWN_OP',
    path: ['op'],
    message: /got undefined$/,
  },
  {
    name: 'an empty entityId',
    input: () => create({ entityId: '', data: { secret: SECRET } }),
    code: 'INVALID_ENTITY_ID',
    path: ['entityId'],
    message: /expected a string of 1 to 512 characters, got a string of 0 characters$/,
  },
  {
    name: 'a non-string entityId',
    input: () => create({ entityId: 42, data: { secret: SECRET } }),
    code: 'INVALID_ENTITY_ID',
    path: ['entityId'],
    message: /got number$/,
  },
  {
    name: 'a missing entityId',
    input: () => create({ entityId: undefined }),
    code: 'INVALID_ENTITY_ID',
    path: ['entityId'],
    message: /got undefined$/,
  },
  {
    name: 'an over-long entityId',
    input: () => create({ entityId: 'x'.repeat(MAX_ENTITY_ID_LENGTH + 1) }),
    code: 'INVALID_ENTITY_ID',
    path: ['entityId'],
    message: /got a string of 513 characters$/,
  },
  {
    name: 'a NaN baseVersion',
    input: () => create({ op: 'update', data: { secret: SECRET }, baseVersion: Number.NaN }),
    code: 'VALIDATION_FAILED',
    path: ['baseVersion'],
    message: /expected a finite number, a string or null, got NaN$/,
  },
  {
    name: 'an object baseVersion',
    input: () => create({ op: 'update', data: {}, baseVersion: { v: SECRET } }),
    code: 'VALIDATION_FAILED',
    path: ['baseVersion'],
    message: /got object$/,
  },
  {
    name: 'dependsOn that is not an array',
    input: () => create({ data: {}, dependsOn: SECRET }),
    code: 'INVALID_DEPENDENCY',
    path: ['dependsOn'],
    message: /expected an array of at most 100 mutation ids, got string$/,
  },
  {
    name: 'dependsOn containing a non-string',
    input: () => create({ data: {}, dependsOn: ['0190-ok', 5] }),
    code: 'INVALID_DEPENDENCY',
    path: ['dependsOn', 1],
    message: /expected a mutation id string, got number$/,
  },
  {
    name: 'dependsOn containing an empty string',
    input: () => create({ data: {}, dependsOn: [''] }),
    code: 'INVALID_DEPENDENCY',
    path: ['dependsOn', 0],
    message: /got string$/,
  },
  {
    name: 'dependsOn with more than MAX_DEPENDENCIES ids',
    input: () => create({ data: {}, dependsOn: Array.from({ length: 101 }, (_, i) => `dep-${i}`) }),
    code: 'INVALID_DEPENDENCY',
    path: ['dependsOn'],
    message: /at most 100/,
  },
  {
    name: 'create with an array as data',
    input: () => create({ data: [SECRET] }),
    code: 'VALIDATION_FAILED',
    path: ['data'],
    message: /expected an object for create, got array$/,
  },
  {
    name: 'create with a string as data',
    input: () => create({ data: SECRET }),
    code: 'VALIDATION_FAILED',
    path: ['data'],
    message: /expected an object for create, got string$/,
  },
  {
    name: 'create with null as data',
    input: () => create({ data: null }),
    code: 'VALIDATION_FAILED',
    path: ['data'],
    message: /expected an object for create, got null$/,
  },
  {
    name: 'update without data',
    input: () => create({ op: 'update' }),
    code: 'VALIDATION_FAILED',
    path: ['data'],
    message: /expected an object for update, got undefined$/,
  },
  {
    name: 'update with an array as data',
    input: () => create({ op: 'update', data: [1] }),
    code: 'VALIDATION_FAILED',
    path: ['data'],
    message: /expected an object for update, got array$/,
  },
];

describe('enqueue refuses bad input with a ValidationError naming the path, and stores nothing', () => {
  for (const c of REFUSALS) {
    const where = formatPath(c.path);
    it(`refuses ${c.name}: ${c.code} at ${where.length > 40 ? `${where.slice(0, 40)}…` : where}`, async () => {
      const t = await engineWithOneQueued();
      await expectRefused(t, c.input(), c);
    });
  }

  it('refuses an input that is not an object at the root path', async () => {
    const t = await engineWithOneQueued();
    for (const input of [null, 'create', [create({ data: {} })]]) {
      const error = await expectRefused(t, input, {
        code: 'VALIDATION_FAILED',
        path: [],
        message: /^\(root\): expected a mutation object, got (null|string|array)$/,
      });
      expect(error.issues).toHaveLength(1);
    }
  });

  it('refuses a 100 000-level nested payload without overflowing the stack', async () => {
    const t = await engineWithOneQueued();
    let deep: unknown = [];
    for (let i = 0; i < 100_000; i++) deep = [deep];
    const error = await rejectionOf(
      t.engine.enqueue({ entity: 'note', op: 'create', entityId: 'n', data: { deep } }),
    );
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as ValidationError).code).toBe('PAYLOAD_NOT_JSON');
    expect((error as ValidationError).path).toHaveLength(MAX_JSON_DEPTH + 1);
  });

  it('measures the size limit set engine-wide by limits.maxPayloadBytes, unless the entity sets its own', async () => {
    const t = await startTestEngine({
      entities: { note: {}, big: { maxPayloadBytes: 1000 } },
      limits: { maxPayloadBytes: 80 },
    });
    await expectRefused(t, create({ data: payloadOfBytes(81) }), {
      code: 'PAYLOAD_TOO_LARGE',
      path: ['data'],
      message: /expected at most 80 bytes of JSON, got 81$/,
    });
    await expectAccepted(t, { entity: 'note', op: 'create', entityId: 'n', data: payloadOfBytes(80) });
    await expectAccepted(t, { entity: 'big', op: 'create', entityId: 'n', data: payloadOfBytes(1000) });
  });
});

describe('payload measurement and traversal', () => {
  it('counts UTF-8 bytes exactly as Buffer.byteLength does, for any string and its JSON', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (text) => {
        expect(utf8Length(text)).toBe(Buffer.byteLength(text, 'utf8'));
        const json = JSON.stringify({ text });
        expect(utf8Length(json)).toBe(Buffer.byteLength(json, 'utf8'));
      }),
      { numRuns: 500 },
    );
  });

  it('finds no issue in any value fast-check generates as JSON', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        // fc.jsonValue may produce -0, which JSON turns into 0: still a finite number, accepted.
        expect(findJsonIssue(value)).toBeUndefined();
      }),
      { numRuns: 300 },
    );
  });

  // Regression (was a bug in src/queue/json-safety.ts, array branch of findJsonIssue): holes are checked while
  // pushing elements from the END, so the LAST hole is reported before any earlier hole or
  // earlier bad element, although prepareMutation documents "the path of the first problem".
  // Input: { list: [undefined, <hole>, 1] } → expected path ['data','list',0], actual ['data','list',1].
  it('reports the first problem of an array in index order, holes included', () => {
    const list: unknown[] = [undefined];
    list[2] = 1;
    expect(findJsonIssue({ list }, ['data'])?.path).toEqual(['data', 'list', 0]);
    const holes: unknown[] = [];
    holes[3] = 1;
    expect(findJsonIssue({ holes }, ['data'])?.path).toEqual(['data', 'holes', 0]);
  });
});

describe('enqueue accepts what JSON carries unchanged', () => {
  it('accepts a shared, non-cyclic reference and stores each occurrence', async () => {
    const t = await engineWithOneQueued();
    const shared = { v: 1 };
    const read = await expectAccepted(t, {
      entity: 'note',
      op: 'create',
      entityId: 'n',
      data: { x: shared, y: shared, list: [shared, [shared]] },
    });
    expect(read.data).toEqual({ x: { v: 1 }, y: { v: 1 }, list: [{ v: 1 }, [{ v: 1 }]] });
  });

  it('accepts an Object.create(null) object', async () => {
    const t = await engineWithOneQueued();
    const bare = Object.assign(Object.create(null) as Record<string, unknown>, {
      a: 1,
      inner: Object.create(null),
    });
    const read = await expectAccepted(t, { entity: 'note', op: 'create', entityId: 'n', data: bare });
    expect(read.data).toEqual({ a: 1, inner: {} });
  });

  it(`accepts nesting of exactly MAX_JSON_DEPTH (${MAX_JSON_DEPTH}) levels`, async () => {
    const t = await engineWithOneQueued();
    await expectAccepted(t, {
      entity: 'note',
      op: 'create',
      entityId: 'n',
      data: nestedObjects(MAX_JSON_DEPTH),
    });
  });

  it('accepts a payload of exactly 256 KiB of JSON', async () => {
    const t = await engineWithOneQueued();
    const data = payloadOfBytes(DEFAULT_LIMIT);
    expect(JSON.stringify(data)).toHaveLength(DEFAULT_LIMIT);
    await expectAccepted(t, { entity: 'note', op: 'create', entityId: 'n', data });
  });

  it("accepts 4-byte emoji up to exactly the entity's maxPayloadBytes", async () => {
    const t = await engineWithOneQueued();
    const read = await expectAccepted(t, {
      entity: 'small',
      op: 'create',
      entityId: 'n',
      data: { s: '😀'.repeat(23) },
    });
    expect(read.data).toEqual({ s: '😀'.repeat(23) });
  });

  it('accepts an entityId of exactly MAX_ENTITY_ID_LENGTH characters', async () => {
    const t = await engineWithOneQueued();
    const entityId = 'i'.repeat(MAX_ENTITY_ID_LENGTH);
    expect((await expectAccepted(t, { entity: 'note', op: 'delete', entityId })).entityId).toBe(entityId);
  });

  it('accepts a number, string or null baseVersion and a list of dependencies (deduplicated)', async () => {
    const t = await engineWithOneQueued();
    for (const baseVersion of [7, 'W/"etag"', null]) {
      const read = await expectAccepted(t, {
        entity: 'note',
        op: 'update',
        entityId: 'n',
        data: {},
        baseVersion,
      });
      expect(read.baseVersion).toBe(baseVersion);
    }
    const read = await expectAccepted(t, {
      entity: 'note',
      op: 'create',
      entityId: 'child',
      data: {},
      dependsOn: ['parent-a', 'parent-b', 'parent-a'],
    });
    expect(read.dependsOn).toEqual(['parent-a', 'parent-b']);
  });

  it('accepts delete with no data and stores null', async () => {
    const t = await engineWithOneQueued();
    const read = await expectAccepted(t, { entity: 'strict', op: 'delete', entityId: 'c1' });
    expect(read.op).toBe('delete');
    expect(read.data).toBeNull();
  });

  it('accepts a custom op declared in customOps with a null schema, with any JSON or no data', async () => {
    const t = await engineWithOneQueued();
    const withData = await expectAccepted(t, {
      entity: 'task',
      op: 'archive',
      entityId: 't1',
      data: ['any', { json: 1 }],
    });
    expect(withData.op).toBe('archive');
    expect(withData.data).toEqual(['any', { json: 1 }]);
    expect((await expectAccepted(t, { entity: 'task', op: 'archive', entityId: 't1' })).data).toBeNull();
  });

  it("validates a custom op's payload with its schema and stores the output", async () => {
    const t = await engineWithOneQueued();
    const read = await expectAccepted(t, {
      entity: 'task',
      op: 'approve',
      entityId: 't1',
      data: { note: 'ok', dropped: true },
    });
    expect(read.data).toEqual({ note: 'ok' });
    await expectRefused(
      t,
      { entity: 'task', op: 'approve', entityId: 't1', data: { note: 5, secret: SECRET } },
      {
        code: 'VALIDATION_FAILED',
        path: ['data', 'note'],
        message: /expected string, received number/,
      },
    );
  });

  it('still checks a null-schema custom op payload is plain JSON', async () => {
    const t = await engineWithOneQueued();
    await expectRefused(
      t,
      { entity: 'task', op: 'archive', entityId: 't1', data: { at: new Date() } },
      {
        code: 'PAYLOAD_NOT_JSON',
        path: ['data', 'at'],
        message: /Date/,
      },
    );
  });
});

describe('a zod 4 schema registered on the entity type', () => {
  it('refuses a wrong field type with VALIDATION_FAILED at [data, field]', async () => {
    const t = await engineWithOneQueued();
    const error = await expectRefused(
      t,
      { entity: 'activity', op: 'create', entityId: 'a1', data: { title: 5 } },
      {
        code: 'VALIDATION_FAILED',
        path: ['data', 'title'],
        message: /^data\.title: Invalid input: expected string, received number$/,
      },
    );
    expect(error.issues).toHaveLength(1);
  });

  it('names nested paths and reports every issue the schema found', async () => {
    const t = await engineWithOneQueued();
    const error = await expectRefused(
      t,
      { entity: 'activity', op: 'create', entityId: 'a1', data: { title: 5, minutes: 'x', tags: ['ok', 2] } },
      { code: 'VALIDATION_FAILED', path: ['data', 'title'], message: /\(and 2 more\)$/ },
    );
    expect(error.issues.map((issue) => issue.path)).toEqual([
      ['data', 'title'],
      ['data', 'minutes'],
      ['data', 'tags', 1],
    ]);
  });

  it("stores the schema's output: transforms applied, defaults filled, unknown keys stripped", async () => {
    const t = await engineWithOneQueued();
    const enqueued = await t.engine.enqueue({
      entity: 'activity',
      op: 'create',
      entityId: 'a1',
      data: { title: '  Home visit  ', extra: 'dropped' },
    });
    expect(enqueued.data).toEqual({ title: 'Home visit', minutes: 30 });
    expect((await t.engine.queue.get(enqueued.id))?.data).toEqual({ title: 'Home visit', minutes: 30 });
  });

  it('refuses a schema whose output is a Date with PAYLOAD_NOT_JSON, storing nothing', async () => {
    const t = await engineWithOneQueued();
    await expectRefused(
      t,
      { entity: 'event', op: 'create', entityId: 'e1', data: { at: '2026-01-01T00:00:00Z' } },
      {
        code: 'PAYLOAD_NOT_JSON',
        path: ['data', 'at'],
        message: /got Date \(store it as an ISO string\)/,
      },
    );
  });

  it('validates update with updateSchema (a partial) and create with the full schema', async () => {
    const t = await engineWithOneQueued();
    const read = await expectAccepted(t, {
      entity: 'contact',
      op: 'update',
      entityId: 'c1',
      data: { phone: '123' },
    });
    expect(read.data).toEqual({ phone: '123' });
    await expectRefused(
      t,
      { entity: 'contact', op: 'create', entityId: 'c1', data: { phone: '123' } },
      {
        code: 'VALIDATION_FAILED',
        path: ['data', 'name'],
        message: /expected string, received undefined/,
      },
    );
    await expectRefused(
      t,
      { entity: 'contact', op: 'update', entityId: 'c1', data: { phone: 123 } },
      {
        code: 'VALIDATION_FAILED',
        path: ['data', 'phone'],
        message: /expected string, received number/,
      },
    );
  });

  it('validates update with the full schema when no updateSchema is given', async () => {
    const t = await engineWithOneQueued();
    await expectRefused(
      t,
      { entity: 'strict', op: 'update', entityId: 'c1', data: { phone: '123' } },
      {
        code: 'VALIDATION_FAILED',
        path: ['data', 'name'],
        message: /expected string/,
      },
    );
  });

  it('accepts delete without data although the entity has a schema', async () => {
    const t = await engineWithOneQueued();
    await expectAccepted(t, { entity: 'activity', op: 'delete', entityId: 'a1', baseVersion: 3 });
  });

  it("never echoes the refused value in a schema's messages (FAULTS.md 33)", async () => {
    const t = await engineWithOneQueued();
    const error = await expectRefused(
      t,
      {
        entity: 'guarded',
        op: 'create',
        entityId: 'g1',
        data: { pin: SECRET, kind: SECRET, flag: SECRET, mail: SECRET },
      },
      { code: 'VALIDATION_FAILED', path: ['data', 'pin'], message: /\(and 3 more\)$/ },
    );
    expect(JSON.stringify(error.issues)).not.toContain(SECRET);
    expect(error.issues).toHaveLength(4);
  });
});

describe('enqueueMany', () => {
  const good = (i: number): MutationInput => ({
    entity: 'note',
    op: 'create',
    entityId: `batch-${i}`,
    data: { i },
  });

  it('refuses the whole batch when item 3 is bad: the path starts with 3 and nothing is stored', async () => {
    const t = await engineWithOneQueued();
    const before = await t.engine.queue.stats({ scope: 'all' });
    const bad = {
      entity: 'note',
      op: 'create',
      entityId: 'batch-3',
      data: { secret: SECRET, n: Number.NaN },
    };
    const error = await rejectionOf(t.engine.enqueueMany([good(0), good(1), good(2), bad, good(4)]));
    expect(error).toBeInstanceOf(ValidationError);
    expect(error).toBeInstanceOf(SyncError);
    const validation = error as ValidationError;
    expect(validation.code).toBe('PAYLOAD_NOT_JSON');
    expect(validation.path).toEqual([3, 'data', 'n']);
    expect(validation.message).toBe('[3].data.n: expected a finite number, got NaN');
    expectNoSecret(error);
    expect(await t.engine.queue.stats({ scope: 'all' })).toEqual(before);
    expect(await t.engine.queue.list({ entity: 'note' })).toHaveLength(1);
    expect(t.events).toHaveLength(1);
  });

  it('prefixes every schema issue with the item index', async () => {
    const t = await engineWithOneQueued();
    const bad: MutationInput = {
      entity: 'activity',
      op: 'create',
      entityId: 'a',
      data: { title: 1, minutes: 'x' },
    };
    const error = (await rejectionOf(t.engine.enqueueMany([good(0), bad]))) as ValidationError;
    expect(error.code).toBe('VALIDATION_FAILED');
    expect(error.issues.map((issue) => issue.path)).toEqual([
      [1, 'data', 'title'],
      [1, 'data', 'minutes'],
    ]);
    expect((await t.engine.queue.stats({ scope: 'all' })).total).toBe(1);
  });

  it('refuses a batch that is not an array', async () => {
    const t = await engineWithOneQueued();
    const error = await rejectionOf(t.engine.enqueueMany(good(0) as unknown as MutationInput[]));
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as ValidationError).code).toBe('VALIDATION_FAILED');
    expect((error as ValidationError).path).toEqual([]);
  });

  it('stores a valid batch in order', async () => {
    const t = await engineWithOneQueued();
    const stored = await t.engine.enqueueMany([good(0), good(1), good(2)]);
    expect(stored.map((m) => m.entityId)).toEqual(['batch-0', 'batch-1', 'batch-2']);
    expect(stored[0]!.seq).toBeLessThan(stored[1]!.seq);
    expect((await t.engine.queue.stats({ scope: 'all' })).total).toBe(4);
  });
});

describe('hostile strings round-trip unchanged through parameterised SQL (FAULTS.md 27)', () => {
  const HOSTILE_ENTITY = `act'"; DROP TABLE sync_mutations; --`;
  const HOSTILE = [
    `it's "quoted"`,
    'back\\slash \\" \\u0000',
    'nul\u0000byte',
    '\u0000',
    '4-byte 😀 𝄞 𠜎 🇳🇴',
    `'; DROP TABLE sync_mutations; --`,
    `") OR 1=1; --`,
    'line\nbreak\r\ttab \u2028\u2029',
    'rtl \u202e override \ufeff bom',
    '%_ like wildcards *?',
    '?1 :name @p $x',
  ];

  it('keeps entity type, entityId, payload keys and values, and scope ids byte-for-byte', async () => {
    const scope = { userId: `u'"\u0000😀`, orgId: `'; DROP TABLE sync_meta; --` };
    const t = await startTestEngine({ entities: { [HOSTILE_ENTITY]: {} }, scope });
    const ids: string[] = [];
    for (const text of HOSTILE) {
      const data = { [text]: text, nested: [text, { [text]: [text] }] };
      const stored = await t.engine.enqueue({ entity: HOSTILE_ENTITY, op: 'create', entityId: text, data });
      ids.push(stored.id);
      const read = await t.engine.queue.get(stored.id);
      expect(read?.entity).toBe(HOSTILE_ENTITY);
      expect(read?.entityId).toBe(text);
      expect(read?.data).toEqual(data);
      expect(read?.scope).toEqual(scope);
    }
    const listed = await t.engine.queue.list({ entity: HOSTILE_ENTITY, scope });
    expect(listed.map((m) => m.entityId)).toEqual(HOSTILE);
    expect(listed.map((m) => m.id)).toEqual(ids);
    // Filters compare exactly: no LIKE, no truncation at NUL.
    expect(await t.engine.queue.list({ entity: '%' })).toEqual([]);
    expect(await t.engine.queue.list({ entity: 'act' })).toEqual([]);
    expect(
      t.db.prepare("SELECT name FROM sqlite_master WHERE name IN ('sync_mutations', 'sync_meta')").all(),
    ).toHaveLength(2);
    expect((await t.engine.queue.stats({ scope })).total).toBe(HOSTILE.length);
  });

  it('treats ids that differ only after a NUL as different records when coalescing', async () => {
    const t = await startTestEngine({ entities: { doc: { coalesce: true } } });
    await t.engine.enqueue({ entity: 'doc', op: 'update', entityId: 'r\u0000a', data: { v: 1 } });
    const second = await t.engine.enqueue({
      entity: 'doc',
      op: 'update',
      entityId: 'r\u0000b',
      data: { v: 2 },
    });
    expect(second.coalesced).toBe('none');
    expect((await t.engine.queue.stats()).total).toBe(2);
  });

  // Regression (was a bug in src/queue/prepare-mutation.ts, entityId check): a string with a lone surrogate passes
  // validation, but SQLite stores TEXT as UTF-8, so it reads back with U+FFFD replacement characters:
  // the queued mutation names a record the app never had. Expected: refused with INVALID_ENTITY_ID
  // (e.g. `!entityId.isWellFormed()`), or stored unchanged.
  it('refuses an entityId with a lone surrogate, or round-trips it unchanged', async () => {
    const t = await startTestEngine({ entities: { note: {} } });
    const entityId = 'lone\ud800surrogate';
    let stored: Awaited<ReturnType<SyncEngine['enqueue']>>;
    try {
      stored = await t.engine.enqueue({ entity: 'note', op: 'delete', entityId });
    } catch (error) {
      expect(error).toBeInstanceOf(ValidationError);
      expect((error as ValidationError).code).toBe('INVALID_ENTITY_ID');
      return;
    }
    expect((await t.engine.queue.get(stored.id))?.entityId).toBe(entityId);
  });

  it('round-trips a lone surrogate inside the payload (JSON escapes it)', async () => {
    const t = await startTestEngine({ entities: { note: {} } });
    const data = { text: 'lone\ud800surrogate', ['key\udc00']: 1 };
    const stored = await t.engine.enqueue({ entity: 'note', op: 'create', entityId: 'n', data });
    expect((await t.engine.queue.get(stored.id))?.data).toEqual(data);
  });
});

describe('createSyncEngine refuses invalid options with a ConfigError "expected … got …"', () => {
  const storage = () => createBetterSqlite3Storage(new Database(':memory:'));
  const options = (over: Record<string, unknown>) =>
    ({ storage: storage(), entities: { a: {} }, ...over }) as unknown as SyncEngineOptions;

  const CASES: readonly { name: string; options: () => SyncEngineOptions; message: RegExp }[] = [
    {
      name: 'no options',
      options: () => undefined as unknown as SyncEngineOptions,
      message: /^options: expected an object, got undefined$/,
    },
    {
      name: 'missing storage',
      options: () => ({ entities: {} }) as unknown as SyncEngineOptions,
      message: /^storage: expected a StorageAdapter \(exec, run, all, transaction, close\), got undefined$/,
    },
    {
      name: 'a storage without the port methods',
      options: () => options({ storage: { run: () => ({ changes: 0 }) } }),
      message: /^storage: expected a StorageAdapter .*, got object$/,
    },
    {
      name: 'a raw better-sqlite3 Database instead of an adapter',
      options: () => options({ storage: new Database(':memory:') }),
      message: /^storage: expected a StorageAdapter .*, got Database$/,
    },
    {
      name: 'missing entities',
      options: () => options({ entities: undefined }),
      message: /^entities: expected an object mapping entity type names to options, got undefined$/,
    },
    {
      name: 'entities as an array',
      options: () => options({ entities: ['activity'] }),
      message: /^entities: expected an object .*, got array$/,
    },
    {
      name: 'entity options that are not an object',
      options: () => options({ entities: { activity: true } }),
      message: /^entities\.activity: expected an object, got boolean$/,
    },
    {
      name: 'an empty entity type name',
      options: () => options({ entities: { '': {} } }),
      message: /^entities: entity type names must have 1 to 128 characters, got 0$/,
    },
    {
      name: 'a schema that is not a Standard Schema',
      options: () => options({ entities: { activity: { schema: { parse: () => ({}) } } } }),
      message:
        /^entities\.activity\.schema: expected a Standard Schema \(zod 4, valibot, arktype…\), got object$/,
    },
    {
      name: 'an updateSchema that is a plain function',
      options: () => options({ entities: { activity: { updateSchema: () => true } } }),
      message: /^entities\.activity\.updateSchema: expected a Standard Schema, got function$/,
    },
    {
      name: 'a non-boolean coalesce',
      options: () => options({ entities: { activity: { coalesce: 'yes' } } }),
      message: /^entities\.activity\.coalesce: expected a boolean, got string$/,
    },
    {
      name: 'customOps that is not an object',
      options: () => options({ entities: { activity: { customOps: 'approve' } } }),
      message: /^entities\.activity\.customOps: expected an object of op name → schema or null, got string$/,
    },
    {
      name: 'a custom op named like a built-in op',
      options: () => options({ entities: { activity: { customOps: { delete: null } } } }),
      message:
        /^entities\.activity\.customOps: expected a name of 1 to 64 characters other than create\/update\/delete, got "delete"$/,
    },
    {
      name: 'an empty custom op name',
      options: () => options({ entities: { activity: { customOps: { '': null } } } }),
      message: /^entities\.activity\.customOps: expected a name of 1 to 64 characters .*, got ""$/,
    },
    {
      name: 'a custom op name over 64 characters',
      options: () => options({ entities: { activity: { customOps: { ['x'.repeat(65)]: null } } } }),
      message: /^entities\.activity\.customOps: expected a name of 1 to 64 characters .*, got "x{64}"$/,
    },
    {
      name: 'a custom op schema that is not a Standard Schema',
      options: () => options({ entities: { activity: { customOps: { approve: 'yes' } } } }),
      message: /^entities\.activity\.customOps\.approve: expected a Standard Schema or null, got string$/,
    },
    ...[0, -1, 1.5, Number.NaN, '1000'].map((maxPayloadBytes) => ({
      name: `entity maxPayloadBytes ${String(typeof maxPayloadBytes === 'string' ? `"${maxPayloadBytes}"` : maxPayloadBytes)}`,
      options: () => options({ entities: { activity: { maxPayloadBytes } } }),
      message:
        /^entities\.activity\.maxPayloadBytes: expected an integer from 1 to \d+, got (number|NaN|string)$/,
    })),
    {
      name: 'limits.maxPayloadBytes 0',
      options: () => options({ limits: { maxPayloadBytes: 0 } }),
      message: /^limits\.maxPayloadBytes: expected an integer from 1 to \d+, got number$/,
    },
    {
      name: 'a clock without now()',
      options: () => options({ clock: { time: () => 0 } }),
      message: /^clock: expected an object with now\(\), got object$/,
    },
    {
      name: 'a null clock',
      options: () => options({ clock: null }),
      message: /^clock: expected an object with now\(\), got null$/,
    },
    {
      name: 'a function as the clock',
      options: () => options({ clock: () => 0 }),
      message: /^clock: expected an object with now\(\), got function$/,
    },
    {
      name: 'a number as random',
      options: () => options({ random: 0.5 }),
      message: /^random: expected a function returning a number in \[0, 1\), got number$/,
    },
  ];

  for (const c of CASES) {
    it(`refuses ${c.name}`, () => {
      const error = thrownBy(() => createSyncEngine(c.options()));
      expect(error).toBeInstanceOf(ConfigError);
      expect(error).toBeInstanceOf(SyncError);
      expect(error).not.toBeInstanceOf(ValidationError);
      expect((error as ConfigError).code).toBe('INVALID_OPTION');
      expect((error as ConfigError).name).toBe('ConfigError');
      expect((error as ConfigError).message).toMatch(c.message);
    });
  }

  it('accepts valid options without touching the database until open()', () => {
    const db = new Database(':memory:');
    const engine = createSyncEngine({
      storage: createBetterSqlite3Storage(db),
      entities: { a: null as unknown as EntityOptions, b: { coalesce: true, customOps: { approve: null } } },
      clock: { now: () => 0 },
      random: () => 0.5,
      limits: { maxPayloadBytes: 1 },
    });
    expect(engine.isOpen).toBe(false);
    expect(db.prepare("SELECT COUNT(*) AS n FROM sqlite_master WHERE name LIKE 'sync_%'").get()).toEqual({
      n: 0,
    });
    db.close();
  });
});
