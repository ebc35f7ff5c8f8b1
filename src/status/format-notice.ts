/**
 * Short, quiet texts for notices: "12 activities synced while you were away", "1 change to a
 * contact needs your attention". The app reads its unseen notices on the next foreground launch,
 * formats them here, shows them without interrupting the user, and acknowledges the ids each line
 * covers (DESIGN.md section 1).
 *
 * Notices never hold payloads, so a text holds only counts and entity labels. The server's reason
 * for a failure is handed over in `params.message` and never put in the default text: what a
 * server says is written for developers, and the user sees it only where the app decides to.
 *
 * @packageDocumentation
 */

import { invalidOption } from '../config.js';
import { ConfigError, describeType } from '../errors.js';
import type { Notice, NoticeKind } from './notice.js';

/** The stable key of each kind of text, for apps that translate by key. */
export type MessageKey =
  | 'sync.synced'
  | 'sync.failed'
  | 'sync.conflict'
  | 'sync.overwritten'
  | 'sync.authRequired'
  | 'sync.stuck';

/**
 * A message: one string, or one string per plural category of `{count}` (`zero`, `one`, `two`,
 * `few`, `many`, `other`, as `Intl.PluralRules` names them for the locale). `other` is required
 * and used for every category not given.
 *
 * Placeholders (ICU-lite: substitution only, no nested plural or select syntax):
 *
 * - `{count}`: the count, formatted for the locale (`1,234` in English).
 * - `{entity}`: the entity label in the form that agrees with `{count}` (`activity`, `activities`).
 *   When a synced text sums several entity types, the change label (`changes`).
 * - `{entities}`: the counted phrase: `3 activities`, or for synced
 *   `12 activities and 3 contacts` (joined with the locale's "and"), or `15 changes`.
 * - `{change}`: the change label in the form that agrees with `{count}` (`change`, `changes`).
 * - `{article}`: `a` or `an` for the singular entity label — an English heuristic by first letter.
 * - any other key of {@link FormattedNotice.params}: `{message}`, `{code}`, `{entity1}`…
 *
 * A placeholder that names none of these is left in the text as written.
 */
export type MessageTemplate = string | { readonly [pluralCategory: string]: string };

/**
 * What an entity type is called in texts. A plain string is the singular, made plural by a small
 * English rule (`visit` → `visits`, `activity` → `activities`, `address` → `addresses`); an object
 * gives every form by plural category (`one` and `other` required; `few`, `many`… where the
 * language has them, falling back to `other`).
 */
export type EntityLabel =
  | string
  | { readonly one: string; readonly other: string; readonly [pluralCategory: string]: string };

/** Options of {@link formatNotice} and {@link formatNotices}. Invalid options throw a `ConfigError`. */
export interface FormatNoticeOptions {
  /**
   * BCP 47 language tag choosing the plural rules (`Intl.PluralRules`), the number format of
   * `{count}` and the word joining two entity types (`Intl.ListFormat`). It does not translate the
   * built-in messages, which are English: give {@link FormatNoticeOptions.messages} for that.
   * @default 'en'
   */
  readonly locale?: string;
  /**
   * What each entity type is called, by entity type name: `{ activity: 'visit' }` or
   * `{ activity: { one: 'aktivitet', other: 'aktiviteter' } }`. Default: the entity type name made
   * readable (`homeVisit` and `home_visit` read `home visit`), pluralised by the English rule.
   */
  readonly labels?: Readonly<Record<string, EntityLabel>>;
  /**
   * What one change of any type is called, used when a synced text sums more than two entity
   * types (`15 changes synced…`) and by the built-in conflict and overwritten texts (`{change}`).
   * @default { one: 'change', other: 'changes' }
   */
  readonly changeLabel?: EntityLabel;
  /**
   * Wording per message key, replacing the built-in English ({@link DEFAULT_NOTICE_MESSAGES}) for
   * the keys given — another language, or an organisation's own tone.
   */
  readonly messages?: Readonly<Partial<Record<MessageKey, MessageTemplate>>>;
}

