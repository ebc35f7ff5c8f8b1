/**
 * The host-driven scheduler: remembers the engine's latest request so that the host app can
 * register it with the OS (WorkManager, BGTaskScheduler, react-native-background-fetch, a service
 * worker's Background Sync tag). It never runs anything itself: the OS wakes the app, and the
 * app's background handler calls `engine.runOnce({ trigger: 'background', deadline, signal })`.
 *
 * @packageDocumentation
 */

import type { RunRequest, SchedulerAdapter } from '../contracts/scheduler-adapter.js';
import type { RunTrigger } from '../engine/sync-run.js';
import { DEFAULT_RUN_REQUEST_NAME } from './job-scheduler.js';

/**
 * Called when the request of `name` changes: the new request, or `null` when it was cancelled.
 * The host re-registers its OS job (or unregisters it on `null`).
 */
export type HostSchedulerListener = (request: RunRequest | null, name: string) => void;

/**
 * A {@link SchedulerAdapter} that only remembers; see {@link createHostScheduler}.
 */
export interface HostScheduler extends SchedulerAdapter {
  /** Remember `request` as the latest of its name (the `run` callback is ignored). Never throws. */
  schedule(request: RunRequest, run?: (trigger: RunTrigger) => Promise<void>): void;
  /** Forget the request of `name`; listeners hear `null`. Never throws. */
  cancel(name: string): void;
  /**
   * The latest request of `name` (what the host should have registered with the OS), or `null`.
   * @param name - @default DEFAULT_RUN_REQUEST_NAME ('sync-core')
   */
  current(name?: string): RunRequest | null;
  /** Every remembered request, earliest `notBefore` first. */
  all(): readonly RunRequest[];
  /**
   * Call `listener` whenever a request changes: a different `notBefore`, `requiresNetwork` or
   * `reason`, or a cancellation. Scheduling the very same request again does not call it, so a host
   * does not re-register an unchanged job. A listener that throws does not affect the others or
   * the engine. Returns the function that unsubscribes.
   */
  onChange(listener: HostSchedulerListener): () => void;
}

function sameRequest(a: RunRequest, b: RunRequest): boolean {
  return a.notBefore === b.notBefore && a.requiresNetwork === b.requiresNetwork && a.reason === b.reason;
}

/**
 * Create a {@link SchedulerAdapter} for OS background hooks. It remembers the latest
 * {@link RunRequest} per name and tells `onChange` listeners, so the host can translate it:
 *
 * - WorkManager: a unique `OneTimeWorkRequest` with `setInitialDelay(notBefore − now)`,
 *   `NetworkType.CONNECTED` when `requiresNetwork`, `ExistingWorkPolicy.REPLACE`;
 * - BGTaskScheduler: a `BGProcessingTaskRequest` with `earliestBeginDate = notBefore` and
 *   `requiresNetworkConnectivity`;
 * - react-native-background-fetch: `BackgroundFetch.scheduleTask({ taskId, delay })`;
 * - a service worker: `registration.sync.register(name)`.
 *
 * It never calls `run` and never arms a timer. `docs/platforms.md` has complete recipes.
 *
 * @example
 * ```ts
 * import { createHostScheduler, createSyncEngine } from 'sync-core';
 * const scheduler = createHostScheduler();
 * scheduler.onChange((request) => {
 *   if (request === null) void BackgroundFetch.stop('sync-core');
 *   else void BackgroundFetch.scheduleTask({ taskId: 'sync-core', delay: Math.max(0, request.notBefore - Date.now()) });
 * });
 * const engine = createSyncEngine({ storage, network, entities, scheduler });
 * ```
 */
export function createHostScheduler(): HostScheduler {
  const requests = new Map<string, RunRequest>();
  const listeners = new Set<HostSchedulerListener>();

  const notify = (request: RunRequest | null, name: string): void => {
    for (const listener of [...listeners]) {
      try {
        listener(request, name);
      } catch {
        // A host listener failing to re-register must not break the engine's run that scheduled.
      }
    }
  };

  return Object.freeze({
    schedule(request: RunRequest): void {
      if (typeof request !== 'object' || request === null || typeof request.name !== 'string') return;
      const stored: RunRequest = Object.freeze({
        name: request.name,
        notBefore: request.notBefore,
        requiresNetwork: request.requiresNetwork,
        reason: request.reason,
      });
      const previous = requests.get(stored.name);
      requests.set(stored.name, stored);
      if (previous === undefined || !sameRequest(previous, stored)) notify(stored, stored.name);
    },

    cancel(name: string): void {
      if (!requests.delete(name)) return;
      notify(null, name);
    },

    current(name: string = DEFAULT_RUN_REQUEST_NAME): RunRequest | null {
      return requests.get(name) ?? null;
    },

    all(): readonly RunRequest[] {
      return [...requests.values()].sort((a, b) => a.notBefore - b.notBefore);
    },

    onChange(listener: HostSchedulerListener): () => void {
      // A distinct wrapper per subscription: subscribing the same function twice gives two
      // independent subscriptions, each removed by its own unsubscribe.
      const entry: HostSchedulerListener = (request, name) => listener(request, name);
      listeners.add(entry);
      return () => {
        listeners.delete(entry);
      };
    },
  });
}
