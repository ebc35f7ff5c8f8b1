import type { JsonValue, MutationInput } from 'sync-core';
import { describe, expect, it } from 'vitest';
import { type CoalesceDecision, decideCoalesce } from '../../src/queue/coalesce.js';
import type { MutationQueue } from '../../src/queue/mutation-queue.js';
import { claimAll, startTestEngine, type TestEngine } from '../helpers/engine-harness.js';

type Step = { op: string; data: JsonValue | null };

describe('decideCoalesce', () => {
  const create = (data: JsonValue | null = { a: 1 }): Step => ({ op: 'create', data });
  const update = (data: JsonValue | null = { b: 2 }): Step => ({ op: 'update', data });
  const del = (data: JsonValue | null = null): Step => ({ op: 'delete', data });
  const custom = (data: JsonValue | null = { c: 3 }): Step => ({ op: 'approve', data });
  const append: CoalesceDecision = { kind: 'append' };

  it.each<[string, Step, Step, CoalesceDecision]>([
    [
      'create + update → create with fields merged',
      create(),
      update(),
      { kind: 'merge', op: 'create', data: { a: 1, b: 2 } },
    ],
    [
      'update + update → update, the later value wins',
      update({ a: 1, b: 1 }),
      update({ b: 2, c: 3 }),
      { kind: 'merge', op: 'update', data: { a: 1, b: 2, c: 3 } },
    ],
    [
      'update + update merges shallowly: a nested object is replaced, not merged',
      update({ address: { city: 'Oslo', zip: '0150' } }),
      update({ address: { city: 'Bergen' } }),
      { kind: 'merge', op: 'update', data: { address: { city: 'Bergen' } } },
    ],
    [
      'update + update keeps an explicit null from the later update',
      update({ a: 1 }),
      update({ a: null }),
      { kind: 'merge', op: 'update', data: { a: null } },
    ],
    ['create + delete → cancel', create(), del(), { kind: 'cancel' }],
    ['update + delete → delete', update(), del(), { kind: 'merge', op: 'delete', data: null }],
    [
      'update + delete with a payload → delete with that payload',
      update(),
      del({ why: 'x' }),
      { kind: 'merge', op: 'delete', data: { why: 'x' } },
    ],
    ['delete + create → append', del(), create(), append],
    ['delete + update → append', del(), update(), append],
    ['delete + delete → append', del(), del(), append],
    ['create + create → append', create(), create(), append],
    ['update + create → append', update(), create(), append],
    ['custom + update → append', custom(), update(), append],
    ['custom + delete → append', custom(), del(), append],
    ['update + custom → append', update(), custom(), append],
    ['create + custom → append', create(), custom(), append],
    ['custom + custom → append', custom(), custom(), append],
    ['create with non-object data + update → append', create(['x']), update(), append],
    ['update + update with null data → append', update(), update(null), append],
  ])('%s', (_name, last, next, expected) => {
    expect(decideCoalesce(last, next)).toEqual(expected);
  });

  it('never mutates its inputs', () => {
    const last = Object.freeze({ op: 'update', data: Object.freeze({ a: 1 }) });
    const next = Object.freeze({ op: 'update', data: Object.freeze({ b: 2 }) });
    expect(decideCoalesce(last, next)).toEqual({ kind: 'merge', op: 'update', data: { a: 1, b: 2 } });
    expect(last.data).toEqual({ a: 1 });
  });
});

const ENTITIES = {
  doc: { coalesce: true, customOps: { approve: null } },
  plain: {},
  tiny: { coalesce: true, maxPayloadBytes: 60 },
};

async function coalescingEngine(): Promise<TestEngine> {
  return startTestEngine({ entities: ENTITIES });
}

const doc = (op: string, data?: JsonValue, extra: Partial<MutationInput> = {}): MutationInput => ({
  entity: 'doc',
  op,
  entityId: 'r1',
  ...(data === undefined ? {} : { data }),
  ...extra,
});

/** Claim and confirm until nothing is due; returns what was sent, in order. */
async function drain(queue: MutationQueue, rounds = 10): Promise<string[]> {
  const sent: string[] = [];
  for (let round = 0; round < rounds; round++) {
    const claimed = await claimAll(queue, `drain-${round}`);
    if (claimed.length === 0) break;
    sent.push(...claimed.map((m) => m.id));
    await queue.record(
      `drain-${round}`,
      claimed.map((m) => ({ id: m.id, outcome: { type: 'confirmed' } as const })),
    );
  }
  return sent;
}