/** One line to show: one notice, or several of one kind read together. */
export interface FormattedNotice {
  /**
   * Stable message key: `sync.synced`, `sync.failed`, `sync.conflict`, `sync.overwritten`,
   * `sync.authRequired`, `sync.stuck`.
   */
  readonly key: MessageKey;
  /** The text, in the built-in English or the wording of {@link FormatNoticeOptions.messages}. */
  readonly text: string;
  /**
   * What an app that translates itself needs to build the same line:
   *
   * - every key: `count` (changes, or notices for `sync.authRequired`).
   * - `sync.failed`, `sync.conflict`, `sync.overwritten`, `sync.stuck`: `entity` (the entity type
   *   name) and `entityLabel` (its label agreeing with `count`).
   * - `sync.failed`: `message` (the server's reason) and `code` (`rejected:invalid`,
   *   `exhausted`…), each only when every notice on the line has the same one.
   * - `sync.stuck`: `since`, when the oldest of these mutations was queued (ms since epoch).
   * - `sync.synced`: `entities` (the counted phrase), `entityTypes` (how many types), and per type,
   *   largest count first, `entity1`, `count1`, `entityLabel1`, `entity2`…; with one type also
   *   `entity` and `entityLabel`.
   */
  readonly params: Readonly<Record<string, string | number>>;
  /** The ids of the notices this line covers: acknowledge them together once it was shown. */
  readonly noticeIds: readonly string[];
  /** `attention` when the user has something to do (sign in, resolve, retry); `info` otherwise. */
  readonly severity: 'info' | 'attention';
}

/**
 * The built-in English messages. A message given in {@link FormatNoticeOptions.messages} replaces
 * the one of its key.
 */
export const DEFAULT_NOTICE_MESSAGES: Readonly<Record<MessageKey, MessageTemplate>> = Object.freeze({
  'sync.authRequired': 'Sign in again to keep syncing',
  'sync.conflict': Object.freeze({
    one: '{count} {change} to {article} {entity} needs your attention',
    other: '{count} {change} to {entity} need your attention',
  }),
  'sync.failed': '{count} {entity} could not be synced',
  'sync.overwritten': Object.freeze({
    one: "{count} {change} to {article} {entity} was replaced by the server's version",
    other: "{count} {change} to {entity} were replaced by the server's version",
  }),
  'sync.stuck': Object.freeze({
    one: '{count} {entity} is still waiting to sync',
    other: '{count} {entity} are still waiting to sync',
  }),
  'sync.synced': '{entities} synced while you were away',
});

const MESSAGE_KEYS: readonly MessageKey[] = [
  'sync.authRequired',
  'sync.conflict',
  'sync.failed',
  'sync.overwritten',
  'sync.stuck',
  'sync.synced',
];
const PLURAL_CATEGORIES: readonly string[] = ['zero', 'one', 'two', 'few', 'many', 'other'];
const NOTICE_KINDS: readonly NoticeKind[] = [
  'synced',
  'failed',
  'conflict',
  'overwritten',
  'auth-required',
  'stuck',
];
const DEFAULT_CHANGE_LABEL: EntityLabel = Object.freeze({ one: 'change', other: 'changes' });
/** Beyond this many entity types, a synced text sums them as changes. */
const MAX_LISTED_TYPES = 2;

/**
 * Format one notice as a short text.
 *
 * @example
 * ```ts
 * import { formatNotice } from 'sync-core';
 *
 * const [notice] = await engine.status.unseenNotices();
 * if (notice) {
 *   const { text, severity } = formatNotice(notice, { labels: { activity: 'visit' } });
 *   showToast(text, severity); // "1 visit could not be synced"
 * }
 * ```
 */
export function formatNotice(notice: Notice, options?: FormatNoticeOptions): FormattedNotice {
  // One notice always makes exactly one line: a synced notice sums its types into one sentence.
  return format([notice], options, 'notice')[0]!;
}

