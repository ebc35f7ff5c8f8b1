/**
 * Crash tests for DESIGN.md section 2 and invariant 1: a child process SIGKILLed between the app's
 * own write and its enqueue (FAULTS.md 6), or anywhere in an enqueue loop (FAULTS.md 1), leaves a
 * database that opens, passes `integrity_check`, and holds the app's write and its mutation both
 * or neither, with every acknowledged enqueue present.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { createSyncEngine } from 'sync-core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createBetterSqlite3Storage } from '../../adapters/better-sqlite3/index.js';
import { seededRandom, tempDir } from '../helpers/storage-factories.js';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CHILD = fileURLToPath(new URL('./fixtures/transaction-child.ts', import.meta.url));
/** A child that has not died by itself (or been killed) by then is killed and the test fails. */
const CHILD_TIMEOUT_MS = 20_000;
const LOOP_ITERATIONS = 5;

type ChildMode = 'after-app-write' | 'after-enqueue' | 'after-commit' | 'enqueue-loop';

interface ChildResult {
  /** Complete stdout lines, in order. */
  readonly lines: readonly string[];
  readonly signal: NodeJS.Signals | null;
  readonly code: number | null;
  readonly stderr: string;
}

/**
 * Run the child on `dbPath`. With `killAfterFirstAckMs`, SIGKILL it that long after its first
 * `ack` line; otherwise it kills itself.
 */
function runChild(dbPath: string, mode: ChildMode, killAfterFirstAckMs?: number): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, dbPath, mode], {
      cwd: REPO_ROOT,
      // The adapter imports `sync-core`; tsx resolves it through the repo's tsconfig paths.
      env: { ...process.env, TSX_TSCONFIG_PATH: join(REPO_ROOT, 'tsconfig.json') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const lines: string[] = [];
    let partial = '';
    let stderr = '';
    let killTimer: NodeJS.Timeout | undefined;
    const watchdog = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`child (${mode}) still running after ${CHILD_TIMEOUT_MS} ms; stderr: ${stderr}`));
    }, CHILD_TIMEOUT_MS);

    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      const parts = (partial + chunk).split('\n');
      partial = parts.pop() ?? '';
      for (const line of parts) {
        lines.push(line);
        if (killAfterFirstAckMs !== undefined && killTimer === undefined && line.startsWith('ack ')) {
          killTimer = setTimeout(() => child.kill('SIGKILL'), killAfterFirstAckMs);
        }
      }
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      stderr += chunk;
    });
    child.on('error', (error) => {
      clearTimeout(watchdog);
      reject(error);
    });
    // 'close' fires after stdout has ended: every line the child wrote has been read.
    child.on('close', (code, signal) => {
      clearTimeout(watchdog);
      if (killTimer !== undefined) clearTimeout(killTimer);
      resolve({ lines, signal, code, stderr });
    });
  });
}

interface OnDisk {
  readonly integrity: unknown;
  readonly mutations: readonly { id: string; entity_id: string; state: string }[];
  readonly activities: readonly string[];
}

/** What a restarted process finds in the file. */
function readAfterRestart(dbPath: string): OnDisk {
  const db = new Database(dbPath);
  try {
    return {
      integrity: db.pragma('integrity_check', { simple: true }),
      mutations: db.prepare('SELECT id, entity_id, state FROM sync_mutations ORDER BY seq').all() as {
        id: string;
        entity_id: string;
        state: string;
      }[],
      activities: (db.prepare('SELECT id FROM activities ORDER BY id').all() as { id: string }[]).map(
        (r) => r.id,
      ),
    };
  } finally {
    db.close();
  }
}

/** The queue reopens through the engine, and its stats agree with the table. */
async function expectEngineOpens(dbPath: string, expectedTotal: number): Promise<void> {
  const engine = createSyncEngine({
    storage: createBetterSqlite3Storage(new Database(dbPath)),
    entities: { activity: {} },
  });
  try {
    await engine.open();
    expect((await engine.queue.stats({ scope: 'all' })).total).toBe(expectedTotal);
  } finally {
    await engine.close();
  }
}

function lineValue(lines: readonly string[], prefix: string): string {
  const line = lines.find((l) => l.startsWith(`${prefix} `));
  expect(line, `the child printed "${prefix} …" before it was killed`).toBeDefined();
  return line!.slice(prefix.length + 1);
}

