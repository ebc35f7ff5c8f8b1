/**
 * A {@link NetworkAdapter} over a {@link ModelServer} that injects faults on a schedule: the
 * network of FAULTS.md (offline, resets before and after the server committed, timeouts after
 * commit, error statuses with Retry-After, partial batches, malformed 200s, 401 until refresh),
 * deterministically — no timers, no randomness but an injected {@link RandomSource}.
 *
 * @packageDocumentation
 */

import type { RandomSource } from '../contracts/clock.js';
import type {
  NetworkAdapter,
  PullRequest,
  PullResponse,
  PushRequest,
  PushResponse,
  TransportFailure,
} from '../contracts/network-adapter.js';
import type { Scope } from '../contracts/records.js';
import { ConfigError } from '../errors.js';
import {
  checkFault,
  type Fault,
  failureOfFault,
  failureOfStatus,
  faultReachesServer,
  type PartialItemFault,
} from './fault.js';
import type { ModelServer } from './model-server.js';
import { createSeededRandom } from './seeded-random.js';

/**
 * When faults happen: an array whose i-th element is the fault of the (i + 1)-th call (`null` or
 * `undefined`: none; calls past the end: none), or a function of the request and its 1-based call
 * number. Push and pull calls are numbered separately.
 *
 * @example
 * ```ts
 * import type { FaultSchedule, Fault } from 'sync-core/testing';
 * import type { PushRequest } from 'sync-core';
 * const everyThird: FaultSchedule<PushRequest> = (_request, call) =>
 *   call % 3 === 0 ? { kind: 'reset-after' } : undefined;
 * const firstTwo: FaultSchedule<PushRequest> = [{ kind: 'offline' }, null, { kind: 'malformed' }];
 * ```
 */
export type FaultSchedule<R> =
  | readonly (Fault | null | undefined)[]
  | ((request: R, callNumber: number) => Fault | null | undefined);

/**
 * Options of {@link createFaultyNetwork}. All optional.
 *
 * @example
 * ```ts
 * import { createFakeClock, createFaultyNetwork, createModelServer, createSeededRandom, type FaultyNetworkOptions } from 'sync-core/testing';
 * const clock = createFakeClock();
 * const options: FaultyNetworkOptions = {
 *   schedule: (_request, call) => (call === 2 ? { kind: 'reset-after' } : undefined),
 *   refresh: (_scope, n) => n === 1,
 *   random: createSeededRandom(7),
 *   clock,
 *   latencyMs: 250,
 * };
 * const network = createFaultyNetwork(createModelServer(), options);
 * ```
 */
export interface FaultyNetworkOptions {
  /** Faults of push calls, after those queued with {@link FaultQueue.next}. @default none */
  readonly schedule?: FaultSchedule<PushRequest>;
  /** Faults of pull calls, after those queued with {@link FaultQueue.nextPull}. @default none */
  readonly pullSchedule?: FaultSchedule<PullRequest>;
  /**
   * Whether the n-th call of `refreshCredentials` succeeds. A successful refresh ends an
   * `unauthorized-until-refresh` fault. @default every refresh succeeds
   */
  readonly refresh?: (scope: Scope, refreshNumber: number) => boolean;
  /**
   * Leave `refreshCredentials` out of the adapter, as for an app that cannot refresh: a 401 then
   * pauses sync at once. @default true
   */
  readonly canRefresh?: boolean;
  /** Picks the items of a `partial` fault that names none. @default createSeededRandom(1) */
  readonly random?: RandomSource;
  /**
   * A clock to advance by {@link FaultyNetworkOptions.latencyMs} while each request is "on the
   * wire", after the server processed it: with a fake clock and fake timers, a run's deadline can
   * fire mid-request, and the client then gets `aborted` although the server may have applied.
   */
  readonly clock?: { advance(ms: number): void };
  /** Milliseconds each request takes on {@link FaultyNetworkOptions.clock}. @default 0 */
  readonly latencyMs?: number | ((callNumber: number) => number);
}

