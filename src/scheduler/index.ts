/**
 * When the next sync run happens (DESIGN.md section 4, step 5): the pure decision logic, and the
 * schedulers that carry it out in-process (timers), for OS hooks (remember and let the host
 * register), and by hand (tests).
 *
 * @packageDocumentation
 */

export {
  alwaysOnline,
  type BrowserConnectivityTarget,
  type ConnectivityAdapter,
  createBrowserConnectivity,
  type RunRequest,
  type RunRequestReason,
  type SchedulerAdapter,
} from '../contracts/scheduler-adapter.js';
export { createHostScheduler, type HostScheduler, type HostSchedulerListener } from './host-scheduler.js';
export {
  BUSY_RETRY_MAX_MS,
  BUSY_RETRY_MIN_MS,
  connectivityDelay,
  DEFAULT_CONNECTIVITY_DELAY_MAX_MS,
  DEFAULT_PERIODIC_MS,
  DEFAULT_RUN_REQUEST_NAME,
  decideNextRun,
  type NextRunInput,
  resolvePeriodicMs,
} from './job-scheduler.js';
export { createManualScheduler, type ManualScheduler } from './manual-scheduler.js';
export {
  createTimerScheduler,
  MAX_TIMER_DELAY_MS,
  type TimerScheduler,
  type TimerSchedulerOptions,
} from './timer-scheduler.js';
