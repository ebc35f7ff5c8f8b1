/**
 * Shared helpers of the benchmarks (`npm run bench`): timing, medians, interleaving, temp dirs,
 * the machine description and the result table. Plain Node, no test framework.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const root = fileURLToPath(new URL('../..', import.meta.url));

/** Milliseconds elapsed since `start` (a `process.hrtime.bigint()` reading). */
export function msSince(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e6;
}

/** Time one async call, in ms. */
export async function timeIt(fn: () => Promise<unknown> | unknown): Promise<number> {
  const start = process.hrtime.bigint();
  await fn();
  return msSince(start);
}

export interface Summary {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly samples: readonly number[];
}

export function summarize(samples: readonly number[]): Summary {
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { median, min: sorted[0]!, max: sorted[sorted.length - 1]!, samples };
}

/**
 * The median of the per-run ratios `a[i] / b[i]`: run i of both programs ran back to back, so a
 * burst of load on this shared machine hits both, and their ratio is steadier than a ratio of
 * medians taken at different moments.
 */
export function pairedRatio(a: Summary, b: Summary): number {
  const ratios = a.samples.map((value, i) => value / b.samples[i]!);
  return summarize(ratios).median;
}

/**
 * Run the programs interleaved: one discarded warm-up round (JIT, page cache), then `runs` rounds of
 * A, B, A, B… Each program returns its figure for one run. On a shared, noisy machine a burst of
 * load then hits both programs alike, so their ratio stays meaningful.
 */
export async function interleave<K extends string>(
  programs: Readonly<Record<K, () => Promise<number>>>,
  runs: number,
  options: { readonly warmup?: boolean; readonly log?: (line: string) => void } = {},
): Promise<Record<K, Summary>> {
  const names = Object.keys(programs) as K[];
  if (options.warmup ?? true) for (const name of names) await programs[name]();
  const samples = Object.fromEntries(names.map((name) => [name, [] as number[]])) as Record<K, number[]>;
  for (let run = 0; run < runs; run++) {
    // Alternate which program goes first, so neither always runs right after the other's cleanup.
    const order = run % 2 === 0 ? names : [...names].reverse();
    for (const name of order) {
      const value = await programs[name]();
      samples[name].push(value);
      options.log?.(`  ${name} run ${run + 1}/${runs}: ${format(value)}`);
    }
  }
  return Object.fromEntries(names.map((name) => [name, summarize(samples[name])])) as Record<K, Summary>;
}

/** A temporary directory under the OS temp dir, removed by `remove()`. */
export function tempDir(prefix = 'sync-core-bench-'): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export function format(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  const abs = Math.abs(value);
  if (abs >= 100_000) return Math.round(value).toLocaleString('en-US');
  if (abs >= 100) return value.toFixed(0);
  if (abs >= 10) return value.toFixed(1);
  if (abs >= 1) return value.toFixed(2);
  return value.toFixed(3);
}

/** One line of the result table. */
export interface BenchRow {
  readonly name: string;
  readonly unit: string;
  readonly summary: Summary;
  /** sync-core relative to its baseline, as `ratioNote` explains; undefined when there is none. */
  readonly ratio?: number;
  readonly ratioNote?: string;
  /** e.g. `ratio ≥ 0.7` or `< 1 ms`; undefined when the figure is informational. */
  readonly target?: string;
  readonly pass?: boolean;
  readonly notes?: string;
}

export function printTable(rows: readonly BenchRow[]): string {
  const header = ['name', 'median', 'min–max', 'unit', 'ratio', 'target', 'result'];
  const lines = rows.map((row) => [
    row.name,
    format(row.summary.median),
    `${format(row.summary.min)}–${format(row.summary.max)}`,
    row.unit,
    row.ratio === undefined ? '' : `${row.ratio.toFixed(2)}x`,
    row.target ?? '',
    row.pass === undefined ? 'info' : row.pass ? 'PASS' : 'FAIL',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const render = (cells: readonly string[]) =>
    `| ${cells.map((cell, i) => (i === 1 || i === 2 ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))).join(' | ')} |`;
  const out = [
    render(header),
    `|${widths.map((w, i) => (i === 1 || i === 2 ? `${'-'.repeat(w + 1)}:` : '-'.repeat(w + 2))).join('|')}|`,
    ...lines.map(render),
  ];
  return out.join('\n');
}

/** What the results were measured on, read at run time. */
export function machine() {
  let cpuModel = cpus()[0]?.model ?? 'unknown';
  try {
    const info = readFileSync('/proc/cpuinfo', 'utf8');
    cpuModel = /^model name\s*:\s*(.+)$/m.exec(info)?.[1]?.trim() ?? cpuModel;
  } catch {
    // Not Linux: os.cpus() is the best we have.
  }
  let nproc = cpus().length;
  try {
    nproc = Number(execFileSync('nproc', { encoding: 'utf8' }).trim());
  } catch {
    // Keep os.cpus().length.
  }
  let loadavg: string | undefined;
  try {
    loadavg = readFileSync('/proc/loadavg', 'utf8').trim();
  } catch {
    loadavg = undefined;
  }
  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['describe', '--always', '--dirty'], { cwd: root, encoding: 'utf8' }).trim();
  } catch {
    // Not a git checkout.
  }
  return {
    commit,
    cpuModel,
    nproc,
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    totalMemMiB: Math.round(totalmem() / 1048576),
    tmpdir: tmpdir(),
    loadavgAtStart: loadavg,
  };
}

const tsxLoader = pathToFileURL(join(root, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;

/**
 * Run a TypeScript file in a child Node process through tsx (as test/docs/readme.test.ts does) and
 * resolve with its stdout. Asynchronous, so servers in this process keep answering meanwhile.
 */
export function runTsChild(
  file: string,
  args: readonly string[],
  nodeArgs: readonly string[] = [],
  options: { readonly env?: Record<string, string>; readonly onStderrLine?: (line: string) => void } = {},
) {
  return new Promise<string>((resolve, reject) => {
    const child = spawn(process.execPath, [...nodeArgs, '--import', tsxLoader, file, ...args], {
      cwd: root,
      env: { ...process.env, TSX_TSCONFIG_PATH: join(root, 'test/bench/tsconfig.json'), ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    let partial = '';
    child.stderr.on('data', (chunk: Buffer) => {
      const text = chunk.toString();
      stderr += text;
      if (options.onStderrLine) {
        const lines = (partial + text).split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines) options.onStderrLine(line);
      }
    });
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve(stdout);
      else reject(new Error(`${file} exited with ${code}:\n${stderr}`));
    });
  });
}
