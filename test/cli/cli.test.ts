/**
 * The `sync-core` command and `npm run demo`, run as a user runs them: the CLI's source with tsx,
 * in a child process with stdout piped (not a terminal), against databases made here with the
 * engine.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import Database from 'better-sqlite3';
import { createSyncEngine, type EnqueuedMutation, SCHEMA_VERSION } from 'sync-core';
import { createBetterSqlite3Storage } from 'sync-core/better-sqlite3';
import { createFaultyNetwork, createModelServer } from 'sync-core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MIGRATIONS } from '../../src/storage/migrations.js';
import { tempDir } from '../helpers/storage-factories.js';

const root = join(__dirname, '..', '..');
const tsx = pathToFileURL(join(root, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;
const ESC = '\u001b';

interface Result {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function run(script: string, args: readonly string[], timeout = 30_000): Result {
  const env: NodeJS.ProcessEnv = { ...process.env, TSX_TSCONFIG_PATH: join(root, 'tsconfig.json') };
  // Whatever the test runner's own settings: colour must come from a terminal, and there is none.
  delete env.FORCE_COLOR;
  delete env.NO_COLOR;
  const result = spawnSync(process.execPath, ['--import', tsx, join(root, script), ...args], {
    cwd: root,
    encoding: 'utf8',
    env,
    timeout,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

const cli = (...args: string[]): Result => run('src/cli/sync-core.ts', args);

/** The one-line error contract: a non-zero exit, nothing on stdout, one `sync-core: …` line. */
function expectOneLineError(result: Result, pattern: RegExp): void {
  expect(result.status, result.stderr).not.toBe(0);
  expect(result.stdout).toBe('');
  const lines = result.stderr.trimEnd().split('\n');
  expect(lines, result.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^sync-core: /);
  expect(lines[0]).toMatch(pattern);
}

const sha = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex');

const { dir, remove } = tempDir('sync-core-cli-');
const scope = { userId: 'u1', orgId: 'o1' };
let pristine: string;
const ids: Record<
  'sent' | 'refusedA' | 'refusedB' | 'conflict' | 'waiting' | 'throttled' | 'fresh',
  EnqueuedMutation
> = {} as never;

/**
 * A device's database after a day of trouble: two changes refused by the server (dead letters),
 * one conflict, one change held behind a refused one on its record, one backing off after a 503
 * with Retry-After: 60, and one not sent yet.
 */
async function makeDatabase(file: string): Promise<void> {
  const server = createModelServer({
    rejectWhen: (m) =>
      (m.data as { minutes?: number } | null)?.minutes === 0
        ? 'a visit lasts at least one minute'
        : undefined,
  });
  server.put(scope, 'contact', 'c1', { name: 'Ada' });
  const network = createFaultyNetwork(server);
  const engine = createSyncEngine({
    storage: createBetterSqlite3Storage(new Database(file)),
    entities: { activity: {}, contact: {} },
    network,
  });
  await engine.open();
  await engine.start(scope);
  ids.sent = await engine.enqueue({
    entity: 'activity',
    op: 'create',
    entityId: 'a1',
    data: { minutes: 30 },
  });
  ids.refusedA = await engine.enqueue({
    entity: 'activity',
    op: 'create',
    entityId: 'a2',
    data: { minutes: 0 },
  });
  ids.refusedB = await engine.enqueue({
    entity: 'activity',
    op: 'create',
    entityId: 'a3',
    data: { minutes: 0 },
  });
  ids.conflict = await engine.enqueue({
    entity: 'contact',
    op: 'update',
    entityId: 'c1',
    data: { name: 'Ada L.' },
    baseVersion: 0,
  });
  await engine.runOnce();
  ids.waiting = await engine.enqueue({
    entity: 'activity',
    op: 'update',
    entityId: 'a2',
    data: { minutes: 5 },
  });
  ids.throttled = await engine.enqueue({
    entity: 'activity',
    op: 'create',
    entityId: 'a4',
    data: { minutes: 10 },
  });
  network.faults.next({ kind: 'status', status: 503, retryAfterMs: 60_000 });
  await engine.runOnce();
  ids.fresh = await engine.enqueue({
    entity: 'activity',
    op: 'create',
    entityId: 'a5',
    data: { minutes: 12 },
  });
  await engine.close();
}

/** A fresh copy of the day's database, for a test that changes it. */
function copy(name: string): string {
  const file = join(dir, name);
  copyFileSync(pristine, file);
  return file;
}