/**
 * Format notices as few short lines, reading notices of one kind together: one line per entity
 * type for `failed`, `conflict`, `overwritten` and `stuck` ("3 activities could not be synced",
 * "2 changes to visits were replaced by the server's version"), one line for all `synced` notices
 * ("12 activities and 3 contacts synced while you were away"), one for `auth-required` ("Sign in
 * again to keep syncing"). Lines come in the order auth-required, conflict, failed, overwritten,
 * stuck, synced — what needs the user first — and, within a kind, the entity type with most
 * changes first. Each line lists the ids of the notices it covers.
 *
 * Pass one user's notices, as `engine.status.unseenNotices()` returns them. A notice id given
 * twice is read once. The input is never modified.
 *
 * @example
 * ```ts
 * import { formatNotices } from 'sync-core';
 *
 * // On the next foreground launch:
 * const notices = await engine.status.unseenNotices();
 * for (const line of formatNotices(notices, { labels: { activity: 'visit' } })) {
 *   showQuietBanner(line.text, line.severity); // "12 visits synced while you were away"
 *   await engine.status.acknowledge(line.noticeIds);
 * }
 * ```
 */
export function formatNotices(notices: readonly Notice[], options?: FormatNoticeOptions): FormattedNotice[] {
  if (!Array.isArray(notices)) invalidOption('notices', 'an array of notices', notices);
  return format(notices, options, 'notices');
}

interface Resolved {
  readonly plural: Intl.PluralRules;
  readonly number: Intl.NumberFormat;
  readonly list: Intl.ListFormat;
  readonly labels: ReadonlyMap<string, EntityLabel>;
  readonly changeLabel: EntityLabel;
  readonly messages: Readonly<Record<MessageKey, MessageTemplate>>;
}

interface EntityGroup {
  readonly entity: string;
  readonly ids: string[];
  readonly messages: Set<string>;
  readonly codes: Set<string>;
  since: number;
}

type PerEntityKind = 'conflict' | 'failed' | 'overwritten' | 'stuck';

/** Per-entity kinds in the order their lines come: what the user has to act on first. */
const PER_ENTITY_KINDS: readonly PerEntityKind[] = ['conflict', 'failed', 'overwritten', 'stuck'];

const KEY_OF: Readonly<Record<PerEntityKind, MessageKey>> = {
  conflict: 'sync.conflict',
  failed: 'sync.failed',
  overwritten: 'sync.overwritten',
  stuck: 'sync.stuck',
};

function format(notices: readonly Notice[], options: unknown, name: string): FormattedNotice[] {
  const resolved = resolveOptions(options);
  const seen = new Set<string>();
  const authIds: string[] = [];
  const syncedIds: string[] = [];
  const syncedCounts = new Map<string, number>();
  const groups: Record<PerEntityKind, Map<string, EntityGroup>> = {
    conflict: new Map(),
    failed: new Map(),
    overwritten: new Map(),
    stuck: new Map(),
  };

  notices.forEach((notice, index) => {
    const path = name === 'notice' ? 'notice' : `notices[${index}]`;
    checkNotice(notice, path);
    if (seen.has(notice.id)) return;
    seen.add(notice.id);
    switch (notice.kind) {
      case 'auth-required':
        authIds.push(notice.id);
        return;
      case 'synced':
        syncedIds.push(notice.id);
        for (const [entity, count] of Object.entries(notice.counts)) {
          if (count > 0) syncedCounts.set(entity, (syncedCounts.get(entity) ?? 0) + count);
        }
        return;
      default: {
        const byEntity = groups[notice.kind];
        let group = byEntity.get(notice.entity);
        if (group === undefined) {
          group = {
            entity: notice.entity,
            ids: [],
            messages: new Set(),
            codes: new Set(),
            since: Number.POSITIVE_INFINITY,
          };
          byEntity.set(notice.entity, group);
        }
        group.ids.push(notice.id);
        if (notice.kind === 'failed') {
          group.messages.add(notice.message);
          group.codes.add(notice.code);
        } else if (notice.kind === 'stuck') {
          group.since = Math.min(group.since, notice.since);
        }
      }
    }
  });

  const out: FormattedNotice[] = [];
  if (authIds.length > 0) {
    const params = { count: authIds.length };
    out.push(line('sync.authRequired', resolved, params, {}, authIds, 'attention'));
  }
  for (const kind of PER_ENTITY_KINDS) {
    const sorted = [...groups[kind].values()].sort(
      (a, b) => b.ids.length - a.ids.length || compareNames(a.entity, b.entity),
    );
    for (const group of sorted) out.push(entityLine(kind, group, resolved));
  }
  if (syncedIds.length > 0) out.push(syncedLine(syncedCounts, syncedIds, resolved));
  return out;
}

