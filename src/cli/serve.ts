/**
 * `sync-core serve`: the reference server (examples/server, bundled into the CLI), to try a client
 * against a real protocol v1 backend with fault injection. A development tool: dev-only auth (any
 * user id gets a token), no TLS. It needs better-sqlite3.
 *
 * @packageDocumentation
 */

import { loadBetterSqlite3 } from './open-database.js';
import type { Colors } from './output.js';

/** Options of `serve`, parsed and validated by the command line. */
export interface ServeOptions {
  readonly port: number;
  readonly host: string;
  readonly db?: string;
  readonly tokenTtl?: number;
  readonly errorRate?: number;
  readonly latency?: number | readonly [number, number];
  readonly seed?: number;
  readonly assignIds?: readonly string[];
}

/** Start the server; resolves once it is listening, with a function that stops it. */
export async function serve(options: ServeOptions, c: Colors): Promise<{ stop: () => Promise<string> }> {
  // Checked first so that a missing peer dependency gets the one-line install hint.
  await loadBetterSqlite3('serve');
  const { startServer } = await import('../../examples/server/index.js');
  const server = await startServer({
    port: options.port,
    host: options.host,
    ...(options.db === undefined ? {} : { dbPath: options.db }),
    ...(options.tokenTtl === undefined ? {} : { tokenTtlMs: options.tokenTtl }),
    ...(options.seed === undefined ? {} : { seed: options.seed }),
    ...(options.assignIds === undefined ? {} : { assignIds: options.assignIds }),
    faults: {
      ...(options.errorRate === undefined ? {} : { errorRate: options.errorRate }),
      ...(options.latency === undefined ? {} : { latencyMs: options.latency }),
    },
  });
  const lines = [
    `${c.bold('sync-core reference server')} listening on ${c.cyan(server.url)} (database: ${options.db ?? 'in-memory'})`,
    c.dim('A development and test tool: any user id gets a token, no TLS. Keep it on loopback.'),
    `  get a token:  curl -s -X POST ${server.url}/auth/token -d '{"userId":"u1"}'`,
    `  push:         POST ${server.url}/sync/push    pull: GET ${server.url}/sync/pull?entity=<type>`,
    c.dim('  Ctrl-C stops it.'),
  ];
  console.log(lines.join('\n'));
  return {
    async stop() {
      await server.close();
      const stats = server.stats();
      return `closed after ${stats.requests} requests (${stats.applied} applied, ${stats.duplicates} duplicates).`;
    },
  };
}
