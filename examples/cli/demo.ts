// examples/cli/demo.ts — `npm run demo [-- --size 60 --fault-rate 0.1 --seed 1 --no-color --keep]`
//
// A field worker's day on a simulated device, against the reference server on a real SQLite file:
// activities and contacts registered offline, connectivity lost and regained, and the engine's
// timer scheduler delivering everything by itself while the server misbehaves (a burst of 503s
// with Retry-After, a dropped connection, an expired token, a conflict, a refused record). Then
// the next launch shows the notices the app would show, and a summary proves that the server
// applied every delivered change exactly once.
//
// Nothing in the story below calls runOnce: every run is started by the scheduler.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import Table from 'cli-table3';
import { Command, InvalidArgumentError } from 'commander';
import {
  type ConnectivityAdapter,
  createSyncEngine,
  createTimerScheduler,
  type EnqueuedMutation,
  formatNotices,
  type Mutation,
  type RunReport,
  type SyncEngine,
} from 'sync-core';
import { createBetterSqlite3Storage } from 'sync-core/better-sqlite3';
import { createFetchNetwork } from 'sync-core/fetch';
import { checkDelivery, createSeededRandom } from 'sync-core/testing';
import { startServer } from '../server/index.js';
import { createTerminal } from './terminal.js';

// ---------------------------------------------------------------------------------------------
// Command line

function integer(min: number, max: number) {
  return (text: string): number => {
    const value = Number(text);
    if (!Number.isInteger(value) || value < min || value > max) {
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

const options = new Command('npm run demo --')
  .description("sync-core's background sync, played out on a simulated device against the reference server")
  .option('--size <n>', 'activities the field worker registers', integer(5, 5_000), 60)
  .option(
    '--fault-rate <p>',
    'probability (0..1) of a random 5xx per request while syncing, on top of the scripted faults',
    rate,
    0,
  )
  .option('--seed <n>', 'seed of the data, ids, jitter and random faults', integer(0, 2 ** 31 - 1), 1)
  .option('--no-color', 'no colours (never used in pipes anyway)')
  .option('--keep', 'keep the device and server databases, to look into them with `sync-core inspect`')
  .addHelpText(
    'after',
    `
The summary is the same for a given seed. Random faults (--fault-rate > 0) hit whichever requests
are in flight at that moment, so with them the retry count depends on timing too; what the server
applied never does.`,
  )
  .parse()
  .opts<{ size: number; faultRate: number; seed: number; color: boolean; keep?: boolean }>();

const term = createTerminal({ color: options.color });
const { c } = term;
const t0 = performance.now();
const elapsed = (): string => c.dim(`${((performance.now() - t0) / 1000).toFixed(1).padStart(5)} s`);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
/** A beat between the chapters of the story, so that a person can follow it. */
const beat = () => sleep(500);

// ---------------------------------------------------------------------------------------------
// The day's data, from the seed

const data = createSeededRandom(options.seed);
const pick = <T>(items: readonly T[]): T => items[Math.floor(data() * items.length)]!;
const TITLES = [
  'Home visit',
  'Phone call',
  'Hospital visit',
  'Walk',
  'Coffee',
  'Group meeting',
  'Digital help',
];
const NAMES = [
  'Ada',
  'Bjørn',
  'Chidi',
  'Dina',
  'Elif',
  'Farid',
  'Greta',
  'Hana',
  'Ivar',
  'Jonas',
  'Kari',
  'Lena',
];
const contactCount = Math.max(3, Math.round(options.size / 5));
const MORNING = 4; // activities registered at the office, online
const refusedIndex = MORNING + 1 + Math.floor(data() * (options.size - MORNING - 1));
const activityId = (i: number) => `a-${String(i + 1).padStart(3, '0')}`;
const contactId = (i: number) => `c-${String(i + 1).padStart(3, '0')}`;

// ---------------------------------------------------------------------------------------------
// The backend: the reference server on a SQLite file

const dir = mkdtempSync(join(tmpdir(), 'sync-core-demo-'));
const server = await startServer({
  port: 0,
  dbPath: join(dir, 'server.db'),
  seed: options.seed,
  faults: { latencyMs: [20, 60] },
});
const scope = { userId: 'mentor-7', orgId: 'org-bergen' };
let credentials = server.issueToken(scope);
let refreshes = 0;

// Yesterday's state: three contacts the office and the device both have, at version 1.
const KNOWN_CONTACTS = 3;
for (let i = 0; i < KNOWN_CONTACTS; i++) server.put(scope, 'contact', contactId(i), { name: NAMES[i]! });

// ---------------------------------------------------------------------------------------------
// The device: its connectivity, its network stack, its database and the engine

let online = true;
const listeners = new Set<(online: boolean) => void>();
const connectivity: ConnectivityAdapter = {
  isOnline: () => online,
  subscribe(listener) {
    listeners.add(listener);
    return () => listeners.delete(listener);
  },
};
function setOnline(value: boolean): void {
  online = value;
  for (const listener of listeners) listener(value);
}
/** What fetch does on a device without a network: fail before sending anything. */
function unreachable(): Promise<never> {
  const cause = Object.assign(new Error('connect ENETUNREACH'), { code: 'ENETUNREACH' });
  return Promise.reject(new TypeError('fetch failed', { cause }));
}

const network = createFetchNetwork({
  baseUrl: server.url,
  fetch: (url, init) => (online ? fetch(url, init) : unreachable()),
  credentials: async () => ({ token: credentials.token }),
  // After a 401 the engine asks for fresh credentials once (single flight), then resends.
  refresh: async (_scope, signal) => {
    const response = await fetch(`${server.url}/auth/refresh`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ refreshToken: credentials.refreshToken }),
      signal,
    });
    if (!response.ok) return false;
    credentials = (await response.json()) as typeof credentials;
    refreshes++;
    progress?.log(`  ${elapsed()}  ${c.yellow('401')} the access token expired → refreshed it, resending`);
    return true;
  },
});