function entityLine(kind: PerEntityKind, group: EntityGroup, resolved: Resolved): FormattedNotice {
  const count = group.ids.length;
  const label = resolved.labels.get(group.entity) ?? humanize(group.entity);
  const entityLabel = labelFor(label, count, resolved);
  const params: Record<string, string | number> = { count, entity: group.entity, entityLabel };
  if (kind === 'failed') {
    const [message] = group.messages;
    if (group.messages.size === 1 && message !== undefined && message !== '') params['message'] = message;
    const [code] = group.codes;
    if (group.codes.size === 1 && code !== undefined && code !== '') params['code'] = code;
  } else if (kind === 'stuck' && Number.isFinite(group.since)) {
    params['since'] = group.since;
  }
  const values = {
    entity: entityLabel,
    entities: `${resolved.number.format(count)} ${entityLabel}`,
    article: indefiniteArticle(singular(label)),
  };
  // Nothing is left to do about a stuck change (it keeps retrying) or an overwritten one (the
  // server's version stands): the user is told, not asked.
  const severity = kind === 'stuck' || kind === 'overwritten' ? 'info' : 'attention';
  return line(KEY_OF[kind], resolved, params, values, group.ids, severity);
}

function syncedLine(counts: ReadonlyMap<string, number>, ids: string[], resolved: Resolved): FormattedNotice {
  const types = [...counts].sort(([a, x], [b, y]) => y - x || compareNames(a, b));
  const total = types.reduce((sum, [, count]) => sum + count, 0);
  const params: Record<string, string | number> = { count: total, entityTypes: types.length };
  const phrases: string[] = [];
  types.forEach(([entity, count], index) => {
    const label = labelFor(resolved.labels.get(entity) ?? humanize(entity), count, resolved);
    params[`entity${index + 1}`] = entity;
    params[`count${index + 1}`] = count;
    params[`entityLabel${index + 1}`] = label;
    phrases.push(`${resolved.number.format(count)} ${label}`);
  });
  const only = types.length === 1 ? types[0] : undefined;
  let entity = labelFor(resolved.changeLabel, total, resolved);
  let article = indefiniteArticle(singular(resolved.changeLabel));
  if (only !== undefined) {
    const label = resolved.labels.get(only[0]) ?? humanize(only[0]);
    entity = labelFor(label, total, resolved);
    article = indefiniteArticle(singular(label));
    params['entity'] = only[0];
    params['entityLabel'] = entity;
  }
  const entities =
    types.length >= 1 && types.length <= MAX_LISTED_TYPES
      ? resolved.list.format(phrases)
      : `${resolved.number.format(total)} ${entity}`;
  params['entities'] = entities;
  return line('sync.synced', resolved, params, { entity, entities, article }, ids, 'info');
}

function line(
  key: MessageKey,
  resolved: Resolved,
  params: Record<string, string | number>,
  values: Readonly<Record<string, string>>,
  ids: readonly string[],
  severity: FormattedNotice['severity'],
): FormattedNotice {
  const count = Number(params['count']);
  const category = resolved.plural.select(count);
  const template = resolved.messages[key];
  const chosen = typeof template === 'string' ? template : (template[category] ?? template['other'] ?? '');
  const substitutions: Record<string, string> = {
    ...values,
    change: labelFor(resolved.changeLabel, count, resolved),
    count: resolved.number.format(count),
  };
  const text = chosen.replace(/\{([A-Za-z_$][\w$]*)\}/g, (placeholder, name: string) => {
    const value = Object.hasOwn(substitutions, name)
      ? substitutions[name]
      : Object.hasOwn(params, name)
        ? params[name]
        : undefined;
    return value === undefined ? placeholder : String(value);
  });
  return Object.freeze({
    key,
    text,
    params: Object.freeze({ ...params }),
    noticeIds: Object.freeze([...ids]),
    severity,
  });
}