/**
 * The queue of faults for the next calls, taken before the schedule.
 *
 * @example
 * ```ts
 * import { createFaultyNetwork, createModelServer } from 'sync-core/testing';
 * const network = createFaultyNetwork(createModelServer());
 * network.faults.next({ kind: 'offline' }, { kind: 'malformed' }); // the next two pushes
 * network.faults.nextPull({ kind: 'status', status: 503 }); // the next pull
 * network.faults.size; // 3
 * ```
 */
export interface FaultQueue {
  /** Queue faults for the next push calls, one per call, in order. */
  next(...faults: Fault[]): void;
  /** Queue faults for the next pull calls, one per call, in order. */
  nextPull(...faults: Fault[]): void;
  /** Drop every queued fault (the schedules stay). */
  clear(): void;
  /** How many faults are queued (push and pull). */
  readonly size: number;
}

/**
 * One request the network received, as {@link FaultyNetwork.requests} lists it.
 *
 * @example
 * ```ts
 * import type { RecordedRequest } from 'sync-core/testing';
 * const pushes: RecordedRequest[] = network.requests().filter((r) => r.type === 'push');
 * const committedButFailed = pushes.filter((r) => r.reachedServer && r.response.type === 'failure');
 * ```
 */
export type RecordedRequest =
  | {
      readonly type: 'push';
      /** 1-based number among push calls. */
      readonly callNumber: number;
      readonly request: PushRequest;
      /** The fault that shaped the answer (an ongoing 401 shows as `unauthorized-until-refresh`). */
      readonly fault: Fault | undefined;
      /** Whether the model server processed it (for a push: committed its effects). */
      readonly reachedServer: boolean;
      readonly response: PushResponse;
    }
  | {
      readonly type: 'pull';
      readonly callNumber: number;
      readonly request: PullRequest;
      readonly fault: Fault | undefined;
      readonly reachedServer: boolean;
      readonly response: PullResponse;
    };

/**
 * The fault-injecting network adapter {@link createFaultyNetwork} returns: a complete
 * {@link NetworkAdapter} (push, pull, refreshCredentials) plus controls and a record of requests.
 *
 * @example
 * ```ts
 * import { createFaultyNetwork, createModelServer } from 'sync-core/testing';
 * const server = createModelServer();
 * const network = createFaultyNetwork(server);
 * network.faults.next({ kind: 'timeout-after-commit' }); // the next push is applied, the client times out
 * // … engine.runOnce() twice: the resend is answered `duplicate`, server.log() has one entry
 * network.requests().length; // 2
 * ```
 */
export interface FaultyNetwork extends NetworkAdapter {
  push(request: PushRequest): Promise<PushResponse>;
  pull(request: PullRequest): Promise<PullResponse>;
  /** Present unless `canRefresh: false`. Counts calls; see {@link FaultyNetworkOptions.refresh}. */
  refreshCredentials?(scope: Scope, signal: AbortSignal): Promise<boolean>;
  /** The server behind the network. */
  readonly server: ModelServer;
  /** Faults for the next calls. */
  readonly faults: FaultQueue;
  /** Every request received so far, in order (a copy of the list). */
  requests(): RecordedRequest[];
  /** How many times `refreshCredentials` was called. */
  refreshes(): number;
  /** Whether requests are answered 401 until the next successful refresh. */
  readonly isUnauthorized: boolean;
  /** Whether the device is offline ({@link FaultyNetwork.setOnline}). */
  readonly isOnline: boolean;
  /** Take the device offline (`false`: every call fails `offline`) or back online. */
  setOnline(online: boolean): void;
}

const ABORTED: TransportFailure = Object.freeze({
  class: 'aborted',
  code: 'aborted',
  message: 'the request was aborted',
});

const OFFLINE: Fault = Object.freeze({ kind: 'offline' });
const UNAUTHORIZED: Fault = Object.freeze({ kind: 'unauthorized-until-refresh' });

function checkSchedule<R>(name: string, schedule: FaultSchedule<R> | undefined): void {
  if (schedule === undefined || typeof schedule === 'function') return;
  if (!Array.isArray(schedule)) {
    throw new ConfigError(`createFaultyNetwork(options).${name}: expected an array of faults or a function`);
  }
  schedule.forEach((fault, i) => {
    if (fault !== null && fault !== undefined)
      checkFault(fault, `createFaultyNetwork(options).${name}[${i}]`);
  });
}

