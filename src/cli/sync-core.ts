/**
 * The `sync-core` command: look into a user's sync-core database and repair its queue, or start
 * the reference server.
 *
 * ```sh
 * sync-core inspect app.db                 # counts, dead letters, conflicts, next attempts, notices
 * sync-core inspect app.db --id <id>       # one mutation in full
 * sync-core retry app.db <ids…> | --failed
 * sync-core discard app.db <ids…>
 * sync-core serve --port 8787
 * ```
 *
 * An app of the core, built as its own entry (`dist/cli.js`, the package's `bin`): the core never
 * imports it. It reaches the core through the package's public name, like any app.
 *
 * @packageDocumentation
 */

import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { SyncError } from 'sync-core';
import { version } from '../../package.json';
import { inspect } from './inspect.js';
import { CliError } from './open-database.js';
import { type Colors, colors, useColor } from './output.js';
import { discard, retry } from './queue-commands.js';
import { serve } from './serve.js';

function integer(min: number, max = Number.MAX_SAFE_INTEGER) {
  return (text: string): number => {
    const value = Number(text);
    if (text.trim() === '' || !Number.isInteger(value) || value < min || value > max) {
      throw new InvalidArgumentError(
        `expected an integer from ${min} to ${max}, got ${JSON.stringify(text)}`,
      );
    }
    return value;
  };
}

function rate(text: string): number {
  const value = Number(text);
  if (text.trim() === '' || !(value >= 0 && value <= 1)) {
    throw new InvalidArgumentError(`expected a number from 0 to 1, got ${JSON.stringify(text)}`);
  }
  return value;
}

function latency(text: string): number | readonly [number, number] {
  const range = /^(\d+)-(\d+)$/.exec(text);
  if (range !== null) {
    const min = Number(range[1]);
    const max = Number(range[2]);
    if (max < min) throw new InvalidArgumentError(`${text} has min > max`);
    return [min, max];
  }
  return integer(0)(text);
}

function list(text: string): string[] {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

/** Write `text` to stdout, ending with a newline. */
function print(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}

function program(): Command {
  const root = new Command('sync-core')
    .description('Inspect and repair sync-core databases, or start the reference server.')
    .version(version, '-v, --version')
    .option('--no-color', 'no colours (also: NO_COLOR=1; never in pipes)')
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({ outputError: (text, write) => write(text) });
  const ui = (): Colors => colors(useColor(root.opts<{ color: boolean }>().color));

  root
    .command('inspect')
    .description("show what a database's queue holds and why it is stuck (opens the file read-only)")
    .argument('<db>', 'the SQLite file of the app (e.g. a copy a user sent)')
    .option('--id <mutationId>', 'show one mutation in full: payload, key, errors, conflict')
    .option('--json', 'machine-readable output', false)
    .option('--limit <n>', 'rows per list (0: all)', integer(0), 20)
    .option('--runs <n>', 'recent runs to show', integer(0, 200), 5)
    .addHelpText(
      'after',
      `
Lists never show payloads; --id shows one mutation with its payload.

Examples:
  sync-core inspect app.db
  sync-core inspect app.db --id 019a5f0e-8c1b-7c3e-9d2a-4b6f1e0a9c77
  sync-core inspect app.db --json --limit 0 > queue.json`,
    )
    .action(async (db: string, opts: { id?: string; json: boolean; limit: number; runs: number }) => {
      print(await inspect(db, opts, ui()));
    });

  root
    .command('retry')
    .description("send dead-lettered (failed) mutations again, or pending ones now, on the app's next run")
    .argument('<db>', 'the SQLite file of the app')
    .argument('[ids...]', 'mutation ids (from inspect)')
    .option('--failed', 'every failed mutation', false)
    .option('--json', 'machine-readable output', false)
    .addHelpText(
      'after',
      `
A rejected mutation gets a new idempotency key (the server remembers the rejection under the old one).

Examples:
  sync-core retry app.db --failed
  sync-core retry app.db 019a5f0e-8c1b-7c3e-9d2a-4b6f1e0a9c77`,
    )
    .action(async (db: string, ids: string[], opts: { failed: boolean; json: boolean }) => {
      const result = await retry(db, ids, opts, ui());
      print(result.output);
      if (!result.ok) process.exitCode = 1;
    });

  root
    .command('discard')
    .description('remove mutations for good: their changes will never reach the server')
    .argument('<db>', 'the SQLite file of the app')
    .argument('<ids...>', 'mutation ids (from inspect)')
    .option('--json', 'machine-readable output', false)
    .action(async (db: string, ids: string[], opts: { json: boolean }) => {
      const result = await discard(db, ids, opts, ui());
      print(result.output);
      if (!result.ok) process.exitCode = 1;
    });

  root
    .command('serve')
    .description(
      'start the reference server (protocol v1 + REST mode, with fault injection); needs better-sqlite3',
    )
    .addOption(
      new Option('--port <n>', 'TCP port (0 picks a free one)').argParser(integer(0, 65_535)).default(8787),
    )
    .option('--host <addr>', 'interface to listen on', '127.0.0.1')
    .option('--db <path>', 'SQLite file for records, keys and tokens (default: in-memory)')
    .option('--token-ttl <ms>', 'access token lifetime in milliseconds', integer(1))
    .option('--error-rate <p>', 'probability (0..1) of a random 5xx', rate)
    .option('--latency <ms>', 'delay per request: <ms> or <min>-<max>', latency)
    .option('--seed <n>', 'fault PRNG seed', integer(Number.MIN_SAFE_INTEGER))
    .option('--assign-ids <a,b>', 'entity types that get server-assigned ids', list)
    .action(
      async (opts: {
        port: number;
        host: string;
        db?: string;
        tokenTtl?: number;
        errorRate?: number;
        latency?: number | readonly [number, number];
        seed?: number;
        assignIds?: string[];
      }) => {
        const c = ui();
        const server = await serve(opts, c);
        let stopping = false;
        const stop = (signal: string): void => {
          // A second Ctrl-C while closing: stop waiting.
          if (stopping) process.exit(1);
          stopping = true;
          console.log(`\n${signal}: closing…`);
          server.stop().then(
            (summary) => console.log(summary),
            (error: unknown) => {
              console.error(`sync-core: ${error instanceof Error ? error.message : String(error)}`);
              process.exitCode = 1;
            },
          );
        };
        process.on('SIGINT', () => stop('SIGINT'));
        process.on('SIGTERM', () => stop('SIGTERM'));
      },
    );

  // Usage errors exit with 2, like most Unix tools; commander prints them (one line + a hint).
  root.exitOverride();
  for (const command of root.commands) command.exitOverride();
  return root;
}

/** Parse `argv` and run the command; sets `process.exitCode` on failure. */
export async function main(argv: readonly string[] = process.argv): Promise<void> {
  try {
    await program().parseAsync([...argv]);
  } catch (error) {
    if (error instanceof CommanderError) {
      // --help and --version end here too, with exit code 0.
      process.exitCode = error.exitCode === 0 ? 0 : 2;
      return;
    }
    const message =
      error instanceof CliError
        ? error.message
        : error instanceof SyncError
          ? `${error.code}: ${error.message}`
          : error instanceof Error
            ? error.message
            : String(error);
    process.stderr.write(`sync-core: ${message.split('\n')[0]}\n`);
    process.exitCode = error instanceof CliError ? error.exitCode : 1;
  }
}

await main();
