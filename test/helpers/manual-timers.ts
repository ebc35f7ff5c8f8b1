import type { Timers } from 'sync-core';

/** Timers that fire only when the test says so (`fireAll`), e.g. a run's deadline mid-request. */
export function manualTimers() {
  const pending = new Map<number, { at: number; callback: () => void }>();
  let next = 1;
  const timers: Timers = {
    setTimeout(callback, delayMs) {
      const id = next++;
      pending.set(id, { at: delayMs, callback });
      return id;
    },
    clearTimeout(handle) {
      pending.delete(handle as number);
    },
  };
  return {
    timers,
    pending,
    fireAll() {
      const all = [...pending.values()];
      pending.clear();
      for (const t of all) t.callback();
    },
  };
}