function fromSchedule<R>(
  schedule: FaultSchedule<R> | undefined,
  request: R,
  callNumber: number,
  name: string,
) {
  if (schedule === undefined) return undefined;
  const fault = typeof schedule === 'function' ? schedule(request, callNumber) : schedule[callNumber - 1];
  return fault === null || fault === undefined ? undefined : checkFault(fault, `${name}(call ${callNumber})`);
}

/**
 * Create a fault-injecting network adapter in front of a model server.
 *
 * Each call: an aborted `signal` answers `aborted` at once (nothing sent); otherwise the call takes
 * its fault (queued first, then the schedule), the server processes the request if the fault lets
 * it through, the optional clock advances by the latency, and the client gets its answer — or
 * `aborted` when the signal fired meanwhile (the server may have applied: the engine must resend
 * with the same key). `push` and `pull` never reject.
 *
 * @param server - The model server, from {@link createModelServer}.
 * @param options - See {@link FaultyNetworkOptions}.
 * @throws ConfigError for an invalid option or a malformed fault in an array schedule.
 *
 * @example
 * ```ts
 * import { createFakeClock, createFaultyNetwork, createModelServer } from 'sync-core/testing';
 * const clock = createFakeClock();
 * const network = createFaultyNetwork(createModelServer(), {
 *   schedule: [{ kind: 'offline' }, { kind: 'reset-after' }, { kind: 'status', status: 429, retryAfterMs: 60_000 }],
 *   clock,
 *   latencyMs: 200,
 * });
 * ```
 */
