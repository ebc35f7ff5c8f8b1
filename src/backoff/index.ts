/**
 * Backoff, retry scheduling and failure classification (DESIGN.md section 5). Pure functions:
 * time and randomness are always parameters.
 *
 * @packageDocumentation
 */

export {
  type BackoffBounds,
  type BackoffOptions,
  type BackoffPolicy,
  backoffBaseDelay,
  backoffBounds,
  backoffDelay,
  type JitterMode,
  resolveBackoffPolicy,
} from './backoff-policy.js';
export { attemptCounts, classifyHttpStatus, type FailureClass, type HttpStatusClass } from './classify.js';
export { parseRetryAfter, RETRY_AFTER_MAX_MS, type RetryAfterContext } from './retry-after.js';
export {
  type ClampScheduledTimeInput,
  clampScheduledTime,
  DEFAULT_RETRY_AFTER_CEILING_MS,
  isExhausted,
  type NextAttemptDelayInput,
  nextAttemptDelay,
  runBackoffDelay,
} from './schedule.js';
