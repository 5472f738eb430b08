import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import request from 'supertest';
import { distFile, finished, startNode } from '../helpers/child-process';
import { tempDir } from '../helpers/create-test-app';
import { freshPgSchema, type PgSchema } from '../helpers/pg-schema';
import {
  describeWithService,
  REDIS_SERVICE,
  type RequiredService,
} from '../helpers/service-available';
import { openSse, type SseStream } from '../helpers/sse-client';
import { waitFor } from '../helpers/wait-for';
import { removeQueueFromBroker } from '../../src/queue/testing';

/**
 * `GET /tasks/events` and `?waitMs` on an API process (APP_ROLE=api) see the changes a separate
 * worker process makes: through the SQLite change feed when both share one SQLite file, and
 * through Redis pub/sub when the tasks are in PostgreSQL and the queue on Redis.
 */
const PG_URL = process.env.E2E_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const POSTGRES_SERVICE: RequiredService = { name: 'PostgreSQL', host: '127.0.0.1', port: 5432 };

type Child = ReturnType<typeof startNode>;

interface Event {
  type: 'status' | 'progress';
  taskId: string;
  status: string;
  progress?: number;
}

async function listening(child: Child): Promise<string> {
  return waitFor(() => /listening on (http:\/\/\S+)/.exec(child.output())?.[1], {
    timeoutMs: 60_000,
    what: `a process to listen; output so far:\n${child.output().slice(-2000)}`,
  });
}

async function stop(child: Child): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = finished(child);
  child.kill('SIGTERM');
  await exited;
}

/** Starts an API and a worker process with `env`, and checks which bus they chose. */
function cluster(
  bus: string,
  env: () => Promise<Record<string, string>>,
  cleanup: () => Promise<void>,
) {
  const children: Child[] = [];
  const streams: SseStream[] = [];
  let api = '';

  beforeAll(async () => {
    const common = {
      HOST: '127.0.0.1',
      PORT: '0',
      LOG_LEVEL: 'log',
      TASK_BACKOFF_MS: '50',
      TASK_BACKOFF_MAX_MS: '100',
      WORKER_CONCURRENCY: '4',
      ...(await env()),
    };
    const apiProcess = startNode(distFile('main.js'), { ...common, APP_ROLE: 'api' });
    const worker = startNode(distFile('main.js'), { ...common, APP_ROLE: 'worker' });
    children.push(apiProcess, worker);
    [api] = await Promise.all([listening(apiProcess), listening(worker)]);
    for (const child of children) {
      expect(child.output()).toContain(
        `task events are shared with other processes through ${bus}`,
      );
    }
  });
  afterAll(async () => {
    streams.forEach((s) => s.close());
    await Promise.all(children.map(stop));
    await cleanup();
  });

  it('a client of the API process sees every status and progress change made by the worker, once', async () => {
    const stream = await openSse(`${api}/tasks/events`);
    streams.push(stream);
    const submit = async (body: object): Promise<string> =>
      (await request(api).post('/tasks').send(body).expect(202)).body.id as string;
    // Progress reports 300 ms apart: none is merged by the worker's 250 ms progress throttle.
    const stepped = await submit({ action: 'sleep', data: { ms: 900, steps: 3 } });
    const quick = await submit({ action: 'uppercase', data: { text: 'x' } });
    const failing = await submit({ action: 'fail', data: {}, maxAttempts: 2 });

    const of = (id: string) => (stream.events as Event[]).filter((e) => e.taskId === id);
    const statuses = (id: string) =>
      of(id)
        .filter((e) => e.type === 'status')
        .map((e) => e.status);
    const progress = (id: string) =>
      of(id)
        .filter((e) => e.type === 'progress')
        .map((e) => e.progress);
    await waitFor(
      () =>
        statuses(stepped).includes('completed') &&
        statuses(quick).includes('completed') &&
        statuses(failing).includes('failed') &&
        progress(stepped).length === 3,
      { timeoutMs: 60_000, intervalMs: 50, what: 'every task to finish on the stream' },
    );

    expect(statuses(stepped)).toEqual(['queued', 'running', 'completed']);
    expect(progress(stepped)).toEqual([33, 67, 100]);
    expect(statuses(quick)).toEqual(['queued', 'running', 'completed']);
    expect(statuses(failing)).toEqual(['queued', 'running', 'queued', 'running', 'failed']);
    expect(progress(quick)).toEqual([]);
  });

  it('a long poll on the API process answers with the result the worker recorded', async () => {
    const { body: created } = await request(api)
      .post('/tasks')
      .send({ action: 'sleep', data: { ms: 300 } })
      .expect(202);
    const { body } = await request(api).get(`/tasks/${created.id}?waitMs=30000`).expect(200);

    expect(body).toMatchObject({ status: 'completed', result: { output: 'slept', sleptMs: 300 } });
  });
}

describe('task events across processes on SQLite', () => {
  const dir = tempDir();
  cluster(
    'sqlite',
    () => Promise.resolve({ DATABASE_PATH: join(dir.path, 'tasks.db'), QUEUE_DRIVER: 'sqlite' }),
    () => Promise.resolve(dir.remove()),
  );
});

describeWithService(POSTGRES_SERVICE, 'task events across processes on PostgreSQL', () => {
  describeWithService(REDIS_SERVICE, 'and Redis', () => {
    const dir = tempDir();
    let pgSchema: PgSchema;
    const queue = `events-${randomUUID()}`;
    cluster(
      'redis',
      async () => {
        pgSchema = await freshPgSchema('e2e_events', PG_URL);
        return {
          DATABASE_URL: pgSchema.url,
          DATABASE_PATH: join(dir.path, 'unused.db'),
          QUEUE_DRIVER: 'redis',
          QUEUE_NAME: queue,
          // The shared test Redis runs without persistence (REDIS_ALLOW_VOLATILE accepts it).
          REDIS_ALLOW_VOLATILE: 'true',
        };
      },
      async () => {
        await removeQueueFromBroker('redis', queue);
        await pgSchema?.drop();
        dir.remove();
      },
    );
  });

  describe('alone (LISTEN/NOTIFY)', () => {
    const dir = tempDir();
    let pgSchema: PgSchema;
    cluster(
      'postgres',
      async () => {
        pgSchema = await freshPgSchema('e2e_events', PG_URL);
        // PostgreSQL alone: its task table is the queue too.
        return {
          DATABASE_URL: pgSchema.url,
          DATABASE_PATH: join(dir.path, 'unused.db'),
          QUEUE_DRIVER: 'postgres',
        };
      },
      async () => {
        await pgSchema?.drop();
        dir.remove();
      },
    );
  });
});
