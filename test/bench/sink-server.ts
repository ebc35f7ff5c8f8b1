/**
 * A protocol-v1 push endpoint that stores nothing: every mutation of a well-formed batch is
 * answered `applied`. The memory benchmark measures the *client's* peak RSS; against the
 * reference server a 1M drain is bound by the server's own SQLite writes (four inserts per
 * mutation, ~200 s here), which would put five 1M rounds far outside the bench's time budget
 * without telling anything more about the client. The sink still checks what a drain must
 * deliver: each mutation id arrives once (a duplicate or a missing one fails the run).
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface SinkServer {
  readonly url: string;
  /** Distinct mutation ids received so far. */
  readonly received: () => number;
  /** Mutation ids received more than once. */
  readonly duplicates: () => number;
  close(): Promise<void>;
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Start the sink on 127.0.0.1 and an ephemeral port. */
export async function startSinkServer(): Promise<SinkServer> {
  // ~100 MiB for 1M ids, in this (parent) process: only the child's memory is measured.
  const seen = new Set<string>();
  let duplicates = 0;
  const server: Server = createServer((req, res) => {
    if (req.method !== 'POST' || req.url !== '/sync/push') {
      res.writeHead(404).end();
      return;
    }
    readBody(req).then(
      (text) => {
        const body = JSON.parse(text) as { mutations: { id: string }[] };
        for (const m of body.mutations) {
          if (seen.has(m.id)) duplicates++;
          else seen.add(m.id);
        }
        const payload = JSON.stringify({
          results: body.mutations.map((m) => ({ id: m.id, status: 'applied', version: 1 })),
        });
        res.writeHead(200, { 'content-type': 'application/json' }).end(payload);
      },
      () => res.writeHead(400).end(),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    received: () => seen.size,
    duplicates: () => duplicates,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}
