/**
 * Benchmark 6, fleet: 10,000 simulated devices coming back after a 1-hour server outage, against a
 * server that accepts a fixed number of requests per second. A discrete-event simulation on the
 * fake clock of `sync-core/testing` (no real time passes): every decision a device makes is taken
 * by the library's own functions, the ones the engine calls —
 *
 * - `connectivityDelay(random)`: when each device starts its run as the fleet comes online;
 * - `decideNextRun(…)` (the engine's scheduler rule, DESIGN.md section 4): after an `offline` run
 *   it applies `runBackoffDelay(policy, consecutiveOfflineRuns, random)`; after a `throttled` run
 *   it waits for the queue's next due time but at least one first backoff (`backoffDelay(policy,
 *   1, random)`); after an `ok` run, the next due mutation;
 * - `nextAttemptDelay(policy, { attempt, random, retryAfterMs })`: each rejected mutation's
 *   next attempt, as `outcomes.ts` records it (jittered backoff, never before Retry-After), with
 *   one jitter draw per rejected batch, as `SyncRun` decides a batch.
 *
 * The device's run itself is modelled as the engine runs it (sync-run.ts): it claims every due
 * mutation (1–20 per device here, so one batch of ≤ 100, one request); connection refused → the
 * run ends `offline` (claims released, no attempt counted, `offline_runs` + 1); 429 → every
 * mutation of the batch gets its `nextAttemptDelay` (one draw) and the run ends `throttled` (its
 * `nextDueAt` never before Retry-After); 2xx → the mutations are confirmed. A 503 with or without
 * Retry-After takes exactly the same path as a 429 (both `retryable`, both "slow down").
 */
import {
  type BackoffPolicy,
  connectivityDelay,
  DEFAULT_PERIODIC_MS,
  decideNextRun,
  type JitterMode,
  nextAttemptDelay,
  type RunOutcome,
  resolveBackoffPolicy,
} from 'sync-core';
import { createFakeClock, createSeededRandom } from 'sync-core/testing';
import { type Summary, summarize } from './lib.js';

/**
 * - `server-down`: the devices' network works but the server refuses connections for `outageMs`;
 *   every device was syncing when it went down (all start within the connectivity jitter, the
 *   worst case for a herd) and keeps trying with the run-level offline backoff. Nothing tells
 *   them the server is back: each finds out at its next backoff point.
 * - `back-online`: the devices themselves were offline for `outageMs` (a regional network outage,
 *   or the server's DNS/load balancer was unreachable and the OS reported no connectivity), so no
 *   run was attempted; at the recovery every device gets the connectivity event and runs after
 *   `connectivityDelay` (0–10 s), as `engine.#onConnectivity` does. The herd arrives at once.
 */
export type FleetScenario = 'server-down' | 'back-online';

export interface FleetOptions {
  readonly scenario: FleetScenario;
  readonly devices: number;
  /** How long the server is unreachable (connections refused), from the start. */
  readonly outageMs: number;
  /** Requests the server accepts per second (fixed 1-second windows); the rest get 429. */
  readonly capacityPerSecond: number;
  readonly jitter: JitterMode;
  /** `Retry-After` of every 429, in seconds; undefined: none. */
  readonly retryAfterS: number | undefined;
  /** Mutations queued per device: uniform over 1..maxMutations. */
  readonly maxMutations: number;
  readonly seed: number;
  /** The engine's `connectivityDelayMaxMs`: the reconnection window. @default 10_000 */
  readonly connectivityDelayMaxMs?: number;
}

export interface FleetResult {
  /** Most requests arriving within one second after the server is back (accepted + rejected). */
  readonly peakRequestsPerS: number;
  /** From the server's recovery until the last device has every mutation confirmed, in s. */
  readonly drainS: number;
  /** Half of the devices were drained this long after the recovery, in s. */
  readonly medianDeviceS: number;
  /** From the recovery until the first request reaches the server, in s. */
  readonly firstRequestS: number;
  /** Requests refused with 429 (wasted: they carried data the server had to turn away). */
  readonly rejected: number;
  /** Requests accepted (≥ devices: a device whose batch was split by per-mutation jitter sends more). */
  readonly accepted: number;
  /** Runs that hit the outage (connections refused: no HTTP request reached the server). */
  readonly outageRuns: number;
  /** Mutations confirmed (all of them, or the simulation failed). */
  readonly mutations: number;
  /** Events processed, and the simulated time span. */
  readonly events: number;
}