/** The queue of a database file, read with the engine. */
async function listQueue(file: string) {
  const engine = createSyncEngine({ storage: createBetterSqlite3Storage(new Database(file)), entities: {} });
  await engine.open();
  const list = await engine.queue.list({ scope: 'all' });
  await engine.close();
  return list;
}

async function stateOf(file: string, id: string): Promise<{ state: string; key: string } | undefined> {
  const engine = createSyncEngine({ storage: createBetterSqlite3Storage(new Database(file)), entities: {} });
  await engine.open();
  const m = await engine.queue.get(id);
  await engine.close();
  return m && { state: m.state, key: m.key };
}

beforeAll(async () => {
  pristine = join(dir, 'day.db');
  await makeDatabase(pristine);
});

afterAll(() => remove());

describe('sync-core inspect', () => {
  it('shows counts, dead letters with reasons, the conflict, next attempts and notices, read-only', () => {
    const before = sha(pristine);
    const result = cli('inspect', pristine);
    expect(result.status, result.stderr).toBe(0);
    const out = result.stdout;
    expect(out).not.toContain(ESC);
    expect(out).toContain('6 — 3 pending, 0 in flight, 2 failed, 1 in conflict');
    expect(out).toMatch(/Failed — dead letters.*\(2\)/);
    expect(out).toContain(ids.refusedA.id);
    expect(out).toContain('rejected:invalid: a visit lasts at least one minute');
    expect(out).toMatch(/Conflicts — waiting for the user.*\(1\)/);
    expect(out).toMatch(new RegExp(`${ids.conflict.id} │ contact/c1 +│ update │ v0 +│ v1`));
    // The pending ones with their next attempt: behind a 503's Retry-After, or due now.
    expect(out).toMatch(new RegExp(`${ids.throttled.id} .*│ in [1-6]?\\d s `));
    expect(out).toMatch(new RegExp(`${ids.fresh.id} .*│ due now `));
    expect(out).toContain('[attention] 2 activities could not be synced');
    expect(out).toContain('[attention] 1 change to a contact needs your attention');
    // Payloads are never listed.
    expect(out).not.toContain('Ada L.');
    expect(sha(pristine)).toBe(before);
  });

  it('--json: the same for scripts, without payloads', () => {
    const result = cli('inspect', pristine, '--json');
    expect(result.status, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report.schemaVersion).toBe(SCHEMA_VERSION);
    expect(report.queue).toMatchObject({ pending: 3, inflight: 0, failed: 2, conflict: 1, total: 6 });
    expect(report.failed.map((m: { id: string }) => m.id)).toEqual([ids.refusedA.id, ids.refusedB.id]);
    expect(report.failed[0].lastError).toEqual({
      code: 'rejected:invalid',
      message: 'a visit lasts at least one minute',
    });
    expect(report.failed[0]).not.toHaveProperty('data');
    expect(report.conflicts).toEqual([
      expect.objectContaining({ mutationId: ids.conflict.id, serverVersion: 1, op: 'update', queued: true }),
    ]);
    expect(report.pending.map((m: { id: string }) => m.id)).toEqual([
      ids.waiting.id,
      ids.throttled.id,
      ids.fresh.id,
    ]);
    expect(report.pending[1].nextAttemptAt).toBeGreaterThan(Date.now() + 30_000);
    expect(report.runs).toHaveLength(2);
    expect(report.noticeLines.map((l: { text: string }) => l.text)).toContain(
      '2 activities could not be synced',
    );
  });

  it('--limit cuts the lists and says how many were left out', () => {
    const report = JSON.parse(cli('inspect', pristine, '--json', '--limit', '1').stdout);
    expect(report.pending).toHaveLength(1);
    expect(report.omitted).toEqual({ failed: 1, pending: 2, inflight: 0 });
    expect(cli('inspect', pristine, '--limit', '1').stdout).toContain('… and 1 more');
  });

  it('reads a database of an older schema through a migrated copy, leaving the file as it was', () => {
    const file = join(dir, 'older.db');
    const db = new Database(file);
    for (const migration of MIGRATIONS.filter((m) => m.version < SCHEMA_VERSION)) {
      for (const statement of migration.statements) db.exec(statement);
    }
    db.prepare(
      "INSERT INTO sync_meta (key, value) VALUES ('schema_version', ?), ('client_id', 'old-device')",
    ).run(String(SCHEMA_VERSION - 1));
    db.prepare(
      `INSERT INTO sync_mutations (id, key, scope, entity, entity_id, op, data, bytes, state, attempts,
         next_attempt_at, last_error, created_at, updated_at)
       VALUES ('m-old', 'k-old', '["u1",null]', 'activity', 'a1', 'create', '{"t":1}', 7, 'failed', 2, 0,
         '{"code":"rejected","message":"no"}', 0, 0)`,
    ).run();
    db.close();
    const before = sha(file);
    const result = cli('inspect', file, '--json');
    expect(result.status, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report).toMatchObject({
      schemaVersion: SCHEMA_VERSION - 1,
      readThroughCopy: true,
      clientId: 'old-device',
    });
    expect(report.failed.map((m: { id: string }) => m.id)).toEqual(['m-old']);
    expect(sha(file)).toBe(before);
  });

  it('--id shows one mutation in full, with its payload and the conflict', () => {
    const table = cli('inspect', pristine, '--id', ids.conflict.id);
    expect(table.status, table.stderr).toBe(0);
    expect(table.stdout).toContain(ids.conflict.key);
    expect(table.stdout).toContain('"name": "Ada L."');
    expect(table.stdout).toContain('none: waits for the app to resolve the conflict');

    const json = JSON.parse(cli('inspect', pristine, '--id', ids.conflict.id, '--json').stdout);
    expect(json.mutation).toMatchObject({ id: ids.conflict.id, state: 'conflict', data: { name: 'Ada L.' } });
    expect(json.conflict).toMatchObject({ serverVersion: 1, server: { name: 'Ada' }, baseVersion: 0 });

    expectOneLineError(cli('inspect', pristine, '--id', ids.sent.id), /no mutation .* \(confirmed/);
  });
});

describe('sync-core retry and discard', () => {
  it('retry <ids>: a dead letter is pending again, with a new key', async () => {
    const file = copy('retry-ids.db');
    const result = cli('retry', file, ids.refusedA.id);
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout).toContain('Retried 1 mutation: it is due now');
    const after = await stateOf(file, ids.refusedA.id);
    expect(after?.state).toBe('pending');
    expect(after?.key).not.toBe(ids.refusedA.key);
    expect((await stateOf(file, ids.refusedB.id))?.state).toBe('failed');
  });

  it('retry --failed: every dead letter', async () => {
    const file = copy('retry-failed.db');
    const result = cli('retry', file, '--failed', '--json');
    expect(result.status, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({
      done: [ids.refusedA.id, ids.refusedB.id],
      skipped: [],
    });
    expect((await stateOf(file, ids.refusedB.id))?.state).toBe('pending');
    // Nothing left to retry: not an error.
    const again = cli('retry', file, '--failed');
    expect(again.status).toBe(0);
    expect(again.stdout).toContain('Retried nothing.');
  });

  it('retry names what it could not retry, and exits 1', async () => {
    const file = copy('retry-skip.db');
    const result = cli('retry', file, ids.conflict.id, 'no-such-id', ids.refusedB.id, '--json');
    expect(result.status).toBe(1);
    const out = JSON.parse(result.stdout);
    expect(out.done).toEqual([ids.refusedB.id]);
    expect(out.skipped).toEqual([
      { id: 'no-such-id', reason: expect.stringMatching(/^not queued/) },
      { id: ids.conflict.id, reason: expect.stringMatching(/^in conflict/) },
    ]);
    expect((await stateOf(file, ids.conflict.id))?.state).toBe('conflict');
  });

  it('retry needs ids or --failed, not both (usage errors exit 2)', () => {
    const none = cli('retry', pristine);
    expect(none.status).toBe(2);
    expect(none.stderr.trim()).toBe('sync-core: retry: give mutation ids, or --failed');
    expect(cli('retry', pristine, '--failed', ids.refusedA.id).status).toBe(2);
  });

  it('discard <ids>: gone for good', async () => {
    const file = copy('discard.db');
    const result = cli('discard', file, ids.refusedA.id, ids.conflict.id);
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout).toContain('Discarded 2 mutations: they will never reach the server');
    expect(await stateOf(file, ids.refusedA.id)).toBeUndefined();
    expect(await stateOf(file, ids.conflict.id)).toBeUndefined();
    expect(await listQueue(file)).toHaveLength(4);

    const unknown = cli('discard', file, ids.refusedA.id);
    expect(unknown.status).toBe(1);
    expect(unknown.stdout).toMatch(/Discarded nothing\.\n.*not queued/);
  });
});

