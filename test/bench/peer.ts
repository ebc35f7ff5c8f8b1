/**
 * Benchmark 3, peer: the same 10,000-mutation backlog drained to the reference server by
 * workbox-background-sync's `Queue` (`replayRequests()`: one `fetch` POST per queued request, one
 * at a time, from fake-indexeddb) and by sync-core — REST-resource mode (one POST per mutation,
 * `restConcurrency` 4) and protocol-v1 batches of 100 — interleaved in one child process
 * (`peer-child.ts`; workbox needs browser globals that must not leak into the other benchmarks).
 */
import { fileURLToPath } from 'node:url';
import { type BenchRow, pairedRatio, runTsChild, summarize } from './lib.js';

const child = fileURLToPath(new URL('./peer-child.ts', import.meta.url));

export const PEER_COUNT = 10_000;

export async function benchPeer(options: {
  runs: number;
  full: boolean;
  log: (line: string) => void;
}): Promise<BenchRow[]> {
  const out = await runTsChild(
    child,
    [String(options.runs), String(PEER_COUNT), ...(options.full ? ['--full'] : [])],
    [],
    { onStderrLine: options.log },
  );
  const result = JSON.parse(out.trim().split('\n').pop()!) as {
    samples: Record<string, number[]>;
    workboxFillMs: number[];
  };
  const s = Object.fromEntries(
    Object.entries(result.samples).map(([name, samples]) => [name, summarize(samples)]),
  );
  const workbox = s.workbox!;
  const fill = summarize(result.workboxFillMs).median;
  const rows: BenchRow[] = [
    {
      name: 'peer 10k workbox Queue replay',
      unit: 'mut/s',
      summary: workbox,
      notes:
        `workbox-background-sync 7.4.1 Queue.replayRequests(), sequential fetch POST /rest/activity, ` +
        `fake-indexeddb 6.2.8, undici 7 fetch; queue filled untimed (median ${(fill / 1000).toFixed(1)} s)`,
    },
    {
      name: 'peer 10k sync-core REST',
      unit: 'mut/s',
      summary: s['sync-core rest']!,
      ratio: pairedRatio(s['sync-core rest']!, workbox),
      ratioNote: 'median over runs of sync-core REST ÷ workbox mutations/s of the same round',
      notes: "runOnce(), mode 'rest', restConcurrency 4, better-sqlite3 synchronous=FULL",
    },
    {
      name: 'peer 10k sync-core batch',
      unit: 'mut/s',
      summary: s['sync-core batch']!,
      ratio: pairedRatio(s['sync-core batch']!, workbox),
      ratioNote: 'median over runs of sync-core protocol-v1 ÷ workbox mutations/s of the same round',
      notes: 'runOnce(), protocol v1, batches of 100 (POST /sync/push), synchronous=FULL',
    },
  ];
  if (s['sync-core rest c1']) {
    rows.push({
      name: 'peer 10k sync-core REST c1',
      unit: 'mut/s',
      summary: s['sync-core rest c1'],
      ratio: pairedRatio(s['sync-core rest c1'], workbox),
      ratioNote: 'median over runs of sync-core REST (one request at a time) ÷ workbox mutations/s',
      notes: 'as sync-core REST with restConcurrency 1: one request at a time, like workbox (--full only)',
    });
  }
  return rows;
}
