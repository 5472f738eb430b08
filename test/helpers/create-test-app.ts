import type { INestApplication, Type } from '@nestjs/common';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import { createApp } from '../../src/bootstrap';
import { type AppConfig, type HttpAdapterKind, loadConfig } from '../../src/config/app.config';

export interface TestApp {
  app: INestApplication;
  config: AppConfig;
  http: ReturnType<typeof request>;
  dbPath: string;
  /** Closes the app (idempotent); the database file stays for a restart. */
  close(): Promise<void>;
}

/** A temporary folder for one suite's database files; `remove()` deletes it. */
export function tempDir(): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), 'taskq-test-'));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** The driver e2e suites run on: the default (sqlite) unless told; CI also runs them on memory. */
export const E2E_QUEUE_DRIVER = process.env.E2E_QUEUE_DRIVER ?? 'sqlite';

/**
 * Starts the real application (real migrations on a real SQLite file) the way `main.ts` does,
 * without listening on a port: supertest talks to the HTTP server directly.
 */
export async function startTestApp(options: {
  adapter?: HttpAdapterKind;
  dbPath: string;
  env?: Record<string, string>;
  modules?: Type[];
}): Promise<TestApp> {
  const config = loadConfig({
    DATABASE_PATH: options.dbPath,
    QUEUE_DRIVER: E2E_QUEUE_DRIVER,
    HTTP_ADAPTER: options.adapter ?? 'express',
    TASK_BACKOFF_MS: '5',
    TASK_BACKOFF_MAX_MS: '20',
    LOG_LEVEL: 'error',
    ...options.env,
  });
  const app = await createApp(config, options.modules);
  let closing: Promise<void> | undefined;
  return {
    app,
    config,
    http: request(app.getHttpServer()),
    dbPath: options.dbPath,
    close: () => (closing ??= app.close()),
  };
}
