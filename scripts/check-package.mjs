#!/usr/bin/env node
// Every file package.json points at is built, and every built entry is exported: an entry built
// but not exported is dead weight, one exported but not built breaks installs.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const problems = [];

const targets = new Set();
const collect = (value) => {
  if (typeof value === 'string') targets.add(value);
  else if (value && typeof value === 'object') for (const v of Object.values(value)) collect(v);
};
collect(pkg.exports);
for (const field of ['main', 'module', 'types']) if (pkg[field]) targets.add(pkg[field]);
for (const paths of Object.values(pkg.typesVersions?.['*'] ?? {})) for (const p of paths) targets.add(p);

for (const target of targets) {
  if (!existsSync(join(root, target))) problems.push(`exported but not built: ${target}`);
}

const entryFiles = readdirSync(join(root, 'dist')).filter(
  (f) => /\.(c?js|d\.c?ts)$/.test(f) && !/^chunk-/.test(f) && !/-[A-Za-z0-9_]{8}\.d\.c?ts$/.test(f),
);
for (const file of entryFiles) {
  if (!targets.has(`./dist/${file}`)) problems.push(`built but not exported: dist/${file}`);
}
// Every subpath export (but package.json) has a typesVersions entry, for node10 resolution.
for (const subpath of Object.keys(pkg.exports)) {
  if (subpath === '.' || subpath === './package.json') continue;
  if (!pkg.typesVersions?.['*']?.[subpath.slice(2)]) problems.push(`no typesVersions entry for ${subpath}`);
}

if (problems.length > 0) {
  console.error(problems.map((p) => `check-package: ${p}`).join('\n'));
  process.exit(1);
}
console.log(
  `check-package: ${targets.size} export targets built, ${entryFiles.length} built entries all exported`,
);
