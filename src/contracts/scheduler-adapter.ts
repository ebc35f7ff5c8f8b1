/**
 * The scheduler port and the connectivity port: how the core asks its host "run me at or after
 * time T, when online" (DESIGN.md section 2), and how it learns whether the device is online.
 *
 * Both are injected per engine, never held in module singletons (the idea of TanStack Query's
 * `timeoutManager` and `onlineManager`): a test passes a manual scheduler and a connectivity it
 * flips by hand, two engines in one process never share a timer or a listener, and each platform
 * plugs in what it has (an in-process timer on Node and Electron, WorkManager or BGTaskScheduler
 * through a host scheduler on mobile, the service worker's `sync` event in a browser).
 *
 * @packageDocumentation
 */

import type { RunTrigger } from '../engine/sync-run.js';

/**
 * Why a run was requested. Informational: a scheduler may log it or pick a platform API by it,
 * but must not change *when* it runs because of it.
 *
 * - `'retry-due'`: a queued mutation's next attempt comes due (its backoff or `Retry-After` ended),
 *   or a run that stopped with work left continues.
 * - `'periodic'`: nothing is due sooner; a periodic refresh (pull fresh data, pick up anything
 *   the last run could not see).
 * - `'offline-backoff'`: the last run(s) could not reach the server; spaced by the run-level backoff.
 * - `'connectivity'`: the device is offline; the run should start when it comes back.
 * - `'enqueue'`: a local write queued something new.
 */
export type RunRequestReason = 'retry-due' | 'periodic' | 'offline-backoff' | 'connectivity' | 'enqueue';

/**
 * One request to run the sync engine: "run `name` at or after `notBefore`".
 *
 * @example
 * ```ts
 * import type { RunRequest } from 'sync-core';
 * const request: RunRequest = {
 *   name: 'sync-core',
 *   notBefore: Date.now() + 30_000,
 *   requiresNetwork: true,
 *   reason: 'retry-due',
 * };
 * ```
 */
export interface RunRequest {
  /**
   * Identifies the job. A later request with the same name replaces the earlier one. The engine
   * uses one name per engine (`'sync-core'` by default); a host maps it to its unique work name
   * (WorkManager), task identifier (BGTaskScheduler) or sync tag (Background Sync).
   */
  readonly name: string;
  /**
   * The earliest time the run may start, in ms since the Unix epoch (the engine's clock). A time in
   * the past, or now, means "as soon as possible".
   */
  readonly notBefore: number;
  /**
   * Whether the run needs the network. Always `true` for sync runs: a host with network
   * constraints (WorkManager `NetworkType.CONNECTED`, `BGProcessingTaskRequest.requiresNetworkConnectivity`)
   * should set them, so the OS holds the run until the device is online.
   */
  readonly requiresNetwork: boolean;
  /** Why the run was requested; see {@link RunRequestReason}. */
  readonly reason: RunRequestReason;
}

/**
 * The scheduler port: where the engine registers its next run.
 *
 * There are two kinds of scheduler:
 *
 * - **in-process** schedulers (`createTimerScheduler` on Node and Electron, `createManualScheduler`
 *   in tests) keep `run` and call it when the request comes due, with the trigger `'schedule'`
 *   (or `'connectivity'` when they held the run until the device came back online);
 * - **host-driven** schedulers (`createHostScheduler`, for WorkManager, BGTaskScheduler,
 *   react-native-background-fetch, a service worker's `sync` event) ignore `run`: they only
 *   remember the latest request so the host can register it with the OS, and the OS's own callback
 *   calls `engine.runOnce({ trigger: 'background', deadline, signal })`.
 *
 * Guarantees every implementation gives:
 *
 * - **Replace semantics.** `schedule` replaces any earlier request of the same name (armed, waiting
 *   for connectivity, or not yet due): at most one pending request per name. Requests of other
 *   names are independent.
 * - **Cheap and idempotent.** The engine calls `schedule` after every run, on `start`, on enqueue
 *   and on connectivity changes, so it may be called often, with the same request again.
 * - **Never early.** A run never starts before `notBefore` (judged by the engine's clock). It may
 *   start later: the OS defers background work (battery, Doze, Low Power Mode, its own budget),
 *   so a run may come minutes or hours late, or when the app is next opened.
 * - **Never throws.** Neither `schedule` nor `cancel` throws or rejects; a failure to register
 *   is the scheduler's to report (for example through its own `onError`), never the engine's.
 * - **At most one run at a time per name** for schedulers that call `run`; a run is never started
 *   while the previous one of the same name is in progress (the engine's lease makes a second one
 *   return `busy` anyway, but a scheduler should not rely on that).
 *
 * `schedule` and `cancel` may return a promise (a host that must call a native module); the engine
 * awaits it but never depends on its timing.
 *
 * @example
 * ```ts
 * import { createSyncEngine, createTimerScheduler } from 'sync-core';
 * const engine = createSyncEngine({ storage, network, entities, scheduler: createTimerScheduler() });
 * ```
 */