describe('sync-core errors: one line, exit code ≠ 0', () => {
  it('a missing file', () => {
    expectOneLineError(cli('inspect', join(dir, 'missing.db')), /missing\.db: no such file$/);
    expectOneLineError(cli('retry', join(dir, 'missing.db'), '--failed'), /no such file$/);
  });

  it('a directory', () => {
    const folder = join(dir, 'folder');
    mkdirSync(folder);
    expectOneLineError(cli('inspect', folder), /folder: not a file$/);
  });

  it('a file that is not SQLite', () => {
    const file = join(dir, 'notes.txt');
    writeFileSync(file, 'Dear support, my visits do not sync. '.repeat(20));
    expectOneLineError(cli('inspect', file), /notes\.txt: not a SQLite database$/);
  });

  it('a SQLite database that is not a sync-core one, left untouched', () => {
    const file = join(dir, 'other.db');
    const db = new Database(file);
    db.exec('CREATE TABLE visits (id TEXT)');
    db.close();
    const before = sha(file);
    expectOneLineError(cli('inspect', file), /not a sync-core one \(no sync_meta table\)$/);
    expectOneLineError(cli('discard', file, 'x'), /not a sync-core one/);
    expect(sha(file)).toBe(before);

    const meta = join(dir, 'meta.db');
    const other = new Database(meta);
    other.exec(
      "CREATE TABLE sync_meta (key TEXT PRIMARY KEY, value TEXT); INSERT INTO sync_meta VALUES ('a', 'b')",
    );
    other.close();
    expectOneLineError(cli('inspect', meta), /not a sync-core one \(no schema_version in sync_meta\)$/);
  });

  it('a database written by a newer sync-core, left untouched', () => {
    const file = copy('newer.db');
    const db = new Database(file);
    db.prepare("UPDATE sync_meta SET value = ? WHERE key = 'schema_version'").run(String(SCHEMA_VERSION + 1));
    db.close();
    const before = sha(file);
    const pattern = new RegExp(
      `newer sync-core \\(schema v${SCHEMA_VERSION + 1}; .*up to v${SCHEMA_VERSION}\\)`,
    );
    expectOneLineError(cli('inspect', file), pattern);
    expectOneLineError(cli('retry', file, '--failed'), pattern);
    expect(sha(file)).toBe(before);
  });

  it('an unknown command or option is a usage error (exit 2)', () => {
    expect(cli('frobnicate').status).toBe(2);
    expect(cli('inspect', pristine, '--frob').status).toBe(2);
    expect(cli('serve', '--port', '70000').status).toBe(2);
  });

  it('--help lists every command', () => {
    const help = cli('--help');
    expect(help.status).toBe(0);
    for (const command of ['inspect', 'retry', 'discard', 'serve']) expect(help.stdout).toContain(command);
  });
});

