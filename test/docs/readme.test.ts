/**
 * Run the docs (STYLE.md example 8): every TypeScript block in the README is the verbatim content
 * of a file under examples/ (named on its first line), so `npm run typecheck` checks it; the
 * runnable ones are executed here exactly as a user would run them, with tsx.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/storage-factories.js';

const root = join(__dirname, '..', '..');
const readme = readFileSync(join(root, 'README.md'), 'utf8');
// The example runs from a temporary directory (it writes app.db), so tsx is loaded by its path.
const tsx = pathToFileURL(join(root, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;
const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);

function runExample(file: string): string {
  const { dir, remove } = tempDir('sync-core-readme-');
  try {
    return execFileSync(process.execPath, ['--import', tsx, join(root, file)], {
      cwd: dir,
      encoding: 'utf8',
      env: { ...process.env, TSX_TSCONFIG_PATH: join(root, 'tsconfig.json') },
      timeout: 60_000,
    });
  } finally {
    remove();
  }
}

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
