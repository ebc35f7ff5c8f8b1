/**
 * Benchmark 2, drain: N queued mutations sent to the reference server over loopback by
 * `engine.runOnce()` (fetch adapter on undici's pooled `fetch`, batches of 100), against a raw loop
 * over the same server and an identical table: claim 100 rows with one `UPDATE … RETURNING`, POST
 * them with undici's pooled `request` in the protocol-v1 shape, delete the confirmed ones. The
 * REST-resource mode (one `POST /rest/activity` per mutation) is compared with the same loop
 * POSTing one row per request, as many at once as the engine's `restConcurrency`.
 * Each run of either program gets a fresh server and a fresh copy of the same queued database.
 */
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import type { SynchronousLevel } from 'sync-core/better-sqlite3';
import { Agent, request, fetch as undiciFetch } from 'undici';
import { type ReferenceServer, startServer } from '../../examples/server/index.js';
import { copyDb, openEngine, openRawDb, queueTemplate, SCOPE, SCOPE_KEY } from './fixtures.js';
import { type BenchRow, interleave, msSince, pairedRatio, type Summary, tempDir } from './lib.js';

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
  /** REST mode only: requests in flight at once (the adapter's `restConcurrency`). @default 4 */
  readonly restConcurrency?: number;
  /**
   * Raw programs only: the HTTP client. `'fetch'` is undici's WHATWG `fetch` on the same pool, the
   * client sync-core's fetch adapter gets here: it separates the cost of `fetch` itself from the
   * engine's own (a what-if; the benchmark's baselines use `request`). @default 'request'
   */
  readonly rawClient?: 'request' | 'fetch';
  /** sync-core only: the fetch adapter's HTTP client (see `EngineOptions.client`). @default 'request' */
  readonly engineClient?: 'request' | 'fetch';
  /** Runs on the database copy before it is opened. */
  readonly prepare?: (file: string) => void;
}