// The timer scheduler holds a run while the device is offline and starts it shortly after the
// network returns. Short delays so that the demo's day fits in seconds: the defaults are 30 s
// doubling to 1 h, and a periodic run every 15 min.
const scheduler = createTimerScheduler({
  connectivity,
  connectivityDelayMaxMs: 300,
  random: createSeededRandom(options.seed + 2),
});
const random = createSeededRandom(options.seed + 1);
const deviceFile = join(dir, 'device.db');

function launch(withScheduler: boolean): SyncEngine {
  const db = new Database(deviceFile);
  db.exec(`CREATE TABLE IF NOT EXISTS activities (id TEXT PRIMARY KEY, title TEXT, minutes INTEGER, day TEXT);
           CREATE TABLE IF NOT EXISTS contacts (id TEXT PRIMARY KEY, name TEXT, phone TEXT, version INTEGER)`);
  return createSyncEngine({
    storage: createBetterSqlite3Storage(db),
    network,
    entities: { activity: { coalesce: true }, contact: { coalesce: true } },
    random,
    ...(withScheduler ? { scheduler } : {}),
    backoff: { initialMs: 250, maxMs: 2_000 },
    periodicMs: 3_000,
    batch: { maxCount: 10, concurrency: 1 },
  });
}

let progress: ReturnType<typeof term.progress> | undefined;
const enqueued: EnqueuedMutation[] = [];
const tally = { confirmed: 0, retried: 0, failed: 0, conflicts: 0 };
const runs: RunReport[] = [];
let runFailures: string[] = [];
let runRetryAt: number[] = [];

