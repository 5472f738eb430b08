#!/usr/bin/env node
/**
 * `npm start` and `npm run migrate` build through this, not `nest build`, which empties dist/
 * first: a service already running from dist/ (or one starting beside it) would find its files
 * gone. Here the build goes to a fresh folder that replaces dist/ only once it is complete, and
 * with `--if-stale` nothing is built at all when dist/ is newer than every source. A fresh clone
 * (no dist/) still builds.
 */
'use strict';
const { spawnSync } = require('node:child_process');
const { existsSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } = require('node:fs');
const { join } = require('node:path');
const { copyAssets } = require('./assets');

const root = join(__dirname, '..');
const dist = join(root, 'dist');
const stamp = join(dist, '.build-stamp');
/** What the build reads besides src/. */
const INPUTS = ['tsconfig.json', 'tsconfig.build.json', 'package-lock.json'];

/** The newest modification time under `path` (a file or a folder), in ms. */
function newest(path) {
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.mtimeMs;
  let latest = stat.mtimeMs;
  for (const entry of readdirSync(path)) latest = Math.max(latest, newest(join(path, entry)));
  return latest;
}

function isStale() {
  if (!existsSync(join(dist, 'main.js')) || !existsSync(stamp)) return true;
  const built = statSync(stamp).mtimeMs;
  const sources = [join(root, 'src'), ...INPUTS.map((f) => join(root, f)).filter(existsSync)];
  return sources.some((source) => newest(source) > built);
}

function build() {
  const next = join(root, `.dist-next-${process.pid}`);
  const old = join(root, `.dist-old-${process.pid}`);
  rmSync(next, { recursive: true, force: true });
  const tsc = require.resolve('typescript/bin/tsc', { paths: [root] });
  const result = spawnSync(
    process.execPath,
    [
      tsc,
      '-p',
      'tsconfig.build.json',
      '--outDir',
      next,
      '--tsBuildInfoFile',
      join(next, '.tsbuildinfo'),
    ],
    { cwd: root, stdio: 'inherit' },
  );
  if (result.status !== 0) {
    rmSync(next, { recursive: true, force: true });
    console.error('build: tsc failed; dist/ left as it was');
    process.exit(result.status ?? 1);
  }
  copyAssets(root, next);
  writeFileSync(join(next, '.build-stamp'), `${new Date().toISOString()}\n`);
  // Two renames: dist/ is missing only between them, never half-written or emptied.
  if (existsSync(dist)) renameSync(dist, old);
  renameSync(next, dist);
  rmSync(old, { recursive: true, force: true });
  console.log('build: dist/ replaced with a fresh build');
}

if (process.argv.includes('--if-stale') && !isStale()) {
  console.log('build: dist/ is newer than the sources; not rebuilding');
} else {
  build();
}