describe('npm run demo', () => {
  it('plays the day to its summary in a pipe: nothing lost or doubled, no escape codes', () => {
    const result = run('examples/cli/demo.ts', ['--size', '20', '--seed', '3'], 60_000);
    expect(result.status, result.stderr).toBe(0);
    const out = result.stdout;
    expect(out).not.toContain(ESC);
    expect(out).not.toContain('\r');
    // Progress as plain lines, and runs started by the scheduler only.
    expect(out).toMatch(/^ {2}registering: \d+\/\d+/m);
    expect(out).toMatch(/^ {2}syncing: \d+\/\d+/m);
    expect(out).toMatch(/run \d+ \(connectivity\): throttled \(HTTP 503\)/);
    expect(out).toContain('401 the access token expired → refreshed it');
    expect(out).toContain('[attention] 1 change to a contact needs your attention');
    expect(out).toContain('[attention] 1 activity could not be synced');

    const row = (label: string): string => {
      const match = new RegExp(`│ ${label} +│ (.*?) +│`).exec(out);
      expect(match, `summary row "${label}"`).not.toBeNull();
      return match![1]!;
    };
    const queued = Number(row('mutations queued'));
    const delivered = Number(row('delivered \\(confirmed by the server\\)'));
    expect(queued).toBeGreaterThan(20);
    expect(row('conflicts \\(waiting for the user\\)')).toBe('1');
    expect(row('failed \\(refused by the server\\)')).toBe('1');
    expect(row('still queued to send')).toBe('0');
    expect(delivered).toBe(queued - 2);
    // The server's own log: one row per delivered mutation, each key once.
    expect(row('server: mutations applied')).toBe(
      `${delivered} rows in its log, ${delivered} distinct idempotency keys`,
    );
    expect(row('token refreshes')).toBe('1');
    expect(row('runs started by the app')).toBe('0 — every run was started by the scheduler');
    expect(row('lost · applied twice · out of order')).toBe('0 · 0 · 0  ✓ nothing lost, nothing doubled');
  }, 90_000);
});
