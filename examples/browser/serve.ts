/**
 * The browser example's server: one loopback origin that serves the page, the service worker, the
 * sql.js wasm file, and the reference server's API (proxied), so the page and the worker call
 * their API same-origin, as a PWA calls its own backend.
 *
 * `npm run example:browser` builds the bundles and starts it; tests call {@link startBrowserExample}.
 *
 * @packageDocumentation
 */
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, request, type Server, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { type ReferenceServer, startServer } from '../server/index.js';
import { buildBrowserExample, DEFAULT_OUT_DIR } from './build.js';

/** One API request that went through the example server. */
export interface ProxiedRequest {
  readonly method: string;
  readonly path: string;
  /** The `x-sync-context` header the example's fetch adds: `'page'` or `'service-worker'`. */
  readonly context: string | undefined;
  /**
   * The `x-sync-instance` header: one id per opened engine (each page load, each `sync` event), so
   * that two pages of one origin can be told apart.
   */
  readonly instance: string | undefined;
  readonly status: number;
  /** When the request arrived (ms since epoch). */
  readonly at: number;
  /** When its response was complete, or the request failed (ms since epoch). */
  readonly endedAt: number;
  /** For a protocol-v1 push: the `entityId` of each mutation in its body, in body order. */
  readonly entityIds?: readonly string[];
}

/** Options of {@link startBrowserExample}. */
export interface BrowserExampleOptions {
  /** @default 0 (a free port) */
  readonly port?: number;
  /** Loopback only: a service worker needs a secure context, and `http://127.0.0.1` is one. @default '127.0.0.1' */
  readonly host?: string;
  /** Where the bundles are (built by `buildBrowserExample`). @default tmp/browser-example */
  readonly outDir?: string;
}

/** A running example server. */
export interface BrowserExample {
  /** The page's URL, e.g. `http://127.0.0.1:8788/`. */
  readonly url: string;
  /** The reference server behind the API routes: its `log()` is what was applied, once per effect. */
  readonly api: ReferenceServer;
  /** Every API request answered so far, in the order their responses ended. */
  requests(): readonly ProxiedRequest[];
  /**
   * Hold every `POST /sync/push` that arrives from now on (it waits, unanswered and not yet
   * forwarded to the reference server) until `release()` is called: a test's way to keep a run
   * in flight while it checks what other contexts do meanwhile.
   */
  holdPushes(): { readonly held: () => number; release(): void };
  close(): Promise<void>;
}

const here = dirname(fileURLToPath(import.meta.url));
const sqlJsDist = dirname(createRequire(import.meta.url).resolve('sql.js/dist/sql-wasm-browser.wasm'));
const API = /^\/(auth|sync|rest)\/|^\/health$/;
const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.map': 'application/json',
  '.wasm': 'application/wasm',
};

function staticFile(path: string, outDir: string): string | undefined {
  if (path === '/' || path === '/index.html') return join(here, 'index.html');
  if (/^\/(page|sw)\.js(\.map)?$/.test(path)) return join(outDir, basename(path));
  if (/^\/sql-wasm[a-z-]*\.wasm$/.test(path)) return join(sqlJsDist, basename(path));
  return undefined;
}

async function serveStatic(file: string, res: ServerResponse): Promise<void> {
  try {
    const body = await readFile(file);
    const type = TYPES[file.slice(file.lastIndexOf('.'))] ?? 'application/octet-stream';
    // no-store: a rebuilt service worker or page is picked up on the next load.
    res.writeHead(200, { 'content-type': type, 'cache-control': 'no-store' }).end(body);
  } catch {
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not built? run npm run example:browser\n');
  }
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** The entity ids of a protocol-v1 push body, or `undefined` if it is not one. */
function pushedEntityIds(body: Buffer): string[] | undefined {
  try {
    const parsed = JSON.parse(body.toString('utf8')) as { mutations?: { entityId?: unknown }[] };
    if (!Array.isArray(parsed.mutations)) return undefined;
    return parsed.mutations.map((m) => String(m.entityId));
  } catch {
    return undefined;
  }
}

function proxy(
  req: IncomingMessage,
  body: Buffer,
  res: ServerResponse,
  target: URL,
  record: (status: number) => void,
): void {
  let status = 502;
  res.on('close', () => record(status));
  const upstream = request(
    new URL(req.url ?? '/', target),
    { method: req.method, headers: { ...req.headers, host: target.host } },
    (answer) => {
      status = answer.statusCode ?? 502;
      res.writeHead(status, answer.headers);
      answer.pipe(res);
    },
  );
  upstream.on('error', () => {
    if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
    res.end('reference server unreachable\n');
  });
  upstream.end(body);
}

/** Start the example server (over bundles already built into `outDir`) and its reference server. */
export async function startBrowserExample(options: BrowserExampleOptions = {}): Promise<BrowserExample> {
  const { port = 0, host = '127.0.0.1', outDir = DEFAULT_OUT_DIR } = options;
  const api = await startServer({ port: 0, onError: (error) => console.error('[reference-server]', error) });
  const target = new URL(api.url);
  const log: ProxiedRequest[] = [];
  /** While pushes are held: the ones waiting to be forwarded. */
  let held: (() => void)[] | undefined;
  const header = (req: IncomingMessage, name: string): string | undefined => {
    const value = req.headers[name];
    return typeof value === 'string' ? value : undefined;
  };

  const http: Server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    if (API.test(path)) {
      const at = Date.now();
      void readBody(req).then(
        (body) => {
          const isPush = path === '/sync/push';
          const entityIds = isPush ? pushedEntityIds(body) : undefined;
          const forward = () =>
            proxy(req, body, res, target, (status) =>
              log.push({
                method: req.method ?? 'GET',
                path,
                context: header(req, 'x-sync-context'),
                instance: header(req, 'x-sync-instance'),
                status,
                at,
                endedAt: Date.now(),
                ...(entityIds === undefined ? {} : { entityIds }),
              }),
            );
          if (isPush && held !== undefined) held.push(forward);
          else forward();
        },
        () => res.destroy(),
      );
      return;
    }
    const file = req.method === 'GET' ? staticFile(path, outDir) : undefined;
    if (file === undefined) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    void serveStatic(file, res);
  });
  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(port, host, () => resolve());
  });
  const address = http.address() as AddressInfo;

  return {
    url: `http://${host}:${address.port}/`,
    api,
    requests: () => [...log],
    holdPushes() {
      const waiting: (() => void)[] = [];
      held = waiting;
      return {
        held: () => waiting.length,
        release() {
          if (held === waiting) held = undefined;
          for (const forward of waiting.splice(0)) forward();
        },
      };
    },
    async close() {
      await new Promise<void>((resolve) => {
        http.close(() => resolve());
        http.closeAllConnections();
      });
      await api.close();
    },
  };
}

async function main(): Promise<void> {
  const flag = process.argv.indexOf('--port');
  const port = flag === -1 ? 8788 : Number(process.argv[flag + 1]);
  await buildBrowserExample();
  const example = await startBrowserExample({ port });
  console.log(`sync-core browser example: ${example.url}`);
  console.log(
    'Open it in Chromium, register activities offline (DevTools → Network → Offline), close the tab,',
  );
  console.log(
    'go back online: the service worker delivers them. Reopen the page to see the notices. Ctrl-C stops.',
  );
  const stop = (): void => {
    void example.close().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
}
