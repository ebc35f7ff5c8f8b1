/**
 * Bundle the browser example with esbuild's JS API: `page.js` (an ES module) and `sw.js` (a
 * classic service worker script, which every browser with service workers can run).
 *
 * @packageDocumentation
 */
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { type BuildOptions, build, type Plugin } from 'esbuild';

const here = (path: string): string => fileURLToPath(new URL(path, import.meta.url));

/** Where the bundles go unless told otherwise (git-ignored `tmp/`). */
export const DEFAULT_OUT_DIR = here('../../tmp/browser-example');

// The example imports sync-core by its public names, like an app; here they point at the source.
const SOURCES: Record<string, string> = {
  'sync-core': here('../../src/index.ts'),
  'sync-core/sql-js': here('../../adapters/sql-js/index.ts'),
  'sync-core/fetch': here('../../adapters/fetch/index.ts'),
  'sync-core/testing': here('../../src/testing/index.ts'),
};

/** An esbuild plugin resolving `sync-core` and its subpaths to this repository's source files. */
export const syncCoreFromSource: Plugin = {
  name: 'sync-core-from-source',
  setup(build) {
    build.onResolve({ filter: /^sync-core(\/[a-z0-9-]+)?$/ }, (args) => {
      const path = SOURCES[args.path];
      return path === undefined ? undefined : { path };
    });
  },
};

/** Paths of the built files. */
export interface BrowserExampleBuild {
  readonly outDir: string;
  readonly page: string;
  readonly serviceWorker: string;
}

/**
 * Build both bundles into `outDir`. sql.js's browser build is picked through its `browser` export
 * condition; `node:` imports (the lazily loaded Node file snapshot) stay external and never run.
 */
export async function buildBrowserExample(outDir: string = DEFAULT_OUT_DIR): Promise<BrowserExampleBuild> {
  await mkdir(outDir, { recursive: true });
  const common: BuildOptions = {
    bundle: true,
    platform: 'browser',
    target: 'es2022',
    sourcemap: 'linked',
    external: ['node:*'],
    plugins: [syncCoreFromSource],
    logLevel: 'warning',
  };
  await Promise.all([
    build({ ...common, entryPoints: [here('./page.ts')], outfile: `${outDir}/page.js`, format: 'esm' }),
    build({ ...common, entryPoints: [here('./sw.ts')], outfile: `${outDir}/sw.js`, format: 'iife' }),
  ]);
  return { outDir, page: `${outDir}/page.js`, serviceWorker: `${outDir}/sw.js` };
}