let engine = launch(true);
engine.on('mutation:confirmed', () => tally.confirmed++);
engine.on('retry:scheduled', (e) => {
  tally.retried++;
  runRetryAt.push(e.nextAttemptAt);
});
engine.on('mutation:failed', () => tally.failed++);
engine.on('conflict:detected', () => tally.conflicts++);
engine.on('batch:failed', (e) => runFailures.push(e.status === undefined ? e.code : `HTTP ${e.status}`));
engine.on('run:finished', (report) => {
  runs.push(report);
  const n = report.counts;
  const parts = [`${n.pushed} delivered`];
  if (n.retried > 0) parts.push(`${n.retried} to retry`);
  if (n.conflicted > 0) parts.push(c.yellow(`${n.conflicted} conflict`));
  if (n.failed > 0) parts.push(c.red(`${n.failed} refused`));
  const why = runFailures.length > 0 ? ` (${[...new Set(runFailures)].join(', ')})` : '';
  // The earliest a mutation of this run that failed may be resent: backoff, or the Retry-After.
  const next =
    runRetryAt.length > 0
      ? c.dim(` · resent in ≥ ${((Math.min(...runRetryAt) - report.finishedAt) / 1000).toFixed(1)} s`)
      : '';
  const outcome = report.outcome === 'ok' ? c.green(report.outcome) : c.yellow(report.outcome);
  progress?.log(
    `  ${elapsed()}  run ${runs.length} (${report.trigger}): ${outcome}${why} — ${parts.join(', ')}${next}`,
  );
  runFailures = [];
  runRetryAt = [];
});
await engine.open();
await engine.start(scope);

async function registerActivity(i: number, minutes: number): Promise<void> {
  const row = { title: pick(TITLES), minutes, day: `2026-05-${String(4 + (i % 5)).padStart(2, '0')}` };
  await engine.transaction(async (tx) => {
    await tx.run('INSERT INTO activities (id, title, minutes, day) VALUES (?, ?, ?, ?)', [
      activityId(i),
      row.title,
      row.minutes,
      row.day,
    ]);
    enqueued.push(await tx.enqueue({ entity: 'activity', op: 'create', entityId: activityId(i), data: row }));
  });
}

async function waitFor(condition: () => Promise<boolean> | boolean, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (await condition()) return true;
    await sleep(50);
  }
  return false;
}

async function queueList(which: SyncEngine): Promise<Mutation[]> {
  const out: Mutation[] = [];
  for (;;) {
    const page = await which.queue.list({ scope: 'all', limit: 1000, afterSeq: out.at(-1)?.seq });
    out.push(...page);
    if (page.length < 1000) return out;
  }
}

// ---------------------------------------------------------------------------------------------
// The story

term.line(c.bold("sync-core demo — a field worker's day, synced in the background"));
term.line(
  c.dim(
    `  seed ${options.seed} · ${options.size} activities · ${contactCount} contacts · ` +
      (options.faultRate > 0 ? `random fault rate ${options.faultRate}` : 'scripted faults only'),
  ),
);
term.line(`  reference server  ${server.url}  ${c.dim(`(SQLite file ${join(dir, 'server.db')})`)}`);
term.line(`  device database   ${deviceFile}`);

// Morning, online: what is registered is delivered within moments, by the scheduler.
term.line();
term.line(c.bold('08:00  At the office, online'));
const morningStart = performance.now();
for (let i = 0; i < MORNING; i++) await registerActivity(i, pick([30, 45, 60]));
const morningDone = await waitFor(() => tally.confirmed >= MORNING, 10_000);
term.line(
  `  ${c.green('✓')} ${MORNING} activities registered; ${morningDone ? 'delivered' : 'not yet delivered'} by the ` +
    `background scheduler ${((performance.now() - morningStart) / 1000).toFixed(1)} s later — no sync button, no runOnce`,
);

