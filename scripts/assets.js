'use strict';
const { cpSync } = require('node:fs');
const { join } = require('node:path');

/** Files the service reads at run time beside its compiled code; tsc does not copy them. */
const ASSETS = ['dashboard/static'];

/** Copies every asset folder from src/ into `outDir` (dist/ or the build's fresh folder). */
function copyAssets(root, outDir) {
  for (const asset of ASSETS) {
    cpSync(join(root, 'src', asset), join(outDir, asset), { recursive: true });
  }
}

module.exports = { copyAssets };
