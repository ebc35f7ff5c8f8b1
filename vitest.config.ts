import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: {
    // Tests import the package by its public names, like a user; these point them at the source.
    alias: [
      { find: /^sync-core$/, replacement: fileURLToPath(new URL('./src/index.ts', import.meta.url)) },
      {
        find: /^sync-core\/better-sqlite3$/,
        replacement: fileURLToPath(new URL('./adapters/better-sqlite3/index.ts', import.meta.url)),
      },
      {
        find: /^sync-core\/sql-js$/,
        replacement: fileURLToPath(new URL('./adapters/sql-js/index.ts', import.meta.url)),
      },
      {
        find: /^sync-core\/fetch$/,
        replacement: fileURLToPath(new URL('./adapters/fetch/index.ts', import.meta.url)),
      },
      {
        find: /^sync-core\/testing$/,
        replacement: fileURLToPath(new URL('./src/testing/index.ts', import.meta.url)),
      },
    ],
  },
  test: {
    include: ['test/**/*.test.ts'],
    exclude: ['test/bench/**', 'node_modules/**'],
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 30_000,
    reporters: process.env.CI ? ['default', ['json', { outputFile: '.ci/out/vitest.json' }]] : ['default'],
  },
});
