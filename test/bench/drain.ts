/**
 * Benchmark 2, drain: N queued mutations sent to the reference server over loopback by
 * `engine.runOnce()` (fetch adapter on undici's pooled `fetch`, batches of 100), against a raw loop
 * over the same server and an identical table: claim 100 rows with one `UPDATE … RETURNING`, POST
 * them with undici's pooled `request` in the protocol-v1 shape, delete the confirmed ones.
 * Each run of either program gets a fresh server and a fresh copy of the same queued database.
 */
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import type { SynchronousLevel } from 'sync-core/better-sqlite3';
import { Agent, request } from 'undici';
import { type ReferenceServer, startServer } from '../../examples/server/index.js';
import { copyDb, openEngine, openRawDb, queueTemplate, SCOPE, SCOPE_KEY } from './fixtures.js';
import { type BenchRow, interleave, msSince, pairedRatio, tempDir } from './lib.js';

async function withServer<T>(fn: (server: ReferenceServer, token: string) => Promise<T>): Promise<T> {
  const server = await startServer({ port: 0 });
  try {
    return await fn(server, server.issueToken(SCOPE).token);
  } finally {
    await server.close();
  }
}

/** Options of the drain programs, for what-if experiments (tmp/ profiling scripts). */
export interface DrainVariant {
  readonly synchronous?: SynchronousLevel;
  /** Runs on the database copy before it is opened. */
  readonly prepare?: (file: string) => void;
}

export function engineDrain(
  template: string,
  count: number,
  mode: 'protocol' | 'rest',
  variant: DrainVariant = {},
): () => Promise<number> {
  return () =>
    withServer(async (server, token) => {
      const { dir, remove } = tempDir();
      const file = join(dir, 'q.db');
      copyDb(template, file);
      variant.prepare?.(file);
      const { engine, close } = await openEngine(file, {
        synchronous: variant.synchronous ?? 'FULL',
        network:
          mode === 'rest'
            ? {
                baseUrl: server.url,
                token,
                mode: 'rest',
                rest: { activity: { path: '/rest/activity' } },
                restConcurrency: 4,
              }
            : { baseUrl: server.url, token },
        batch: { maxCount: 100 },
      });
      try {
        const start = process.hrtime.bigint();
        const report = await engine.runOnce();
        const ms = msSince(start);
        if (report.outcome !== 'ok' || report.counts.pushed !== count) {
          throw new Error(`engine drain: ${report.outcome}, pushed ${report.counts.pushed} of ${count}`);
        }
        return count / (ms / 1000);
      } finally {
        await close();
        remove();
      }
    });
}

interface ClaimedRow {
  seq: number;
  id: string;
  key: string;
  entity: string;
  entity_id: string;
  op: string;
  data: string | null;
  base_version: string | null;
  created_at: number;
}