// In the field, offline: every change is the app's own write plus its queued mutation, atomically.
await beat();
term.line();
term.line(c.bold('09:00  Out in the field — no signal'));
setOnline(false);
const runsWhenOffline = runs.length;
const edits = Math.floor((options.size - MORNING) / 8);
const changes = options.size - MORNING + (contactCount - KNOWN_CONTACTS) + edits + 1;
progress = term.progress('registering', changes);
let made = 0;
const pace = Math.min(40, 3_000 / changes); // a person's pace, so the bar can be watched
const step = async (): Promise<void> => {
  progress?.update(++made, 'queued offline');
  await sleep(pace);
};
for (let i = MORNING; i < options.size; i++) {
  await registerActivity(i, i === refusedIndex ? 0 : pick([15, 30, 45, 60, 90]));
  await step();
  // Now and then a correction of an activity registered earlier that day: still unsent, so it is
  // merged into the queued create instead of becoming a second request.
  if ((i - MORNING) % 8 === 7) {
    const target = i - Math.floor(data() * 4);
    enqueued.push(
      await engine.enqueue({
        entity: 'activity',
        op: 'update',
        entityId: activityId(target),
        data: { minutes: pick([20, 40, 75]) },
      }),
    );
    await step();
  }
}
for (let i = KNOWN_CONTACTS; i < contactCount; i++) {
  const name = pick(NAMES);
  const phone = `+47 9${Math.floor(data() * 1e7)}`;
  await engine.transaction(async (tx) => {
    await tx.run('INSERT INTO contacts (id, name, phone) VALUES (?, ?, ?)', [contactId(i), name, phone]);
    enqueued.push(
      await tx.enqueue({ entity: 'contact', op: 'create', entityId: contactId(i), data: { name, phone } }),
    );
  });
  await step();
}
// A new phone number for a contact both sides know, made against version 1.
enqueued.push(
  await engine.enqueue({
    entity: 'contact',
    op: 'update',
    entityId: contactId(1),
    data: { phone: '+47 91234567' },
    baseVersion: 1,
  }),
);
await step();
progress.stop('queued offline');
progress = undefined;
const offlineStats = await engine.queue.stats();
const merged = enqueued.filter((m) => m.coalesced === 'merged').length;
term.line(
  `  ${offlineStats.pending} mutations waiting in the queue (${merged} corrections merged into unsent creates); ` +
    `${runs.length > runsWhenOffline ? `${runs.length - runsWhenOffline} runs` : 'no run'} since the signal went — ` +
    'the scheduler holds the next run until the network is back',
);

// Meanwhile, at the office and on the server.
await beat();
term.line();
term.line(c.bold('12:00  Meanwhile'));
server.put(scope, 'contact', contactId(1), { name: `${NAMES[1]} (moved to Oslo)` });
term.line(`  a coordinator edits contact ${contactId(1)} on the server (now version 2)`);
server.expireTokens();
term.line("  the device's access token expires");
server.faults.rejectWhen = (m) =>
  m.entity === 'activity' && (m.data as { minutes?: number } | null)?.minutes === 0
    ? 'an activity lasts at least one minute'
    : undefined;
term.line('  the backend refuses activities of 0 minutes (a rule the app does not know)');
server.faults.failNext(3, { status: 503, retryAfter: '1' }).dropNext(1, 'after-apply');
server.faults.set({ errorRate: options.faultRate, retryAfter: '1' });
term.line(
  '  the server is overloaded: 3 × 503 with Retry-After: 1, then a connection dropped after a commit' +
    (options.faultRate > 0 ? `, and ${Math.round(options.faultRate * 100)}% random 5xx` : ''),
);

// Back in coverage: the scheduler notices and syncs; the demo only watches.
await beat();
term.line();
term.line(c.bold('15:30  Back in coverage'));
const toSettle = offlineStats.total;
const settledBefore = tally.confirmed + tally.failed + tally.conflicts;
progress = term.progress('syncing', toSettle);
const watch = setInterval(() => {
  const settled = tally.confirmed + tally.failed + tally.conflicts - settledBefore;
  progress?.update(Math.min(settled, toSettle), `${tally.retried} retries · ${runs.length} runs`);
}, 100);
const syncStart = performance.now();
setOnline(true);
const SYNC_TIMEOUT_MS = 60_000;
const settled = await waitFor(async () => {
  const s = await engine.queue.stats();
  return s.pending + s.inflight === 0 && !scheduler.isRunning();
}, SYNC_TIMEOUT_MS);
clearInterval(watch);
const syncSeconds = (performance.now() - syncStart) / 1000;
const triggers = new Map<string, number>();
for (const run of runs.slice(runsWhenOffline))
  triggers.set(run.trigger, (triggers.get(run.trigger) ?? 0) + 1);
progress.update(
  Math.min(tally.confirmed + tally.failed + tally.conflicts - settledBefore, toSettle),
  `${tally.retried} retries · ${runs.length} runs`,
);
progress.stop();
progress = undefined;
term.line(
  settled
    ? `  ${c.green('✓')} the queue settled ${syncSeconds.toFixed(1)} s after the signal came back, in ${runs.length - runsWhenOffline} ` +
        `runs (${[...triggers].map(([trigger, n]) => `${n} ${trigger}`).join(', ')}), with no user action`
    : `  ${c.yellow('!')} still sending after ${SYNC_TIMEOUT_MS / 1000} s (fault rate ${options.faultRate}); ` +
        'what is left waits in the queue for the next run',
);

