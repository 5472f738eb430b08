import Database from 'better-sqlite3';
import { join } from 'node:path';
import request from 'supertest';
import { distFile, finished, startNode } from '../helpers/child-process';
import { E2E_QUEUE_DRIVER, e2eQueueDriver, tempDir, withPg } from '../helpers/create-test-app';
import { freshPgSchema, type PgSchema } from '../helpers/pg-schema';
import { describeWithService, type RequiredService } from '../helpers/service-available';
import { waitFor } from '../helpers/wait-for';

/**
 * Three real service processes (dist/main.js, APP_ROLE=all: API and scheduler each) on one
 * database, running a per-second schedule on the real clock: every second gets one task, none
 * twice, none skipped.
 */
const PG_URL = process.env.E2E_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const POSTGRES_SERVICE: RequiredService = { name: 'PostgreSQL', host: '127.0.0.1', port: 5432 };
const SQL = `SELECT idempotency_key AS k FROM tasks WHERE idempotency_key LIKE 'schedule:every-second:%' ORDER BY idempotency_key`;

type Child = ReturnType<typeof startNode>;

async function stop(child: Child): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = finished(child);
  child.kill('SIGTERM');
  await exited;
}

function listening(child: Child): Promise<string> {
  return waitFor(() => /listening on (http:\/\/\S+)/.exec(child.output())?.[1], {
    timeoutMs: 60_000,
    what: `a process to listen; output so far:\n${child.output().slice(-2000)}`,
  });
}

function processesSuite(
  database: 'sqlite' | 'postgres',
  setUp: () => Promise<{ env: Record<string, string>; keys: () => Promise<string[]> }>,
): void {
  const children: Child[] = [];
  afterAll(() => Promise.all(children.map(stop)));

  it('three processes create one task per second of a 6-field cron, none twice, none lost', async () => {
    const { env, keys } = await setUp();
    for (let i = 0; i < 3; i += 1) {
      children.push(
        startNode(distFile('main.js'), {
          HOST: '127.0.0.1',
          PORT: '0',
          LOG_LEVEL: 'log',
          // memory cannot be shared by processes: the database's own table driver instead.
          QUEUE_DRIVER: E2E_QUEUE_DRIVER === 'memory' ? database : e2eQueueDriver(database),
          // The shared test Redis runs without persistence (REDIS_ALLOW_VOLATILE accepts it).
          REDIS_ALLOW_VOLATILE: 'true',
          ...env,
        }),
      );
    }
    const urls = await Promise.all(children.map(listening));
    await request(urls[0])
      .post('/schedules')
      .send({
        name: 'every-second',
        action: 'uppercase',
        data: { text: 'x' },
        cron: '* * * * * *',
        missed: 'all',
      })
      .expect(201);
    await waitFor(async () => (await keys()).length >= 5, {
      timeoutMs: 30_000,
      intervalMs: 250,
      what: 'five ticks',
    });
    await request(urls[1]).post('/schedules/every-second/pause').expect(200);
    // A pass that claimed before the pause may still be writing its task: let it finish.
    await Promise.all(children.map(stop));

    const ticks = (await keys()).map((k) => Date.parse(k.slice(-24)));
    expect(new Set(ticks).size).toBe(ticks.length);
    for (let i = 1; i < ticks.length; i += 1) expect(ticks[i] - ticks[i - 1]).toBe(1000);
  });
}

describe('schedules across three processes on one SQLite file', () => {
  const dir = tempDir();
  afterAll(() => dir.remove());
  processesSuite('sqlite', async () => {
    const dbPath = join(dir.path, 'tasks.db');
    return {
      env: { DATABASE_PATH: dbPath },
      keys: async () => {
        const db = new Database(dbPath, { readonly: true, fileMustExist: true });
        try {
          return (db.prepare(SQL).all() as { k: string }[]).map((r) => r.k);
        } finally {
          db.close();
        }
      },
    };
  });
});

describeWithService(POSTGRES_SERVICE, 'schedules across three processes on PostgreSQL', () => {
  const dir = tempDir();
  let pgSchema: PgSchema;
  afterAll(async () => {
    await pgSchema?.drop();
    dir.remove();
  });
  processesSuite('postgres', async () => {
    pgSchema = await freshPgSchema('e2e_sched_proc', PG_URL);
    const { url } = pgSchema;
    return {
      env: { DATABASE_URL: url, DATABASE_PATH: join(dir.path, 'queue.db') },
      keys: () =>
        withPg(
          async (client) => (await client.query<{ k: string }>(SQL)).rows.map((r) => r.k),
          url,
        ),
    };
  });
});
