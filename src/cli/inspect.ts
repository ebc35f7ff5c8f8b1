/**
 * `sync-core inspect <db>`: what a user's queue holds and why it is stuck — counts, dead letters
 * with the server's reasons, conflicts, pending mutations with their next attempt times, the last
 * runs and the notices the app will show. `--id` shows one mutation in full. Read-only.
 *
 * @packageDocumentation
 */

import {
  type Conflict,
  formatNotices,
  type Mutation,
  type MutationState,
  type Notice,
  type QueueStats,
  type RunRecord,
  type SyncEngine,
  systemClock,
} from 'sync-core';
import { CliError, openDatabase } from './open-database.js';
import {
  type Colors,
  details,
  duration,
  errorText,
  nextAttempt,
  relative,
  scopeText,
  table,
  truncate,
  versionText,
  when,
} from './output.js';

/** Options of `inspect`. */
export interface InspectOptions {
  readonly id?: string;
  readonly json: boolean;
  /** Rows per list; 0 for all. */
  readonly limit: number;
  readonly runs: number;
}

/** A mutation as lists show it: everything but its payload (payloads only with `--id`). */
type ListedMutation = Omit<Mutation, 'data'>;

/** What `inspect` found, as `--json` prints it. */
export interface InspectReport {
  readonly database: string;
  readonly schemaVersion: number;
  readonly clientId: string;
  readonly queue: QueueStats;
  readonly failed: ListedMutation[];
  /**
   * Open conflicts, as `engine.conflicts()` lists them. `queued: false` marks one whose mutation
   * is no longer in the queue (discarded): the app still lists it.
   */
  readonly conflicts: (Omit<Conflict, 'local' | 'server'> & {
    readonly op: string | null;
    readonly queued: boolean;
  })[];
  readonly pending: ListedMutation[];
  readonly inflight: ListedMutation[];
  /** How many mutations of each list were left out by `--limit`. */
  readonly omitted: { readonly failed: number; readonly pending: number; readonly inflight: number };
  readonly runs: RunRecord[];
  readonly notices: Notice[];
  /** The lines the app will show on its next launch (`formatNotices`, built-in English). */
  readonly noticeLines: { readonly text: string; readonly severity: string; readonly scope: string }[];
}

const PAGE = 1000;

function withoutData(m: Mutation): ListedMutation {
  const { data: _data, ...rest } = m;
  return rest;
}

/** Up to `limit` mutations in `state` (0: all), oldest first, paging through the queue. */
async function listState(engine: SyncEngine, state: MutationState, limit: number): Promise<Mutation[]> {
  const out: Mutation[] = [];
  let afterSeq: number | undefined;
  for (;;) {
    const want = limit === 0 ? PAGE : Math.min(PAGE, limit - out.length);
    if (want <= 0) break;
    const page = await engine.queue.list({ scope: 'all', state, limit: want, afterSeq });
    out.push(...page);
    if (page.length < want) break;
    afterSeq = page[page.length - 1]!.seq;
  }
  return out;
}

function scopeKey(scope: { readonly userId: string; readonly orgId?: string }): string {
  return JSON.stringify([scope.userId, scope.orgId ?? null]);
}

async function gather(engine: SyncEngine, path: string, schemaVersion: number, options: InspectOptions) {
  const queue = await engine.queue.stats({ scope: 'all' });
  const [failed, pending, inflight] = await Promise.all([
    listState(engine, 'failed', options.limit),
    listState(engine, 'pending', options.limit),
    listState(engine, 'inflight', options.limit),
  ]);
  const conflicts = await engine.conflicts();
  const conflictOps = await Promise.all(conflicts.map((c) => engine.queue.get(c.mutationId)));
  const runs = options.runs > 0 ? await engine.status.runs(options.runs) : [];
  const notices = await engine.status.unseenNotices();
  // One set of lines per user: notices of two users sharing a device are never summed together.
  const byScope = new Map<string, Notice[]>();
  for (const notice of notices) {
    const key = scopeKey(notice.scope);
    byScope.set(key, [...(byScope.get(key) ?? []), notice]);
  }
  const noticeLines = [...byScope.values()].flatMap((group) =>
    formatNotices(group).map((line) => ({
      text: line.text,
      severity: line.severity,
      scope: scopeText(group[0]!.scope),
    })),
  );
  const report: InspectReport = {
    database: path,
    schemaVersion,
    clientId: engine.clientId,
    queue,
    failed: failed.map(withoutData),
    conflicts: conflicts.map(({ local: _local, server: _server, ...c }, i) => ({
      ...c,
      op: conflictOps[i]?.op ?? null,
      queued: conflictOps[i] !== undefined,
    })),
    pending: pending.map(withoutData),
    inflight: inflight.map(withoutData),
    omitted: {
      failed: queue.failed - failed.length,
      pending: queue.pending - pending.length,
      inflight: queue.inflight - inflight.length,
    },
    runs,
    notices,
    noticeLines,
  };
  return report;
}

