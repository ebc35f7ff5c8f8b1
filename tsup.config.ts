import { rmSync } from 'node:fs';
import { defineConfig, type Options } from 'tsup';

/**
 * Entries of the published package. Adapters import the core as `sync-core`, exactly like a
 * third-party adapter; the alias points that at the core's source so that, with `splitting`, the
 * core lands in one shared chunk and an error thrown inside an adapter bundle is the same class the
 * app imported from `sync-core` (plain `instanceof` works, no duplicated class).
 */
const entry = {
  index: 'src/index.ts',
  'better-sqlite3': 'adapters/better-sqlite3/index.ts',
  'sql-js': 'adapters/sql-js/index.ts',
  fetch: 'adapters/fetch/index.ts',
  testing: 'src/testing/index.ts',
};

const shared: Options = {
  entry,
  outDir: 'dist',
  target: 'es2022',
  platform: 'neutral',
  splitting: true,
  sourcemap: true,
  treeshake: true,
  dts: true,
  // Optional peers are never bundled: importing the core must not load them.
  external: ['better-sqlite3', 'sql.js', 'undici', 'fast-check', /^node:/],
  esbuildOptions(options) {
    options.alias = { 'sync-core': './src/index.ts' };
  },
};

/**
 * The `sync-core` command (package.json `bin`): an app of the core, built on its own for Node.
 *
 * - It imports the core as `sync-core` and leaves that import alone: Node resolves it to this
 *   package itself (self-reference through `exports`), so the bin runs on the same built core as
 *   the app and carries no second copy.
 * - Its command-line libraries (commander, cli-table3, picocolors) are bundled in: they are
 *   devDependencies, so installing sync-core as a library pulls in nothing for the CLI. They are
 *   CommonJS, hence the `require` the banner defines for their `require('node:…')` calls.
 * - The reference server (examples/server) is bundled in as a chunk that only `sync-core serve`
 *   loads: it imports better-sqlite3 (an optional peer), which `--help`, `inspect`… must not need
 *   at startup. Chunks go to `dist/cli/`, which the library build's `clean` leaves alone; this
 *   build clears its own outputs when it starts.
 */
const cli: Options = {
  entry: { cli: 'src/cli/sync-core.ts' },
  outDir: 'dist',
  format: 'esm',
  platform: 'node',
  target: 'node20',
  splitting: true,
  sourcemap: false,
  dts: false,
  external: ['sync-core', /^sync-core\//, 'better-sqlite3', 'zod', /^node:/],
  banner: {
    js: "#!/usr/bin/env node\nimport { createRequire as __createRequire } from 'node:module';\nconst require = __createRequire(import.meta.url);",
  },
  esbuildOptions(options) {
    options.chunkNames = 'cli/[name]-[hash]';
  },
  esbuildPlugins: [
    {
      name: 'clean-cli-outputs',
      setup(build) {
        build.onStart(() => {
          rmSync('dist/cli', { recursive: true, force: true });
          rmSync('dist/cli.js', { force: true });
        });
      },
    },
  ],
};

export default defineConfig([
  // The library build cleans dist/ but for the CLI's outputs, which the parallel CLI build owns.
  { ...shared, format: 'esm', clean: ['!cli.js', '!cli/**'] },
  // p-retry is ESM-only: the CJS build carries its own copy so that `require('sync-core/fetch')`
  // works on every Node 20 (require(esm) is only unflagged from 20.19) and in Jest. The ESM build
  // imports the installed dependency.
  { ...shared, format: 'cjs', noExternal: ['p-retry'] },
  cli,
]);
