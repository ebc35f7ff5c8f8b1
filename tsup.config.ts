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

export default defineConfig([
  { ...shared, format: 'esm', clean: true },
  // p-retry is ESM-only: the CJS build carries its own copy so that `require('sync-core/fetch')`
  // works on every Node 20 (require(esm) is only unflagged from 20.19) and in Jest. The ESM build
  // imports the installed dependency.
  { ...shared, format: 'cjs', noExternal: ['p-retry'] },
]);