export function createFaultyNetwork(server: ModelServer, options: FaultyNetworkOptions = {}): FaultyNetwork {
  if (typeof server?.handlePush !== 'function' || typeof server.handlePull !== 'function') {
    throw new ConfigError('createFaultyNetwork(server): expected a server from createModelServer()');
  }
  if (typeof options !== 'object' || options === null) {
    throw new ConfigError(`createFaultyNetwork(options): expected an object, got ${String(options)}`);
  }
  checkSchedule('schedule', options.schedule);
  checkSchedule('pullSchedule', options.pullSchedule);
  if (options.refresh !== undefined && typeof options.refresh !== 'function') {
    throw new ConfigError('createFaultyNetwork(options).refresh: expected a function (scope, n) => boolean');
  }
  if (options.random !== undefined && typeof options.random !== 'function') {
    throw new ConfigError('createFaultyNetwork(options).random: expected a function returning [0, 1)');
  }
  if (options.clock !== undefined && typeof options.clock?.advance !== 'function') {
    throw new ConfigError('createFaultyNetwork(options).clock: expected a clock with advance(ms)');
  }
  const latency = options.latencyMs ?? 0;
  if (typeof latency !== 'function' && !(Number.isFinite(latency) && latency >= 0)) {
    throw new ConfigError(
      `createFaultyNetwork(options).latencyMs: expected a number ≥ 0, got ${String(latency)}`,
    );
  }
  const random = options.random ?? createSeededRandom(1);
  const pushQueue: Fault[] = [];
  const pullQueue: Fault[] = [];
  const recorded: RecordedRequest[] = [];
  let pushCalls = 0;
  let pullCalls = 0;
  let refreshCount = 0;
  let unauthorized = false;
  let online = true;

  const wait = (callNumber: number): void => {
    if (options.clock === undefined) return;
    const ms = typeof latency === 'function' ? latency(callNumber) : latency;
    if (ms > 0) options.clock.advance(ms);
  };

  /** The fault of this call, or the ongoing state (offline device, 401 until refresh). */
  const faultOf = <R>(
    queue: Fault[],
    schedule: FaultSchedule<R> | undefined,
    request: R,
    n: number,
    name: string,
  ): Fault | undefined => {
    // An ongoing state answers without taking a fault: queued faults wait for a usable network.
    if (!online) return OFFLINE;
    if (unauthorized) return UNAUTHORIZED;
    const fault = queue.shift() ?? fromSchedule(schedule, request, n, name);
    if (fault?.kind === 'unauthorized-until-refresh') unauthorized = true;
    return fault;
  };

  const partialFaults = (fault: Extract<Fault, { kind: 'partial' }>, request: PushRequest) => {
    const retryIds = new Set(fault.retryIds ?? []);
    const rejectIds = new Set(fault.rejectIds ?? []);
    const named = fault.retryIds !== undefined || fault.rejectIds !== undefined;
    request.mutations.forEach((m, i) => {
      if (retryIds.has(m.id) || rejectIds.has(m.id)) return;
      let item: PartialItemFault = 'apply';
      if (fault.pattern !== undefined) item = fault.pattern[i % fault.pattern.length]!;
      else if (!named) {
        const r = random();
        item = r < 1 / 3 ? 'retry' : r < 1 / 2 ? 'reject' : 'apply';
      }
      if (item === 'retry') retryIds.add(m.id);
      else if (item === 'reject') rejectIds.add(m.id);
    });
    return {
      retryIds,
      rejectIds,
      ...(fault.retryAfterMs === undefined ? {} : { retryAfterMs: fault.retryAfterMs }),
    };
  };

  const network: FaultyNetwork = {
    server,
    faults: {
      next(...faults) {
        for (const [i, f] of faults.entries()) checkFault(f, `faults.next(…)[${i}]`);
        pushQueue.push(...faults);
      },
      nextPull(...faults) {
        for (const [i, f] of faults.entries()) checkFault(f, `faults.nextPull(…)[${i}]`);
        pullQueue.push(...faults);
      },
      clear() {
        pushQueue.length = 0;
        pullQueue.length = 0;
      },
      get size() {
        return pushQueue.length + pullQueue.length;
      },
    },

    async push(request) {
      const callNumber = ++pushCalls;
      const record = (fault: Fault | undefined, reachedServer: boolean, response: PushResponse) => {
        recorded.push({ type: 'push', callNumber, request, fault, reachedServer, response });
        return response;
      };
      if (request.signal?.aborted) return record(undefined, false, { type: 'failure', failure: ABORTED });
      const fault = faultOf(pushQueue, options.schedule, request, callNumber, 'schedule');
      const reachedServer = faultReachesServer(fault);
      const served = reachedServer
        ? server.handlePush(request, fault?.kind === 'partial' ? partialFaults(fault, request) : {})
        : undefined;
      wait(callNumber);
      // The client gave up while the request was on the wire: it cannot know what the server did.
      if (request.signal?.aborted) return record(fault, reachedServer, { type: 'failure', failure: ABORTED });
      if (fault === undefined || fault.kind === 'partial') return record(fault, true, served!);
      const failure =
        fault.kind === 'status'
          ? failureOfStatus(fault.status, fault.retryAfterMs)
          : failureOfFault(fault.kind);
      return record(fault, reachedServer, { type: 'failure', failure });
    },

    async pull(request) {
      const callNumber = ++pullCalls;
      const record = (fault: Fault | undefined, reachedServer: boolean, response: PullResponse) => {
        recorded.push({ type: 'pull', callNumber, request, fault, reachedServer, response });
        return response;
      };
      if (request.signal?.aborted) return record(undefined, false, { type: 'failure', failure: ABORTED });
      const fault = faultOf(pullQueue, options.pullSchedule, request, callNumber, 'pullSchedule');
      const reachedServer = faultReachesServer(fault);
      const served = reachedServer ? server.handlePull(request) : undefined;
      wait(callNumber);
      if (request.signal?.aborted) return record(fault, reachedServer, { type: 'failure', failure: ABORTED });
      if (fault === undefined || fault.kind === 'partial') return record(fault, true, served!);
      const failure =
        fault.kind === 'status'
          ? failureOfStatus(fault.status, fault.retryAfterMs)
          : failureOfFault(fault.kind);
      return record(fault, reachedServer, { type: 'failure', failure });
    },

    requests: () => [...recorded],
    refreshes: () => refreshCount,
    get isUnauthorized() {
      return unauthorized;
    },
    get isOnline() {
      return online;
    },
    setOnline(value) {
      online = value === true;
    },
  };

  if (options.canRefresh !== false) {
    network.refreshCredentials = async (scope, signal) => {
      const n = ++refreshCount;
      if (signal?.aborted) return false;
      const ok = options.refresh === undefined ? true : options.refresh(scope, n) === true;
      if (ok) unauthorized = false;
      return ok;
    };
  }
  return network;
}
