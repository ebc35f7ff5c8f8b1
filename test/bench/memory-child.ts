/**
 * Child process of the memory benchmark: drain the queued database given on the command line
 * with `runOnce()` against the server given, then print its peak RSS (VmHWM on Linux) as JSON.
 * Run through tsx:
 *   node --import tsx/loader memory-child.ts <db file> <server url> <token> <expected count>
 */
import { readFileSync } from 'node:fs';
import { openEngine } from './fixtures.js';

/**
 * This process's own peak RSS in KiB. On Linux, `VmHWM` of /proc/self/status: the high-water mark
 * of this process image's memory. Not `process.resourceUsage().maxRSS` there: getrusage's maxrss
 * survives fork + exec, so a child spawned by a parent of 500 MiB reports at least 500 MiB (the
 * bench parent builds the 1M backlog, and runs the server, before spawning this child).
 * Elsewhere, maxRSS is the best there is.
 */
function peakRssKiB(): { kib: number; source: 'VmHWM' | 'maxRSS' } {
  try {
    const match = /^VmHWM:\s+(\d+)\s+kB$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (match) return { kib: Number(match[1]), source: 'VmHWM' };
  } catch {
    // Not Linux.
  }
  return { kib: process.resourceUsage().maxRSS, source: 'maxRSS' };
}

const [file, baseUrl, token, expected] = process.argv.slice(2);
if (!file || !baseUrl || !token || !expected)
  throw new Error('usage: memory-child <file> <url> <token> <count>');

const { engine, close } = await openEngine(file, { network: { baseUrl, token }, batch: { maxCount: 100 } });
const rssBeforeKiB = Math.round(process.memoryUsage.rss() / 1024);
const maxRssBeforeKiB = peakRssKiB().kib;
const start = process.hrtime.bigint();
const report = await engine.runOnce();
const ms = Number(process.hrtime.bigint() - start) / 1e6;
await close();
if (report.outcome !== 'ok' || report.counts.pushed !== Number(expected)) {
  throw new Error(`memory drain: ${report.outcome}, pushed ${report.counts.pushed} of ${expected}`);
}
process.stdout.write(
  `${JSON.stringify({
    maxRssKiB: peakRssKiB().kib,
    source: peakRssKiB().source,
    getrusageMaxRssKiB: process.resourceUsage().maxRSS,
    maxRssBeforeKiB,
    rssBeforeKiB,
    heapUsedKiB: Math.round(process.memoryUsage().heapUsed / 1024),
    ms,
  })}\n`,
);
