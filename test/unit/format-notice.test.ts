import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import {
  DEFAULT_NOTICE_MESSAGES,
  type FormatNoticeOptions,
  formatNotice,
  formatNotices,
} from '../../src/status/format-notice.js';
import type {
  AuthRequiredNotice,
  ConflictNotice,
  FailedNotice,
  Notice,
  OverwrittenNotice,
  StuckNotice,
  SyncedNotice,
} from '../../src/status/notice.js';

const base = { scope: { userId: 'u1', orgId: 'o1' }, createdAt: 1_000, updatedAt: 1_000, seenAt: null };

function synced(id: string, counts: Record<string, number>): SyncedNotice {
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  return { ...base, id, kind: 'synced', counts, total };
}
function failed(
  id: string,
  entity: string,
  message = 'Title is too long',
  code = 'rejected:invalid',
): FailedNotice {
  return {
    ...base,
    id,
    kind: 'failed',
    entity,
    entityId: `${id}-record`,
    mutationId: `${id}-m`,
    code,
    message,
  };
}
function conflict(id: string, entity: string): ConflictNotice {
  return { ...base, id, kind: 'conflict', entity, entityId: `${id}-record`, mutationId: `${id}-m` };
}
function overwritten(id: string, entity: string, serverVersion: number | null = 2): OverwrittenNotice {
  return {
    ...base,
    id,
    kind: 'overwritten',
    entity,
    entityId: `${id}-record`,
    mutationId: `${id}-m`,
    serverVersion,
  };
}
function stuck(id: string, entity: string, since = 500): StuckNotice {
  return { ...base, id, kind: 'stuck', entity, entityId: `${id}-record`, mutationId: `${id}-m`, since };
}
function authRequired(id: string): AuthRequiredNotice {
  return { ...base, id, kind: 'auth-required' };
}
function texts(notices: readonly Notice[], options?: FormatNoticeOptions): string[] {
  return formatNotices(notices, options).map((line) => line.text);
}
function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}
/** Call `fn`, expecting a ConfigError; return its message. */
function configErrorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).code).toBe('INVALID_OPTION');
    return (error as ConfigError).message;
  }
  throw new Error('expected a ConfigError, nothing was thrown');
}