function more(count: number, c: Colors): string {
  return count > 0 ? `\n${c.dim(`… and ${count} more (raise --limit, or --limit 0 for all)`)}` : '';
}

function section(title: string, count: number, c: Colors): string {
  return `\n${c.bold(title)} ${c.dim(`(${count})`)}`;
}

function renderReport(r: InspectReport, readThroughCopy: boolean, now: number, c: Colors): string {
  const q = r.queue;
  const out: string[] = [];
  out.push(`${c.bold('sync-core database')} ${r.database}`);
  out.push(
    details(
      [
        [
          'schema',
          `v${r.schemaVersion}${readThroughCopy ? ' (older schema: read through a migrated copy)' : ''}`,
        ],
        ['client id', r.clientId],
        [
          'queued',
          `${q.total} — ${q.pending} pending, ${q.inflight} in flight, ` +
            `${q.failed > 0 ? c.red(`${q.failed} failed`) : '0 failed'}, ` +
            `${q.conflict > 0 ? c.yellow(`${q.conflict} in conflict`) : '0 in conflict'}`,
        ],
        ['oldest', q.oldestAgeMs === null ? '—' : `queued ${duration(q.oldestAgeMs)} ago`],
        [
          'last run',
          r.runs[0] === undefined
            ? '—'
            : `${when(r.runs[0].finishedAt, now)}: ${r.runs[0].outcome} (${r.runs[0].trigger})`,
        ],
        ['unseen notices', String(r.notices.length)],
      ],
      c,
    ),
  );

  out.push(section('Failed — dead letters, waiting for retry or discard', q.failed, c));
  if (r.failed.length === 0) out.push(c.dim('none'));
  else {
    out.push(
      table(
        ['id', 'record', 'op', 'tries', 'failed', 'reason'],
        r.failed.map((m) => [
          m.id,
          `${m.entity}/${m.entityId}`,
          m.op,
          String(m.attempts),
          relative(m.updatedAt, now),
          errorText(m.lastError),
        ]),
        c,
        { wrap: 5 },
      ) + more(r.omitted.failed, c),
    );
  }

  out.push(section('Conflicts — waiting for the user', r.conflicts.length, c));
  if (r.conflicts.length === 0) out.push(c.dim('none'));
  else {
    out.push(
      table(
        ['mutation id', 'record', 'op', 'made against', 'server has', 'detected'],
        r.conflicts.map((k) => [
          k.mutationId,
          `${k.entity}/${k.entityId}`,
          k.queued ? (k.op ?? '—') : c.dim('(mutation discarded)'),
          versionText(k.baseVersion),
          k.serverVersion === null ? 'deleted' : versionText(k.serverVersion),
          relative(k.createdAt, now),
        ]),
        c,
      ),
    );
  }

  const queued = [...r.inflight, ...r.pending];
  out.push(section('Pending and in flight', q.pending + q.inflight, c));
  if (queued.length === 0) out.push(c.dim('none'));
  else {
    out.push(
      table(
        ['id', 'record', 'op', 'state', 'tries', 'next attempt', 'last error'],
        queued.map((m) => [
          m.id,
          `${m.entity}/${m.entityId}`,
          m.op,
          m.state,
          String(m.attempts),
          m.state === 'inflight' ? 'being sent' : nextAttempt(m.nextAttemptAt, now),
          truncate(errorText(m.lastError), 200),
        ]),
        c,
        { wrap: 6 },
      ) + more(r.omitted.pending + r.omitted.inflight, c),
    );
  }

  if (r.runs.length > 0) {
    out.push(section('Recent runs', r.runs.length, c));
    out.push(
      table(
        ['finished', 'trigger', 'outcome', 'pushed', 'retried', 'failed', 'conflicts', 'pulled'],
        r.runs.map((run) => [
          relative(run.finishedAt, now),
          run.trigger,
          run.outcome === 'ok' ? c.green(run.outcome) : run.outcome,
          String(run.pushed),
          String(run.retried),
          String(run.failed),
          String(run.conflicted),
          String(run.pulled),
        ]),
        c,
      ),
    );
  }

  out.push(section('Notices the app will show on its next launch', r.noticeLines.length, c));
  if (r.noticeLines.length === 0) out.push(c.dim('none'));
  const scopes = new Set(r.noticeLines.map((l) => l.scope));
  for (const line of r.noticeLines) {
    const tag = line.severity === 'attention' ? c.yellow('[attention]') : c.cyan('[info]');
    out.push(`${tag} ${line.text}${scopes.size > 1 ? c.dim(` (${line.scope})`) : ''}`);
  }
  if (q.failed + q.conflict > 0) {
    out.push(
      c.dim(
        `\nsync-core inspect ${JSON.stringify(r.database)} --id <id> shows one mutation in full; ` +
          'sync-core retry / discard act on dead letters.',
      ),
    );
  }
  return out.join('\n');
}

