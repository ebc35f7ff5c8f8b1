/**
 * Benchmark 4, memory: peak RSS (`VmHWM` of /proc/self/status on Linux; see memory-child.ts for why
 * not `process.resourceUsage().maxRSS`) of a child process that opens an
 * engine on a queued backlog and drains it with one `runOnce()` (protocol mode, batches of 100).
 * The reference server runs in this process, so only the client is measured. The backlogs are
 * built with the raw prepared INSERT (`rawQueueTemplate`: the rows the engine would store), which
 * makes the 1M one take seconds instead of minutes. DESIGN.md invariant 7
 * says a run holds a few batches whatever the backlog: peak RSS must stay roughly flat.
 */

import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { copyDb, rawQueueTemplate } from './fixtures.js';
import { type BenchRow, interleave, pairedRatio, runTsChild, tempDir } from './lib.js';
import { startSinkServer } from './sink-server.js';

const child = fileURLToPath(new URL('./memory-child.ts', import.meta.url));

interface ChildResult {
  maxRssKiB: number;
  source: 'VmHWM' | 'maxRSS';
  getrusageMaxRssKiB: number;
  maxRssBeforeKiB: number;
  rssBeforeKiB: number;
  heapUsedKiB: number;
  ms: number;
}

function drainInChild(template: string, count: number, extra: ChildResult[]): () => Promise<number> {
  return async () => {
    const server = await startSinkServer();
    const { dir, remove } = tempDir();
    try {
      const file = join(dir, 'q.db');
      copyDb(template, file);
      const out = await runTsChild(child, [file, server.url, 'sink-token', String(count)]);
      const result = JSON.parse(out.trim().split('\n').pop()!) as ChildResult;
      if (server.received() !== count || server.duplicates() !== 0) {
        throw new Error(
          `memory drain: the server received ${server.received()} of ${count} mutations, ${server.duplicates()} twice`,
        );
      }
      extra.push(result);
      return result.maxRssKiB / 1024;
    } finally {
      remove();
      await server.close();
    }
  };
}

const label = (count: number) => (count >= 1_000_000 ? `${count / 1_000_000}M` : `${count / 1000}k`);

export async function benchMemory(options: {
  runs: number;
  log: (line: string) => void;
}): Promise<BenchRow[]> {
  const sizes = [10_000, 100_000, 1_000_000];
  options.log(`memory: building queued databases (${sizes.map(label).join(', ')})`);
  const templates = new Map<number, string>();
  for (const size of sizes) {
    const built = process.hrtime.bigint();
    templates.set(size, await rawQueueTemplate(size));
    options.log(
      `  ${label(size)} backlog built in ${(Number(process.hrtime.bigint() - built) / 1e9).toFixed(1)} s`,
    );
  }
  const details = new Map<number, ChildResult[]>(sizes.map((size) => [size, []]));
  const programs = Object.fromEntries(
    sizes.map((size) => [label(size), drainInChild(templates.get(size)!, size, details.get(size)!)]),
  );
  // A fresh process per run: no warm-up to discard.
  const result = await interleave(programs, options.runs, { warmup: false, log: options.log });
  const base = result[label(sizes[0]!)]!;
  return sizes.map((size, i) => {
    const summary = result[label(size)]!;
    const runs = details.get(size)!;
    const beforeMiB = runs.map((r) => r.rssBeforeKiB / 1024).sort((a, b) => a - b)[runs.length >> 1]!;
    const drainMs = runs.map((r) => r.ms).sort((a, b) => a - b)[runs.length >> 1]!;
    const ratio = i === 0 ? 1 : pairedRatio(summary, base);
    return {
      name: `peak RSS drain ${label(size)}`,
      unit: 'MiB',
      summary,
      ...(i === 0
        ? {}
        : {
            ratio,
            ratioNote: `median over runs of peak RSS ÷ peak RSS of the ${label(sizes[0]!)} drain of the same round`,
            target: 'ratio ≤ 1.25',
            pass: ratio <= 1.25,
          }),
      notes: `child process, ${runs[0]?.source ?? 'VmHWM'}; RSS after open() ${beforeMiB.toFixed(0)} MiB; drain took ${(drainMs / 1000).toFixed(1)} s (median)`,
    };
  });
}
