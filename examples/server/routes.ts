/**
 * The request pipeline of the reference server.
 *
 * For `/sync/*` and `/rest/*`: read the body (413) → authenticate (401) → validate (400) →
 * idempotency keys in progress (409 problem) → latency → "before" fault → apply → "after-apply"
 * fault (only for a 2xx answer) → answer. `/auth/*` and `/health` never see faults.
 *
 * @packageDocumentation
 */

import type { IncomingMessage, ServerResponse } from 'node:http';
import { authenticate, handleRefreshRequest, handleTokenRequest } from './auth.js';
import { errorReply, type Reply, type RequestContext, type ServerContext } from './context.js';
import type { AfterFault, BeforeFault, MalformKind } from './faults.js';
import { type HeaderMap, isGone, JSON_CONTENT_TYPE, jsonBody, readBody, writeResponse } from './http-io.js';
import { handlePull } from './pull.js';
import { parsePush, processPush } from './push.js';
import { executeRest, parseRest, type RestCommand } from './rest.js';
import { partitionOf } from './store.js';
import type { PushResponse } from './types.js';

/** Server-level state the pipeline needs beyond {@link ServerContext}. */
export interface PipelineState {
  readonly ctx: ServerContext;
  /** `JSON.stringify([partition, key])` of every idempotency key whose request is being processed. */
  readonly inProgress: Set<string>;
  /** True once the server is closing: handlers stop touching the store. */
  isClosed(): boolean;
  /** Call `release` when the server closes; returns a function that unregisters it. */
  onClose(release: () => void): () => void;
}

type RouteName = 'health' | 'token' | 'refresh' | 'push' | 'pull' | 'rest';

interface Route {
  readonly name: RouteName;
  /** Decoded path segments after `/rest/`. */
  readonly segments: readonly string[];
}

const FIXED_ROUTES: Readonly<Record<string, { readonly method: string; readonly name: RouteName }>> = {
  '/health': { method: 'GET', name: 'health' },
  '/auth/token': { method: 'POST', name: 'token' },
  '/auth/refresh': { method: 'POST', name: 'refresh' },
  '/sync/push': { method: 'POST', name: 'push' },
  '/sync/pull': { method: 'GET', name: 'pull' },
};

const IN_PROGRESS_PROBLEM = {
  type: 'urn:sync-core:problem:request-in-progress',
  title: 'A request with this idempotency key is in progress',
  status: 409,
} as const;

function matchRoute(method: string, pathname: string): Route | Reply {
  const fixed = FIXED_ROUTES[pathname];
  if (fixed !== undefined) {
    if (method !== fixed.method)
      return { ...errorReply(405, 'method-not-allowed'), headers: { allow: fixed.method } };
    return { name: fixed.name, segments: [] };
  }
  if (pathname.startsWith('/rest/')) {
    try {
      return { name: 'rest', segments: pathname.slice('/rest/'.length).split('/').map(decodeURIComponent) };
    } catch {
      return errorReply(400, 'invalid-request', 'path: invalid percent-encoding');
    }
  }
  return errorReply(404, 'not-found', 'no such route');
}

/** Parse a JSON body: `undefined` when empty, or the 400 reply when it is not JSON. */
function parseJson(bytes: Buffer): { ok: true; value: unknown } | { ok: false; reply: Reply } {
  if (bytes.length === 0) return { ok: true, value: undefined };
  try {
    return { ok: true, value: JSON.parse(bytes.toString('utf8')) as unknown };
  } catch {
    return { ok: false, reply: errorReply(400, 'invalid-request', 'body: not valid JSON') };
  }
}

/** Create the `request` listener of the node:http server. */
export function createRequestHandler(
  state: PipelineState,
): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    handle(state, req, res).catch((error: unknown) => {
      state.ctx.onError(error);
      if (!res.headersSent && !isGone(res)) {
        send(state, res, errorReply(500, 'internal', 'the reference server failed; see its error output'));
      } else {
        res.destroy();
      }
    });
  };
}

function send(state: PipelineState, res: ServerResponse, reply: Reply): void {
  const body =
    reply.body === undefined ? undefined : jsonBody(reply.body, reply.contentType ?? JSON_CONTENT_TYPE);
  writeResponse(state.ctx, res, reply.status, reply.headers ?? {}, body);
}

