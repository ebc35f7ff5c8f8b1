/**
 * Child process of the peer benchmark (`peer.ts`): the same backlog drained to the reference
 * server's REST routes by workbox-background-sync's `Queue.replayRequests()` and by sync-core
 * (REST-resource mode, and protocol-v1 batches), interleaved, in one process. It runs apart from
 * the main bench process because workbox needs browser globals: `self` (with a `registration`
 * without `sync`, so no Background Sync API: the Queue's fallback path), IndexedDB (fake-indexeddb,
 * in memory) and production mode (development builds assert and log on every call).
 *
 *   node --import tsx/loader peer-child.ts <runs> <count> [--full]
 *
 * Prints one JSON line on stdout: the samples of every program (mutations/s).
 */
process.env.NODE_ENV = 'production';

import { randomUUID } from 'node:crypto';
// IDBRequest, IDBKeyRange, indexedDB… as globals (idb and workbox read them from the global scope).
import 'fake-indexeddb/auto';
import { IDBFactory } from 'fake-indexeddb';
import {
  Agent,
  Headers as UndiciHeaders,
  Request as UndiciRequest,
  Response as UndiciResponse,
  fetch as undiciFetch,
} from 'undici';
import { startServer } from '../../examples/server/index.js';
import { engineDrain } from './drain.js';
import { queueTemplate, removeTemplates, SCOPE } from './fixtures.js';
import { interleave, msSince } from './lib.js';

const [runsArg, countArg] = process.argv.slice(2);
const runs = Number(runsArg ?? 5);
const count = Number(countArg ?? 10_000);
const full = process.argv.includes('--full');
const log = (line: string) => process.stderr.write(`${line}\n`);

// --- The service-worker environment workbox expects ------------------------------------------
const g = globalThis as Record<string, unknown>;
// A service worker's global scope is `self`; no `sync` in `registration` means no Background Sync
// API, so a Queue neither registers sync events nor listens for them (its `onSync` is called once,
// at construction, as on browsers without the API; it is a no-op here and replay is called below).
g.self = globalThis;
g.registration = {};
// IndexedDB, fresh for every workbox run (see `freshIndexedDb`).
const freshIndexedDb = () => {
  g.indexedDB = new IDBFactory();
};
freshIndexedDb();
// Both sides on the same HTTP client: undici 7's `fetch` on a keep-alive pool of 8 connections, as
// sync-core's fetch adapter gets in drain.ts (Node's built-in fetch is an older bundled undici).
g.Request = UndiciRequest;
g.Headers = UndiciHeaders;
g.Response = UndiciResponse;
let workboxAgent: Agent | undefined;
/** sync-core's fetch adapter on undici `fetch` too (not `fetchFromUndiciRequest`): one client for both. */
const SAME_CLIENT = { engineClient: 'fetch' } as const;
g.fetch = (input: unknown, init?: Record<string, unknown>) =>
  undiciFetch(
    input as string,
    { ...(init ?? {}), dispatcher: workboxAgent } as Parameters<typeof undiciFetch>[1],
  );

// Production mode is read at call time; it is set above, before this import, all the same.
// The Queue module itself, not the package index (which pulls in the plugin and its globals).
const { Queue } = await import('workbox-background-sync/Queue.js');

let queueNumber = 0;
/** How long filling each workbox queue took (untimed part of its runs), for the notes. */
const fillMs: number[] = [];

/** One workbox run: a fresh queue filled with `n` POSTs (untimed), then `replayRequests()` timed. */
function workboxDrain(n: number): () => Promise<number> {
  return async () => {
    const server = await startServer({ port: 0 });
    const { token } = server.issueToken(SCOPE);
    workboxAgent = new Agent({ connections: 8, keepAliveTimeout: 10_000 });
    freshIndexedDb();
    try {
      const queue = new Queue(`bench-${++queueNumber}`, { onSync: async () => undefined });
      const clientId = randomUUID();
      const url = `${server.url}/rest/activity`;
      const filled = process.hrtime.bigint();
      for (let i = 0; i < n; i++) {
        // The request the app's fetch would have made, as a workbox BackgroundSyncPlugin stores it.
        await queue.pushRequest({
          request: new Request(url, {
            method: 'POST',
            headers: {
              'content-type': 'application/json',
              accept: 'application/json',
              authorization: `Bearer ${token}`,
              'idempotency-key': randomUUID(),
              'x-client-id': clientId,
              'x-entity-id': `a${i}`,
            },
            body: JSON.stringify({ title: `Visit ${i}`, minutes: 30 }),
          }),
        });
      }
      fillMs.push(msSince(filled));
      const start = process.hrtime.bigint();
      await queue.replayRequests();
      const ms = msSince(start);
      const stats = server.stats();
      const left = await queue.size();
      if (stats.applied !== n || left !== 0) {
        throw new Error(`workbox drain: ${stats.applied} of ${n} applied, ${left} left in the queue`);
      }
      return n / (ms / 1000);
    } finally {
      await workboxAgent.close();
      await server.close();
    }
  };
}

const started = process.hrtime.bigint();
const warm = 1_000;
log(`peer: building queued databases (${count}, ${warm})`);
const template = await queueTemplate(count);
const warmTemplate = await queueTemplate(warm);
// Warm-up of each program on a small backlog (JIT, sockets, IndexedDB shim), then measured rounds.
await workboxDrain(warm)();
await engineDrain(warmTemplate, warm, 'rest', SAME_CLIENT)();
await engineDrain(warmTemplate, warm, 'protocol', SAME_CLIENT)();
const programs: Record<string, () => Promise<number>> = {
  workbox: workboxDrain(count),
  'sync-core rest': engineDrain(template, count, 'rest', SAME_CLIENT),
  'sync-core batch': engineDrain(template, count, 'protocol', SAME_CLIENT),
};
if (full)
  programs['sync-core rest c1'] = engineDrain(template, count, 'rest', {
    ...SAME_CLIENT,
    restConcurrency: 1,
  });
log(`peer: N = ${count} per run; ${Object.keys(programs).join(', ')}`);
const result = await interleave(programs, runs, { warmup: false, log });
removeTemplates();
process.stdout.write(
  `${JSON.stringify({
    samples: Object.fromEntries(Object.entries(result).map(([name, summary]) => [name, summary.samples])),
    ms: msSince(started),
    workboxFillMs: fillMs,
  })}\n`,
);
