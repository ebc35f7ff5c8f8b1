/**
 * The sync-core reference server: a small real HTTP server (node:http + better-sqlite3) that
 * implements sync protocol v1 and a REST-resource mode, with fault injection. A development and
 * test tool — dev-only auth, no TLS — used by the integration and crash tests, the CLI demo and the
 * benchmarks over loopback. See README.md in this folder.
 *
 * @packageDocumentation
 */

export type {
  FaultController,
  FaultOptions,
  FaultTiming,
  MalformKind,
  PartialFaultOptions,
  PendingFaults,
  RejectableMutation,
  ScriptedResponse,
} from './faults.js';
export { decodeCursor, encodeCursor } from './pull.js';
export { startServer } from './start-server.js';
export type {
  AppliedMutation,
  AppliedOp,
  IssuedToken,
  JsonObject,
  PullChange,
  PullResponse,
  PushMutation,
  PushRequest,
  PushResponse,
  PushResult,
  ReferenceServer,
  ReferenceServerOptions,
  Scope,
  ServerStats,
  StoredRecord,
} from './types.js';
