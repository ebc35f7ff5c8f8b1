/**
 * Command-line entry of the reference server: `npm run server -- [options]`.
 *
 * A development and test tool: dev-only auth (any user id gets a token), no TLS. Keep it on
 * loopback.
 *
 * @packageDocumentation
 */

import { parseArgs } from 'node:util';
import { startServer } from './index.js';

const USAGE = `Usage: npm run server -- [options]

Starts the sync-core reference server (protocol v1 + REST mode). Development and test tool only.

Options:
  --port <n>          TCP port (0 picks a free one)             default 8787
  --host <addr>       interface to listen on                    default 127.0.0.1
  --db <path>         SQLite file                                default in-memory
  --token-ttl <ms>    access token lifetime in milliseconds      default 3600000
  --error-rate <p>    probability (0..1) of a random 5xx         default 0
  --latency <ms>      delay per request: <ms> or <min>-<max>     default 0
  --seed <n>          fault PRNG seed                            default 1
  --assign-ids <a,b>  entity types that get server-assigned ids
  -h, --help          show this help`;

function fail(message: string): never {
  console.error(`reference server: ${message}\n\n${USAGE}`);
  process.exit(2);
}

function number(name: string, text: string | undefined, check: (n: number) => boolean): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value) || !check(value))
    fail(`--${name}: invalid value ${JSON.stringify(text)}`);
  return value;
}

function latency(text: string | undefined): number | readonly [number, number] | undefined {
  if (text === undefined) return undefined;
  const range = /^(\d+)-(\d+)$/.exec(text);
  if (range !== null) {
    const min = Number(range[1]);
    const max = Number(range[2]);
    if (max < min) fail(`--latency: ${text} has min > max`);
    return [min, max];
  }
  return number('latency', text, (n) => n >= 0);
}

function readArgs() {
  try {
    return parseArgs({
      options: {
        port: { type: 'string', default: '8787' },
        host: { type: 'string', default: '127.0.0.1' },
        db: { type: 'string' },
        'token-ttl': { type: 'string' },
        'error-rate': { type: 'string' },
        latency: { type: 'string' },
        seed: { type: 'string' },
        'assign-ids': { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (error) {
    fail(error instanceof Error ? error.message : String(error));
  }
}

const values = readArgs();
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}

const errorRate = number('error-rate', values['error-rate'], (n) => n >= 0 && n <= 1);
const latencyMs = latency(values.latency);
const server = await startServer({
  port: number('port', values.port, (n) => Number.isInteger(n) && n >= 0 && n <= 65_535),
  host: values.host,
  dbPath: values.db,
  tokenTtlMs: number('token-ttl', values['token-ttl'], (n) => n > 0),
  seed: number('seed', values.seed, Number.isInteger),
  assignIds: values['assign-ids']
    ?.split(',')
    .map((entity) => entity.trim())
    .filter((entity) => entity !== ''),
  faults: {
    ...(errorRate === undefined ? {} : { errorRate }),
    ...(latencyMs === undefined ? {} : { latencyMs }),
  },
}).catch((error: unknown) => fail(error instanceof Error ? error.message : String(error)));

console.log(`sync-core reference server listening on ${server.url} (database: ${values.db ?? 'in-memory'})`);
console.log(`  get a token: curl -s -X POST ${server.url}/auth/token -d '{"userId":"u1"}'`);

let stopping = false;
async function stop(signal: string): Promise<void> {
  if (stopping) {
    // A second Ctrl-C while closing: stop waiting.
    process.exit(1);
  }
  stopping = true;
  console.log(`\n${signal}: closing…`);
  await server.close();
  const stats = server.stats();
  console.log(
    `closed after ${stats.requests} requests (${stats.applied} applied, ${stats.duplicates} duplicates).`,
  );
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    stop(signal).catch((error: unknown) => {
      console.error(error);
      process.exitCode = 1;
    });
  });
}
