#!/usr/bin/env node
// The npm registry reachable from our machines serves platform-specific optional packages
// (e.g. @swc/core-darwin-arm64) without their versions, so `npm install` leaves them out of
// package-lock.json and `npm ci` then refuses the lock ("Missing: …@ from lock file").
// This adds each such package to the lock as an optional entry for its platform only, so
// `npm ci` skips it on Linux exactly as it would with a complete lock. Run it after changing
// dependencies: `node scripts/complete-lockfile.js`.
const { execFileSync } = require('node:child_process');
const { mkdtempSync, readFileSync, writeFileSync, copyFileSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join } = require('node:path');

const root = join(__dirname, '..');
const lockPath = join(root, 'package-lock.json');
const lock = JSON.parse(readFileSync(lockPath, 'utf8'));
const PLATFORM = /-(darwin|win32|linux|freebsd|android|openbsd|sunos|aix|netbsd|wasm32)-?([a-z0-9]+)?/;

function missing() {
  const dir = mkdtempSync(join(tmpdir(), 'lockcheck-'));
  copyFileSync(join(root, 'package.json'), join(dir, 'package.json'));
  writeFileSync(join(dir, 'package-lock.json'), JSON.stringify(lock, null, 2) + '\n');
  try {
    execFileSync('npm', ['ci', '--dry-run', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: dir, stdio: 'pipe' });
    return [];
  } catch (err) {
    const out = String(err.stdout) + String(err.stderr);
    return [...out.matchAll(/Missing: (\S+)@ from lock file/g)].map((m) => m[1]);
  }
}

let added = 0;
for (const name of missing()) {
  // Find the package that wants it, to copy its dev/optional flags.
  const parent = Object.entries(lock.packages).find(([, p]) => p.optionalDependencies && name in p.optionalDependencies);
  const flags = parent ? { dev: parent[1].dev, devOptional: parent[1].devOptional } : {};
  const match = PLATFORM.exec(name.split('/').pop());
  lock.packages[`node_modules/${name}`] = {
    version: parent ? parent[1].optionalDependencies[name] : undefined,
    ...Object.fromEntries(Object.entries(flags).filter(([, v]) => v)),
    optional: true,
    ...(match ? { os: [match[1] === 'wasm32' ? 'none' : match[1]] } : { os: ['none'] }),
  };
  added++;
}
writeFileSync(lockPath, JSON.stringify(lock, null, 2) + '\n');
const left = missing();
console.log(`added ${added} platform-specific optional entries; npm ci ${left.length ? 'still misses: ' + left.join(', ') : 'accepts the lock'}`);
process.exit(left.length ? 1 : 0);