describe('formatNotice: each kind in the built-in English', () => {
  it('synced, one entity type: singular and plural', () => {
    expect(formatNotice(synced('s', { activity: 1 })).text).toBe('1 activity synced while you were away');
    expect(formatNotice(synced('s', { activity: 12 })).text).toBe('12 activities synced while you were away');
  });

  it('synced, two entity types: listed, largest count first', () => {
    expect(formatNotice(synced('s', { contact: 3, activity: 12 })).text).toBe(
      '12 activities and 3 contacts synced while you were away',
    );
    expect(formatNotice(synced('s', { contact: 1, activity: 1 })).text).toBe(
      '1 activity and 1 contact synced while you were away',
    );
  });

  it('synced, more than two entity types: summed as changes', () => {
    expect(formatNotice(synced('s', { activity: 12, contact: 2, note: 1 })).text).toBe(
      '15 changes synced while you were away',
    );
  });

  it('synced: entity types with a zero count are left out', () => {
    expect(formatNotice(synced('s', { activity: 12, contact: 0 })).text).toBe(
      '12 activities synced while you were away',
    );
  });

  it('failed: singular and plural, never with the server message in the text', () => {
    const one = formatNotice(failed('f1', 'activity', 'Title contains "Ola Nordmann"'));
    expect(one.text).toBe('1 activity could not be synced');
    expect(one.text).not.toContain('Ola');
    expect(one.params['message']).toBe('Title contains "Ola Nordmann"');
    expect(texts([failed('f1', 'activity'), failed('f2', 'activity'), failed('f3', 'activity')])).toEqual([
      '3 activities could not be synced',
    ]);
  });

  it('conflict: singular with an article, plural without', () => {
    expect(formatNotice(conflict('c1', 'contact')).text).toBe('1 change to a contact needs your attention');
    expect(formatNotice(conflict('c1', 'activity')).text).toBe(
      '1 change to an activity needs your attention',
    );
    expect(texts([conflict('c1', 'contact'), conflict('c2', 'contact')])).toEqual([
      '2 changes to contacts need your attention',
    ]);
  });

  it('conflict: the article heuristic knows "a user" and "an hour"', () => {
    expect(formatNotice(conflict('c', 'user')).text).toBe('1 change to a user needs your attention');
    expect(formatNotice(conflict('c', 'hourEntry')).text).toBe(
      '1 change to an hour entry needs your attention',
    );
  });

  it("overwritten: singular with an article, plural without, the server's version named but not shown", () => {
    expect(formatNotice(overwritten('o1', 'visit')).text).toBe(
      "1 change to a visit was replaced by the server's version",
    );
    expect(formatNotice(overwritten('o1', 'activity', null)).text).toBe(
      "1 change to an activity was replaced by the server's version",
    );
    expect(texts([overwritten('o1', 'contact'), overwritten('o2', 'contact', 7)])).toEqual([
      "2 changes to contacts were replaced by the server's version",
    ]);
  });

  it('stuck: singular and plural verb', () => {
    expect(formatNotice(stuck('x1', 'activity')).text).toBe('1 activity is still waiting to sync');
    expect(texts([stuck('x1', 'activity'), stuck('x2', 'activity')])).toEqual([
      '2 activities are still waiting to sync',
    ]);
  });

  it('auth-required', () => {
    expect(formatNotice(authRequired('a')).text).toBe('Sign in again to keep syncing');
  });

  it('entity type names without a label are made readable and pluralised by the English rule', () => {
    expect(texts([failed('1', 'homeVisit'), failed('2', 'homeVisit')])).toEqual([
      '2 home visits could not be synced',
    ]);
    expect(formatNotice(synced('s', { phone_call: 2 })).text).toBe(
      '2 phone calls synced while you were away',
    );
    expect(formatNotice(synced('s', { address: 2 })).text).toBe('2 addresses synced while you were away');
    expect(formatNotice(synced('s', { box: 2 })).text).toBe('2 boxes synced while you were away');
    expect(formatNotice(synced('s', { match: 2 })).text).toBe('2 matches synced while you were away');
    expect(formatNotice(synced('s', { wish: 2 })).text).toBe('2 wishes synced while you were away');
    expect(formatNotice(synced('s', { day: 2 })).text).toBe('2 days synced while you were away');
    expect(formatNotice(synced('s', { SMSMessage: 2 })).text).toBe(
      '2 SMS messages synced while you were away',
    );
  });

  it('counts are formatted for the locale', () => {
    expect(formatNotice(synced('s', { activity: 1234 })).text).toBe(
      '1,234 activities synced while you were away',
    );
  });
});

