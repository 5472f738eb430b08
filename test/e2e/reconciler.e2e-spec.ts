import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { QueueDriverRegistry, QueuePublisher } from '../../src/queue';
import { TaskProcessor } from '../../src/worker/task.processor';
import { TaskReconciler } from '../../src/maintenance/task-reconciler.service';
import {
  E2E_MESSAGE_DRIVER,
  startTestApp,
  tempDir,
  type TestApp,
} from '../helpers/create-test-app';
import { waitFor } from '../helpers/wait-for';

const AFTER_MS = 1000;
const LONG_AGO = Date.now() - 60 * 60 * 1000;

/** Inserts a row as a process that died would have left it, on SQLite or PostgreSQL alike. */
async function leaveRow(t: TestApp, status: 'queued' | 'running'): Promise<string> {
  const dataSource = t.app.get(DataSource);
  const id = randomUUID();
  const [sql, params] = dataSource.driver.escapeQueryWithParameters(
    `INSERT INTO tasks (id, action, payload, status, attempt, max_attempts, priority, queue,
       claim_token, created_at, started_at, updated_at, callback_attempts)
     VALUES (:id, 'uppercase', :payload, :status, :attempt, 3, 0, 'tasks', :token, :at, :startedAt, :at, 0)`,
    {
      id,
      payload: JSON.stringify({ text: id }),
      status,
      attempt: status === 'running' ? 1 : 0,
      token: status === 'running' ? randomUUID() : null,
      at: LONG_AGO,
      startedAt: status === 'running' ? LONG_AGO : null,
    },
  );
  await dataSource.query(sql, params);
  return id;
}

async function finalState(t: TestApp, id: string) {
  return waitFor(
    async () => {
      const { body } = await t.http.get(`/tasks/${id}`).expect(200);
      return body.status === 'completed' ? (body as { attempt: number; result: unknown }) : null;
    },
    { timeoutMs: 30_000, what: `task ${id} to complete` },
  );
}

// The reconciler looks for messages lost apart from their rows: a message driver's concern.
describe(`reconciler (${E2E_MESSAGE_DRIVER} driver)`, () => {
  const dir = tempDir();
  let t: TestApp;

  beforeAll(async () => {
    t = await startTestApp({
      dbPath: join(dir.path, 'tasks.db'),
      // Passes are started by the tests, not by the timer.
      env: {
        QUEUE_DRIVER: E2E_MESSAGE_DRIVER,
        RECONCILE_INTERVAL_MS: '0',
        RECONCILE_AFTER_MS: String(AFTER_MS),
      },
    });
  });
  afterAll(async () => {
    await t.close();
    dir.remove();
  });

  it('publishes a queued task whose message never reached the broker', async () => {
    const id = await leaveRow(t, 'queued');

    const report = await t.app.get(TaskReconciler).reconcile();

    expect(report.queued).toBeGreaterThanOrEqual(1);
    expect(await finalState(t, id)).toMatchObject({
      attempt: 1,
      result: { output: id.toUpperCase() },
    });
  });

  it('takes over a running task whose delivery is gone, as its next attempt', async () => {
    const id = await leaveRow(t, 'running');

    const report = await t.app.get(TaskReconciler).reconcile();

    expect(report.running).toBeGreaterThanOrEqual(1);
    expect(await finalState(t, id)).toMatchObject({
      attempt: 2,
      result: { output: id.toUpperCase() },
    });
  });

  it('leaves a healthy long task alone even when its row looks stale', async () => {
    // Arrange: a task whose handler is running right now, its delivery held by this process.
    const { body } = await t.http
      .post('/tasks')
      .send({ action: 'sleep', data: { ms: 1500 } })
      .expect(202);
    await waitFor(async () => (await t.http.get(`/tasks/${body.id}`)).body.status === 'running', {
      timeoutMs: 30_000,
    });
    const processor = t.app.get(TaskProcessor);
    const duplicatesBefore = processor.duplicates;

    // Act: a pass that sees the row as silent for an hour.
    await t.app.get(TaskReconciler).reconcile(Date.now() + 60 * 60 * 1000);

    // Assert: the broker refused the second message (the delivery is alive): one attempt only,
    // and no second delivery had to be skipped.
    expect(await finalState(t, body.id)).toMatchObject({ attempt: 1 });
    expect(processor.duplicates).toBe(duplicatesBefore);
  });

  it('does not believe a claim header a message brings: the worker claims the row itself', async () => {
    const id = await leaveRow(t, 'queued');
    // As a broker message could be forged: claimed already, for an actor of its choosing. Were
    // it believed, the handler would run with no claim on the row, as often as it is sent.
    await t.app.get(QueuePublisher).publish(t.config.queue.name, [
      {
        body: { taskId: id, action: 'uppercase', data: { text: id } },
        headers: {
          'x-taskq-claimed': 'forged-token',
          'x-taskq-claimed-tenant': 'globex',
          'x-taskq-claimed-actor-key': 'intruder',
        },
        deduplicationKey: id,
      },
    ]);
    expect(await finalState(t, id)).toMatchObject({
      attempt: 1,
      result: { output: id.toUpperCase() },
    });
    const { body } = await t.http.get(`/tasks/${id}`).expect(200);
    expect(body).toMatchObject({ deliveries: 1, tenant: 'default' });
  });

  it('acks, drops and counts a message whose task does not exist', async () => {
    const processor = t.app.get(TaskProcessor);
    const before = processor.orphans;
    const queue = t.config.queue.name;

    await t.app
      .get(QueuePublisher)
      .publish(queue, [
        { body: { taskId: randomUUID(), action: 'uppercase', data: { text: 'x' } } },
      ]);

    await waitFor(() => processor.orphans === before + 1, { timeoutMs: 30_000 });
    const driver = t.app.get(QueueDriverRegistry).driverFor(queue);
    await waitFor(async () => {
      const stats = await driver.stats(queue);
      return stats.ready + stats.inFlight + stats.delayed + stats.dead === 0;
    });
  });
});