async function handle(state: PipelineState, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const { ctx } = state;
  ctx.stats.requests++;
  const method = req.method ?? 'GET';
  const url = new URL(req.url ?? '/', 'http://reference-server.invalid');
  const route = matchRoute(method, url.pathname);
  if ('name' in route) {
    if (route.name === 'push') ctx.stats.pushRequests++;
    else if (route.name === 'pull') ctx.stats.pullRequests++;
    else if (route.name === 'rest') ctx.stats.restRequests++;
  }

  const body = await readBody(req, ctx.maxBodyBytes);
  if (state.isClosed() || body.kind === 'aborted') return;
  if (body.kind === 'too-large') {
    const reply = errorReply(413, 'payload-too-large', `the body exceeds ${ctx.maxBodyBytes} bytes`);
    send(state, res, { ...reply, headers: { connection: 'close' } });
    return;
  }
  if (!('name' in route)) {
    send(state, res, route);
    return;
  }
  const json = parseJson(body.bytes);
  if (!json.ok) {
    send(state, res, json.reply);
    return;
  }

  switch (route.name) {
    case 'health':
      send(state, res, { status: 200, body: { ok: true } });
      return;
    case 'token':
      send(state, res, handleTokenRequest(ctx, json.value));
      return;
    case 'refresh':
      send(state, res, handleRefreshRequest(ctx, json.value));
      return;
    default:
      await handleGuarded(state, req, res, route, url, json.value);
  }
}

/** What a guarded request will do once faults let it through. */
interface Prepared {
  readonly keys: readonly string[];
  readonly isPush: boolean;
  run(): Reply;
}

function prepare(
  rctx: RequestContext,
  req: IncomingMessage,
  route: Route,
  url: URL,
  body: unknown,
  method: string,
): Prepared | Reply {
  if (route.name === 'push') {
    const parsed = parsePush(body);
    if (!parsed.ok) return errorReply(400, 'invalid-request', parsed.message);
    return {
      keys: parsed.value.mutations.map((mutation) => mutation.key),
      isPush: true,
      run: () => ({ status: 200, body: processPush(rctx, parsed.value) }),
    };
  }
  if (route.name === 'pull') {
    return { keys: [], isPush: false, run: () => handlePull(rctx, url.searchParams) };
  }
  const command: RestCommand | Reply = parseRest(method, route.segments, req.headers, body);
  if ('status' in command) return command;
  const key = command.kind === 'read' ? null : command.key;
  return { keys: key === null ? [] : [key], isPush: false, run: () => executeRest(rctx, command) };
}

async function handleGuarded(
  state: PipelineState,
  req: IncomingMessage,
  res: ServerResponse,
  route: Route,
  url: URL,
  body: unknown,
): Promise<void> {
  const { ctx } = state;
  const scope = authenticate(ctx, req.headers);
  if ('status' in scope) {
    send(state, res, scope);
    return;
  }
  const rctx: RequestContext = { ...ctx, scope, partition: partitionOf(scope) };
  const prepared = prepare(rctx, req, route, url, body, req.method ?? 'GET');
  if ('status' in prepared) {
    send(state, res, prepared);
    return;
  }

  const lockKeys = [...new Set(prepared.keys.map((key) => JSON.stringify([rctx.partition, key])))];
  if (lockKeys.some((key) => state.inProgress.has(key))) {
    send(state, res, { status: 409, body: IN_PROGRESS_PROBLEM, contentType: 'application/problem+json' });
    return;
  }
  // Held until this handler finishes — not until the socket closes — so a client that timed out
  // and resends while the first request is still being processed gets the 409.
  for (const key of lockKeys) state.inProgress.add(key);
  try {
    await delay(state, ctx.faults.nextLatency());
    if (state.isClosed()) return;

    const before = ctx.faults.takeBeforeApply();
    if (before !== undefined) {
      ctx.stats.injectedFaults++;
      await actBefore(state, req, res, before);
      return;
    }

    const reply = prepared.run();
    const after = reply.status >= 200 && reply.status < 300 ? ctx.faults.takeAfterApply() : undefined;
    if (after !== undefined) {
      ctx.stats.injectedFaults++;
      await actAfter(state, req, res, after, reply, prepared.isPush);
      return;
    }
    send(state, res, reply);
  } finally {
    for (const key of lockKeys) state.inProgress.delete(key);
  }
}

