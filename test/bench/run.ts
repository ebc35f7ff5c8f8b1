/**
 * `npm run bench`: sync-core against raw baselines, on this machine. Not part of `npm test`.
 *
 *   npm run bench                     default sizes (a few minutes)
 *   npm run bench -- --full           drain 100,000 and the 1M-backlog memory run
 *   npm run bench -- --only=enqueue   one group: enqueue, drain, startup, memory (comma-separated)
 *   npm run bench -- --runs=7         runs per figure (default 5, at least 5 recommended)
 *
 * Prints one table and writes bench-results/bench.json. docs/performance.md explains the figures.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { benchDrain } from './drain.js';
import { benchEnqueue } from './enqueue.js';
import { removeTemplates } from './fixtures.js';
import { type BenchRow, machine, msSince, printTable, root } from './lib.js';
import { benchMemory } from './memory.js';
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

const groups: Record<string, () => Promise<BenchRow[]>> = {
  enqueue: () => benchEnqueue({ runs, log }),
  drain: () => benchDrain({ runs, log, full }),
  startup: () => benchStartup({ runs, log }),
  memory: () => benchMemory({ runs, log, full }),
};

const started = process.hrtime.bigint();
const info = machine();
console.error(
  `sync-core bench — ${info.cpuModel}, ${info.nproc} CPUs, Node ${info.node}, ${full ? 'full' : 'default'} mode, ${runs} runs per figure`,
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
console.log(`total ${(totalMs / 1000).toFixed(0)} s; ratio = sync-core ÷ raw (see docs/performance.md)`);

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
    },
    null,
    2,
  )}\n`,
);
console.log(`wrote ${outFile}`);