/** POST `body` with undici's `request` or `fetch` on `dispatcher`; resolves the status and the JSON body. */
async function post(
  client: 'request' | 'fetch',
  url: string,
  dispatcher: Agent,
  headers: Record<string, string>,
  body: string,
): Promise<{ status: number; json: unknown }> {
  if (client === 'fetch') {
    const response = await undiciFetch(url, { method: 'POST', dispatcher, headers, body });
    return { status: response.status, json: await response.json() };
  }
  const response = await request(url, { method: 'POST', dispatcher, headers, body });
  return { status: response.statusCode, json: await response.body.json() };
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
        client: variant.engineClient ?? 'request',
        network:
          mode === 'rest'
            ? {
                baseUrl: server.url,
                token,
                mode: 'rest',
                rest: { activity: { path: '/rest/activity' } },
                restConcurrency: variant.restConcurrency ?? 4,
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
          const response = await post(
            variant.rawClient ?? 'request',
            url,
            dispatcher,
            {
              'content-type': 'application/json',
              accept: 'application/json',
              authorization: `Bearer ${token}`,
            },
            body,
          );
          if (response.status !== 200) throw new Error(`raw drain: HTTP ${response.status}`);
          const { results } = response.json as { results: { id: string; status: string }[] };
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

/**
 * The raw REST loop: the same claim of 100 rows, then one `POST /rest/activity` per row with undici's
 * pooled `request` (the headers sync-core's REST mode sends: Idempotency-Key, X-Client-Id,
 * X-Entity-Id, a Bearer token), `concurrency` at once, then one transaction deleting the confirmed rows.
 */
export function rawRestDrain(
  template: string,
  count: number,
  variant: DrainVariant = {},
): () => Promise<number> {
  const concurrency = variant.restConcurrency ?? 4;
  return () =>
    withServer(async (server, token) => {
      const { dir, remove } = tempDir();
      const file = join(dir, 'q.db');
      copyDb(template, file);
      const db = await openRawDb(file, 'FULL');
      const dispatcher = new Agent({ connections: 8, keepAliveTimeout: 10_000 });
      try {
        const claim = db.prepare(`UPDATE sync_mutations
          SET state = 'inflight', claim_token = ?, claim_expires_at = ?, sent = 1, updated_at = ?
          WHERE seq IN (SELECT seq FROM sync_mutations
            WHERE scope = ? AND state = 'pending' AND next_attempt_at <= ? ORDER BY seq LIMIT 100)
          RETURNING seq, id, key, entity, entity_id, op, data`);
        const remove1 = db.prepare('DELETE FROM sync_mutations WHERE seq = ?');
        const removeAll = db.transaction((seqs: number[]) => {
          for (const seq of seqs) remove1.run(seq);
        });
        const clientId = randomUUID();
        const runToken = randomUUID();
        const url = `${server.url}/rest/activity`;
        let pushed = 0;
        const start = process.hrtime.bigint();
        for (;;) {
          const now = Date.now();
          const rows = claim.all(runToken, now + 60_000, now, SCOPE_KEY, now) as ClaimedRow[];
          if (rows.length === 0) break;
          rows.sort((a, b) => a.seq - b.seq);
          const confirmed: number[] = [];
          let next = 0;
          const worker = async () => {
            for (let i = next++; i < rows.length; i = next++) {
              const row = rows[i]!;
              const response = await post(
                variant.rawClient ?? 'request',
                url,
                dispatcher,
                {
                  'content-type': 'application/json',
                  accept: 'application/json',
                  authorization: `Bearer ${token}`,
                  'idempotency-key': row.key,
                  'x-client-id': clientId,
                  'x-entity-id': row.entity_id,
                },
                row.data ?? '{}',
              );
              if (response.status !== 201 && response.status !== 200) {
                throw new Error(`raw REST drain: HTTP ${response.status}`);
              }
              confirmed.push(row.seq);
            }
          };
          await Promise.all(Array.from({ length: Math.min(concurrency, rows.length) }, worker));
          removeAll(confirmed);
          pushed += confirmed.length;
        }
        const ms = msSince(start);
        if (pushed !== count) throw new Error(`raw REST drain: pushed ${pushed} of ${count}`);
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
  // The issue's drain is 100,000 mutations in both modes; REST (one request per mutation, ~5x
  // slower) drains 5,000 by default and 20,000 with --full.
  const count = 100_000;
  const restCount = options.full ? 20_000 : 5_000;
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
  await rawRestDrain(warmTemplate, warm)();
  options.log(`drain protocol v1: N = ${count} per run`);
  // The engine on undici's WHATWG fetch (an info row) only with --full: it adds a third of the
  // group's time and no target.
  const programs: Record<string, () => Promise<number>> = {
    'sync-core': engineDrain(template, count, 'protocol'),
    raw: rawDrain(template, count),
  };
  if (options.full)
    programs['sync-core fetch'] = engineDrain(template, count, 'protocol', { engineClient: 'fetch' });
  const result: Record<string, Summary> = await interleave(programs, options.runs, {
    warmup: false,
    log: options.log,
  });
  options.log(`drain REST mode: N = ${restCount} per run`);
  const rest = await interleave(
    {
      'sync-core rest': engineDrain(restTemplate, restCount, 'rest'),
      'raw rest': rawRestDrain(restTemplate, restCount),
    },
    options.runs,
    { warmup: false, log: options.log },
  );
  const engine = result['sync-core']!;
  const raw = result.raw!;
  const viaFetch = result['sync-core fetch'];
  const ratio = pairedRatio(engine, raw);
  const restRatio = pairedRatio(rest['sync-core rest'], rest['raw rest']);
  const label = (n: number) => `${n / 1000}k`;
  return [
    {
      name: `drain ${label(count)} protocol sync-core`,
      unit: 'mut/s',
      summary: engine,
      ratio,
      ratioNote: 'median over runs of sync-core ÷ raw mutations/s of the same round',
      target: 'ratio ≥ 0.8',
      pass: ratio >= 0.8,
      notes: `runOnce(), batch 100, fetchFromUndiciRequest(request) + Agent, reference server in-process, synchronous=FULL`,
    },
    ...(viaFetch
      ? [
          {
            name: `drain ${label(count)} protocol sync-core, fetch`,
            unit: 'mut/s',
            summary: viaFetch,
            ratio: pairedRatio(viaFetch, raw),
            ratioNote: 'median over runs of sync-core (undici fetch) ÷ raw mutations/s of the same round',
            notes: 'the same engine with undici’s WHATWG fetch + Agent as its HTTP client (--full only)',
          },
        ]
      : []),
    {
      name: `drain ${label(count)} protocol raw`,
      unit: 'mut/s',
      summary: raw,
      notes: 'UPDATE … RETURNING 100, undici request, DELETE in one transaction',
    },
    {
      name: `drain ${label(restCount)} REST sync-core`,
      unit: 'mut/s',
      summary: rest['sync-core rest'],
      ratio: restRatio,
      ratioNote: 'median over runs of sync-core REST ÷ raw REST mutations/s of the same round',
      notes: "mode 'rest', one POST /rest/activity per mutation, restConcurrency 4",
    },
    {
      name: `drain ${label(restCount)} REST raw`,
      unit: 'mut/s',
      summary: rest['raw rest'],
      notes: 'claim 100 as above, one undici request POST per row, 4 at once, DELETE in one transaction',
    },
  ];
}