export function rawDrain(template: string, count: number, variant: DrainVariant = {}): () => Promise<number> {
  return () =>
    withServer(async (server, token) => {
      const { dir, remove } = tempDir();
      const file = join(dir, 'q.db');
      copyDb(template, file);
      variant.prepare?.(file);
      const db = await openRawDb(file, variant.synchronous ?? 'FULL');
      const dispatcher = new Agent({ connections: 8, keepAliveTimeout: 10_000 });
      try {
        const claim = db.prepare(`UPDATE sync_mutations
          SET state = 'inflight', claim_token = ?, claim_expires_at = ?, sent = 1, updated_at = ?
          WHERE seq IN (SELECT seq FROM sync_mutations
            WHERE scope = ? AND state = 'pending' AND next_attempt_at <= ? ORDER BY seq LIMIT 100)
          RETURNING seq, id, key, entity, entity_id, op, data, base_version, created_at`);
        const remove1 = db.prepare('DELETE FROM sync_mutations WHERE seq = ?');
        const removeAll = db.transaction((seqs: number[]) => {
          for (const seq of seqs) remove1.run(seq);
        });
        const clientId = randomUUID();
        const token1 = randomUUID();
        const url = `${server.url}/sync/push`;
        let pushed = 0;
        const start = process.hrtime.bigint();
        for (;;) {
          const now = Date.now();
          const rows = claim.all(token1, now + 60_000, now, SCOPE_KEY, now) as ClaimedRow[];
          if (rows.length === 0) break;
          rows.sort((a, b) => a.seq - b.seq);
          const body = JSON.stringify({
            protocol: 1,
            clientId,
            entity: rows[0]!.entity,
            mutations: rows.map((row) => ({
              id: row.id,
              key: row.key,
              op: row.op,
              entityId: row.entity_id,
              baseVersion: row.base_version === null ? null : JSON.parse(row.base_version),
              data: row.data === null ? null : JSON.parse(row.data),
              clientTime: new Date(row.created_at).toISOString(),
            })),
          });
          const response = await request(url, {
            method: 'POST',
            dispatcher,
            headers: {
              'content-type': 'application/json',
              accept: 'application/json',
              authorization: `Bearer ${token}`,
            },
            body,
          });
          if (response.statusCode !== 200) throw new Error(`raw drain: HTTP ${response.statusCode}`);
          const { results } = (await response.body.json()) as { results: { id: string; status: string }[] };
          const seqById = new Map(rows.map((row) => [row.id, row.seq]));
          const confirmed: number[] = [];
          for (const result of results) {
            if (result.status !== 'applied' && result.status !== 'duplicate') continue;
            const seq = seqById.get(result.id);
            if (seq !== undefined) confirmed.push(seq);
          }
          removeAll(confirmed);
          pushed += confirmed.length;
        }
        const ms = msSince(start);
        if (pushed !== count) throw new Error(`raw drain: pushed ${pushed} of ${count}`);
        return count / (ms / 1000);
      } finally {
        db.close();
        await dispatcher.close();
        remove();
      }
    });
}

export async function benchDrain(options: {
  runs: number;
  full: boolean;
  log: (line: string) => void;
}): Promise<BenchRow[]> {
  const count = options.full ? 100_000 : 20_000;
  const restCount = 5_000;
  const warm = 2_000;
  options.log(`drain: building queued databases (${count}, ${restCount}, ${warm})`);
  const [template, restTemplate, warmTemplate] = [
    await queueTemplate(count),
    await queueTemplate(restCount),
    await queueTemplate(warm),
  ];
  // A short warm-up of each program (JIT, sockets), then the measured runs interleaved.
  await engineDrain(warmTemplate, warm, 'protocol')();
  await rawDrain(warmTemplate, warm)();
  await engineDrain(warmTemplate, warm, 'rest')();
  options.log(`drain protocol v1: N = ${count} per run`);
  const result = await interleave(
    { 'sync-core': engineDrain(template, count, 'protocol'), raw: rawDrain(template, count) },
    options.runs,
    { warmup: false, log: options.log },
  );
  options.log(`drain REST mode: N = ${restCount} per run`);
  const rest = await interleave(
    { 'sync-core rest': engineDrain(restTemplate, restCount, 'rest') },
    options.runs,
    {
      warmup: false,
      log: options.log,
    },
  );
  const ratio = pairedRatio(result['sync-core'], result.raw);
  return [
    {
      name: `drain ${count / 1000}k protocol sync-core`,
      unit: 'mut/s',
      summary: result['sync-core'],
      ratio,
      ratioNote: 'median over runs of sync-core ÷ raw mutations/s of the same round',
      target: 'ratio ≥ 0.8',
      pass: ratio >= 0.8,
      notes: `runOnce(), batch 100, undici fetch + Agent, reference server in-process, synchronous=FULL`,
    },
    {
      name: `drain ${count / 1000}k protocol raw`,
      unit: 'mut/s',
      summary: result.raw,
      notes: 'UPDATE … RETURNING 100, undici request, DELETE in one transaction',
    },
    {
      name: `drain ${restCount / 1000}k REST sync-core`,
      unit: 'mut/s',
      summary: rest['sync-core rest'],
      notes: "mode 'rest', one POST /rest/activity per mutation, restConcurrency 4",
    },
  ];
}
