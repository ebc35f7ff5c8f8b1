/**
 * `sync-core retry` and `sync-core discard`: repair a user's queue from the command line, through
 * the engine's queue API (the same calls an app's support screen makes).
 *
 * @packageDocumentation
 */

import type { Mutation, SyncEngine } from 'sync-core';
import { CliError, openDatabase } from './open-database.js';
import type { Colors } from './output.js';

/** An id the command did not act on, and why. */
export interface Skipped {
  readonly id: string;
  readonly reason: string;
}

/** The result of `retry` or `discard`, as `--json` prints it. */
export interface QueueCommandResult {
  readonly database: string;
  /** Ids retried (made due now) or discarded. */
  readonly done: readonly string[];
  readonly skipped: readonly Skipped[];
}

function describe(m: Mutation): string {
  return `${m.entity}/${m.entityId} ${m.op}`;
}

/** Look every id up once; the ones not queued are skipped with a reason. */
async function lookUp(
  engine: SyncEngine,
  ids: readonly string[],
): Promise<{ found: Mutation[]; skipped: Skipped[] }> {
  const found: Mutation[] = [];
  const skipped: Skipped[] = [];
  for (const id of new Set(ids)) {
    const m = await engine.queue.get(id);
    if (m === undefined) skipped.push({ id, reason: 'not queued (confirmed, discarded, or never queued)' });
    else found.push(m);
  }
  return { found, skipped };
}

function finish(
  verb: string,
  result: QueueCommandResult,
  byId: ReadonlyMap<string, Mutation>,
  json: boolean,
  c: Colors,
  after: (count: number) => string,
): string {
  if (json) return JSON.stringify(result, null, 2);
  const lines: string[] = [];
  if (result.done.length === 0) lines.push(`${verb} nothing.`);
  else {
    const n = result.done.length;
    lines.push(`${verb} ${n} mutation${n === 1 ? '' : 's'}: ${after(n)}`);
    for (const id of result.done) {
      const m = byId.get(id);
      lines.push(
        `  ${c.green('✓')} ${id}${m === undefined ? '' : c.dim(`  ${describe(m)} (was ${m.state})`)}`,
      );
    }
  }
  for (const s of result.skipped) lines.push(`  ${c.red('✗')} ${s.id}  ${s.reason}`);
  return lines.join('\n');
}

/**
 * `retry`: make failed mutations pending again (attempts reset; a rejected one gets a new
 * idempotency key) and pending ones due now. The app's next sync run sends them.
 */
export async function retry(
  file: string,
  ids: readonly string[],
  options: { readonly failed: boolean; readonly json: boolean },
  c: Colors,
): Promise<{ output: string; ok: boolean }> {
  if (options.failed && ids.length > 0)
    throw new CliError('retry: give mutation ids or --failed, not both', 2);
  if (!options.failed && ids.length === 0) throw new CliError('retry: give mutation ids, or --failed', 2);
  const db = await openDatabase(file, { command: 'retry', readonly: false });
  try {
    const { engine } = db;
    const byId = new Map<string, Mutation>();
    let skipped: Skipped[] = [];
    let done: string[];
    if (options.failed) {
      for (const m of await engine.queue.list({ scope: 'all', state: 'failed', limit: 1000 }))
        byId.set(m.id, m);
      done = await engine.queue.retry({ allFailed: true }, { scope: 'all' });
    } else {
      const looked = await lookUp(engine, ids);
      skipped = looked.skipped;
      const retryable: string[] = [];
      for (const m of looked.found) {
        byId.set(m.id, m);
        if (m.state === 'failed' || m.state === 'pending') retryable.push(m.id);
        else if (m.state === 'conflict') {
          skipped.push({
            id: m.id,
            reason: 'in conflict: the app resolves it (resolveConflict), or discard it',
          });
        } else skipped.push({ id: m.id, reason: 'being sent by a run right now' });
      }
      done = retryable.length === 0 ? [] : await engine.queue.retry(retryable, { scope: 'all' });
      const made = new Set(done);
      for (const id of retryable) {
        if (!made.has(id)) skipped.push({ id, reason: 'changed state meanwhile (a run picked it up)' });
      }
    }
    const result: QueueCommandResult = { database: db.path, done, skipped };
    const output = finish(
      'Retried',
      result,
      byId,
      options.json,
      c,
      (n) =>
        `${n === 1 ? 'it is' : 'they are'} due now and go${n === 1 ? 'es' : ''} out with the app's next sync run`,
    );
    return { output, ok: skipped.length === 0 };
  } finally {
    await db.close();
  }
}

/**
 * `discard`: remove mutations for good (in any state but in flight). The changes never reach the
 * server; the app's own rows are not touched.
 */
export async function discard(
  file: string,
  ids: readonly string[],
  options: { readonly json: boolean },
  c: Colors,
): Promise<{ output: string; ok: boolean }> {
  if (ids.length === 0) throw new CliError('discard: give the ids of the mutations to discard', 2);
  const db = await openDatabase(file, { command: 'discard', readonly: false });
  try {
    const { engine } = db;
    const looked = await lookUp(engine, ids);
    const skipped = [...looked.skipped];
    const byId = new Map(looked.found.map((m) => [m.id, m] as const));
    const removable: string[] = [];
    for (const m of looked.found) {
      if (m.state === 'inflight')
        skipped.push({ id: m.id, reason: 'being sent by a run right now: try again after it' });
      else removable.push(m.id);
    }
    const done = removable.length === 0 ? [] : await engine.queue.discard(removable);
    const result: QueueCommandResult = { database: db.path, done, skipped };
    const output = finish(
      'Discarded',
      result,
      byId,
      options.json,
      c,
      (n) => `${n === 1 ? 'it' : 'they'} will never reach the server`,
    );
    return { output, ok: skipped.length === 0 };
  } finally {
    await db.close();
  }
}
