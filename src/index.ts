/**
 * sync-core: offline-first background sync for mobile and desktop apps.
 *
 * The core is platform-agnostic and does no I/O of its own: storage, network and scheduling come
 * in through ports. Adapters live at `sync-core/better-sqlite3`, `sync-core/sql-js` and
 * `sync-core/fetch`.
 *
 * @packageDocumentation
 */

export type {
  BackoffBounds,
  BackoffOptions,
  BackoffPolicy,
  ClampScheduledTimeInput,
  FailureClass,
  HttpStatusClass,
  JitterMode,
  NextAttemptDelayInput,
  RetryAfterContext,
} from './backoff/index.js';
export {
  attemptCounts,
  backoffBaseDelay,
  backoffBounds,
  backoffDelay,
  clampScheduledTime,
  classifyHttpStatus,
  DEFAULT_RETRY_AFTER_CEILING_MS,
  isExhausted,
  nextAttemptDelay,
  parseRetryAfter,
  RETRY_AFTER_MAX_MS,
  resolveBackoffPolicy,
  runBackoffDelay,
} from './backoff/index.js';
export type { EntityOptions, QueueLimits } from './config.js';
export { DEFAULT_MAX_PAYLOAD_BYTES } from './config.js';
export type {
  Conflict,
  ConflictContext,
  ConflictResolution,
  ConflictStrategy,
  MergeFunction,
} from './conflict/conflict-strategy.js';
export type { AppTransaction } from './contracts/app-transaction.js';
export type { Clock, RandomSource, TimerHandle, Timers } from './contracts/clock.js';
export { defaultRandom, systemClock, systemTimers } from './contracts/clock.js';
export type {
  NetworkAdapter,
  OutgoingMutation,
  PullChange,
  PullRequest,
  PullResponse,
  PushItemResult,
  PushRequest,
  PushResponse,
  TransportFailure,
} from './contracts/network-adapter.js';
export type {
  BuiltinOp,
  JsonObject,
  JsonValue,
  Mutation,
  MutationError,
  MutationInput,
  MutationState,
  QueueStats,
  Scope,
  Version,
} from './contracts/records.js';
export type { StandardSchemaV1 } from './contracts/standard-schema.js';
export type {
  MaybePromise,
  RunResult,
  SqlExecutor,
  SqlParams,
  SqlRow,
  SqlValue,
  StorageAdapter,
  StorageCapabilities,
  TransactionMode,
} from './contracts/storage-adapter.js';
export type {
  EngineTransaction,
  QueueApi,
  ScopeOption,
  StatusApi,
  StatusSnapshot,
  StopResult,
  SyncEngine,
  SyncEngineOptions,
} from './engine/create-sync-engine.js';
export { createSyncEngine } from './engine/create-sync-engine.js';
export type {
  RunCounts,
  RunOptions,
  RunOutcome,
  RunReport,
  RunTrigger,
} from './engine/sync-run.js';
export type {
  StorageErrorCode,
  SyncErrorCode,
  SyncErrorOptions,
  ValidationIssue,
} from './errors.js';
export {
  ConfigError,
  NotFoundError,
  StateError,
  StorageError,
  SyncError,
  ValidationError,
} from './errors.js';
export type {
  AuthRequiredEvent,
  BatchFailedEvent,
  BatchSentEvent,
  ConflictDetectedEvent,
  MutationConfirmedEvent,
  MutationEnqueuedEvent,
  MutationFailedEvent,
  RetryScheduledEvent,
  RunProgressEvent,
  RunStartedEvent,
  SyncEvents,
} from './events.js';
export type { PullHandler, PullPage } from './pull/pull-types.js';
export { MAX_JSON_DEPTH } from './queue/json-safety.js';
export type { CoalesceOutcome, EnqueuedMutation, ListOptions } from './queue/mutation-queue.js';
export { MAX_DEPENDENCIES, MAX_ENTITY_ID_LENGTH } from './queue/prepare-mutation.js';
export {
  alwaysOnline,
  type BrowserConnectivityTarget,
  BUSY_RETRY_MAX_MS,
  BUSY_RETRY_MIN_MS,
  type ConnectivityAdapter,
  connectivityDelay,
  createBrowserConnectivity,
  createHostScheduler,
  createManualScheduler,
  createTimerScheduler,
  DEFAULT_CONNECTIVITY_DELAY_MAX_MS,
  DEFAULT_PERIODIC_MS,
  DEFAULT_RUN_REQUEST_NAME,
  decideNextRun,
  type HostScheduler,
  type HostSchedulerListener,
  MAX_TIMER_DELAY_MS,
  type ManualScheduler,
  type NextRunInput,
  type RunRequest,
  type RunRequestReason,
  resolvePeriodicMs,
  type SchedulerAdapter,
  type TimerScheduler,
  type TimerSchedulerOptions,
} from './scheduler/index.js';
export type {
  EntityLabel,
  FormatNoticeOptions,
  FormattedNotice,
  MessageKey,
  MessageTemplate,
} from './status/format-notice.js';
export { DEFAULT_NOTICE_MESSAGES, formatNotice, formatNotices } from './status/format-notice.js';
export type {
  AuthRequiredNotice,
  ConflictNotice,
  FailedNotice,
  Notice,
  NoticeBase,
  NoticeKind,
  OverwrittenNotice,
  StuckNotice,
  SyncedNotice,
} from './status/notice.js';
export type { RunRecord } from './status/status-store.js';
export { SCHEMA_VERSION } from './storage/migrations.js';