// The app is closed. Next launch: a new engine on the same file reads what the runs wrote down.
await engine.close();
scheduler.dispose();
await beat();
term.line();
term.line(c.bold('19:00  Next launch — the notices the app shows'));
engine = launch(false);
await engine.open();
await engine.start(scope);
const notices = await engine.status.unseenNotices();
for (const line of formatNotices(notices, { labels: { activity: 'activity', contact: 'contact' } })) {
  const tag = line.severity === 'attention' ? c.yellow('[attention]') : c.cyan('[info]     ');
  term.line(`  ${tag} ${line.text}`);
  await engine.status.acknowledge(line.noticeIds);
}
for (const conflict of await engine.conflicts()) {
  term.line(
    c.dim(
      `    conflict on ${conflict.entity} ${conflict.entityId}: yours ${JSON.stringify(conflict.local)} ` +
        `(made against v${conflict.baseVersion}), the server's ${JSON.stringify(conflict.server)} (v${conflict.serverVersion})`,
    ),
  );
}
const queued = await queueList(engine);
for (const m of queued.filter((q) => q.state === 'failed')) {
  term.line(c.dim(`    ${m.entity} ${m.entityId} was refused: ${m.lastError?.message}`));
}

// The proof: what the server applied, compared with what the app was promised.
const log = server.log();
const delivery = checkDelivery({ enqueued, applied: log, queued });
const stats = server.stats();
const stored = new Set(enqueued.filter((m) => m.coalesced !== 'cancelled').map((m) => m.id)).size;
const keys = new Set(log.map((row) => row.key));
// The scheduler's runs carry the trigger 'schedule' or 'connectivity'; anything else was runOnce.
const byApp = runs.filter((run) => run.trigger !== 'schedule' && run.trigger !== 'connectivity').length;
const yes = (ok: boolean, text: string) => (ok ? c.green(text) : c.red(text));

const summary = new Table({
  head: [c.bold('Summary'), c.bold('')],
  style: { head: [], border: [], compact: true },
});
summary.push(
  ['changes made on the device', `${enqueued.length} (${merged} merged into unsent creates)`],
  ['mutations queued', String(stored)],
  ['delivered (confirmed by the server)', String(delivery.delivered)],
  ['retried (attempts rescheduled)', String(tally.retried)],
  ['token refreshes', String(refreshes)],
  ['conflicts (waiting for the user)', String(queued.filter((m) => m.state === 'conflict').length)],
  ['failed (refused by the server)', String(queued.filter((m) => m.state === 'failed').length)],
  [
    'still queued to send',
    String(queued.filter((m) => m.state === 'pending' || m.state === 'inflight').length),
  ],
  ['runs started by the app', byApp === 0 ? '0 — every run was started by the scheduler' : String(byApp)],
  [
    'server: requests / faults injected',
    `${stats.pushRequests} push requests, ${stats.injectedFaults} faults, ${stats.droppedConnections} connection dropped`,
  ],
  ['server: mutations applied', `${log.length} rows in its log, ${keys.size} distinct idempotency keys`],
  ['server: resends answered "duplicate"', `${stats.duplicates} (applied once, not twice)`],
  [
    'lost · applied twice · out of order',
    yes(
      delivery.ok,
      `${delivery.lost.length} · ${delivery.duplicated.length} · ${delivery.outOfOrder.length}` +
        (delivery.ok ? '  ✓ nothing lost, nothing doubled' : '  ✗ delivery check failed'),
    ),
  ],
);
term.line();
term.line(summary.toString());
term.line(c.dim(`Done in ${((performance.now() - t0) / 1000).toFixed(1)} s.`));

await engine.close();
await server.close();
if (options.keep) {
  term.line(
    `Kept ${dir}: try ${c.bold(`npm run sync-core -- inspect ${deviceFile}`)} to see the refused change and the conflict.`,
  );
} else {
  rmSync(dir, { recursive: true, force: true });
}
if (!delivery.ok || log.length !== keys.size) process.exitCode = 1;
