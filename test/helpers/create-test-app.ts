import type { INestApplication, Type } from '@nestjs/common';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from 'pg';
import request from 'supertest';
import { createApp } from '../../src/bootstrap';
import { type BootConfig, loadAppConfig } from '../../src/app.config.loader';
import type { HttpAdapterKind } from '../../src/config/app.config';
import { removeQueueFromBroker } from '../../src/queue/testing';
import { withPg as withPgAt } from './pg-schema';

export interface TestApp {
  app: INestApplication;
  config: BootConfig;
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

/**
 * When set (e.g. postgres://postgres@127.0.0.1:5432/test), e2e suites keep their tasks in
 * PostgreSQL instead of SQLite: each `dbPath` becomes a schema of its own in that database, so
 * suites stay isolated and a restart on the same `dbPath` finds its rows again.
 */
export const E2E_DATABASE_URL = process.env.E2E_DATABASE_URL;

/**
 * The driver e2e suites run on: the service's default (the task table: sqlite, or postgres with
 * E2E_DATABASE_URL) unless told; CI also runs them on memory, and on redis with the tasks in
 * PostgreSQL.
 */
export const E2E_QUEUE_DRIVER =
  process.env.E2E_QUEUE_DRIVER ?? (E2E_DATABASE_URL ? 'postgres' : 'sqlite');

/**
 * The driver for an app on `database`: E2E_QUEUE_DRIVER, except that a table driver (sqlite,
 * postgres) takes only its own database's table, so an app whose tasks are in the other one
 * gets that one's table driver.
 */
export function e2eQueueDriver(database: 'sqlite' | 'postgres'): string {
  return E2E_QUEUE_DRIVER === 'sqlite' || E2E_QUEUE_DRIVER === 'postgres'
    ? database
    : E2E_QUEUE_DRIVER;
}

/**
 * For suites about messages apart from their rows (lost, orphaned, forged): E2E_QUEUE_DRIVER,
 * unless its queue is the task table itself, where no message exists apart from its row; then
 * memory, a message driver that needs no server.
 */
export const E2E_MESSAGE_DRIVER = ['sqlite', 'postgres'].includes(E2E_QUEUE_DRIVER)
  ? 'memory'
  : E2E_QUEUE_DRIVER;

/** Whether E2E_QUEUE_DRIVER is a broker every suite running at once shares. */
const SHARED_BROKER = E2E_QUEUE_DRIVER === 'redis' || E2E_QUEUE_DRIVER === 'amqp';
/** The broker queues this suite's apps used, removed when it ends. */
const brokerQueues = new Set<string>();

const createdSchemas = new Set<string>();
/** Apps started by this suite, closed before their schemas are dropped. */
const startedApps = new Set<TestApp>();

/**
 * The environment that points a service at the test database for `dbPath`: DATABASE_PATH for
 * SQLite, or DATABASE_URL with a fresh schema (created here) when E2E_DATABASE_URL is set.
 */
export async function databaseEnv(dbPath: string): Promise<Record<string, string>> {
  if (!E2E_DATABASE_URL) return { DATABASE_PATH: dbPath };
  const schema = `e2e_${createHash('sha1').update(dbPath).digest('hex').slice(0, 20)}`;
  if (!createdSchemas.has(schema)) {
    await withPg((client) => client.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`));
    createdSchemas.add(schema);
  }
  const url = new URL(E2E_DATABASE_URL);
  url.searchParams.set('options', `-c search_path=${schema}`);
  return { DATABASE_PATH: dbPath, DATABASE_URL: url.toString() };
}

/** Runs `work` with a client of `url`'s database (E2E_DATABASE_URL's unless told). */
export function withPg<T>(
  work: (client: Client) => Promise<T>,
  url = E2E_DATABASE_URL,
): Promise<T> {
  return withPgAt(work, url);
}

/**
 * On a shared broker, the queue of the suite's database `dbPath` (a restart on it finds its
 * messages again): suites running at once would otherwise take each other's messages.
 */
function brokerQueueEnv(dbPath: string): Record<string, string> {
  if (!SHARED_BROKER) return {};
  const queue = `e2e-${createHash('sha1').update(dbPath).digest('hex').slice(0, 20)}`;
  brokerQueues.add(queue);
  return { QUEUE_NAME: queue };
}

if (E2E_DATABASE_URL || SHARED_BROKER) {
  // Top-level in each suite that imports this helper: after its own afterAll hooks closed the apps.
  afterAll(async () => {
    await Promise.allSettled([...startedApps].map((t) => t.close()));
    for (const queue of brokerQueues) {
      await removeQueueFromBroker(E2E_QUEUE_DRIVER, queue).catch(() => undefined);
    }
    brokerQueues.clear();
    if (createdSchemas.size === 0) return;
    await withPg(async (client) => {
      for (const schema of createdSchemas) {
        await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => undefined);
      }
    });
    createdSchemas.clear();
  });
}

/**
 * Starts the real application (real migrations on a real SQLite file, or a PostgreSQL schema
 * when E2E_DATABASE_URL is set) the way `main.ts` does,
 * without listening on a port: supertest talks to the HTTP server directly.
 */
export async function startTestApp(options: {
  adapter?: HttpAdapterKind;
  dbPath: string;
  env?: Record<string, string>;
  modules?: Type[];
}): Promise<TestApp> {
  const database = await databaseEnv(options.dbPath);
  const url = options.env?.DATABASE_URL ?? database.DATABASE_URL;
  const config = loadAppConfig({
    ...database,
    QUEUE_DRIVER: e2eQueueDriver(url ? 'postgres' : 'sqlite'),
    ...brokerQueueEnv(options.dbPath),
    // The shared test Redis runs without persistence (REDIS_ALLOW_VOLATILE accepts it).
    REDIS_ALLOW_VOLATILE: 'true',
    HTTP_ADAPTER: options.adapter ?? 'express',
    TASK_BACKOFF_MS: '5',
    TASK_BACKOFF_MAX_MS: '20',
    LOG_LEVEL: 'error',
    ...options.env,
  });
  const app = await createApp(config, options.modules);
  let closing: Promise<void> | undefined;
  const started: TestApp = {
    app,
    config,
    http: request(app.getHttpServer()),
    dbPath: options.dbPath,
    close: () => (closing ??= app.close()),
  };
  startedApps.add(started);
  return started;
}