describe('formatNotice: keys, params and severity', () => {
  it('each kind has its stable key and severity', () => {
    const lines = [
      synced('s', { activity: 1 }),
      failed('f', 'activity'),
      conflict('c', 'activity'),
      authRequired('a'),
      stuck('x', 'activity'),
      overwritten('o', 'activity'),
    ].map((n) => formatNotice(n));
    expect(lines.map(({ key, severity }) => [key, severity])).toEqual([
      ['sync.synced', 'info'],
      ['sync.failed', 'attention'],
      ['sync.conflict', 'attention'],
      ['sync.authRequired', 'attention'],
      ['sync.stuck', 'info'],
      ['sync.overwritten', 'info'],
    ]);
  });

  it('synced params carry the total, the phrase and each type largest first', () => {
    expect(formatNotice(synced('s', { contact: 3, activity: 12 })).params).toEqual({
      count: 15,
      entities: '12 activities and 3 contacts',
      entityTypes: 2,
      entity1: 'activity',
      count1: 12,
      entityLabel1: 'activities',
      entity2: 'contact',
      count2: 3,
      entityLabel2: 'contacts',
    });
    expect(formatNotice(synced('s', { activity: 1 })).params).toEqual({
      count: 1,
      entities: '1 activity',
      entityTypes: 1,
      entity1: 'activity',
      count1: 1,
      entityLabel1: 'activity',
      entity: 'activity',
      entityLabel: 'activity',
    });
  });

  it('failed params carry entity, label, message and code', () => {
    expect(formatNotice(failed('f', 'activity')).params).toEqual({
      count: 1,
      entity: 'activity',
      entityLabel: 'activity',
      message: 'Title is too long',
      code: 'rejected:invalid',
    });
  });

  it('failed params leave out message and code when the aggregated notices disagree', () => {
    const [line] = formatNotices([
      failed('f1', 'activity', 'Title is too long', 'rejected:invalid'),
      failed('f2', 'activity', 'Date is in the future', 'rejected:invalid'),
      failed('f3', 'activity', 'Date is in the future', 'exhausted'),
    ]);
    expect(line!.params).toEqual({ count: 3, entity: 'activity', entityLabel: 'activities' });
  });

  it('failed params leave out an empty server message', () => {
    expect(formatNotice(failed('f', 'activity', '', 'exhausted')).params).toEqual({
      count: 1,
      entity: 'activity',
      entityLabel: 'activity',
      code: 'exhausted',
    });
  });

  it('stuck params carry the oldest queue time', () => {
    const [line] = formatNotices([stuck('x1', 'activity', 900), stuck('x2', 'activity', 300)]);
    expect(line!.params).toEqual({ count: 2, entity: 'activity', entityLabel: 'activities', since: 300 });
  });

  it('overwritten params carry entity and label, like conflict', () => {
    const [line] = formatNotices([overwritten('o1', 'activity', 3), overwritten('o2', 'activity', 9)]);
    expect(line!.params).toEqual({ count: 2, entity: 'activity', entityLabel: 'activities' });
    expect(line!.noticeIds).toEqual(['o1', 'o2']);
  });

  it('auth-required params carry the count of notices', () => {
    expect(formatNotice(authRequired('a')).params).toEqual({ count: 1 });
  });
});

