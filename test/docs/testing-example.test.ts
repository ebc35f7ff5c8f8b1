/**
 * Run the docs (STYLE.md example 8) for docs/testing.md: every TypeScript block is the verbatim
 * content of a file under examples/testing/ (named on its first line), and each of those files is
 * a vitest test an app team would write — imported here, so its tests run in this suite.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import '../../examples/testing/property-test.js';
import '../../examples/testing/scripted-faults.js';

const root = join(__dirname, '..', '..');
const doc = readFileSync(join(root, 'docs', 'testing.md'), 'utf8');
const blocks = [...doc.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);

describe('docs/testing.md', () => {
  it('has TypeScript examples, each the verbatim content of a file under examples/testing/ that this suite runs', () => {
    const files = blocks.map((block) => /^\/\/ (examples\/testing\/\S+\.ts)\n/.exec(block)?.[1]);
    expect(files).toEqual(['examples/testing/property-test.ts', 'examples/testing/scripted-faults.ts']);
    for (const [i, file] of files.entries()) {
      expect(
        readFileSync(join(root, file!), 'utf8'),
        `${file} differs from its block in docs/testing.md`,
      ).toBe(blocks[i]);
    }
  });

  it('the property-test example stays under 30 lines of code', () => {
    const code = readFileSync(join(root, 'examples/testing/property-test.ts'), 'utf8')
      .split('\n')
      .filter((line) => line.trim() !== '' && !line.startsWith('//'));
    expect(code.length).toBeLessThan(30);
  });
});