export interface SchedulerAdapter {
  /**
   * Register `request`, replacing any earlier request of the same name.
   *
   * In-process schedulers call `run` when the request comes due (and catch whatever it throws or
   * rejects with); host-driven schedulers ignore `run` and let the host call `engine.runOnce`.
   *
   * @param request - What to run and when; see {@link RunRequest}.
   * @param run - Starts one run with the given trigger. Resolves when the run is over.
   */
  schedule(request: RunRequest, run: (trigger: RunTrigger) => Promise<void>): void | Promise<void>;
  /**
   * Drop the pending request of this name, if any (called on `engine.stop()` and `close()`). A run
   * already in progress is not interrupted by the scheduler (the engine aborts its own run). An
   * unknown name is not an error.
   */
  cancel(name: string): void | Promise<void>;
}

/**
 * The connectivity port: whether the device is online, and when that changes.
 *
 * It is a hint, never the truth: a device "online" behind a captive portal still cannot reach the
 * server (the run then ends `offline` and the run-level backoff spaces the next one). Only the
 * "offline" answer should be reliable: the engine and the timer scheduler hold network runs while
 * the port says offline and start one shortly after it says online again.
 *
 * @example
 * ```ts
 * import NetInfo from '@react-native-community/netinfo';
 * import type { ConnectivityAdapter } from 'sync-core';
 * const connectivity: ConnectivityAdapter = {
 *   isOnline: async () => (await NetInfo.fetch()).isConnected !== false,
 *   subscribe: (listener) => NetInfo.addEventListener((state) => listener(state.isConnected !== false)),
 * };
 * ```
 */
export interface ConnectivityAdapter {
  /**
   * Whether the device is online now. May answer synchronously or with a promise; must not throw
   * (a caller treats a throw or rejection as "online", so that a broken port never parks sync).
   */
  isOnline(): boolean | Promise<boolean>;
  /**
   * Call `listener` on every change, with the new state (it may also be called with an unchanged
   * state; callers tolerate that). Returns the function that unsubscribes; calling it twice is
   * harmless.
   */
  subscribe(listener: (online: boolean) => void): () => void;
}

function noop(): void {}

/**
 * A {@link ConnectivityAdapter} that always says online and never reports a change: the default.
 *
 * Right for Node, Electron's main process and servers, which have no trustworthy online signal:
 * sync just tries, an `offline` run outcome is the signal, and the run-level backoff (DESIGN.md
 * section 5) spaces the retries. Pass a real port where the platform has one
 * ({@link createBrowserConnectivity}, NetInfo on React Native) to restart sync promptly on
 * reconnect.
 *
 * @example
 * ```ts
 * import { alwaysOnline, createSyncEngine } from 'sync-core';
 * const engine = createSyncEngine({ storage, network, entities, connectivity: alwaysOnline });
 * ```
 */
export const alwaysOnline: ConnectivityAdapter = Object.freeze({
  isOnline: () => true,
  subscribe: (_listener: (online: boolean) => void) => noop,
});

/**
 * The few members of a browser global (`window`, a worker's `self`) that
 * {@link createBrowserConnectivity} uses, typed structurally so that tests can pass an
 * `EventTarget` with a fake `navigator`, and so the core needs no DOM types at runtime.
 */
export interface BrowserConnectivityTarget {
  /** `navigator.onLine` is read on every `isOnline()` call. Missing → assumed online. */
  readonly navigator?: { readonly onLine?: boolean | undefined } | undefined;
  addEventListener?(type: 'online' | 'offline', listener: () => void): void;
  removeEventListener?(type: 'online' | 'offline', listener: () => void): void;
}

/**
 * A {@link ConnectivityAdapter} over `navigator.onLine` and the `online`/`offline` events of a
 * window or worker global.
 *
 * `navigator.onLine === false` is reliable (no network interface is up); `true` only means "maybe"
 * (a captive portal, a VPN adapter that is always up), which is why the engine still backs off on
 * `offline` run outcomes. A target without `navigator.onLine` is assumed online; one without
 * `addEventListener` never reports a change.
 *
 * @param target - The global to watch. @default `globalThis` (the window, or a worker's `self`)
 *
 * @example
 * ```ts
 * import { createBrowserConnectivity, createSyncEngine } from 'sync-core';
 * const engine = createSyncEngine({ storage, network, entities, connectivity: createBrowserConnectivity() });
 * ```
 */
export function createBrowserConnectivity(
  target: BrowserConnectivityTarget = globalThis as BrowserConnectivityTarget,
): ConnectivityAdapter {
  return Object.freeze({
    isOnline(): boolean {
      return target.navigator?.onLine !== false;
    },
    subscribe(listener: (online: boolean) => void): () => void {
      if (typeof target.addEventListener !== 'function') return noop;
      const onOnline = () => listener(true);
      const onOffline = () => listener(false);
      target.addEventListener('online', onOnline);
      target.addEventListener('offline', onOffline);
      let subscribed = true;
      return () => {
        if (!subscribed) return;
        subscribed = false;
        target.removeEventListener?.('online', onOnline);
        target.removeEventListener?.('offline', onOffline);
      };
    },
  });
}