function nextAttemptDetail(m: Mutation, now: number): string {
  switch (m.state) {
    case 'pending':
      return m.nextAttemptAt <= now ? 'due now' : when(m.nextAttemptAt, now);
    case 'inflight':
      return 'being sent by a run';
    case 'failed':
      return 'none: a dead letter, until retried (sync-core retry) or discarded';
    case 'conflict':
      return 'none: waits for the app to resolve the conflict';
  }
}

function renderMutation(m: Mutation, conflict: Conflict | undefined, now: number, c: Colors): string {
  const rows: [string, string][] = [
    ['id', m.id],
    ['state', m.state],
    ['record', `${m.entity}/${m.entityId}`],
    ['op', m.op],
    ['scope', scopeText(m.scope)],
    ['idempotency key', m.key],
    ['queue position', `seq ${m.seq}`],
    ['attempts', String(m.attempts)],
    ['next attempt', nextAttemptDetail(m, now)],
    ['last error', errorText(m.lastError)],
    ['base version', versionText(m.baseVersion)],
    ['depends on', m.dependsOn.length === 0 ? '—' : m.dependsOn.join('\n')],
    ['queued', when(m.createdAt, now)],
    ['updated', when(m.updatedAt, now)],
    ['data', JSON.stringify(m.data, null, 2)],
  ];
  if (conflict !== undefined) {
    rows.push(
      ['conflict detected', when(conflict.createdAt, now)],
      ['server version', conflict.serverVersion === null ? 'deleted' : versionText(conflict.serverVersion)],
      ['server data', JSON.stringify(conflict.server, null, 2)],
    );
  }
  return `${c.bold('Mutation')} ${m.id}\n${details(rows, c)}`;
}

/** Run `inspect`; returns what to print on stdout. */
export async function inspect(file: string, options: InspectOptions, c: Colors): Promise<string> {
  const db = await openDatabase(file, { command: 'inspect', readonly: true });
  try {
    const now = systemClock.now();
    if (options.id !== undefined) {
      const mutation = await db.engine.queue.get(options.id);
      if (mutation === undefined) {
        throw new CliError(`${file}: no mutation ${options.id} (confirmed, discarded, or never queued)`);
      }
      const conflict =
        mutation.state === 'conflict'
          ? (await db.engine.conflicts()).find((k) => k.mutationId === mutation.id)
          : undefined;
      return options.json
        ? JSON.stringify({ mutation, conflict: conflict ?? null }, null, 2)
        : renderMutation(mutation, conflict, now, c);
    }
    const report = await gather(db.engine, db.path, db.schemaVersion, options);
    return options.json
      ? JSON.stringify({ ...report, readThroughCopy: db.readThroughCopy }, null, 2)
      : renderReport(report, db.readThroughCopy, now, c);
  } finally {
    await db.close();
  }
}
