/**
 * `npm run bench`: sync-core against raw baselines, on this machine. Not part of `npm test`.
 *
 *   npm run bench                     builds dist/, then measures it (sync-core resolves to the built package)
 *   npm run bench -- --full           also: REST drain of 20,000, the engine on undici fetch, REST c1 in the peer group
 *   npm run bench -- --only=enqueue   groups: enqueue, drain, peer, startup, memory, fleet (comma-separated)
 *   npm run bench -- --runs=7         runs per figure (default 5, at least 5 recommended)
 *
 * Prints one table and writes bench-results/bench.json. docs/performance.md explains the figures.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { benchDrain } from './drain.js';
import { benchEnqueue } from './enqueue.js';
import { removeTemplates } from './fixtures.js';
import { benchFleet, FLEET, type FleetVariantResult, printFleetTable } from './fleet.js';
import { type BenchRow, machine, msSince, printTable, root } from './lib.js';
import { benchMemory } from './memory.js';
import { benchPeer } from './peer.js';
import { benchStartup } from './startup.js';

const args = process.argv.slice(2);
const full = args.includes('--full');
const quiet = args.includes('--quiet');
const only = args
  .find((arg) => arg.startsWith('--only='))
  ?.slice('--only='.length)
  .split(',');
const runs = Number(args.find((arg) => arg.startsWith('--runs='))?.slice('--runs='.length) ?? 5);
if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs: expected a positive integer, got ${runs}`);

const log = (line: string) => {
  if (!quiet) console.error(line);
};

let fleet: { variants: FleetVariantResult[]; ms: number } | undefined;
const groups: Record<string, () => Promise<BenchRow[]>> = {
  enqueue: () => benchEnqueue({ runs, log }),
  drain: () => benchDrain({ runs, log, full }),
  peer: () => benchPeer({ runs, log, full }),
  startup: () => benchStartup({ runs, log }),
  memory: () => benchMemory({ runs, log }),
  fleet: async () => {
    fleet = benchFleet({ runs, log });
    return [];
  },
};

const started = process.hrtime.bigint();
const info = machine();
console.error(
  `sync-core bench — commit ${info.commit} (built dist/), ${info.cpuModel}, ${info.nproc} CPUs, Node ${info.node}, ${full ? 'full' : 'default'} mode, ${runs} runs per figure`,
);
const rows: BenchRow[] = [];
const durations: Record<string, number> = {};
try {
  for (const [name, bench] of Object.entries(groups)) {
    if (only && !only.includes(name)) continue;
    console.error(`\n== ${name}`);
    const groupStart = process.hrtime.bigint();
    rows.push(...(await bench()));
    durations[name] = Math.round(msSince(groupStart));
  }
} finally {
  removeTemplates();
}
const totalMs = Math.round(msSince(started));

console.log(`\n${printTable(rows)}\n`);
if (fleet) {
  console.log(
    `Fleet: ${FLEET.devices.toLocaleString('en-US')} devices, ${FLEET.outageMs / 3_600_000} h outage, server accepts ${FLEET.capacityPerSecond} requests/s (429 beyond), ` +
      `1–${FLEET.maxMutations} mutations per device; median (min–max) over ${runs} seeds; ${(fleet.ms / 1000).toFixed(1)} s simulated in-process\n`,
  );
  console.log(`${printFleetTable(fleet.variants)}\n`);
}
console.log(
  `total ${(totalMs / 1000).toFixed(0)} s; ratio = sync-core ÷ baseline (raw, workbox, or the 10k memory run; see docs/performance.md)`,
);

const outDir = join(root, 'bench-results');
mkdirSync(outDir, { recursive: true });
const outFile = join(outDir, 'bench.json');
writeFileSync(
  outFile,
  `${JSON.stringify(
    {
      date: new Date().toISOString(),
      mode: full ? 'full' : 'default',
      runsPerFigure: runs,
      machine: info,
      durationsMs: { ...durations, total: totalMs },
      loadavgAtEnd: machine().loadavgAtStart,
      results: rows.map((row) => ({
        name: row.name,
        unit: row.unit,
        median: row.summary.median,
        min: row.summary.min,
        max: row.summary.max,
        samples: row.summary.samples,
        ratio: row.ratio ?? null,
        ratioNote: row.ratioNote ?? null,
        target: row.target ?? null,
        pass: row.pass ?? null,
        notes: row.notes ?? null,
      })),
      fleet: fleet
        ? {
            setup: FLEET,
            simulatedInMs: Math.round(fleet.ms),
            variants: fleet.variants.map((v) => ({
              scenario: v.scenario,
              jitter: v.jitter,
              retryAfterS: v.retryAfterS ?? null,
              peakRequestsPerS: v.peak,
              drainS: v.drain,
              medianDeviceS: v.medianDevice,
              firstRequestS: v.firstRequest,
              rejected: v.rejected,
              accepted: v.accepted,
              outageRuns: v.outageRuns,
            })),
          }
        : null,
    },
    null,
    2,
  )}\n`,
);
console.log(`wrote ${outFile}`);