/** The form of `label` that agrees with `count` in the locale. */
function labelFor(label: EntityLabel, count: number, resolved: Resolved): string {
  const category = resolved.plural.select(count);
  if (typeof label === 'string') return category === 'one' ? label : pluralizeEnglish(label);
  return label[category] ?? label.other;
}

function singular(label: EntityLabel): string {
  return typeof label === 'string' ? label : label.one;
}

/**
 * English plural by a small rule: `y` after a consonant → `ies`; `s`, `x`, `ch`, `sh` → `es`;
 * otherwise `s`. The suffix follows the case of the last letter (`SMS` → `SMSES`).
 */
function pluralizeEnglish(word: string): string {
  const last = word.at(-1);
  if (last === undefined) return word;
  const upper = last !== last.toLowerCase();
  const suffix = (s: string) => (upper ? s.toUpperCase() : s);
  if (/[^aeiou]y$/i.test(word)) return word.slice(0, -1) + suffix('ies');
  if (/(s|x|ch|sh)$/i.test(word)) return word + suffix('es');
  return word + suffix('s');
}

/** `a` or `an` by the first letter, with the common English exceptions (`a user`, `an hour`). */
function indefiniteArticle(word: string): 'a' | 'an' {
  const w = word.trim().toLowerCase();
  if (/^(hour|honest|hono|heir)/.test(w)) return 'an';
  if (/^(uni|use|usu|uti|eu|one)/.test(w)) return 'a';
  return /^[aeiou]/.test(w) ? 'an' : 'a';
}

/** An entity type name made readable: `homeVisit`, `home_visit`, `home-visit` → `home visit`. */
function humanize(name: string): string {
  const words = name
    .replace(/([a-z\d])([A-Z])/g, '$1 $2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1 $2')
    .split(/[\s_-]+/)
    .filter((word) => word !== '')
    // Acronyms keep their case (`SMS message`); capitalised words do not (`Contact` → `contact`).
    .map((word) => (word.length > 1 && word === word.toUpperCase() ? word : word.toLowerCase()));
  return words.length > 0 ? words.join(' ') : name;
}

function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function checkNotice(notice: unknown, path: string): asserts notice is Notice {
  if (!isRecord(notice)) invalidOption(path, 'a notice object', notice);
  if (typeof notice['id'] !== 'string') invalidOption(`${path}.id`, 'a string', notice['id']);
  const kind = notice['kind'];
  if (typeof kind !== 'string' || !(NOTICE_KINDS as readonly string[]).includes(kind)) {
    throw new ConfigError(
      `${path}.kind: expected one of ${NOTICE_KINDS.join(', ')}, got ${
        typeof kind === 'string' ? JSON.stringify(kind.slice(0, 64)) : describeType(kind)
      }`,
    );
  }
  if (kind === 'synced') {
    const counts = notice['counts'];
    if (!isRecord(counts)) invalidOption(`${path}.counts`, 'an object of entity type → count', counts);
    for (const [entity, count] of Object.entries(counts)) {
      if (typeof count !== 'number' || !Number.isInteger(count) || count < 0) {
        invalidOption(`${path}.counts[${JSON.stringify(entity)}]`, 'a non-negative integer', count);
      }
    }
  } else if (kind !== 'auth-required') {
    if (typeof notice['entity'] !== 'string') {
      invalidOption(`${path}.entity`, 'an entity type name', notice['entity']);
    }
    if (kind === 'failed') {
      if (typeof notice['message'] !== 'string')
        invalidOption(`${path}.message`, 'a string', notice['message']);
      if (typeof notice['code'] !== 'string') invalidOption(`${path}.code`, 'a string', notice['code']);
    }
    if (kind === 'stuck' && (typeof notice['since'] !== 'number' || !Number.isFinite(notice['since']))) {
      invalidOption(`${path}.since`, 'a time in ms since epoch', notice['since']);
    }
  }
}