describe('coalescing through the engine (entities with coalesce: true)', () => {
  it('merges update + update into the first update: later fields win, shallowly', async () => {
    const { engine } = await coalescingEngine();
    const first = await engine.enqueue(doc('update', { title: 'a', address: { city: 'Oslo', zip: '0150' } }));
    const second = await engine.enqueue(doc('update', { title: 'b', address: { city: 'Bergen' } }));
    expect(second.coalesced).toBe('merged');
    expect(second.id).toBe(first.id);
    expect(second.key).toBe(first.key);
    expect(second.seq).toBe(first.seq);
    const stored = await engine.queue.list();
    expect(stored).toHaveLength(1);
    expect(stored[0]).toMatchObject({
      id: first.id,
      op: 'update',
      data: { title: 'b', address: { city: 'Bergen' } },
    });
  });

  it('merges create + update into a create', async () => {
    const { engine } = await coalescingEngine();
    const created = await engine.enqueue(doc('create', { title: 'a', done: false }));
    const merged = await engine.enqueue(doc('update', { done: true }));
    expect(merged).toMatchObject({ coalesced: 'merged', id: created.id, op: 'create' });
    expect(await engine.queue.get(created.id)).toMatchObject({
      op: 'create',
      data: { title: 'a', done: true },
    });
    expect((await engine.queue.stats()).total).toBe(1);
  });

  it('cancels create + delete: nothing is queued and the removed create is returned', async () => {
    const { engine } = await coalescingEngine();
    const created = await engine.enqueue(doc('create', { title: 'a' }));
    await engine.enqueue(doc('update', { title: 'b' }));
    const cancelled = await engine.enqueue(doc('delete'));
    expect(cancelled.coalesced).toBe('cancelled');
    expect(cancelled).toMatchObject({ id: created.id, op: 'create', data: { title: 'b' } });
    expect((await engine.queue.stats()).total).toBe(0);
    expect(await engine.queue.get(created.id)).toBeUndefined();
  });

  it('turns update + delete into a delete that keeps the first base version', async () => {
    const { engine } = await coalescingEngine();
    const updated = await engine.enqueue(doc('update', { title: 'a' }, { baseVersion: 3 }));
    const deleted = await engine.enqueue(doc('delete', undefined, { baseVersion: 4 }));
    expect(deleted).toMatchObject({
      coalesced: 'merged',
      id: updated.id,
      op: 'delete',
      data: null,
      baseVersion: 3,
    });
    const stored = await engine.queue.get(updated.id);
    expect(stored).toMatchObject({ op: 'delete', data: null, baseVersion: 3 });
    expect((await engine.queue.stats()).total).toBe(1);
  });

  it('appends delete + create: a re-created record is a new mutation', async () => {
    const { engine } = await coalescingEngine();
    await engine.enqueue(doc('delete'));
    const created = await engine.enqueue(doc('create', { title: 'again' }));
    expect(created.coalesced).toBe('none');
    expect((await engine.queue.list()).map((m) => m.op)).toEqual(['delete', 'create']);
  });

  it('never coalesces custom ops, before or after an update', async () => {
    const { engine } = await coalescingEngine();
    await engine.enqueue(doc('approve', { by: 'u1' }));
    const second = await engine.enqueue(doc('approve', { by: 'u2' }));
    const update = await engine.enqueue(doc('update', { title: 'x' }));
    const third = await engine.enqueue(doc('approve'));
    expect([second.coalesced, update.coalesced, third.coalesced]).toEqual(['none', 'none', 'none']);
    expect((await engine.queue.list()).map((m) => m.op)).toEqual(['approve', 'approve', 'update', 'approve']);
  });

  it('never merges for an entity type without coalesce', async () => {
    const { engine } = await coalescingEngine();
    const plain = (op: string, data?: JsonValue): MutationInput => ({ ...doc(op, data), entity: 'plain' });
    await engine.enqueue(plain('create', { a: 1 }));
    await engine.enqueue(plain('update', { b: 2 }));
    await engine.enqueue(plain('update', { c: 3 }));
    const deleted = await engine.enqueue(plain('delete'));
    expect(deleted.coalesced).toBe('none');
    expect((await engine.queue.list()).map((m) => m.op)).toEqual(['create', 'update', 'update', 'delete']);
  });

  it('keeps records apart: different ids, entity types or scopes never merge', async () => {
    const { engine } = await coalescingEngine();
    await engine.enqueue(doc('update', { a: 1 }));
    expect((await engine.enqueue(doc('update', { a: 2 }, { entityId: 'r2' }))).coalesced).toBe('none');
    expect((await engine.enqueue({ ...doc('update', { a: 3 }), entity: 'tiny' })).coalesced).toBe('none');
    await engine.stop();
    await engine.start({ userId: 'someone-else' });
    expect((await engine.enqueue(doc('update', { a: 4 }))).coalesced).toBe('none');
    expect((await engine.queue.stats({ scope: 'all' })).total).toBe(4);
  });

  it('never merges into a mutation that was claimed once, even after its claim was released', async () => {
    const t = await coalescingEngine();
    const queue = t.internalQueue();
    const first = await t.engine.enqueue(doc('update', { title: 'a' }));
    const claimed = await claimAll(queue, 'run-1');
    expect(claimed.map((m) => m.id)).toEqual([first.id]);
    await queue.record('run-1', [{ id: first.id, outcome: { type: 'release' } }]);
    expect((await t.engine.queue.get(first.id))?.state).toBe('pending');

    const second = await t.engine.enqueue(doc('update', { title: 'b' }));
    expect(second.coalesced).toBe('none');
    expect(second.id).not.toBe(first.id);
    const third = await t.engine.enqueue(doc('delete'));
    expect(third).toMatchObject({ coalesced: 'merged', id: second.id, op: 'delete' });
    expect(await t.engine.queue.get(first.id)).toMatchObject({ op: 'update', data: { title: 'a' } });
  });

  it('never merges into an inflight or failed mutation', async () => {
    const t = await coalescingEngine();
    const queue = t.internalQueue();
    const first = await t.engine.enqueue(doc('create', { title: 'a' }));
    await claimAll(queue, 'run-1');
    expect((await t.engine.enqueue(doc('update', { title: 'b' }))).coalesced).toBe('none');
    expect((await t.engine.enqueue({ ...doc('create', { n: 1 }), entityId: 'r2' })).coalesced).toBe('none');
    const [r2] = await claimAll(queue, 'run-2');
    await queue.record('run-2', [
      {
        id: r2!.id,
        outcome: { type: 'failed', error: { code: 'rejected', message: 'no' }, countsAttempt: true },
      },
    ]);
    expect((await t.engine.enqueue({ ...doc('delete'), entityId: 'r2' })).coalesced).toBe('none');
    expect(await t.engine.queue.get(first.id)).toMatchObject({ state: 'inflight', data: { title: 'a' } });
    expect(await t.engine.queue.get(r2!.id)).toMatchObject({ state: 'failed', op: 'create' });
  });

  it('merges when the new mutation brings no new dependency, keeping the existing ones', async () => {
    const { engine } = await coalescingEngine();
    const first = await engine.enqueue(doc('update', { a: 1 }, { dependsOn: ['dep-1', 'dep-2'] }));
    const merged = await engine.enqueue(doc('update', { b: 2 }, { dependsOn: ['dep-2'] }));
    expect(merged.coalesced).toBe('merged');
    expect((await engine.queue.get(first.id))?.dependsOn).toEqual(['dep-1', 'dep-2']);
  });

  it('appends instead of merging when the new mutation brings a new dependency (it may be newer than the tail)', async () => {
    const { engine } = await coalescingEngine();
    const first = await engine.enqueue(doc('update', { a: 1 }, { dependsOn: ['dep-1'] }));
    const second = await engine.enqueue(doc('update', { b: 2 }, { dependsOn: ['dep-3'] }));
    expect(second.coalesced).toBe('none');
    expect((await engine.queue.get(first.id))?.dependsOn).toEqual(['dep-1']);
    expect((await engine.queue.get(second.id))?.dependsOn).toEqual(['dep-3']);
  });

  it('appends instead of merging when the merged payload would exceed maxPayloadBytes', async () => {
    const { engine } = await coalescingEngine();
    const tiny = (data: JsonValue): MutationInput => ({ entity: 'tiny', op: 'update', entityId: 't', data });
    // Each payload is 38 bytes; merged they would be 75, over the entity's 60.
    const first = await engine.enqueue(tiny({ a: 'x'.repeat(30) }));
    const second = await engine.enqueue(tiny({ b: 'y'.repeat(30) }));
    expect(second.coalesced).toBe('none');
    expect((await engine.queue.list()).map((m) => m.data)).toEqual([
      { a: 'x'.repeat(30) },
      { b: 'y'.repeat(30) },
    ]);
    // A small update still merges into the (new) last one.
    expect((await engine.enqueue(tiny({ c: 1 }))).coalesced).toBe('merged');
    expect((await engine.queue.get(first.id))?.data).toEqual({ a: 'x'.repeat(30) });
  });

  it('coalesces inside engine.transaction and enqueueMany too', async () => {
    const { engine } = await coalescingEngine();
    const many = await engine.enqueueMany([
      doc('create', { a: 1 }),
      doc('update', { b: 2 }),
      doc('update', { a: 3 }),
    ]);
    expect(many.map((m) => m.coalesced)).toEqual(['none', 'merged', 'merged']);
    await engine.transaction(async (tx) => {
      expect((await tx.enqueue(doc('delete'))).coalesced).toBe('cancelled');
    });
    expect((await engine.queue.stats()).total).toBe(0);
  });

  it('announces mutation:enqueued with coalesced and ids only, never the payload', async () => {
    const t = await coalescingEngine();
    const created = await t.engine.enqueue(doc('create', { secret: 'SECRET-TOKEN-123' }));
    await t.engine.enqueue(doc('update', { more: 'SECRET-TOKEN-123' }));
    await t.engine.enqueue(doc('delete'));
    expect(t.events).toEqual([
      { id: created.id, entity: 'doc', op: 'create', coalesced: 'none' },
      { id: created.id, entity: 'doc', op: 'create', coalesced: 'merged' },
      { id: created.id, entity: 'doc', op: 'create', coalesced: 'cancelled' },
    ]);
    for (const event of t.events) {
      expect(Object.isFrozen(event)).toBe(true);
      expect(Object.keys(event).sort()).toEqual(['coalesced', 'entity', 'id', 'op']);
      expect(JSON.stringify(event)).not.toContain('SECRET');
    }
  });

  it('sends a merged record once, with the merged content', async () => {
    const t = await coalescingEngine();
    const first = await t.engine.enqueue(doc('create', { a: 1 }));
    await t.engine.enqueue(doc('update', { b: 2 }));
    const [sent] = await claimAll(t.internalQueue(), 'run');
    expect(sent).toMatchObject({ id: first.id, key: first.key, op: 'create', data: { a: 1, b: 2 } });
  });

  // Regression (was a bug in src/queue/mutation-queue.ts, #coalesce: `dependsOn` union): an update that lists the
  // record's own pending mutation in dependsOn is merged into that very mutation, which then
  // depends on itself; CLAIM_SQL never finds it due, so the record stalls forever (and every later
  // mutation on it). Expected: a merge drops the tail's own id, or appends instead.
  it('a delete does not cancel a create that another mutation depends on: the delete is queued', async () => {
    const { engine } = await coalescingEngine();
    const parent = await engine.enqueue(doc('create', { a: 1 }));
    await engine.enqueue({
      entity: 'plain',
      op: 'create',
      entityId: 'child',
      data: {},
      dependsOn: [parent.id],
    });
    const del = await engine.enqueue(doc('delete', undefined));
    expect(del.coalesced).toBe('none');
    expect((await engine.queue.list()).map((m) => m.op)).toEqual(['create', 'create', 'delete']);
  });

  it('never makes a merged mutation depend on itself (the record would never be sent)', async () => {
    const t = await coalescingEngine();
    const first = await t.engine.enqueue(doc('update', { a: 1 }));
    const second = await t.engine.enqueue(doc('update', { b: 2 }, { dependsOn: [first.id] }));
    const stored = await t.engine.queue.get(second.id);
    expect(stored?.dependsOn ?? []).not.toContain(stored?.id);
    expect(await drain(t.internalQueue())).toEqual([first.id, second.id]);
    expect((await t.engine.queue.stats()).total).toBe(0);
  });

  // Regression (was a bug in src/queue/mutation-queue.ts, #coalesce): merging moves the later update back to the
  // tail's place in the queue, but keeps its dependencies on mutations enqueued *after* that tail.
  // A (r1) ← B (r2, dependsOn A) ← update r1 (dependsOn B) merges into A: A now depends on B and
  // B on A, a cycle; neither is ever claimed. Expected: append instead of merging when the new
  // mutation depends on anything newer than the tail.
  it('never creates a dependency cycle by merging: the queue always drains', async () => {
    const t = await coalescingEngine();
    const a = await t.engine.enqueue(doc('update', { a: 1 }));
    const b = await t.engine.enqueue({
      entity: 'plain',
      op: 'create',
      entityId: 'r2',
      data: {},
      dependsOn: [a.id],
    });
    await t.engine.enqueue(doc('update', { a: 2 }, { dependsOn: [b.id] }));
    await drain(t.internalQueue());
    expect((await t.engine.queue.stats()).total).toBe(0);
  });
});
