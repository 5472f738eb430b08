/**
 * `npm run openapi`: writes the OpenAPI document the service serves at /docs-json to
 * `openapi.json` (committed, for clients and tools that read the contract without a running
 * service). `npm run openapi -- --check` writes nothing and fails when the committed file is not
 * what the code produces (CI runs it).
 *
 * The app is built the way `main.ts` builds it, on a throw-away SQLite file and with a fixed
 * environment, so the document does not depend on the machine it is exported on.
 */
import 'reflect-metadata';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { buildOpenApiDocument } from '../src/api/openapi';
import { loadAppConfig } from '../src/app.config.loader';
import { createApp } from '../src/bootstrap';

const FILE = resolve(__dirname, '..', 'openapi.json');

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'taskq-openapi-'));
  try {
    const config = loadAppConfig({
      APP_ROLE: 'api',
      DATABASE_PATH: join(dir, 'tasks.db'),
      LOG_LEVEL: 'error',
    });
    const app = await createApp(config);
    const text = `${JSON.stringify(buildOpenApiDocument(app), null, 2)}\n`;
    // close() waits on unref'd timers only; without a ref'd one Node would exit half-way.
    const keepAlive = setInterval(() => undefined, 1000);
    await app.close().finally(() => clearInterval(keepAlive));
    if (!process.argv.includes('--check')) {
      writeFileSync(FILE, text);
      console.log(`openapi: wrote ${FILE}`);
      return;
    }
    let committed = '';
    try {
      committed = readFileSync(FILE, 'utf8');
    } catch {
      // missing: reported below
    }
    if (committed !== text) {
      console.error('openapi: openapi.json is not current; run `npm run openapi` and commit it');
      process.exitCode = 1;
    } else {
      console.log('openapi: openapi.json is current');
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error('openapi: failed:', error);
  process.exit(1);
});