function delay(state: PipelineState, ms: number): Promise<void> {
  if (ms <= 0) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      unregister();
      resolve();
    };
    const timer = setTimeout(done, ms);
    const unregister = state.onClose(done);
  });
}

/** Resolve when the client goes away or the server closes; never answer. */
function hang(state: PipelineState, res: ServerResponse): Promise<void> {
  if (isGone(res)) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('close', done);
      unregister();
      resolve();
    };
    res.once('close', done);
    const unregister = state.onClose(done);
  });
}

function drop(state: PipelineState, req: IncomingMessage): void {
  state.ctx.stats.droppedConnections++;
  req.socket.destroy();
}

async function actBefore(
  state: PipelineState,
  req: IncomingMessage,
  res: ServerResponse,
  fault: BeforeFault,
): Promise<void> {
  switch (fault.kind) {
    case 'drop':
      drop(state, req);
      return;
    case 'hang':
      await hang(state, res);
      return;
    case 'redirect':
      send(state, res, {
        ...errorReply(fault.status, 'redirect', 'injected redirect'),
        headers: { location: fault.location },
      });
      return;
    case 'respond': {
      const { status, retryAfter, body, contentType, headers } = fault.response;
      const all: Record<string, string> = { ...headers };
      if (retryAfter !== undefined) all['retry-after'] = retryAfter;
      const payload =
        body === undefined
          ? jsonBody({ error: { code: 'injected-fault', message: `injected ${status}` } }, contentType)
          : typeof body === 'string'
            ? { bytes: Buffer.from(body, 'utf8'), contentType: contentType ?? 'text/plain; charset=utf-8' }
            : jsonBody(body, contentType);
      writeResponse(state.ctx, res, status, all, payload);
      return;
    }
  }
}

async function actAfter(
  state: PipelineState,
  req: IncomingMessage,
  res: ServerResponse,
  fault: AfterFault,
  reply: Reply,
  isPush: boolean,
): Promise<void> {
  switch (fault.kind) {
    case 'drop':
      drop(state, req);
      return;
    case 'hang':
      await hang(state, res);
      return;
    case 'malform':
      sendMalformed(state, req, res, fault.malform, reply, isPush);
      return;
  }
}

function damagedBody(kind: MalformKind, reply: Reply, isPush: boolean): unknown {
  const results = isPush ? (reply.body as PushResponse).results : undefined;
  if (results !== undefined && kind === 'missing-result') return { results: results.slice(0, -1) };
  if (results !== undefined && kind === 'extra-result') {
    return { results: [...results, { id: `not-sent-${results.length}`, status: 'applied', version: 1 }] };
  }
  return isPush ? { results: 'damaged' } : { unexpected: true };
}

function sendMalformed(
  state: PipelineState,
  req: IncomingMessage,
  res: ServerResponse,
  kind: MalformKind,
  reply: Reply,
  isPush: boolean,
): void {
  if (kind === 'truncated-json' || kind === 'reset-mid-body') {
    const full = jsonBody(reply.body ?? {}).bytes;
    const half = full.subarray(0, Math.floor(full.length / 2));
    if (kind === 'truncated-json') {
      writeResponse(state.ctx, res, 200, {}, { bytes: half, contentType: JSON_CONTENT_TYPE });
      return;
    }
    if (isGone(res)) return;
    state.ctx.stats.statusCounts[200] = (state.ctx.stats.statusCounts[200] ?? 0) + 1;
    const headers: HeaderMap = {
      date: new Date(state.ctx.now()).toUTCString(),
      'content-type': JSON_CONTENT_TYPE,
      'content-length': String(full.length),
    };
    res.writeHead(200, headers);
    // Flush headers and half the body, then cut the connection mid-response.
    res.write(half, () => req.socket.destroy());
    return;
  }
  writeResponse(state.ctx, res, 200, {}, jsonBody(damagedBody(kind, reply, isPush)));
}
