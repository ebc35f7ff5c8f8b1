/**
 * Low-level HTTP input and output for the reference server: bounded body reading and response
 * writing with the headers every answer carries (`Date` from the server clock, `Content-Type`,
 * `Content-Length`).
 *
 * @packageDocumentation
 */

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ServerContext } from './context.js';

/** Content type of every JSON answer. */
export const JSON_CONTENT_TYPE = 'application/json; charset=utf-8';

/** The outcome of reading a request body. */
export type BodyResult =
  | { readonly kind: 'ok'; readonly bytes: Buffer }
  /** Over the limit: the rest was read and discarded so the client can read the 413. */
  | { readonly kind: 'too-large' }
  /** The connection closed before the body ended. */
  | { readonly kind: 'aborted' };

/**
 * Read a request body of at most `maxBytes`. A larger body is drained (up to 8× the limit, then
 * the connection is destroyed) rather than cut off: answering while the client still writes makes
 * most clients report a reset instead of the 413.
 */
export function readBody(req: IncomingMessage, maxBytes: number): Promise<BodyResult> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const declared = Number(req.headers['content-length']);
    let tooLarge = Number.isFinite(declared) && declared > maxBytes;
    const drainLimit = maxBytes * 8;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (!tooLarge && size > maxBytes) {
        tooLarge = true;
        chunks.length = 0;
      }
      if (!tooLarge) chunks.push(chunk);
      else if (size > drainLimit) req.socket.destroy();
    });
    req.once('end', () =>
      resolve(tooLarge ? { kind: 'too-large' } : { kind: 'ok', bytes: Buffer.concat(chunks) }),
    );
    req.once('error', () => resolve({ kind: 'aborted' }));
    // After 'end' this resolves nothing new: a promise settles once.
    req.once('close', () => resolve({ kind: 'aborted' }));
  });
}

/** Whether the response can no longer be written (client gone, socket destroyed, already sent). */
export function isGone(res: ServerResponse): boolean {
  return res.writableEnded || res.destroyed || res.socket === null || res.socket.destroyed;
}

/** Response headers; names in lower case. */
export type HeaderMap = Readonly<Record<string, string>>;

/**
 * Write a complete response. `body` `undefined` sends no body (and `Content-Length: 0` unless the
 * status forbids a body). Does nothing when the client is gone.
 */
export function writeResponse(
  ctx: ServerContext,
  res: ServerResponse,
  status: number,
  headers: HeaderMap,
  body?: { readonly bytes: Buffer; readonly contentType: string },
): void {
  if (isGone(res)) return;
  ctx.stats.statusCounts[status] = (ctx.stats.statusCounts[status] ?? 0) + 1;
  res.statusCode = status;
  // The server clock, not the OS one: clients compare Retry-After HTTP-dates against it.
  res.setHeader('date', new Date(ctx.now()).toUTCString());
  for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
  if (body !== undefined) {
    res.setHeader('content-type', body.contentType);
    res.setHeader('content-length', body.bytes.length);
    res.end(body.bytes);
  } else {
    if (status !== 204 && status !== 304) res.setHeader('content-length', 0);
    res.end();
  }
}

/** Serialise `value` as a JSON body. */
export function jsonBody(
  value: unknown,
  contentType = JSON_CONTENT_TYPE,
): { bytes: Buffer; contentType: string } {
  return { bytes: Buffer.from(JSON.stringify(value), 'utf8'), contentType };
}
