/**
 * An in-process Web Locks `LockManager` for tests: what `navigator.locks` gives the tabs and the
 * service worker of one origin, shared here by several storages of one test process ("two tabs").
 *
 * Exclusive mode only (a `shared` request is refused: nothing in sync-core asks for one). Requests
 * for one name are granted in FIFO order; a lock is held until the promise returned by the
 * callback settles, as the Web Locks specification says. `ifAvailable` and `signal` (abort while
 * waiting) are supported; `steal` is not. `maxHeld()`, `held()` and `grants()` let tests assert
 * mutual exclusion.
 */

interface Waiter {
  readonly name: string;
  readonly grant: () => void;
}

/** The test double, with counters on top of the `LockManager` interface. */
export interface InProcessLockManager extends LockManager {
  /** How many holders held one name at once, at most (1 for mutual exclusion). */
  maxHeld(name: string): number;
  /** Whether `name` is held right now. */
  held(name: string): boolean;
  /** How many times `name` was granted. */
  grants(name: string): number;
}

export function createInProcessLockManager(): InProcessLockManager {
  const holders = new Map<string, number>();
  const most = new Map<string, number>();
  const granted = new Map<string, number>();
  const queue: Waiter[] = [];

  const grantNext = (name: string): void => {
    if ((holders.get(name) ?? 0) > 0) return;
    const index = queue.findIndex((w) => w.name === name);
    if (index < 0) return;
    const [waiter] = queue.splice(index, 1);
    waiter!.grant();
  };

  async function request<T>(
    name: string,
    optionsOrCallback: LockOptions | LockGrantedCallback<T>,
    maybeCallback?: LockGrantedCallback<T>,
  ): Promise<T> {
    const options: LockOptions = typeof optionsOrCallback === 'function' ? {} : optionsOrCallback;
    const callback = (typeof optionsOrCallback === 'function' ? optionsOrCallback : maybeCallback)!;
    if (typeof callback !== 'function') throw new TypeError('request: expected a callback');
    if ((options.mode ?? 'exclusive') !== 'exclusive' || options.steal) {
      throw new TypeError('this test LockManager supports plain exclusive locks only (no shared, no steal)');
    }
    options.signal?.throwIfAborted();
    const free = (holders.get(name) ?? 0) === 0 && !queue.some((w) => w.name === name);
    if (options.ifAvailable && !free) return (await callback(null)) as T;

    // The lock is taken synchronously when granted, so a request made between a release and the
    // next holder's continuation cannot slip in.
    const take = (): void => {
      const count = (holders.get(name) ?? 0) + 1;
      holders.set(name, count);
      most.set(name, Math.max(most.get(name) ?? 0, count));
      granted.set(name, (granted.get(name) ?? 0) + 1);
    };
    if (free) take();
    else {
      await new Promise<void>((resolve, reject) => {
        const waiter: Waiter = {
          name,
          grant: () => {
            take();
            resolve();
          },
        };
        queue.push(waiter);
        options.signal?.addEventListener('abort', () => {
          const index = queue.indexOf(waiter);
          if (index >= 0) {
            queue.splice(index, 1);
            reject(options.signal!.reason);
          }
        });
      });
    }
    const lock = { name, mode: 'exclusive' } as Lock;
    try {
      return (await callback(lock)) as T;
    } finally {
      holders.set(name, (holders.get(name) ?? 1) - 1);
      grantNext(name);
    }
  }

  return {
    request: request as LockManager['request'],
    async query(): Promise<LockManagerSnapshot> {
      return {
        held: [...holders].filter(([, n]) => n > 0).map(([name]) => ({ name, mode: 'exclusive' })),
        pending: queue.map((w) => ({ name: w.name, mode: 'exclusive' })),
      };
    },
    maxHeld: (name) => most.get(name) ?? 0,
    held: (name) => (holders.get(name) ?? 0) > 0,
    grants: (name) => granted.get(name) ?? 0,
  };
}
