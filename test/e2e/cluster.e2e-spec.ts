import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import type { Client } from 'pg';
import request from 'supertest';
import { distFile, finished, startNode } from '../helpers/child-process';
import { tempDir, withPg } from '../helpers/create-test-app';
import { freshPgSchema, type PgSchema } from '../helpers/pg-schema';
import {
  describeWithService,
  RABBITMQ_SERVICE,
  REDIS_SERVICE,
  type RequiredService,
} from '../helpers/service-available';
import { waitFor } from '../helpers/wait-for';
import { removeQueueFromBroker } from '../../src/queue/testing';

/**
 * Real processes of dist/main.js, as an operator runs them beyond one machine: one API process
 * and two workers sharing PostgreSQL for the tasks and Redis or RabbitMQ for the queue.
 */
const PG_URL = process.env.E2E_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const POSTGRES_SERVICE: RequiredService = { name: 'PostgreSQL', host: '127.0.0.1', port: 5432 };
const TASKS = 40;

type Child = ReturnType<typeof startNode>;

const pg = <T>(work: (client: Client) => Promise<T>): Promise<T> => withPg(work, PG_URL);

/** A fresh schema; the processes find it through search_path in their DATABASE_URL. */
const freshSchema = () => freshPgSchema('e2e_cluster', PG_URL);

async function listening(child: Child): Promise<string> {
  return waitFor(() => /listening on (http:\/\/\S+)/.exec(child.output())?.[1], {
    timeoutMs: 60_000,
    what: `a process to listen; output so far:\n${child.output().slice(-2000)}`,
  });
}

/** Status counts of the schema's tasks. */
async function statuses(schema: string): Promise<Record<string, number>> {
  const { rows } = await pg((client) =>
    client.query<{ status: string; n: string }>(
      `SELECT status, count(*) AS n FROM ${schema}.tasks GROUP BY status`,
    ),
  );
  return Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
}

/** Submits a mix of quick and sleeping tasks; returns id → expected result. */
async function submit(api: string, count: number): Promise<Map<string, unknown>> {
  const expected = new Map<string, unknown>();
  for (let i = 0; i < count; i += 1) {
    const task =
      i % 2 === 0
        ? { action: 'uppercase', data: { text: `task ${i}` } }
        : { action: 'sleep', data: { ms: 200 + (i % 5) * 100 } };
    const { body } = await request(api).post('/tasks').send(task).expect(202);
    expected.set(
      body.id as string,
      task.action === 'uppercase'
        ? { output: `TASK ${i}` }
        : { output: 'slept', sleptMs: task.data.ms },
    );
  }
  return expected;
}

/** Every task completed exactly once: one row each, completed, with its own result. */
async function expectEachCompletedOnce(
  schema: string,
  expected: Map<string, unknown>,
): Promise<void> {
  await waitFor(async () => (await statuses(schema)).completed === expected.size, {
    timeoutMs: 120_000,
    intervalMs: 250,
    what: 'every task to complete',
  });
  const { rows } = await pg((client) =>
    client.query<{ id: string; status: string; result: string; attempt: number }>(
      `SELECT id, status, result, attempt FROM ${schema}.tasks`,
    ),
  );
  expect(rows).toHaveLength(expected.size);
  for (const row of rows) {
    expect({ id: row.id, status: row.status, result: JSON.parse(row.result) as unknown }).toEqual({
      id: row.id,
      status: 'completed',
      result: expected.get(row.id),
    });
  }
}

async function stop(child: Child): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = finished(child);
  child.kill('SIGTERM');
  await exited;
}

/** Closes, from the server, every broker connection the process `pid` holds. */
function dropBrokerConnections(driver: 'redis' | 'amqp', pid: number): number {
  const port = driver === 'redis' ? 6379 : 5672;
  const ss = execFileSync('ss', ['-tnpH', 'state', 'established', `( dport = :${port} )`], {
    encoding: 'utf8',
  });
  // Local ports of the process's connections to the broker: the broker's peer ports.
  const ports = ss
    .split('\n')
    .filter((line) => line.includes(`pid=${pid},`))
    .map((line) => /:(\d+)\s/.exec(line.trim().split(/\s+/).slice(2).join(' '))?.[1])
    .filter((p): p is string => p !== undefined);
  if (driver === 'redis') {
    for (const p of ports) {
      execFileSync('redis-cli', ['CLIENT', 'KILL', 'ADDR', `127.0.0.1:${p}`], { stdio: 'ignore' });
    }
    return ports.length;
  }
  const rows = execFileSync(
    'rabbitmqctl',
    ['list_connections', '--quiet', '--no-table-headers', 'pid', 'peer_port'],
    { encoding: 'utf8', timeout: 30_000 },
  );
  let closed = 0;
  for (const row of rows.split('\n')) {
    const [connection, peerPort] = row.trim().split('\t');
    if (!connection || !ports.includes(peerPort)) continue;
    execFileSync('rabbitmqctl', ['close_connection', connection, 'taskq e2e: server-side drop'], {
      timeout: 30_000,
      stdio: 'ignore',
    });
    closed += 1;
  }
  return closed;
}

