/**
 * `sync-core/testing`: the kit for app teams' own property tests and for sync-core's proof
 * suites — a fake clock and timers, a seeded random source, an in-memory protocol v1 server model,
 * a fault-injecting network in front of it, fast-check arbitraries and the delivery checker
 * (DESIGN.md section 7 in Jepsen's terms).
 *
 * Everything here is deterministic: no timers, no `Date.now()`, no `Math.random()`. fast-check is
 * an optional peer dependency: the arbitraries take the fast-check module as their first argument,
 * so this entry loads without it. docs/testing.md walks through a complete property test.
 *
 * @example
 * ```ts
 * import { checkDelivery, createFakeClock, createFaultyNetwork, createModelServer } from 'sync-core/testing';
 * const clock = createFakeClock();
 * const server = createModelServer();
 * const network = createFaultyNetwork(server, { schedule: [{ kind: 'reset-after' }] });
 * // createSyncEngine({ storage, entities, network, clock }) … enqueue … runOnce() until drained …
 * // checkDelivery({ enqueued, applied: server.log(), queued: await engine.queue.list() }).ok === true
 * ```
 *
 * @packageDocumentation
 */

export type {
  ArbClockJumpOptions,
  ArbFaultOptions,
  ArbFaultScheduleOptions,
  ArbMutationInputOptions,
  ArbScopeOptions,
  FastCheckModule,
} from './arbitraries.js';
export { arbClockJump, arbFault, arbFaultSchedule, arbMutationInput, arbScope } from './arbitraries.js';
export type {
  AcknowledgedMutation,
  AppliedMutationRecord,
  DeliveryInput,
  DeliveryResult,
  DuplicatedDelivery,
  OutOfOrderRecord,
} from './check-delivery.js';
export { assertDelivery, checkDelivery, DeliveryCheckError, describeDelivery } from './check-delivery.js';
export type { FakeClock } from './fake-clock.js';
export { createFakeClock, FAKE_CLOCK_START } from './fake-clock.js';
export type { FakeTimers, PendingTimer } from './fake-timers.js';
export { createFakeTimers } from './fake-timers.js';
export type { Fault, FaultKind, PartialItemFault } from './fault.js';
export { checkFault, FAULT_KINDS, failureOfStatus, faultReachesServer } from './fault.js';
export type {
  FaultQueue,
  FaultSchedule,
  FaultyNetwork,
  FaultyNetworkOptions,
  RecordedRequest,
} from './faulty-network.js';
export { createFaultyNetwork } from './faulty-network.js';
export type {
  AppliedEntry,
  ModelOp,
  ModelPullRequest,
  ModelPushMutation,
  ModelPushRequest,
  ModelRecord,
  ModelServer,
  ModelServerOptions,
  ModelServerStats,
  PushItemFaults,
  RejectableMutation,
} from './model-server.js';
export { createModelServer } from './model-server.js';
export type { RunUntilIdleOptions, RunUntilIdleResult } from './run-until-idle.js';
export { runUntilIdle } from './run-until-idle.js';
export { createSeededRandom } from './seeded-random.js';
