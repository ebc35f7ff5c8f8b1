/**
 * Single flight across processes (DESIGN.md invariant 6, FAULTS 30): two real processes run
 * `runOnce` in a loop on one database file against the reference server. The lease lets only one
 * send at a time, so no mutation is ever sent twice: the server sees each key once, no replays.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import { createSyncEngine } from 'sync-core';
import { createBetterSqlite3Storage } from 'sync-core/better-sqlite3';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { type ReferenceServer, startServer } from '../../examples/server/index.js';
import { tempDir } from '../helpers/storage-factories.js';

const run = promisify(execFile);
const root = join(__dirname, '..', '..');
const tsx = pathToFileURL(join(root, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;

let server: ReferenceServer;
let dir: ReturnType<typeof tempDir>;
beforeEach(async () => {
  server = await startServer({ port: 0, faults: { latencyMs: [1, 4] } });
  dir = tempDir('sync-core-race-');
});
afterEach(async () => {
  await server.close();
  dir.remove();
});

it('two processes draining one database never both send a mutation (invariant 6)', async () => {
  const file = join(dir.dir, 'shared.db');
  const seed = createSyncEngine({
    storage: createBetterSqlite3Storage(new Database(file)),
    entities: { activity: {} },
  });
  await seed.open();
  await seed.start({ userId: 'u1', orgId: 'o1' });
  const total = 600;
  await seed.enqueueMany(
    Array.from({ length: total }, (_, i) => ({
      entity: 'activity',
      op: 'create',
      entityId: `a${i}`,
      data: { i },
    })),
  );
  await seed.close();

  const { token } = server.issueToken({ userId: 'u1', orgId: 'o1' });
  const child = () =>
    run(process.execPath, ['--import', tsx, join(__dirname, 'fixtures', 'race-child.ts'), file, server.url], {
      cwd: root,
      env: { ...process.env, SYNC_TOKEN: token, TSX_TSCONFIG_PATH: join(root, 'tsconfig.json') },
      timeout: 60_000,
    });
  const results = await Promise.all([child(), child()]);
  const reports = results.map(
    (r) =>
      JSON.parse(r.stdout.trim().split('\n').pop()!) as { outcomes: Record<string, number>; pushed: number },
  );

  const log = server.log();
  expect(log).toHaveLength(total);
  expect(new Set(log.map((e) => e.key)).size).toBe(total);
  expect(server.stats().duplicates).toBe(0);
  expect(reports[0]!.pushed + reports[1]!.pushed).toBe(total);
  const db = new Database(file, { readonly: true });
  expect(db.prepare('SELECT COUNT(*) AS n FROM sync_mutations').get()).toEqual({ n: 0 });
  db.close();
}, 90_000);