/** A min-heap of (time, device), one entry per device: each device has one next run. */
class EventHeap {
  readonly #time: Float64Array;
  readonly #device: Int32Array;
  #size = 0;
  constructor(capacity: number) {
    this.#time = new Float64Array(capacity);
    this.#device = new Int32Array(capacity);
  }
  get size(): number {
    return this.#size;
  }
  push(time: number, device: number): void {
    let i = this.#size++;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.#time[parent]! <= time) break;
      this.#time[i] = this.#time[parent]!;
      this.#device[i] = this.#device[parent]!;
      i = parent;
    }
    this.#time[i] = time;
    this.#device[i] = device;
  }
  peekTime(): number {
    return this.#time[0]!;
  }
  pop(): number {
    const top = this.#device[0]!;
    const n = --this.#size;
    const time = this.#time[n]!;
    const device = this.#device[n]!;
    let i = 0;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && this.#time[child + 1]! < this.#time[child]!) child++;
      if (this.#time[child]! >= time) break;
      this.#time[i] = this.#time[child]!;
      this.#device[i] = this.#device[child]!;
      i = child;
    }
    this.#time[i] = time;
    this.#device[i] = device;
    return top;
  }
}

/** Give up when the fleet is not drained after this much simulated time (a bug, not a result). */
const HORIZON_MS = 7 * 24 * 3_600_000;