describe('formatNotices: aggregation and ordering', () => {
  const mixed: Notice[] = [
    synced('s1', { activity: 10, contact: 1 }),
    stuck('x1', 'activity'),
    failed('f1', 'contact'),
    conflict('c1', 'activity'),
    failed('f2', 'activity'),
    synced('s2', { activity: 2, contact: 2 }),
    failed('f3', 'activity'),
    authRequired('a1'),
    overwritten('o1', 'contact'),
    conflict('c2', 'contact'),
    overwritten('o2', 'activity'),
    conflict('c3', 'contact'),
    overwritten('o3', 'activity'),
  ];

  it('orders auth-required, conflict, failed, overwritten, stuck, synced; within a kind, most first', () => {
    expect(formatNotices(mixed).map(({ key, text, noticeIds }) => [key, text, noticeIds])).toEqual([
      ['sync.authRequired', 'Sign in again to keep syncing', ['a1']],
      ['sync.conflict', '2 changes to contacts need your attention', ['c2', 'c3']],
      ['sync.conflict', '1 change to an activity needs your attention', ['c1']],
      ['sync.failed', '2 activities could not be synced', ['f2', 'f3']],
      ['sync.failed', '1 contact could not be synced', ['f1']],
      ['sync.overwritten', "2 changes to activities were replaced by the server's version", ['o2', 'o3']],
      ['sync.overwritten', "1 change to a contact was replaced by the server's version", ['o1']],
      ['sync.stuck', '1 activity is still waiting to sync', ['x1']],
      ['sync.synced', '12 activities and 3 contacts synced while you were away', ['s1', 's2']],
    ]);
  });

  it('every notice id is covered by exactly one line', () => {
    const ids = formatNotices(mixed).flatMap((line) => line.noticeIds);
    expect([...ids].sort()).toEqual(mixed.map((n) => n.id).sort());
  });

  it('entity types with equal counts are ordered by name, whatever the input order', () => {
    const a = texts([failed('1', 'note'), failed('2', 'contact')]);
    const b = texts([failed('2', 'contact'), failed('1', 'note')]);
    expect(a).toEqual(['1 contact could not be synced', '1 note could not be synced']);
    expect(b).toEqual(a);
  });

  it('several auth-required notices make one line listing all their ids', () => {
    const lines = formatNotices([authRequired('a1'), authRequired('a2')]);
    expect(lines).toHaveLength(1);
    expect(lines[0]!.noticeIds).toEqual(['a1', 'a2']);
    expect(lines[0]!.params).toEqual({ count: 2 });
  });

  it('synced notices beyond two entity types in total read as changes', () => {
    expect(texts([synced('s1', { activity: 10, contact: 1 }), synced('s2', { note: 4 })])).toEqual([
      '15 changes synced while you were away',
    ]);
  });

  it('a notice given twice is read once', () => {
    const notice = failed('f1', 'activity');
    const lines = formatNotices([notice, notice, synced('s', { activity: 2 }), synced('s', { activity: 2 })]);
    expect(lines.map((l) => [l.text, l.noticeIds])).toEqual([
      ['1 activity could not be synced', ['f1']],
      ['2 activities synced while you were away', ['s']],
    ]);
  });

  it('no notices, no lines', () => {
    expect(formatNotices([])).toEqual([]);
  });

  it('does not modify its input, and returns frozen lines', () => {
    const input = deepFreeze([...mixed]);
    const before = structuredClone(input);
    const lines = formatNotices(input, { labels: { activity: 'visit' } });
    expect(input).toEqual(before);
    for (const line of lines) {
      expect(Object.isFrozen(line)).toBe(true);
      expect(Object.isFrozen(line.noticeIds)).toBe(true);
      expect(Object.isFrozen(line.params)).toBe(true);
    }
  });

  it('formatNotice gives the one line formatNotices gives for that notice', () => {
    for (const notice of mixed) expect(formatNotice(notice)).toEqual(formatNotices([notice])[0]);
  });
});

describe('labels', () => {
  it('a plain string label is pluralised by the English rule', () => {
    const options = { labels: { activity: 'visit', contact: 'family', note: 'Activity' } };
    expect(texts([synced('s', { activity: 12, contact: 3 })], options)).toEqual([
      '12 visits and 3 families synced while you were away',
    ]);
    expect(texts([conflict('c', 'activity')], options)).toEqual(['1 change to a visit needs your attention']);
    expect(texts([failed('1', 'note'), failed('2', 'note')], options)).toEqual([
      '2 Activities could not be synced',
    ]);
  });

  it('an object label gives each form', () => {
    const options = { labels: { activity: { one: 'person', other: 'people' } } };
    expect(texts([synced('s', { activity: 1 })], options)).toEqual(['1 person synced while you were away']);
    expect(texts([synced('s', { activity: 4 })], options)).toEqual(['4 people synced while you were away']);
    const [line] = formatNotices([failed('1', 'activity'), failed('2', 'activity')], options);
    expect(line!.params['entityLabel']).toBe('people');
    expect(line!.params['entity']).toBe('activity');
  });

  it('changeLabel names a change of any type', () => {
    const options = { changeLabel: 'update' };
    expect(texts([synced('s', { activity: 1, contact: 1, note: 1 })], options)).toEqual([
      '3 updates synced while you were away',
    ]);
    expect(texts([conflict('c', 'contact')], options)).toEqual([
      '1 update to a contact needs your attention',
    ]);
    expect(texts([overwritten('o1', 'contact'), overwritten('o2', 'contact')], options)).toEqual([
      "2 updates to contacts were replaced by the server's version",
    ]);
  });
});