describe("SIGKILL between the app's write and its enqueue (engine.transaction, FAULTS.md 6)", () => {
  let dir: string;
  let remove: () => void;
  let dbPath: string;

  beforeEach(() => {
    ({ dir, remove } = tempDir('sync-core-crash-'));
    dbPath = join(dir, 'app.db');
  });
  afterEach(() => remove());

  it('killed after the app write, before tx.enqueue: neither the app row nor a mutation exists after restart', async () => {
    const child = await runChild(dbPath, 'after-app-write');
    expect(child.signal, child.stderr).toBe('SIGKILL');
    expect(child.lines).toEqual(['ready', 'app-written']);

    const disk = readAfterRestart(dbPath);
    expect(disk.integrity).toBe('ok');
    expect(disk.activities).toEqual([]);
    expect(disk.mutations).toEqual([]);
    await expectEngineOpens(dbPath, 0);
  });

  it('killed after tx.enqueue resolved, before the transaction body returned: neither exists after restart', async () => {
    const child = await runChild(dbPath, 'after-enqueue');
    expect(child.signal, child.stderr).toBe('SIGKILL');
    const id = lineValue(child.lines, 'enqueued');

    const disk = readAfterRestart(dbPath);
    expect(disk.integrity).toBe('ok');
    expect(disk.activities).toEqual([]);
    expect(disk.mutations.map((m) => m.id)).not.toContain(id);
    expect(disk.mutations).toEqual([]);
    await expectEngineOpens(dbPath, 0);
  });

  it('killed right after engine.transaction resolved: both the app row and its mutation exist after restart', async () => {
    const child = await runChild(dbPath, 'after-commit');
    expect(child.signal, child.stderr).toBe('SIGKILL');
    const id = lineValue(child.lines, 'committed');

    const disk = readAfterRestart(dbPath);
    expect(disk.integrity).toBe('ok');
    expect(disk.activities).toEqual(['a1']);
    expect(disk.mutations).toEqual([{ id, entity_id: 'a1', state: 'pending' }]);
    await expectEngineOpens(dbPath, 1);
  });
});

describe('SIGKILL at a random instant of an enqueue loop (FAULTS.md 1, invariant 1)', () => {
  let dir: string;
  let remove: () => void;

  beforeEach(() => {
    ({ dir, remove } = tempDir('sync-core-crash-'));
  });
  afterEach(() => remove());

  it(
    'after each restart the database passes integrity_check, every acknowledged enqueue is present, and app rows and their mutations are both-or-neither',
    async () => {
      const dbPath = join(dir, 'app.db');
      const random = seededRandom(1_125);
      const acked: string[] = [];
      for (let iteration = 0; iteration < LOOP_ITERATIONS; iteration++) {
        const delayMs = 20 + Math.floor(random() * 181);
        const child = await runChild(dbPath, 'enqueue-loop', delayMs);
        expect(child.signal, `iteration ${iteration} (kill after ${delayMs} ms): ${child.stderr}`).toBe(
          'SIGKILL',
        );
        expect(child.lines[0]).toBe('ready');
        const acks = child.lines.filter((l) => l.startsWith('ack ')).map((l) => l.slice(4));
        expect(acks.length).toBeGreaterThan(0);
        acked.push(...acks);

        const disk = readAfterRestart(dbPath);
        expect(disk.integrity).toBe('ok');
        const stored = new Set(disk.mutations.map((m) => m.id));
        // A row may be committed before its ack was printed, never an ack without its row.
        const lost = acked.filter((id) => !stored.has(id));
        expect(lost, `iteration ${iteration} (kill after ${delayMs} ms)`).toEqual([]);
        expect(disk.mutations.every((m) => m.state === 'pending')).toBe(true);
        // Transactional enqueues (entity ids `t-…`) committed with their app row, or neither did.
        const transactional = disk.mutations
          .map((m) => m.entity_id)
          .filter((id) => id.startsWith('t-'))
          .sort();
        expect(disk.activities).toEqual(transactional);
        await expectEngineOpens(dbPath, disk.mutations.length);
      }
    },
    LOOP_ITERATIONS * CHILD_TIMEOUT_MS,
  );
});
