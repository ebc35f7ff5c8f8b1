/**
 * A tiny stand-in for `vitest` inside the browser: the storage conformance suite is bundled with
 * `vitest` aliased to this file, so its `describe`/`it`/hooks register here, and `expect` is
 * vitest's own (`@vitest/expect` over chai). The Node-side test lists the collected tests and runs
 * them one by one, each as its own vitest test.
 */
import { chai, JestAsymmetricMatchers, JestChaiExpect, JestExtend } from '@vitest/expect';

chai.use(JestExtend);
chai.use(JestChaiExpect);
chai.use(JestAsymmetricMatchers);

/** vitest's matchers (`toBe`, `toEqual`, `rejects`, …), as the suite uses them. */
export const expect = chai.expect;

type Hook = () => unknown;

interface Suite {
  readonly name: string;
  readonly parent: Suite | undefined;
  readonly beforeEach: Hook[];
  readonly afterEach: Hook[];
}

interface Test {
  readonly name: string;
  readonly suite: Suite;
  readonly fn: Hook;
}

const root: Suite = { name: '', parent: undefined, beforeEach: [], afterEach: [] };
let current = root;
const tests = new Map<string, Test>();

function fullName(suite: Suite, name: string): string {
  const names = [name];
  for (let s: Suite | undefined = suite; s !== undefined && s !== root; s = s.parent) names.unshift(s.name);
  return names.join(' > ');
}

export function describe(name: string, fn: () => void): void {
  const parent = current;
  current = { name, parent, beforeEach: [], afterEach: [] };
  try {
    fn();
  } finally {
    current = parent;
  }
}

export function it(name: string, fn: Hook): void {
  const key = fullName(current, name);
  if (tests.has(key)) throw new Error(`two tests named "${key}"`);
  tests.set(key, { name: key, suite: current, fn });
}
export const test = it;

export function beforeEach(fn: Hook): void {
  current.beforeEach.push(fn);
}

export function afterEach(fn: Hook): void {
  current.afterEach.push(fn);
}

/** The outcome of one test, as the Node side reports it. */
export interface TestResult {
  readonly name: string;
  readonly ok: boolean;
  readonly error?: string;
  readonly ms: number;
}

function chain(suite: Suite): Suite[] {
  const suites: Suite[] = [];
  for (let s: Suite | undefined = suite; s !== undefined; s = s.parent) suites.unshift(s);
  return suites;
}

function describeError(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}\n${error.stack ?? ''}`;
  return String(error);
}

/** Every collected test's full name, in declaration order. */
export function listTests(): string[] {
  return [...tests.keys()];
}

/** Run one test with its suites' hooks (outer `beforeEach` first, inner `afterEach` first). */
export async function runTest(name: string): Promise<TestResult> {
  const found = tests.get(name);
  if (found === undefined) return { name, ok: false, error: `no test named "${name}"`, ms: 0 };
  const suites = chain(found.suite);
  const started = performance.now();
  let error: unknown;
  let failed = false;
  try {
    for (const suite of suites) for (const hook of suite.beforeEach) await hook();
    await found.fn();
  } catch (thrown) {
    failed = true;
    error = thrown;
  }
  for (const suite of suites.reverse()) {
    for (const hook of suite.afterEach) {
      try {
        await hook();
      } catch (thrown) {
        if (!failed) {
          failed = true;
          error = thrown;
        }
      }
    }
  }
  const ms = Math.round(performance.now() - started);
  return failed ? { name, ok: false, error: describeError(error), ms } : { name, ok: true, ms };
}