describe('locales and messages', () => {
  it('Norwegian: labels and messages, one/other', () => {
    const options: FormatNoticeOptions = {
      locale: 'nb',
      labels: {
        activity: { one: 'aktivitet', other: 'aktiviteter' },
        contact: { one: 'kontakt', other: 'kontakter' },
      },
      messages: {
        'sync.synced': '{entities} ble synkronisert mens du var borte',
        'sync.conflict': {
          one: '{count} endring trenger oppmerksomheten din',
          other: '{count} endringer trenger oppmerksomheten din',
        },
        'sync.authRequired': 'Logg inn på nytt for å fortsette synkroniseringen',
        'sync.overwritten': {
          one: '{count} endring av en {entity} ble erstattet av serverens versjon',
          other: '{count} endringer av {entity} ble erstattet av serverens versjon',
        },
      },
    };
    expect(
      texts(
        [
          synced('s', { activity: 12, contact: 3 }),
          conflict('c1', 'contact'),
          overwritten('o1', 'contact'),
          conflict('c2', 'activity'),
          overwritten('o2', 'activity'),
          overwritten('o3', 'activity'),
          conflict('c3', 'activity'),
          authRequired('a'),
        ],
        options,
      ),
    ).toEqual([
      'Logg inn på nytt for å fortsette synkroniseringen',
      '2 endringer trenger oppmerksomheten din',
      '1 endring trenger oppmerksomheten din',
      '2 endringer av aktiviteter ble erstattet av serverens versjon',
      '1 endring av en kontakt ble erstattet av serverens versjon',
      '12 aktiviteter og 3 kontakter ble synkronisert mens du var borte',
    ]);
  });

  it('Polish: one/few/many pick the label form and the message form', () => {
    const options: FormatNoticeOptions = {
      locale: 'pl',
      labels: { contact: { one: 'kontakt', few: 'kontakty', many: 'kontaktów', other: 'kontaktu' } },
      messages: {
        'sync.stuck': {
          one: '{count} {entity} wciąż czeka na synchronizację',
          few: '{count} {entity} wciąż czekają na synchronizację',
          many: '{count} {entity} wciąż czeka na synchronizację',
          other: '{count} {entity} wciąż czeka na synchronizację',
        },
        'sync.synced': 'Zsynchronizowano: {entities}',
      },
    };
    const stuckContacts = (n: number) =>
      Array.from({ length: n }, (_, i) => stuck(`x${i}`, 'contact', 100 + i));
    expect(texts(stuckContacts(1), options)).toEqual(['1 kontakt wciąż czeka na synchronizację']);
    expect(texts(stuckContacts(3), options)).toEqual(['3 kontakty wciąż czekają na synchronizację']);
    expect(texts(stuckContacts(5), options)).toEqual(['5 kontaktów wciąż czeka na synchronizację']);
    expect(texts(stuckContacts(22), options)).toEqual(['22 kontakty wciąż czekają na synchronizację']);
    const overwrittenContacts = (n: number) =>
      Array.from({ length: n }, (_, i) => overwritten(`o${i}`, 'contact', i));
    const overwrittenOptions: FormatNoticeOptions = {
      ...options,
      messages: {
        'sync.overwritten': {
          one: '{count} {entity}: zmiana zastąpiona wersją z serwera',
          few: '{count} {entity}: zmiany zastąpione wersją z serwera',
          many: '{count} {entity}: zmian zastąpionych wersją z serwera',
          other: '{count} {entity}: zmiany zastąpione wersją z serwera',
        },
      },
    };
    expect(texts(overwrittenContacts(1), overwrittenOptions)).toEqual([
      '1 kontakt: zmiana zastąpiona wersją z serwera',
    ]);
    expect(texts(overwrittenContacts(3), overwrittenOptions)).toEqual([
      '3 kontakty: zmiany zastąpione wersją z serwera',
    ]);
    expect(texts(overwrittenContacts(5), overwrittenOptions)).toEqual([
      '5 kontaktów: zmian zastąpionych wersją z serwera',
    ]);
    expect(texts([synced('s', { contact: 12, note: 2 })], options)).toEqual([
      // `note` has no Polish label: the English fallback is the app's to replace.
      'Zsynchronizowano: 12 kontaktów i 2 notes',
    ]);
  });

  it('a category missing from a message or label falls back to other', () => {
    const options: FormatNoticeOptions = {
      locale: 'pl',
      labels: { contact: { one: 'kontakt', other: 'kontakty' } },
      messages: { 'sync.failed': { one: 'jeden: {count} {entity}', other: 'inne: {count} {entity}' } },
    };
    const five = Array.from({ length: 5 }, (_, i) => failed(`f${i}`, 'contact'));
    expect(texts(five, options)).toEqual(['inne: 5 kontakty']);
    expect(texts([failed('f', 'contact')], options)).toEqual(['jeden: 1 kontakt']);
  });

  it('English messages in another locale use its plural categories', () => {
    // Without messages, the built-in English templates pick `other` for Polish `few`.
    expect(texts([stuck('1', 'activity'), stuck('2', 'activity')], { locale: 'pl' })).toEqual([
      '2 activities are still waiting to sync',
    ]);
    expect(texts([overwritten('1', 'visit'), overwritten('2', 'visit')], { locale: 'pl' })).toEqual([
      "2 changes to visits were replaced by the server's version",
    ]);
    expect(texts([overwritten('1', 'visit')], { locale: 'pl' })).toEqual([
      "1 change to a visit was replaced by the server's version",
    ]);
  });

  it('message overrides replace only their key', () => {
    const options = { messages: { 'sync.failed': "Couldn't send {entities}" } };
    expect(
      texts([failed('1', 'activity'), failed('2', 'activity'), conflict('c', 'contact')], options),
    ).toEqual(['1 change to a contact needs your attention', "Couldn't send 2 activities"]);
  });

  it('an override may show the server message and any param by name', () => {
    const options = { messages: { 'sync.failed': '{entityLabel} {entity1}: {message} ({code})' } };
    expect(texts([failed('1', 'activity')], options)).toEqual([
      'activity {entity1}: Title is too long (rejected:invalid)',
    ]);
    const synced2 = { messages: { 'sync.synced': '{count1} {entityLabel1}, {count2} {entityLabel2}' } };
    expect(texts([synced('s', { activity: 5, contact: 1 })], synced2)).toEqual(['5 activities, 1 contact']);
  });

  it('unknown placeholders are left intact; placeholders inside labels are not expanded', () => {
    const options = {
      labels: { activity: '{count}-thing' },
      messages: { 'sync.failed': '{count} {entity} {unknown} {not a placeholder} {}' },
    };
    expect(texts([failed('1', 'activity')], options)).toEqual([
      '1 {count}-thing {unknown} {not a placeholder} {}',
    ]);
  });

  it('a placeholder that does not apply to a key stays intact', () => {
    expect(texts([authRequired('a')], { messages: { 'sync.authRequired': '{entity}: sign in' } })).toEqual([
      '{entity}: sign in',
    ]);
  });

  it('the default messages are exported and frozen', () => {
    expect(Object.keys(DEFAULT_NOTICE_MESSAGES).sort()).toEqual([
      'sync.authRequired',
      'sync.conflict',
      'sync.failed',
      'sync.overwritten',
      'sync.stuck',
      'sync.synced',
    ]);
    expect(Object.isFrozen(DEFAULT_NOTICE_MESSAGES)).toBe(true);
    // Copying a default message into `messages` renders the same text.
    const copied = { messages: { 'sync.conflict': DEFAULT_NOTICE_MESSAGES['sync.conflict'] } };
    expect(texts([conflict('c', 'activity')], copied)).toEqual(texts([conflict('c', 'activity')]));
  });
});

