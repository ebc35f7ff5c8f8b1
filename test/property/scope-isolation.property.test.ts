/**
 * DESIGN.md invariant 5 (scope isolation), FAULTS.md 32: under any interleaving of sign-in, sign-out,
 * user switches, enqueues, runs and network answers (fast-check's scheduler decides the order),
 * a mutation queued under user A is only ever sent in a request for A, while A is the active user.
 */
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { createSyncEngine, type NetworkAdapter, type PushResponse, type Scope, StateError } from 'sync-core';
import { createBetterSqlite3Storage } from 'sync-core/better-sqlite3';
import { describe, expect, it } from 'vitest';
import { manualClock, seededRandom } from '../helpers/storage-factories.js';

const USERS: readonly Scope[] = [
  { userId: 'alice', orgId: 'o1' },
  { userId: 'bob', orgId: 'o1' },
];
const key = (scope: Scope | undefined) => (scope ? `${scope.userId}/${scope.orgId ?? ''}` : 'none');

type Command =
  | { readonly kind: 'start'; readonly user: number }
  | { readonly kind: 'stop'; readonly purge: boolean }
  | { readonly kind: 'enqueue'; readonly record: number }
  | { readonly kind: 'run' };

const start = fc.record({ kind: fc.constant('start' as const), user: fc.integer({ min: 0, max: 1 }) });
const command: fc.Arbitrary<Command> = fc.oneof(
  { arbitrary: start, weight: 2 },
  { arbitrary: fc.record({ kind: fc.constant('stop' as const), purge: fc.boolean() }), weight: 1 },
  {
    arbitrary: fc.record({ kind: fc.constant('enqueue' as const), record: fc.integer({ min: 0, max: 3 }) }),
    weight: 5,
  },
  { arbitrary: fc.constant({ kind: 'run' as const }), weight: 4 },
);
/** Sessions begin with a sign-in; after that anything goes, in any order the scheduler picks. */
const commands = fc
  .tuple(start, fc.array(command, { minLength: 1, maxLength: 30 }))
  .map(([first, rest]) => [first, ...rest]);

describe('scope isolation (invariant 5)', () => {
  it('a mutation queued under a user is only sent for that user, while that user is signed in, in any interleaving', async () => {
    let requestsSent = 0;
    let answersAfterSignOut = 0;
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), commands, async (s, commands) => {
        const enqueuedUnder = new Map<string, string>();
        const violations: string[] = [];
        let engineRef: ReturnType<typeof createSyncEngine> | undefined;
        const network: NetworkAdapter = {
          push: (request) => {
            requestsSent++;
            const active = key(engineRef!.activeScope);
            if (key(request.scope) !== active) {
              violations.push(`request for ${key(request.scope)} sent while ${active} is active`);
            }
            for (const m of request.mutations) {
              if (enqueuedUnder.get(m.id) !== key(request.scope)) {
                violations.push(
                  `mutation of ${enqueuedUnder.get(m.id)} sent in a request for ${key(request.scope)}`,
                );
              }
            }
            // The answer arrives whenever the scheduler decides, interleaved with sign-outs.
            const answer: PushResponse = {
              type: 'results',
              results: request.mutations.map((m) => ({ id: m.id, status: 'applied' as const })),
            };
            return s.schedule(Promise.resolve(answer), 'push answer').then((a) => {
              if (key(engineRef!.activeScope) !== key(request.scope)) answersAfterSignOut++;
              return a;
            });
          },
        };
        const engine = createSyncEngine({
          storage: createBetterSqlite3Storage(new Database(':memory:')),
          entities: { activity: {} },
          network,
          clock: manualClock(),
          random: seededRandom(1),
          batch: { maxCount: 2 },
        });
        engineRef = engine;
        await engine.open();
        try {
          const tasks = commands.map((c) =>
            s.schedule(Promise.resolve(c), c.kind).then(async (cmd) => {
              try {
                switch (cmd.kind) {
                  case 'start':
                    await engine.start(USERS[cmd.user]!);
                    break;
                  case 'stop':
                    await engine.stop({ purge: cmd.purge });
                    break;
                  case 'enqueue': {
                    const scope = engine.activeScope;
                    const m = await engine.enqueue({
                      entity: 'activity',
                      op: 'create',
                      entityId: `r${cmd.record}`,
                      data: {},
                    });
                    enqueuedUnder.set(m.id, key(m.scope));
                    // The row's scope is the one that was active when enqueue was called.
                    if (key(m.scope) !== key(scope)) violations.push('enqueue stamped another scope');
                    break;
                  }
                  case 'run':
                    await engine.runOnce();
                    break;
                }
              } catch (error) {
                // Enqueue while signed out is refused; that is the expected answer, nothing else is.
                if (!(error instanceof StateError && error.code === 'NO_ACTIVE_SCOPE')) throw error;
              }
            }),
          );
          await s.waitFor(Promise.all(tasks));
          await s.waitAll();
        } finally {
          await engine.close();
        }
        expect(violations).toEqual([]);
      }),
      { numRuns: process.env.SYNC_CORE_LONG ? 2_000 : 150 },
    );
    // Not vacuous: requests were sent, and some answers arrived after their user had signed out.
    // (Over 150 random cases typically 60–100 requests; 43 was seen once, so the bar is 30.)
    expect(requestsSent).toBeGreaterThan(30);
    expect(answersAfterSignOut).toBeGreaterThan(0);
  });
});
