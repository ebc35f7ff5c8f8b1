#!/usr/bin/env node
// Install the packed tarball into a fresh project WITHOUT the optional peers, then require() and
// import() every subpath: what a user gets from npm must load on plain Node, CJS and ESM alike,
// and importing the core must not pull in better-sqlite3, sql.js or undici. The `sync-core` bin
// must start there too, and say that a command needing better-sqlite3 needs it.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const work = mkdtempSync(join(tmpdir(), 'sync-core-smoke-'));
const run = (cmd, args, cwd) =>
  execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

try {
  const packed = JSON.parse(run('npm', ['pack', '--json', '--pack-destination', work], root));
  const tarball = join(work, packed[0].filename);
  const project = join(work, 'app');
  execFileSync('mkdir', ['-p', project]);
  writeFileSync(
    join(project, 'package.json'),
    JSON.stringify({ name: 'smoke-app', private: true, version: '0.0.0' }),
  );
  run('npm', ['install', '--no-audit', '--no-fund', '--ignore-scripts', tarball], project);

  const subpaths = Object.keys(pkg.exports)
    .filter((s) => s !== './package.json')
    .map((s) => (s === '.' ? pkg.name : `${pkg.name}/${s.slice(2)}`));
  const peers = Object.keys(pkg.peerDependencies ?? {});

  const cjs = `
    const peers = ${JSON.stringify(peers)};
    for (const p of peers) { try { require.resolve(p); throw new Error(p + ' is installed: the smoke test must run without optional peers'); } catch (e) { if (e.code !== 'MODULE_NOT_FOUND') throw e; } }
    const core = require('${pkg.name}');
    if (typeof core.createSyncEngine !== 'function') throw new Error('require: createSyncEngine missing');
    for (const s of ${JSON.stringify(subpaths)}) { const m = require(s); if (Object.keys(m).length === 0) throw new Error('require: empty ' + s); }
    const loaded = Object.keys(require.cache).filter((f) => peers.some((p) => f.includes('/node_modules/' + p + '/')));
    if (loaded.length) throw new Error('optional peers loaded: ' + loaded.join(', '));
    // Errors thrown by an adapter bundle are instances of the core's classes.
    const { createBetterSqlite3Storage } = require('${pkg.name}/better-sqlite3');
    try { createBetterSqlite3Storage({}); throw new Error('no error'); } catch (e) { if (!(e instanceof core.ConfigError) || !(e instanceof core.SyncError)) throw new Error('instanceof across entries failed (cjs)'); }
    console.log('cjs ok: ' + ${JSON.stringify(subpaths)}.join(', '));
  `;
  const esm = `
    const core = await import('${pkg.name}');
    if (typeof core.createSyncEngine !== 'function') throw new Error('import: createSyncEngine missing');
    for (const s of ${JSON.stringify(subpaths)}) { const m = await import(s); if (Object.keys(m).length === 0) throw new Error('import: empty ' + s); }
    const { createSqlJsStorage } = await import('${pkg.name}/sql-js');
    try { createSqlJsStorage({}); throw new Error('no error'); } catch (e) { if (!(e instanceof core.ConfigError)) throw new Error('instanceof across entries failed (esm)'); }
    console.log('esm ok: ' + ${JSON.stringify(subpaths)}.join(', '));
  `;
  // Node 20 before 20.19 cannot require() an ES module (p-retry is one): with require(esm) turned
  // off where Node supports it, the CJS entries are checked as an older Node 20 or Jest loads them.
  const noRequireEsm = process.allowedNodeEnvironmentFlags.has('--no-experimental-require-module')
    ? ['--no-experimental-require-module']
    : [];
  process.stdout.write(run(process.execPath, [...noRequireEsm, '-e', cjs], project));
  process.stdout.write(run(process.execPath, ['--input-type=module', '-e', esm], project));

  // The bin, as a user runs it: `npx sync-core …` from the project.
  const help = run('npx', ['--no', '--', 'sync-core', '--help'], project);
  for (const command of ['inspect', 'retry', 'discard', 'serve']) {
    if (!help.includes(command)) throw new Error(`sync-core --help does not list ${command}:\n${help}`);
  }
  const version = run('npx', ['--no', '--', 'sync-core', '--version'], project).trim();
  if (version !== pkg.version)
    throw new Error(`sync-core --version printed ${version}, expected ${pkg.version}`);
  writeFileSync(join(project, 'app.db'), '');
  const inspect = spawnSync('npx', ['--no', '--', 'sync-core', 'inspect', 'app.db'], {
    cwd: project,
    encoding: 'utf8',
  });
  // npm itself may print warnings of its own (`npm warn …`); the CLI's error is one line.
  const errors = inspect.stderr.split('\n').filter((line) => line !== '' && !line.startsWith('npm '));
  if (
    inspect.status === 0 ||
    errors.length !== 1 ||
    !/^sync-core: inspect needs better-sqlite3\b/.test(errors[0])
  ) {
    throw new Error(
      `sync-core inspect without better-sqlite3: expected a one-line error, got status ${inspect.status}:\n${inspect.stderr}`,
    );
  }
  console.log(`bin ok: npx sync-core --help, --version (${version}), inspect without better-sqlite3 says so`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