for (const [driver, service] of [
  ['redis', REDIS_SERVICE],
  ['amqp', RABBITMQ_SERVICE],
  // No broker: the task table is the queue; a killed worker's claims are freed by its missed
  // heartbeats.
  ['postgres', POSTGRES_SERVICE],
] as const) {
  describeWithService(POSTGRES_SERVICE, `cluster on PostgreSQL + ${driver}`, () => {
    describeWithService(service, `${driver}`, () => {
      const dir = tempDir();
      const children: Child[] = [];
      const schemas: PgSchema[] = [];
      const queues: string[] = [];
      afterAll(async () => {
        await Promise.all(children.map(stop));
        for (const queue of queues) await removeQueueFromBroker(driver, queue);
        for (const schema of schemas) await schema.drop();
        dir.remove();
      });

      /** A fresh schema this block drops when it ends. */
      const owned = async (): Promise<PgSchema> => {
        const created = await freshSchema();
        schemas.push(created);
        return created;
      };

      const start = (env: Record<string, string>): Child => {
        const child = startNode(distFile('main.js'), {
          HOST: '127.0.0.1',
          PORT: '0',
          LOG_LEVEL: 'log',
          QUEUE_DRIVER: driver,
          // The shared test Redis runs without persistence (REDIS_ALLOW_VOLATILE accepts it).
          REDIS_ALLOW_VOLATILE: 'true',
          // A killed worker's redis deliveries come back after this lease.
          QUEUE_LEASE_MS: '2000',
          WORKER_CONCURRENCY: '4',
          WORKER_PREFETCH: '4',
          ...env,
        });
        children.push(child);
        return child;
      };

      it('an API and two workers complete every task exactly once though a worker is SIGKILLed', async () => {
        // Arrange: the three processes start together and share one migration lock.
        const { schema, url } = await owned();
        const env = { DATABASE_URL: url, QUEUE_NAME: `cluster-${randomUUID()}` };
        queues.push(env.QUEUE_NAME);
        const api = start({ ...env, APP_ROLE: 'api' });
        const victim = start({ ...env, APP_ROLE: 'worker' });
        const survivor = start({ ...env, APP_ROLE: 'worker' });
        const apiUrl = await listening(api);
        await Promise.all([listening(victim), listening(survivor)]);
        expect(api.output()).not.toMatch(/guest:guest|:\/\/[^/\s]*:[^/\s]*@/);

        // Act: submit, and kill one worker while tasks run.
        const expected = await submit(apiUrl, TASKS);
        await waitFor(
          async () => {
            const s = await statuses(schema);
            return (s.completed ?? 0) >= 4 && (s.running ?? 0) > 0;
          },
          { timeoutMs: 60_000, what: 'tasks to be under way' },
        );
        const killed = finished(victim);
        victim.kill('SIGKILL');
        expect((await killed).signal).toBe('SIGKILL');

        // Assert
        await expectEachCompletedOnce(schema, expected);
        await request(apiUrl).get('/health').expect(200);
      });

      // SIGKILL: a dead worker. SIGSTOP: a hung one (frozen, partitioned) that still holds its
      // connections; redis sees its heartbeat key expire, RabbitMQ its missed AMQP heartbeats.
      it.each(['SIGKILL', 'SIGSTOP'] as const)(
        "a %s worker's tasks run elsewhere within seconds, not the lease, and show the redelivery",
        async (signal) => {
          // Arrange: one worker holds every task; a second one starts idle. The lease is a minute,
          // so only liveness (redis heartbeat keys, RabbitMQ's channel close) can hand them over.
          const { schema, url } = await owned();
          const leaseMs = 60_000;
          const env = {
            DATABASE_URL: url,
            QUEUE_NAME: `handover-${randomUUID()}`,
            QUEUE_LEASE_MS: String(leaseMs),
          };
          queues.push(env.QUEUE_NAME);
          const api = start({ ...env, APP_ROLE: 'api' });
          const victim = start({ ...env, APP_ROLE: 'worker' });
          const apiUrl = await listening(api);
          await listening(victim);
          const ids: string[] = [];
          for (let i = 0; i < 4; i += 1) {
            const { body } = await request(apiUrl)
              .post('/tasks')
              // Long enough to still run after the second worker has booted on a busy machine.
              .send({ action: 'sleep', data: { ms: 15_000 } })
              .expect(202);
            ids.push(body.id as string);
          }
          await waitFor(async () => (await statuses(schema)).running === 4, {
            timeoutMs: 60_000,
            what: 'the first worker to run every task',
          });
          const survivor = start({ ...env, APP_ROLE: 'worker' });
          await listening(survivor);
          const task = async (id: string) =>
            (await request(apiUrl).get(`/tasks/${id}`).expect(200)).body as {
              status: string;
              attempt: number;
              deliveries: number;
            };

          // Act
          const killed = finished(victim);
          victim.kill(signal);
          const killedAt = Date.now();
          if (signal === 'SIGKILL') await killed;
          await waitFor(
            async () => (await Promise.all(ids.map(task))).every((t) => t.deliveries === 2),
            { timeoutMs: leaseMs / 2, intervalMs: 100, what: 'the survivor to take every task' },
          );
          const handOverMs = Date.now() - killedAt;
          console.log(`${driver}: ${signal} to every task running elsewhere: ${handOverMs} ms`);
          // A stopped worker is ended for good, before it could wake and find its claims gone.
          if (signal === 'SIGSTOP') {
            victim.kill('SIGKILL');
            await killed;
          }

          // Assert: handed over before any lease could expire; each ran to completion once more,
          // as the same attempt, and the API shows the second delivery.
          expect(handOverMs).toBeLessThan(leaseMs);
          await waitFor(
            async () => (await Promise.all(ids.map(task))).every((t) => t.status === 'completed'),
            { timeoutMs: 60_000, intervalMs: 200, what: 'every task to complete' },
          );
          for (const id of ids) {
            expect(await task(id)).toMatchObject({
              status: 'completed',
              attempt: 1,
              deliveries: 2,
            });
          }
        },
      );

      // The postgres driver has no broker connection of its own to drop.
      const brokerIt = driver === 'postgres' ? it.skip : it;
      brokerIt(
        'a dropped broker connection loses nothing: consumers resume by themselves',
        async () => {
          if (driver === 'postgres') return; // (skipped above; this narrows the type)
          // Arrange
          const { schema, url } = await owned();
          const env = { DATABASE_URL: url, QUEUE_NAME: `drop-${randomUUID()}` };
          queues.push(env.QUEUE_NAME);
          const api = start({ ...env, APP_ROLE: 'api' });
          const worker = start({ ...env, APP_ROLE: 'worker' });
          const apiUrl = await listening(api);
          await listening(worker);
          const expected = await submit(apiUrl, TASKS / 2);
          await waitFor(async () => ((await statuses(schema)).running ?? 0) > 0, {
            timeoutMs: 60_000,
            what: 'tasks to be running',
          });

          // Act: the server closes the worker's and the API's broker connections mid-run.
          expect(dropBrokerConnections(driver, worker.pid!)).toBeGreaterThan(0);
          expect(dropBrokerConnections(driver, api.pid!)).toBeGreaterThan(0);
          const more = await submit(apiUrl, TASKS / 2);

          // Assert: every task, before and after the drop, completed once.
          await expectEachCompletedOnce(schema, new Map([...expected, ...more]));
        },
      );
    });
  });
}

/** Three concurrent `npm run migrate` on one fresh schema: each migration is applied once. */
describeWithService(POSTGRES_SERVICE, 'migrate on PostgreSQL', () => {
  it('runs each migration once when several processes migrate at the same moment', async () => {
    const { schema, url, drop } = await freshSchema();
    try {
      const runs = await Promise.all(
        [1, 2, 3].map(() =>
          finished(startNode(distFile('persistence/migrate.js'), { DATABASE_URL: url })),
        ),
      );
      expect(runs.map((r) => r.code)).toEqual([0, 0, 0]);
      expect(runs.filter((r) => r.stdout.includes('migrate: applied'))).toHaveLength(1);
      expect(runs.map((r) => r.stdout).join('')).not.toContain('postgres@');
      const { rows } = await pg((client) =>
        client.query<{ name: string }>(`SELECT name FROM ${schema}.migrations ORDER BY id`),
      );
      expect(new Set(rows.map((r) => r.name)).size).toBe(rows.length);
    } finally {
      await drop();
    }
  });
});
