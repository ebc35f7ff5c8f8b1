/**
 * Benchmark 3, cold start and empty run:
 * - `open()` of an engine on a database holding 100,000 pending mutations (new Database + create +
 *   open, and the same plus `queue.stats()`), against raw `new Database(file)` + `SELECT COUNT(*)`;
 * - `runOnce()` with nothing due on an open engine with an empty queue: mean of 200 calls.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { createSyncEngine } from 'sync-core';
import { createBetterSqlite3Storage, type SynchronousLevel } from 'sync-core/better-sqlite3';
import { startServer } from '../../examples/server/index.js';
import { copyDb, ENTITIES, openEngine, queueTemplate, SCOPE } from './fixtures.js';
import { type BenchRow, interleave, msSince, pairedRatio, type Summary, tempDir } from './lib.js';

const BACKLOG = 100_000;
/** Opens per run: one open takes a few ms, so a run is the mean of several. */
const OPENS_PER_RUN = 10;
const EMPTY_RUNS_PER_RUN = 200;

function digest(file: string): string {
  return createHash('sha1').update(readFileSync(file)).digest('hex');
}

export async function benchStartup(options: {
  runs: number;
  log: (line: string) => void;
}): Promise<BenchRow[]> {
  options.log(`startup: building a ${BACKLOG}-mutation database`);
  const template = await queueTemplate(BACKLOG);
  const { dir, remove } = tempDir();
  const file = join(dir, 'cold.db');
  copyDb(template, file);
  try {
    // Does open() write to the file? If it does, each open gets a fresh copy (untimed).
    const before = digest(file);
    {
      const engine = createSyncEngine({
        storage: createBetterSqlite3Storage(new Database(file)),
        entities: ENTITIES,
      });
      await engine.open();
      await engine.queue.stats();
      await engine.close();
    }
    const mutates = digest(file) !== before;
    options.log(`startup: open() ${mutates ? 'modifies' : 'leaves unchanged'} the database file`);
    const fresh = () => {
      if (mutates) copyDb(template, file);
    };

    const engineOpen = (withStats: boolean) => async () => {
      let total = 0;
      for (let i = 0; i < OPENS_PER_RUN; i++) {
        fresh();
        const start = process.hrtime.bigint();
        const engine = createSyncEngine({
          storage: createBetterSqlite3Storage(new Database(file)),
          entities: ENTITIES,
        });
        await engine.open();
        if (withStats) {
          const stats = await engine.queue.stats();
          if (stats.pending !== BACKLOG) throw new Error(`stats: ${stats.pending} pending`);
        }
        total += msSince(start);
        await engine.close();
      }
      return total / OPENS_PER_RUN;
    };
    const rawOpen = async () => {
      let total = 0;
      for (let i = 0; i < OPENS_PER_RUN; i++) {
        fresh();
        const start = process.hrtime.bigint();
        const db = new Database(file);
        const { n } = db.prepare('SELECT COUNT(*) AS n FROM sync_mutations').get() as { n: number };
        if (n !== BACKLOG) throw new Error(`count: ${n}`);
        total += msSince(start);
        db.close();
      }
      return total / OPENS_PER_RUN;
    };
    options.log(`cold start: mean of ${OPENS_PER_RUN} opens per run`);
    const cold = await interleave(
      { 'open()': engineOpen(false), 'open()+stats()': engineOpen(true), raw: rawOpen },
      options.runs,
      { log: options.log },
    );

    // Empty run: an open engine, nothing queued; the server is there but never called.
    const server = await startServer({ port: 0 });
    const { token } = server.issueToken(SCOPE);
    const emptyEngine = async (synchronous: SynchronousLevel) => {
      const file = join(dir, `empty-${synchronous}.db`);
      return openEngine(file, { synchronous, network: { baseUrl: server.url, token } });
    };
    const full = await emptyEngine('FULL');
    const normal = await emptyEngine('NORMAL');
    const emptyRuns = (engine: typeof full.engine) => async () => {
      const start = process.hrtime.bigint();
      for (let i = 0; i < EMPTY_RUNS_PER_RUN; i++) {
        const report = await engine.runOnce();
        if (report.outcome !== 'ok' || report.counts.batches !== 0)
          throw new Error(`empty run: ${report.outcome}`);
      }
      return msSince(start) / EMPTY_RUNS_PER_RUN;
    };
    let empty: Record<'FULL' | 'NORMAL', Summary>;
    try {
      options.log(`empty runOnce(): mean of ${EMPTY_RUNS_PER_RUN} calls per run`);
      empty = await interleave(
        { FULL: emptyRuns(full.engine), NORMAL: emptyRuns(normal.engine) },
        options.runs,
        {
          log: options.log,
        },
      );
    } finally {
      await full.close();
      await normal.close();
      await server.close();
    }

    const openRatio = pairedRatio(cold['open()'], cold.raw);
    const statsRatio = pairedRatio(cold['open()+stats()'], cold.raw);
    return [
      {
        name: 'cold start open() 100k pending',
        unit: 'ms',
        summary: cold['open()'],
        ratio: openRatio,
        ratioNote: 'median over runs of sync-core ms ÷ raw ms of the same round (time: lower is faster)',
        notes: `new Database + createSyncEngine + open(); mean of ${OPENS_PER_RUN} opens per run; warm page cache`,
      },
      {
        name: 'cold start open()+stats() 100k',
        unit: 'ms',
        summary: cold['open()+stats()'],
        ratio: statsRatio,
        ratioNote: 'median over runs of sync-core ms ÷ raw ms of the same round',
        notes: 'as above, then queue.stats() (counts per state, oldest age)',
      },
      {
        name: 'cold start raw open+COUNT(*)',
        unit: 'ms',
        summary: cold.raw,
        notes: 'new Database(file) + SELECT COUNT(*) FROM sync_mutations',
      },
      {
        name: 'empty runOnce() (FULL)',
        unit: 'ms/call',
        summary: empty.FULL,
        target: '< 1 ms',
        pass: empty.FULL.median < 1,
        notes: `open engine, empty queue, synchronous=FULL (default); mean of ${EMPTY_RUNS_PER_RUN} calls per run`,
      },
      {
        name: 'empty runOnce() (NORMAL)',
        unit: 'ms/call',
        summary: empty.NORMAL,
        target: '< 1 ms',
        pass: empty.NORMAL.median < 1,
        notes: `as above with synchronous=NORMAL`,
      },
    ];
  } finally {
    remove();
  }
}
