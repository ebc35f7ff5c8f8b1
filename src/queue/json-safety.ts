import type { ValidationIssue } from '../errors.js';

/** The deepest nesting accepted in a payload. Deeper JSON is almost always a bug (or an attack). */
export const MAX_JSON_DEPTH = 128;

const HOLE = Symbol('hole');

type Frame = { value: unknown; path: (string | number)[]; depth: number };

/**
 * Find the first reason `value` would not survive `JSON.stringify` → `JSON.parse` unchanged.
 *
 * `JSON.stringify` is lossy in silence: it drops `undefined` and functions, turns `NaN` and
 * `Infinity` into `null`, a `Date` into a string, a `Map` or `Set` into `{}`, and throws on
 * `BigInt` and cycles. A queue that accepted those would deliver something other than what the app
 * saved, so each is refused here with the path where it sits (FAULTS.md 25).
 *
 * Iterative, so a deeply nested payload cannot overflow the stack.
 *
 * @returns the issue, or `undefined` when the value is plain JSON.
 */
export function findJsonIssue(
  value: unknown,
  basePath: (string | number)[] = [],
): ValidationIssue | undefined {
  const stack: Frame[] = [{ value, path: basePath, depth: 0 }];
  // Objects on the current path, for cycle detection. A shared (non-cyclic) reference is fine.
  const onPath = new Set<object>();
  const exits: { object: object; index: number }[] = [];

  while (stack.length > 0) {
    // Leave objects whose children have all been visited.
    while (exits.length > 0 && exits[exits.length - 1]!.index >= stack.length) {
      onPath.delete(exits.pop()!.object);
    }
    const { value: v, path, depth } = stack.pop()!;
    if (v === HOLE) return { path, message: 'expected a JSON value, got an array hole' };
    switch (typeof v) {
      case 'string':
      case 'boolean':
        continue;
      case 'number':
        if (!Number.isFinite(v)) {
          return { path, message: `expected a finite number, got ${Number.isNaN(v) ? 'NaN' : String(v)}` };
        }
        continue;
      case 'undefined':
        return { path, message: 'expected a JSON value, got undefined (use null, or omit the key)' };
      case 'bigint':
        return { path, message: 'expected a JSON value, got a BigInt (store it as a string)' };
      case 'function':
        return { path, message: 'expected a JSON value, got a function' };
      case 'symbol':
        return { path, message: 'expected a JSON value, got a symbol' };
    }
    if (v === null) continue;
    const object = v as object;
    if (depth >= MAX_JSON_DEPTH) {
      return { path, message: `expected at most ${MAX_JSON_DEPTH} levels of nesting` };
    }
    if (onPath.has(object)) {
      return { path, message: 'expected a JSON value, got a circular reference' };
    }
    if (Array.isArray(object)) {
      onPath.add(object);
      exits.push({ object, index: stack.length });
      // Holes are reported when reached, so the first problem in index order is the one named.
      for (let i = object.length - 1; i >= 0; i--) {
        stack.push({ value: i in object ? object[i] : HOLE, path: [...path, i], depth: depth + 1 });
      }
      continue;
    }
    const proto = Object.getPrototypeOf(object);
    if (proto !== Object.prototype && proto !== null) {
      const name =
        (proto?.constructor as { name?: string } | undefined)?.name || 'an object with a prototype';
      return {
        path,
        message: `expected a plain object, got ${name}${name === 'Date' ? ' (store it as an ISO string)' : ''}`,
      };
    }
    if (Object.getOwnPropertySymbols(object).length > 0) {
      return { path, message: 'expected string keys only, got a symbol key' };
    }
    onPath.add(object);
    exits.push({ object, index: stack.length });
    const keys = Object.keys(object);
    for (let i = keys.length - 1; i >= 0; i--) {
      const key = keys[i]!;
      stack.push({ value: (object as Record<string, unknown>)[key], path: [...path, key], depth: depth + 1 });
    }
  }
  return undefined;
}

/** UTF-8 byte length of a string without allocating an encoded copy. */
export function utf8Length(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        bytes += 4;
        i++;
      } else bytes += 3;
    } else bytes += 3;
  }
  return bytes;
}

/**
 * Whether a string is well-formed UTF-16 (no lone surrogate). SQLite stores text as UTF-8, where a
 * lone surrogate cannot be represented: it would come back as U+FFFD, naming another record.
 */
export function isWellFormed(text: string): boolean {
  return !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(text);
}