describe('invalid options and notices throw a ConfigError', () => {
  const one = [failed('f', 'activity')];
  const cases: [string, () => unknown, string][] = [
    [
      'options not an object',
      () => formatNotices(one, 'en' as never),
      'options: expected an object, got string',
    ],
    ['locale not a string', () => formatNotices(one, { locale: 5 as never }), 'locale: expected a BCP 47'],
    ['locale empty', () => formatNotices(one, { locale: '' }), 'locale: expected a BCP 47'],
    ['locale malformed', () => formatNotices(one, { locale: 'not a locale' }), 'got "not a locale"'],
    ['labels an array', () => formatNotices(one, { labels: [] as never }), 'labels: expected an object'],
    ['label a number', () => formatNotices(one, { labels: { activity: 3 as never } }), 'got number'],
    ['label empty', () => formatNotices(one, { labels: { activity: '' } }), 'got an empty string'],
    [
      'label object without other',
      () => formatNotices(one, { labels: { activity: { one: 'visit' } as never } }),
      'labels["activity"].other: expected a string, got undefined',
    ],
    [
      'label with an unknown category',
      () => formatNotices(one, { labels: { activity: { one: 'a', other: 'b', several: 'c' } } }),
      'labels["activity"]: expected plural categories among zero, one, two, few, many, other, got "several"',
    ],
    [
      'label form not a string',
      () => formatNotices(one, { labels: { activity: { one: 'a', other: 2 as never } } }),
      'labels["activity"].other: expected a string, got number',
    ],
    ['changeLabel null', () => formatNotices(one, { changeLabel: null as never }), 'changeLabel: expected'],
    ['messages null', () => formatNotices(one, { messages: null as never }), 'messages: expected an object'],
    [
      'unknown message key',
      () => formatNotices(one, { messages: { 'sync.faild': 'x' } as never }),
      'messages: expected keys among sync.authRequired, sync.conflict, sync.failed, sync.overwritten, sync.stuck, sync.synced, got "sync.faild"',
    ],
    [
      'message without other',
      () => formatNotices(one, { messages: { 'sync.failed': { one: 'x' } } }),
      'messages["sync.failed"].other: expected a string, got undefined',
    ],
    [
      'message empty',
      () => formatNotices(one, { messages: { 'sync.failed': '' } }),
      'messages["sync.failed"]: expected a non-empty string, got an empty string',
    ],
    ['message a number', () => formatNotices(one, { messages: { 'sync.failed': 1 as never } }), 'got number'],
    [
      'notices not an array',
      () => formatNotices({} as never),
      'notices: expected an array of notices, got object',
    ],
    ['notice null', () => formatNotices([null as never]), 'notices[0]: expected a notice object, got null'],
    [
      'unknown kind',
      () => formatNotices([...one, { ...base, id: 'z', kind: 'exploded' } as never]),
      'notices[1].kind: expected one of synced, failed, conflict, overwritten, auth-required, stuck, got "exploded"',
    ],
    [
      'notice without id',
      () => formatNotice({ ...base, kind: 'auth-required' } as never),
      'notice.id: expected a string, got undefined',
    ],
    [
      'synced count not an integer',
      () => formatNotice(synced('s', { activity: 1.5 })),
      'notice.counts["activity"]: expected a non-negative integer, got number',
    ],
    [
      'overwritten without entity',
      () => formatNotice({ ...overwritten('o', 'activity'), entity: undefined } as never),
      'notice.entity: expected an entity type name, got undefined',
    ],
    [
      'failed without entity',
      () => formatNotice({ ...failed('f', 'activity'), entity: undefined } as never),
      'notice.entity: expected an entity type name, got undefined',
    ],
  ];

  it.each(cases)('%s', (_name, fn, expected) => {
    expect(configErrorOf(fn)).toContain(expected);
  });

  it('keeps the Intl error as cause for a malformed locale', () => {
    try {
      formatNotices(one, { locale: 'not a locale' });
      expect.unreachable();
    } catch (error) {
      expect((error as ConfigError).cause).toBeInstanceOf(RangeError);
    }
  });

  it('undefined options and an undefined message are the defaults', () => {
    expect(texts(one, undefined)).toEqual(['1 activity could not be synced']);
    expect(texts(one, { messages: { 'sync.failed': undefined } })).toEqual([
      '1 activity could not be synced',
    ]);
  });
});
