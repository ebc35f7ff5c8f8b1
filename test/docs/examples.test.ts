/**
 * Run the runnable examples the docs point to (docs/notices.md, docs/conflicts.md, docs/pull.md)
 * exactly as a user would, with tsx, and check what they print line by line.
 */
import { describe, expect, it } from 'vitest';
import { runExample } from '../helpers/run-example.js';

describe('examples', () => {
  it('next-launch: offline changes synced in the background, then notices, a conflict and a refused change', () => {
    const output = runExample('examples/next-launch/next-launch.ts');
    expect(output.trimEnd().split('\n')).toEqual([
      'background run: ok, 3 pushed, 1 failed, 1 conflicted, 4 pulled',
      '[attention] 1 change to a visit needs your attention',
      '[attention] 1 visit could not be synced',
      '[info] 3 visits synced while you were away',
      'conflict on a0: local {"minutes":90} made against v1, server {"title":"Group meeting (moved to 14:00)","minutes":60} at v2',
      'foreground run: ok, 1 pushed, 1 pulled',
      'a0 in the app: Group meeting (moved to 14:00), 90 min, v3',
      '[info] 1 visit synced while you were away',
      'a4 was refused: a visit lasts at least one minute',
      'server applied 4 changes; 1 failed change left in the queue',
    ]);
  });

  it('background-node: after an outage the timer scheduler syncs by itself, with no runOnce in the program', () => {
    const lines = runExample('examples/background-node/sync-by-itself.ts').trimEnd().split('\n');
    // Offline runs (connections refused) back off; a later scheduled run delivers everything.
    expect(lines.filter((l) => l.startsWith('run (')).some((l) => l.includes(': offline, 0 pushed'))).toBe(
      true,
    );
    // Delivered by scheduled runs alone (one, or several when a run started between enqueues).
    const pushed = lines
      .filter((l) => l.startsWith('run (schedule): ok'))
      .reduce((sum, l) => sum + Number(/(\d+) pushed/.exec(l)?.[1] ?? 0), 0);
    expect(pushed).toBe(5);
    expect(lines.at(-1)).toBe('server applied 5 of 5; queue holds 0');
  });
});