export function simulateFleet(options: FleetOptions): FleetResult {
  const clock = createFakeClock();
  const random = createSeededRandom(options.seed);
  const policy: BackoffPolicy = resolveBackoffPolicy({ jitter: options.jitter });
  const retryAfterMs = options.retryAfterS === undefined ? undefined : options.retryAfterS * 1000;
  const start = clock.now();
  const recovery = start + options.outageMs;

  // Devices and their mutations, flat: device d owns mutations first[d] .. first[d] + count[d] − 1.
  const n = options.devices;
  const first = new Int32Array(n);
  const count = new Int32Array(n);
  let total = 0;
  for (let d = 0; d < n; d++) {
    first[d] = total;
    count[d] = 1 + Math.floor(random() * options.maxMutations);
    total += count[d]!;
  }
  const nextAttemptAt = new Float64Array(total).fill(start); // queued before the outage: due
  const attempts = new Int32Array(total);
  const confirmed = new Uint8Array(total);
  const remaining = Int32Array.from(count);
  const offlineRuns = new Int32Array(n);
  const drainedAt = new Float64Array(n).fill(Number.NaN);

  // Requests per 1-second window after the recovery.
  const arrivals: number[] = [];
  const acceptedIn: number[] = [];
  let accepted = 0;
  let rejected = 0;
  let outageRuns = 0;
  let events = 0;
  let drained = 0;
  let firstRequestAt = Number.POSITIVE_INFINITY;

  const heap = new EventHeap(n);
  // server-down: every device runs as the outage begins (within the connectivity jitter: the worst
  // case for a herd). back-online: every device runs after the connectivity jitter at the recovery.
  const wake = options.scenario === 'server-down' ? start : recovery;
  const window = options.connectivityDelayMaxMs ?? 10_000;
  for (let d = 0; d < n; d++) heap.push(wake + connectivityDelay(random, window), d);

  /** The earliest next attempt of device d's unconfirmed mutations (the queue's `nextDueAt`). */
  const nextDue = (d: number): number | null => {
    let due = Number.POSITIVE_INFINITY;
    for (let j = first[d]!, end = j + count[d]!; j < end; j++) {
      if (confirmed[j] === 0 && nextAttemptAt[j]! < due) due = nextAttemptAt[j]!;
    }
    return Number.isFinite(due) ? due : null;
  };

  const schedule = (d: number, outcome: RunOutcome, nextDueAt: number | null): void => {
    const request = decideNextRun({
      now: clock.now(),
      report: { outcome },
      nextDueAt,
      hasPending: true,
      consecutiveOfflineRuns: offlineRuns[d]!,
      online: true, // the device's network is fine: it is the server that is down
      periodicMs: DEFAULT_PERIODIC_MS,
      policy,
      random,
    });
    if (request === null) throw new Error('fleet: no next run while mutations are pending');
    heap.push(request.notBefore, d);
  };

  while (heap.size > 0) {
    const at = heap.peekTime();
    if (at - start > HORIZON_MS) throw new Error(`fleet: not drained after ${HORIZON_MS / 3_600_000} h`);
    if (at > clock.now()) clock.advance(at - clock.now());
    const d = heap.pop();
    events++;
    const now = clock.now();

    // The run claims every due mutation (≤ 20 here, so one batch and one request).
    const due: number[] = [];
    for (let j = first[d]!, end = j + count[d]!; j < end; j++) {
      if (confirmed[j] === 0 && nextAttemptAt[j]! <= now) due.push(j);
    }
    if (due.length === 0) {
      schedule(d, 'ok', nextDue(d));
      continue;
    }

    if (now < recovery) {
      // Connection refused: `offline`, claims released untouched, no attempt counted.
      outageRuns++;
      offlineRuns[d]!++;
      schedule(d, 'offline', nextDue(d));
      continue;
    }

    offlineRuns[d] = 0; // the engine clears `offline_runs` after any run that was not offline
    firstRequestAt = Math.min(firstRequestAt, now);
    const slot = Math.floor((now - recovery) / 1000);
    arrivals[slot] = (arrivals[slot] ?? 0) + 1;
    if ((acceptedIn[slot] ?? 0) < options.capacityPerSecond) {
      acceptedIn[slot] = (acceptedIn[slot] ?? 0) + 1;
      accepted++;
      for (const j of due) confirmed[j] = 1;
      remaining[d]! -= due.length;
      if (remaining[d] === 0) {
        drainedAt[d] = now;
        drained++;
        continue;
      }
      schedule(d, 'ok', nextDue(d));
      continue;
    }

    // 429: every mutation of the batch is retried after its backoff, never before Retry-After,
    // with one jitter draw for the whole batch (as SyncRun decides a batch's outcomes).
    rejected++;
    const draw = random();
    for (const j of due) {
      attempts[j]!++;
      nextAttemptAt[j] =
        now + nextAttemptDelay(policy, { attempt: attempts[j]!, random: () => draw, retryAfterMs });
    }
    const queueDue = nextDue(d)!;
    const notBefore = retryAfterMs === undefined ? 0 : now + retryAfterMs;
    schedule(d, 'throttled', Math.max(queueDue, notBefore));
  }

  if (drained !== n) throw new Error(`fleet: ${n - drained} devices not drained`);
  const after = Array.from(drainedAt, (t) => (t - recovery) / 1000).sort((a, b) => a - b);
  return {
    peakRequestsPerS: arrivals.reduce((max, x) => Math.max(max, x ?? 0), 0),
    drainS: after[after.length - 1]!,
    medianDeviceS: after[after.length >> 1]!,
    firstRequestS: (firstRequestAt - recovery) / 1000,
    rejected,
    accepted,
    outageRuns,
    mutations: total,
    events,
  };
}

export interface FleetVariant {
  readonly scenario: FleetScenario;
  readonly jitter: JitterMode;
  readonly retryAfterS: number | undefined;
  /** The reconnection window; undefined: the engine's default, 10 s. */
  readonly connectivityDelayMaxMs?: number;
}

export interface FleetVariantResult extends FleetVariant {
  readonly runs: readonly FleetResult[];
  readonly peak: Summary;
  readonly drain: Summary;
  readonly medianDevice: Summary;
  readonly firstRequest: Summary;
  readonly rejected: Summary;
  readonly accepted: Summary;
  readonly outageRuns: Summary;
}

export const FLEET = {
  devices: 10_000,
  outageMs: 3_600_000,
  capacityPerSecond: 500,
  maxMutations: 20,
  retryAfterS: 60,
} as const;

