/**
 * The storage conformance suite (test/conformance/storage-conformance.ts), run inside Chromium
 * against sql.js persisted to IndexedDB (`openIndexedDbStorage`): each of its tests is one test
 * here, so the report lists them one by one.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { CHROMIUM_PATH, hasChromium, isBrowserRequired, skipReason } from './chromium.js';
import { type ConformancePage, openConformancePage } from './conformance/conformance-page.js';

if (!hasChromium && isBrowserRequired) {
  it(`the in-browser conformance suite needs Chromium at ${CHROMIUM_PATH} (SYNC_CORE_REQUIRE_BROWSER=1)`, () => {
    expect.fail(`SYNC_CORE_REQUIRE_BROWSER=1 but ${CHROMIUM_PATH} does not exist (apt-get install chromium)`);
  });
}

// The tests' names come from the browser, so the page is opened while this file is collected.
const page: ConformancePage | undefined = hasChromium ? await openConformancePage() : undefined;

describe.skipIf(page === undefined)(`in Chromium${skipReason}`, () => {
  afterAll(() => page?.close(), 30_000);

  it('the bundled suite registered its tests', () => {
    expect(page?.names.length).toBeGreaterThan(20);
  });

  for (const name of page?.names ?? []) {
    it(name, { timeout: 30_000 }, async () => {
      const result = await page?.run(name);
      if (result !== undefined && !result.ok) throw new Error(result.error);
      expect(result?.ok).toBe(true);
    });
  }
});
