/**
 * Who is signed in, kept in IndexedDB so that the service worker, woken with every tab closed,
 * can sync for the same user. A real app keeps its own session store; this one holds the reference
 * server's dev tokens.
 *
 * @packageDocumentation
 */
import type { Scope } from 'sync-core';

/** The signed-in user and the credentials the reference server issued (`POST /auth/token`). */
export interface Session {
  readonly scope: Scope;
  readonly token: string;
  readonly refreshToken: string;
  readonly expiresAt: number;
}

const DB_NAME = 'sync-core-example-session';
const STORE = 'session';
const KEY = 'current';

function settle<T>(request: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

async function withStore<T>(
  mode: IDBTransactionMode,
  fn: (store: IDBObjectStore) => IDBRequest<T>,
): Promise<T> {
  const open = indexedDB.open(DB_NAME, 1);
  open.onupgradeneeded = () => open.result.createObjectStore(STORE);
  const db = await settle(open);
  try {
    const tx = db.transaction(STORE, mode);
    const result = await settle(fn(tx.objectStore(STORE)));
    await new Promise<void>((resolve, reject) => {
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
    return result;
  } finally {
    db.close();
  }
}

/** The current session, or `undefined` when nobody is signed in. */
export async function loadSession(): Promise<Session | undefined> {
  return (await withStore('readonly', (store) => store.get(KEY))) as Session | undefined;
}

/** Remember (or, with `undefined`, forget) the signed-in user. */
export async function saveSession(session: Session | undefined): Promise<void> {
  if (session === undefined) await withStore('readwrite', (store) => store.delete(KEY));
  else await withStore('readwrite', (store) => store.put(session, KEY));
}

async function post(path: string, body: unknown): Promise<Session | undefined> {
  const response = await fetch(new URL(path, self.location.origin), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (response.status === 401) return undefined;
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return (await response.json()) as Session;
}

/** Sign in with the reference server's dev endpoint (no password: a development tool). */
export async function signIn(scope: Scope): Promise<Session> {
  const issued = await post('/auth/token', scope);
  if (issued === undefined) throw new Error('sign-in refused');
  const session: Session = { ...issued, scope };
  await saveSession(session);
  return session;
}

/**
 * Trade the refresh token for new credentials after a 401. Resolves `false` when the server
 * refused it (the engine then pauses with `auth-required` until the user signs in again).
 */
export async function refreshSession(): Promise<boolean> {
  const current = await loadSession();
  if (current === undefined) return false;
  const issued = await post('/auth/refresh', { refreshToken: current.refreshToken });
  if (issued === undefined) return false;
  await saveSession({ ...issued, scope: current.scope });
  return true;
}