function resolveOptions(options: unknown): Resolved {
  if (options === undefined) options = {};
  if (!isRecord(options)) invalidOption('options', 'an object', options);
  const locale = options['locale'] ?? 'en';
  if (typeof locale !== 'string' || locale === '') {
    invalidOption('locale', "a BCP 47 language tag such as 'en' or 'nb-NO'", locale);
  }
  let plural: Intl.PluralRules;
  let number: Intl.NumberFormat;
  let list: Intl.ListFormat;
  try {
    plural = new Intl.PluralRules(locale);
    number = new Intl.NumberFormat(locale);
    list = new Intl.ListFormat(locale, { style: 'long', type: 'conjunction' });
  } catch (cause) {
    throw new ConfigError(
      `locale: expected a BCP 47 language tag such as 'en' or 'nb-NO', got ${JSON.stringify(locale.slice(0, 64))}`,
      { cause },
    );
  }

  const labels = new Map<string, EntityLabel>();
  const rawLabels = options['labels'];
  if (rawLabels !== undefined) {
    if (!isRecord(rawLabels)) invalidOption('labels', 'an object of entity type → label', rawLabels);
    for (const [entity, label] of Object.entries(rawLabels)) {
      labels.set(entity, checkLabel(label, `labels[${JSON.stringify(entity)}]`));
    }
  }
  const rawChange = options['changeLabel'];
  const changeLabel = rawChange === undefined ? DEFAULT_CHANGE_LABEL : checkLabel(rawChange, 'changeLabel');

  const messages: Record<MessageKey, MessageTemplate> = { ...DEFAULT_NOTICE_MESSAGES };
  const rawMessages = options['messages'];
  if (rawMessages !== undefined) {
    if (!isRecord(rawMessages)) invalidOption('messages', 'an object of message key → message', rawMessages);
    for (const [key, template] of Object.entries(rawMessages)) {
      if (!(MESSAGE_KEYS as readonly string[]).includes(key)) {
        throw new ConfigError(
          `messages: expected keys among ${MESSAGE_KEYS.join(', ')}, got ${JSON.stringify(key.slice(0, 64))}`,
        );
      }
      if (template === undefined) continue;
      messages[key as MessageKey] = checkForms(template, `messages[${JSON.stringify(key)}]`, ['other']);
    }
  }
  return { plural, number, list, labels, changeLabel, messages };
}

function checkLabel(label: unknown, path: string): EntityLabel {
  return checkForms(label, path, ['one', 'other']) as EntityLabel;
}

/** A non-empty string, or an object of plural category → string with the required categories. */
function checkForms(value: unknown, path: string, required: readonly string[]): MessageTemplate {
  const expected = `a string or an object of plural category (${PLURAL_CATEGORIES.join(', ')}) → string with ${required.join(' and ')}`;
  if (typeof value === 'string') {
    if (value === '') throw new ConfigError(`${path}: expected a non-empty string, got an empty string`);
    return value;
  }
  if (!isRecord(value)) invalidOption(path, expected, value);
  const forms: Record<string, string> = {};
  for (const [category, form] of Object.entries(value)) {
    if (!PLURAL_CATEGORIES.includes(category)) {
      throw new ConfigError(
        `${path}: expected plural categories among ${PLURAL_CATEGORIES.join(', ')}, got ${JSON.stringify(category.slice(0, 64))}`,
      );
    }
    if (typeof form !== 'string') invalidOption(`${path}.${category}`, 'a string', form);
    if (form === '') {
      throw new ConfigError(`${path}.${category}: expected a non-empty string, got an empty string`);
    }
    forms[category] = form;
  }
  for (const category of required) {
    if (!Object.hasOwn(forms, category)) invalidOption(`${path}.${category}`, 'a string', undefined);
  }
  return Object.freeze(forms);
}