export function fleetVariants(): FleetVariant[] {
  const out: FleetVariant[] = [];
  for (const scenario of ['server-down', 'back-online'] as const) {
    for (const jitter of ['none', 'equal', 'full'] as const) {
      for (const retryAfterS of [undefined, FLEET.retryAfterS]) out.push({ scenario, jitter, retryAfterS });
    }
  }
  // The reconnection window sized to the fleet (devices ÷ server capacity = 20 s), and twice that.
  for (const connectivityDelayMaxMs of [20_000, 40_000]) {
    for (const jitter of ['equal', 'full'] as const) {
      out.push({ scenario: 'back-online', jitter, retryAfterS: FLEET.retryAfterS, connectivityDelayMaxMs });
    }
  }
  return out;
}

/** Every variant with `runs` seeds (the same seeds for every variant), interleaved by seed. */
export function benchFleet(options: { runs: number; log: (line: string) => void }): {
  variants: FleetVariantResult[];
  ms: number;
} {
  const started = process.hrtime.bigint();
  const variants = fleetVariants();
  const results = variants.map(() => [] as FleetResult[]);
  for (let run = 0; run < options.runs; run++) {
    variants.forEach((variant, i) => {
      const result = simulateFleet({
        scenario: variant.scenario,
        devices: FLEET.devices,
        outageMs: FLEET.outageMs,
        capacityPerSecond: FLEET.capacityPerSecond,
        maxMutations: FLEET.maxMutations,
        jitter: variant.jitter,
        retryAfterS: variant.retryAfterS,
        seed: 1000 + run,
        ...(variant.connectivityDelayMaxMs === undefined
          ? {}
          : { connectivityDelayMaxMs: variant.connectivityDelayMaxMs }),
      });
      results[i]!.push(result);
      options.log(
        `  ${fleetLabel(variant)} seed ${1000 + run}: peak ${result.peakRequestsPerS}/s, drained ${result.drainS.toFixed(0)} s after recovery, ${result.rejected} rejected, ${result.accepted} accepted`,
      );
    });
  }
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  return {
    ms,
    variants: variants.map((variant, i) => {
      const runs = results[i]!;
      const pick = (f: (r: FleetResult) => number) => summarize(runs.map(f));
      return {
        ...variant,
        runs,
        peak: pick((r) => r.peakRequestsPerS),
        drain: pick((r) => r.drainS),
        medianDevice: pick((r) => r.medianDeviceS),
        firstRequest: pick((r) => r.firstRequestS),
        rejected: pick((r) => r.rejected),
        accepted: pick((r) => r.accepted),
        outageRuns: pick((r) => r.outageRuns),
      };
    }),
  };
}

export function fleetLabel(variant: FleetVariant): string {
  const window =
    variant.connectivityDelayMaxMs === undefined ? '' : ` window ${variant.connectivityDelayMaxMs / 1000} s`;
  return `${variant.scenario.padEnd(11)}${window} jitter ${variant.jitter.padEnd(5)} ${variant.retryAfterS === undefined ? 'no Retry-After' : `Retry-After ${variant.retryAfterS} s`}`;
}

const fmt = (s: Summary, digits = 0) =>
  `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}–${s.max.toFixed(digits)})`;

/** The fleet table: median (min–max) over seeds of each figure. */
export function printFleetTable(variants: readonly FleetVariantResult[]): string {
  const header = [
    'scenario',
    'reconnect window',
    'jitter',
    'Retry-After',
    'peak req/s',
    'all drained after (s)',
    'half drained after (s)',
    'first request after (s)',
    'rejected (wasted)',
    'accepted requests',
  ];
  const lines = variants.map((v) => [
    v.scenario,
    `${(v.connectivityDelayMaxMs ?? 10_000) / 1000} s`,
    v.jitter,
    v.retryAfterS === undefined ? 'none' : `${v.retryAfterS} s`,
    fmt(v.peak),
    fmt(v.drain),
    fmt(v.medianDevice),
    fmt(v.firstRequest),
    fmt(v.rejected),
    fmt(v.accepted),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const render = (cells: readonly string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [render(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...lines.map(render)].join(
    '\n',
  );
}
