#!/usr/bin/env node
/**
 * `npm run start:dev`: TypeScript in watch mode into dist/, and the service restarted after
 * every compile without errors. Plain tsc and node, so the project needs no build CLI (and none
 * of the Node 22-only packages @nestjs/cli brings).
 */
'use strict';
const { spawn } = require('node:child_process');
const { join } = require('node:path');
const { copyAssets } = require('./assets');

const root = join(__dirname, '..');
const tsc = require.resolve('typescript/bin/tsc', { paths: [root] });
let service;

function restart() {
  copyAssets(root, join(root, 'dist'));
  const start = () => {
    service = spawn(process.execPath, [join(root, 'dist', 'main.js')], {
      cwd: root,
      stdio: 'inherit',
    });
  };
  if (!service || service.exitCode !== null) return start();
  service.once('exit', start);
  service.kill('SIGTERM');
}

const watcher = spawn(
  process.execPath,
  [tsc, '-p', 'tsconfig.build.json', '--watch', '--preserveWatchOutput'],
  { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] },
);
watcher.stdout.on('data', (chunk) => {
  process.stdout.write(chunk);
  if (/Found 0 errors\./.test(chunk.toString())) restart();
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    watcher.kill(signal);
    if (service && service.exitCode === null) service.kill(signal);
    process.exitCode = 0;
  });
}
