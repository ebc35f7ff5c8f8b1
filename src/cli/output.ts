/**
 * Terminal output of the `sync-core` CLI: colours (off with `--no-color`, `NO_COLOR`, or when
 * stdout is not a terminal), tables, times and one-line values.
 *
 * @packageDocumentation
 */

import { stripVTControlCharacters } from 'node:util';
import Table from 'cli-table3';
import pc from 'picocolors';

/** The colour functions the CLI uses; identity functions when colour is off. */
export type Colors = ReturnType<typeof pc.createColors>;

/**
 * Whether to colour output written to `stream`: never when asked not to (`--no-color`,
 * `NO_COLOR`), nor into a pipe or file, where escape codes are noise.
 */
export function useColor(requested: boolean, stream: NodeJS.WriteStream = process.stdout): boolean {
  if (!requested) return false;
  const env = process.env;
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false;
  if (env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== '0') return true;
  return stream.isTTY === true && env.TERM !== 'dumb';
}

/** Colour functions, enabled or not. */
export function colors(enabled: boolean): Colors {
  return pc.createColors(enabled);
}

/** How wide the terminal is; a pipe or a file gets a generous width (nothing to wrap to). */
function terminalColumns(): number {
  return process.stdout.isTTY ? process.stdout.columns || 100 : 160;
}

/**
 * A compact table with plain borders. cli-table3's own header colour is switched off: colour, when
 * on, comes from the caller's {@link Colors}, so a table never carries escape codes when colour is
 * off. When the table is wider than the terminal, column `wrap` (long free text: an error message)
 * is narrowed and word-wrapped.
 */
export function table(
  head: readonly string[],
  rows: readonly (readonly string[])[],
  c: Colors,
  options: { readonly wrap?: number } = {},
): string {
  const widths = head.map(
    (h, i) =>
      Math.max(
        stripVTControlCharacters(h).length,
        ...rows.map((row) =>
          Math.max(...(row[i] ?? '').split('\n').map((line) => stripVTControlCharacters(line).length)),
        ),
      ) + 2,
  );
  const total = widths.reduce((sum, w) => sum + w, 0) + head.length + 1;
  const wrap = options.wrap;
  const overflow = total - terminalColumns();
  const wrapped = wrap !== undefined && overflow > 0;
  const t = new Table({
    head: head.map((h) => c.bold(h)),
    style: { head: [], border: [], compact: true, 'padding-left': 1, 'padding-right': 1 },
    ...(wrapped
      ? {
          colWidths: widths.map((w, i) => (i === wrap ? Math.max(24, w - overflow) : w)),
          wordWrap: true,
        }
      : {}),
  });
  for (const row of rows) t.push([...row]);
  return t.toString();
}

/** Two columns, label and value, without a header: one record in full. */
export function details(rows: readonly (readonly [string, string])[], c: Colors): string {
  const t = new Table({
    style: { head: [], border: [], compact: true, 'padding-left': 1, 'padding-right': 1 },
  });
  for (const [label, value] of rows) t.push([c.dim(label), value]);
  return t.toString();
}

/** `text` cut to `max` characters with an ellipsis, on one line. */
export function truncate(text: string, max: number): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length <= max ? line : `${line.slice(0, Math.max(0, max - 1))}…`;
}

/** A duration in words: `850 ms`, `42 s`, `3 min`, `2 h 5 min`, `3 d 4 h`. */
export function duration(ms: number): string {
  const abs = Math.abs(ms);
  if (abs < 1000) return `${Math.round(abs)} ms`;
  if (abs < 60_000) return `${Math.round(abs / 1000)} s`;
  if (abs < 3_600_000) return `${Math.round(abs / 60_000)} min`;
  if (abs < 86_400_000) {
    const h = Math.floor(abs / 3_600_000);
    const min = Math.round((abs % 3_600_000) / 60_000);
    return min === 0 ? `${h} h` : `${h} h ${min} min`;
  }
  const d = Math.floor(abs / 86_400_000);
  const h = Math.round((abs % 86_400_000) / 3_600_000);
  return h === 0 ? `${d} d` : `${d} d ${h} h`;
}

const pad = (n: number): string => String(n).padStart(2, '0');

/** A local wall-clock time, `2026-05-04 14:03:12`, for people reading a support ticket. */
export function localTime(ms: number): string {
  const d = new Date(ms);
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
  );
}

/** A time with how far it is from `now`: `2026-05-04 14:03:12 (3 min ago)`, `… (in 45 s)`. */
export function when(ms: number, now: number): string {
  return `${localTime(ms)} (${relative(ms, now)})`;
}

/** How far `ms` is from `now`, in words: `now`, `in 45 s`, `3 min ago`. */
export function relative(ms: number, now: number): string {
  const delta = ms - now;
  if (Math.abs(delta) < 1000) return 'now';
  return delta > 0 ? `in ${duration(delta)}` : `${duration(delta)} ago`;
}

/** When a pending mutation may be sent: `due now` once its time has passed. */
export function nextAttempt(ms: number, now: number): string {
  return ms <= now ? 'due now' : relative(ms, now);
}

/** A mutation's last error on one line: `http-503: the server is overloaded (HTTP 503)`. */
export function errorText(
  error: { readonly code: string; readonly message: string; readonly status?: number } | null,
): string {
  if (error === null) return '—';
  const status = error.status === undefined ? '' : ` (HTTP ${error.status})`;
  return `${error.code}: ${error.message}${status}`;
}

/** A scope as people read it: `u1 @ o1`, or `u1` without an organisation. */
export function scopeText(scope: { readonly userId: string; readonly orgId?: string }): string {
  return scope.orgId === undefined ? scope.userId : `${scope.userId} @ ${scope.orgId}`;
}

/** A version, or `—` when there is none. */
export function versionText(version: number | string | null): string {
  return version === null ? '—' : `v${version}`;
}
