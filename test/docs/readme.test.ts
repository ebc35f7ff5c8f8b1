/**
 * Run the docs (STYLE.md example 8): every TypeScript block in the README is the verbatim content
 * of a file under examples/ (named on its first line), so `npm run typecheck` checks it; the
 * runnable ones are executed here exactly as a user would run them, with tsx.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot, runExample } from '../helpers/run-example.js';

const root = repoRoot;
const readme = readFileSync(join(root, 'README.md'), 'utf8');
const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);

describe('README', () => {
  it('has TypeScript examples, each the verbatim content of a file under examples/', () => {
    expect(blocks.length).toBeGreaterThan(0);
    for (const block of blocks) {
      const marker = /^\/\/ (examples\/\S+\.ts)\n/.exec(block);
      expect(
        marker,
        `README block without an "// examples/…" first line:\n${block.slice(0, 200)}`,
      ).not.toBeNull();
      expect(readFileSync(join(root, marker![1]!), 'utf8')).toBe(block);
    }
  });

  it('quickstart queues a mutation in better-sqlite3 and prints the queue stats', () => {
    const output = runExample('examples/quickstart/queue-stats.ts');
    expect(output).toMatch(/pending: 1/);
    expect(output).toMatch(/total: 1/);
  });

  it('the complete example pushes an app write to the reference server over HTTP', () => {
    const output = runExample('examples/quickstart/push-to-server.ts');
    expect(output.trim()).toBe('ok 1 pushed; 1 applied on the server');
  });
});
