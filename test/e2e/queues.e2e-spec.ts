import { join } from 'node:path';
import { E2E_QUEUE_DRIVER, startTestApp, tempDir, type TestApp } from '../helpers/create-test-app';
import { waitFor } from '../helpers/wait-for';
import { QueueDriverRegistry } from '../../src/queue';

describe('queues API', () => {
  const dir = tempDir();
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({
      dbPath: join(dir.path, 'queues.db'),
      env: { WORKER_CONCURRENCY: '3', WORKER_PREFETCH: '6' },
    });
  });
  afterAll(async () => {
    await t.close();
    dir.remove();
  });

  it('lists each queue with its driver, counts and consumers', async () => {
    const res = await t.http.get('/queues').expect(200);
    expect(res.body).toEqual({
      queues: [
        {
          name: 'tasks',
          driver: E2E_QUEUE_DRIVER,
          waiting: expect.any(Number),
          queuedTasks: expect.any(Number),
          inFlight: expect.any(Number),
          delayed: expect.any(Number),
          failed: expect.any(Number),
          paused: false,
          consumers: [
            { concurrency: 3, prefetch: 6, busy: expect.any(Number), buffered: expect.any(Number) },
          ],
        },
      ],
    });
  });

  it('a paused queue accepts tasks and delivers none until resumed', async () => {
    expect((await t.http.post('/queues/tasks/pause').expect(200)).body.paused).toBe(true);
    const { id } = (
      await t.http
        .post('/tasks')
        .send({ action: 'uppercase', data: { text: 'later' } })
        .expect(202)
    ).body;
    await waitFor(
      async () => (await t.http.get('/queues').expect(200)).body.queues[0].waiting >= 1,
    );
    // The task table agrees: the task is queued, not lost.
    expect((await t.http.get('/queues').expect(200)).body.queues[0].queuedTasks).toBe(1);
    expect((await t.http.get(`/tasks/${id}`).expect(200)).body.status).toBe('queued');

    expect((await t.http.post('/queues/tasks/resume').expect(200)).body.paused).toBe(false);
    const task = await waitFor(async () => {
      const body = (await t.http.get(`/tasks/${id}`).expect(200)).body;
      return body.status === 'completed' ? body : undefined;
    });
    expect(task.result).toEqual({ output: 'LATER' });
  });

  it('keeps a message that is no task as a dead letter with the reason, counted as failed', async () => {
    const driver = t.app.get(QueueDriverRegistry).driverFor('tasks');
    const before = (await driver.stats('tasks')).dead;
    // Decodable, but no task: another publisher's message, or a bug.
    await driver.publish('tasks', [{ body: { hello: 'world' } }]);
    await waitFor(
      async () => (await t.http.get('/queues').expect(200)).body.queues[0].failed === before + 1,
      { what: 'the message in the dead letters' },
    );
    const [letter] = await driver.deadLetters('tasks', 1);
    expect(letter).toMatchObject({
      body: { hello: 'world' },
      reason: 'non-retryable: malformed task message: string taskId and action expected',
    });
  });

  it('answers 404 for an unknown queue', async () => {
    const res = await t.http.post('/queues/nope/pause').expect(404);
    expect(res.body.message).toContain('queue nope is not declared');
  });
});
