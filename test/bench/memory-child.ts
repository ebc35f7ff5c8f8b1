/**
 * Child process of the memory benchmark: drain the queued database given on the command line
 * with `runOnce()` against the server given, then print peak RSS as JSON. Run through tsx:
 *   node --import tsx/loader memory-child.ts <db file> <server url> <token> <expected count>
 */
import { openEngine } from './fixtures.js';

const [file, baseUrl, token, expected] = process.argv.slice(2);
if (!file || !baseUrl || !token || !expected)
  throw new Error('usage: memory-child <file> <url> <token> <count>');

const { engine, close } = await openEngine(file, { network: { baseUrl, token }, batch: { maxCount: 100 } });
const rssBeforeKiB = Math.round(process.memoryUsage.rss() / 1024);
const maxRssBeforeKiB = process.resourceUsage().maxRSS;
const start = process.hrtime.bigint();
const report = await engine.runOnce();
const ms = Number(process.hrtime.bigint() - start) / 1e6;
await close();
if (report.outcome !== 'ok' || report.counts.pushed !== Number(expected)) {
  throw new Error(`memory drain: ${report.outcome}, pushed ${report.counts.pushed} of ${expected}`);
}
process.stdout.write(
  `${JSON.stringify({
    maxRssKiB: process.resourceUsage().maxRSS,
    maxRssBeforeKiB,
    rssBeforeKiB,
    heapUsedKiB: Math.round(process.memoryUsage().heapUsed / 1024),
    ms,
  })}\n`,
);
