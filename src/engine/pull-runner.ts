import type { ResolvedEntity } from '../config.js';
import type { PullResponse } from '../contracts/network-adapter.js';
import { SyncError } from '../errors.js';
import { scopeKey } from '../queue/scope.js';
import { appTransaction } from './bookkeeping.js';
import type { RunContext, StopReason } from './sync-run.js';

/** How the run lets a pull loop know whether to go on. */
export interface PullControl {
  readonly signal: AbortSignal;
  /** Why no further page may be fetched (stopping, scope signed out, deadline near), or `undefined`. */
  stopReason(): StopReason | undefined;
  /** Renew the lease. @returns `false` when it was lost. */
  renew(): Promise<boolean>;
  /** Count a page applied. */
  onPage(changes: number, durationMs: number): void;
}

const SLOW_DOWN = new Set([429, 503]);

/**
 * Page through one entity type's changes since its stored cursor (DESIGN.md section 4, step 4).
 * Each page is applied by the app's handler in the same transaction that advances the cursor, so
 * a kill or a deadline between pages neither skips nor repeats a change: the next run resumes at
 * the last committed cursor.
 *
 * @returns why pulling must stop (and the run with it), or `undefined` when this entity type is
 * done.
 */
export async function pullEntity(
  ctx: RunContext,
  entity: ResolvedEntity,
  control: PullControl,
): Promise<StopReason | undefined> {
  const handler = entity.pull!;
  const pull = ctx.network.pull!.bind(ctx.network);
  const scope = scopeKey(ctx.scope);
  let refreshed = false;
  for (;;) {
    const why = control.stopReason();
    if (why !== undefined) return why;
    if (!(await control.renew())) return 'lease-lost';
    const [row] = await ctx.storage.all<{ cursor: string }>(
      'SELECT cursor FROM sync_cursors WHERE scope = ? AND entity = ?',
      [scope, entity.name],
    );
    const started = ctx.clock.now();
    const generation = ctx.auth.generation;
    let response: PullResponse;
    try {
      response = await pull({
        entity: entity.name,
        scope: ctx.scope,
        clientId: ctx.clientId,
        cursor: row?.cursor ?? null,
        limit: ctx.pullLimit,
        signal: control.signal,
      });
    } catch {
      response = {
        type: 'failure',
        failure: { class: 'ambiguous', code: 'adapter-error', message: 'network adapter threw on pull' },
      };
    }
    if (response.type === 'failure') {
      const { failure } = response;
      if (failure.class === 'auth' && !refreshed) {
        refreshed = true;
        const refresh = ctx.network.refreshCredentials
          ? () => ctx.network.refreshCredentials!(ctx.scope, control.signal)
          : undefined;
        if (await ctx.auth.onUnauthorized(generation, { value: false }, refresh)) continue;
      }
      switch (failure.class) {
        case 'offline':
          return 'offline';
        case 'aborted':
          return 'aborted';
        case 'auth':
          return 'auth-required';
        default:
          return failure.status !== undefined && SLOW_DOWN.has(failure.status) ? 'throttled' : 'server-error';
      }
    }
    const page = response;
    await ctx.storage.transaction('immediate', async (tx) => {
      const pendingEntityIds = new Set<string>();
      const ids = [...new Set(page.changes.map((c) => c.entityId))];
      for (let i = 0; i < ids.length; i += 500) {
        const chunk = ids.slice(i, i + 500);
        const rows = await tx.all<{ entity_id: string }>(
          `SELECT DISTINCT entity_id FROM sync_mutations WHERE scope = ? AND entity = ? AND entity_id IN (${chunk
            .map(() => '?')
            .join(', ')})`,
          [scope, entity.name, ...chunk],
        );
        for (const r of rows) pendingEntityIds.add(r.entity_id);
      }
      try {
        await handler(appTransaction(tx), {
          entity: entity.name,
          scope: ctx.scope,
          changes: page.changes,
          pendingEntityIds,
        });
      } catch (error) {
        throw new SyncError('PULL_HANDLER_FAILED', `the pull handler of "${entity.name}" threw`, {
          cause: error,
        });
      }
      await tx.run(
        `INSERT INTO sync_cursors (scope, entity, cursor, updated_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (scope, entity) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at`,
        [scope, entity.name, page.cursor, ctx.clock.now()],
      );
    });
    control.onPage(page.changes.length, Math.max(0, ctx.clock.now() - started));
    if (!page.hasMore) return undefined;
  }
}
