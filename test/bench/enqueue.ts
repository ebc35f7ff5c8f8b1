/**
 * Benchmark 1, enqueue: `engine.enqueue` (one mutation per call, autocommit) and
 * `engine.enqueueMany` (1,000 per call, one transaction) against raw better-sqlite3 prepared
 * INSERTs of the same rows into an identical table, with the same pragmas.
 */
import { join } from 'node:path';
import type { MutationInput } from 'sync-core';
import type { SynchronousLevel } from 'sync-core/better-sqlite3';
import { mutation, openEngine, openRawDb, rawInserter } from './fixtures.js';
import { type BenchRow, interleave, msSince, pairedRatio, tempDir } from './lib.js';

/** Prepare a fresh database, then time `count` operations; resolves ops/s. */
type Program = (count: number) => Promise<number>;

function engineSingle(synchronous: SynchronousLevel): Program {
  return async (count) => {
    const { dir, remove } = tempDir();
    const { engine, close } = await openEngine(join(dir, 'q.db'), { synchronous });
    try {
      const start = process.hrtime.bigint();
      for (let i = 0; i < count; i++) await engine.enqueue(mutation(i));
      return count / (msSince(start) / 1000);
    } finally {
      await close();
      remove();
    }
  };
}

function rawSingle(synchronous: SynchronousLevel): Program {
  return async (count) => {
    const { dir, remove } = tempDir();
    const db = await openRawDb(join(dir, 'q.db'), synchronous);
    try {
      const insert = rawInserter(db);
      const start = process.hrtime.bigint();
      for (let i = 0; i < count; i++) insert(mutation(i));
      return count / (msSince(start) / 1000);
    } finally {
      db.close();
      remove();
    }
  };
}

const BATCH = 1000;

function batches(count: number): MutationInput[][] {
  const out: MutationInput[][] = [];
  for (let i = 0; i < count; i += BATCH) {
    out.push(Array.from({ length: Math.min(BATCH, count - i) }, (_, j) => mutation(i + j)));
  }
  return out;
}

function engineMany(synchronous: SynchronousLevel): Program {
  return async (count) => {
    const { dir, remove } = tempDir();
    const { engine, close } = await openEngine(join(dir, 'q.db'), { synchronous });
    // Inputs are built before timing, for both programs alike.
    const inputs = batches(count);
    try {
      const start = process.hrtime.bigint();
      for (const batch of inputs) await engine.enqueueMany(batch);
      return count / (msSince(start) / 1000);
    } finally {
      await close();
      remove();
    }
  };
}

function rawMany(synchronous: SynchronousLevel): Program {
  return async (count) => {
    const { dir, remove } = tempDir();
    const db = await openRawDb(join(dir, 'q.db'), synchronous);
    const inputs = batches(count);
    try {
      const insert = rawInserter(db);
      const insertAll = db.transaction((batch: MutationInput[]) => {
        for (const input of batch) insert(input);
      });
      const start = process.hrtime.bigint();
      for (const batch of inputs) insertAll.immediate(batch);
      return count / (msSince(start) / 1000);
    } finally {
      db.close();
      remove();
    }
  };
}

/** A count that makes the faster program's run take at least `targetMs`. */
async function calibrate(program: Program, probe: number, targetMs: number, step: number): Promise<number> {
  const opsPerSec = await program(probe);
  const count = Math.ceil((opsPerSec * targetMs) / 1000 / step) * step;
  return Math.max(step, count);
}

export async function benchEnqueue(options: {
  runs: number;
  log: (line: string) => void;
}): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const cases: {
    name: string;
    synchronous: SynchronousLevel;
    engine: Program;
    raw: Program;
    probe: number;
    step: number;
  }[] = [
    {
      name: 'enqueue ×1 (FULL)',
      synchronous: 'FULL',
      engine: engineSingle('FULL'),
      raw: rawSingle('FULL'),
      probe: 300,
      step: 100,
    },
    {
      name: 'enqueue ×1 (NORMAL)',
      synchronous: 'NORMAL',
      engine: engineSingle('NORMAL'),
      raw: rawSingle('NORMAL'),
      probe: 2000,
      step: 1000,
    },
    {
      name: 'enqueueMany ×1000 (FULL)',
      synchronous: 'FULL',
      engine: engineMany('FULL'),
      raw: rawMany('FULL'),
      probe: 5000,
      step: BATCH,
    },
  ];
  for (const c of cases) {
    // Sized on the raw baseline (the faster one) so every run of either program takes ≥ 300 ms.
    const count = await calibrate(c.raw, c.probe, 450, c.step);
    options.log(`${c.name}: N = ${count} per run`);
    const result = await interleave(
      { 'sync-core': () => c.engine(count), raw: () => c.raw(count) },
      options.runs,
      { log: options.log },
    );
    const ratio = pairedRatio(result['sync-core'], result.raw);
    rows.push(
      {
        name: `${c.name} sync-core`,
        unit: 'ops/s',
        summary: result['sync-core'],
        ratio,
        ratioNote: 'median over runs of sync-core ops/s ÷ raw ops/s of the same round',
        target: 'ratio ≥ 0.7',
        pass: ratio >= 0.7,
        notes: `N = ${count} per run, fresh temp-file database per run, WAL, synchronous=${c.synchronous}`,
      },
      { name: `${c.name} raw`, unit: 'ops/s', summary: result.raw, notes: `N = ${count} per run` },
    );
  }
  return rows;
}
