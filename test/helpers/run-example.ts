import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { tempDir } from './storage-factories.js';

/** The repository root. */
export const repoRoot = join(__dirname, '..', '..');

// Examples run from a temporary directory (they write app.db), so tsx is loaded by its path and
// the repository's tsconfig (its `sync-core` path aliases) is named explicitly.
const tsx = pathToFileURL(join(repoRoot, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;

/** Run an example file exactly as a user would (`node --import tsx file`) and return its stdout. */
export function runExample(file: string): string {
  const { dir, remove } = tempDir('sync-core-example-');
  try {
    return execFileSync(process.execPath, ['--import', tsx, join(repoRoot, file)], {
      cwd: dir,
      encoding: 'utf8',
      env: { ...process.env, TSX_TSCONFIG_PATH: join(repoRoot, 'tsconfig.json') },
      timeout: 60_000,
    });
  } finally {
    remove();
  }
}
