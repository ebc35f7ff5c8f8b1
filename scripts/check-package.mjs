#!/usr/bin/env node
// Every file package.json points at is built, and every built entry is exported (or is a `bin`): an
// entry built but not exported is dead weight, one exported but not built breaks installs.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
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

// Commands (`bin`) are entries too, run directly: each needs its `#!/usr/bin/env node` line (npm
// links it as is on Unix) and must not be a type declaration.
const bins = typeof pkg.bin === 'string' ? { [pkg.name]: pkg.bin } : (pkg.bin ?? {});
for (const [name, target] of Object.entries(bins)) {
  const file = join(root, target);
  if (!existsSync(file)) {
    problems.push(`bin ${name} not built: ${target}`);
    continue;
  }
  if (!readFileSync(file, 'utf8').startsWith('#!/usr/bin/env node\n')) {
    problems.push(`bin ${name}: ${target} does not start with #!/usr/bin/env node`);
  }
  if ((statSync(file).mode & 0o111) === 0) problems.push(`bin ${name}: ${target} is not executable`);
  targets.add(target.startsWith('./') ? target : `./${target}`);
}

const entryFiles = readdirSync(join(root, 'dist')).filter(
  (f) => /\.(c?js|d\.c?ts)$/.test(f) && !/^chunk-/.test(f) && !/-[A-Za-z0-9_]{8}\.d\.c?ts$/.test(f),
);
for (const file of entryFiles) {
  if (!targets.has(`./dist/${file}`)) problems.push(`built but neither exported nor a bin: dist/${file}`);
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
  `check-package: ${targets.size} export and bin targets built, ${entryFiles.length} built entries all exported or bins`,
);
