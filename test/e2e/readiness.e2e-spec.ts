import { join } from 'node:path';
import request from 'supertest';
import { distFile, finished, startNode } from '../helpers/child-process';
import { databaseEnv, tempDir } from '../helpers/create-test-app';
import { waitFor } from '../helpers/wait-for';

describe('readiness and liveness (a real process)', () => {
  const dir = tempDir();
  const children: ReturnType<typeof startNode>[] = [];
  // A failed assertion must not leave the process running.
  afterEach(() => children.splice(0).forEach((c) => c.exitCode === null && c.kill('SIGKILL')));
  afterAll(() => dir.remove());

  it('answers ready, then 503 shutting_down from SIGTERM on while it drains, then exits 0', async () => {
    // Arrange: a process with a task in flight that takes a while to finish.
    const child = startNode(distFile('main.js'), {
      ...(await databaseEnv(join(dir.path, 'ready.db'))),
      PORT: '0',
      HOST: '127.0.0.1',
      LOG_LEVEL: 'log',
      SHUTDOWN_TIMEOUT_MS: '60000',
    });
    children.push(child);
    const exited = finished(child);
    const url = await waitFor(() => /listening on (http:\/\/\S+)/.exec(child.output())?.[1], {
      timeoutMs: 60_000,
      what: 'the service to listen',
    });
    const http = request(url);
    const ready = await http.get('/health/ready').expect(200);
    expect(ready.body).toMatchObject({
      status: 'ok',
      info: { database: { status: 'up' }, 'driver:default': { status: 'up', queues: ['tasks'] } },
    });
    await http.get('/health/live').expect(200, { status: 'ok' });
    const { id } = (
      await http
        .post('/tasks')
        .send({ action: 'sleep', data: { ms: 3000 } })
        .expect(202)
    ).body as { id: string };
    await waitFor(async () => (await http.get(`/tasks/${id}`)).body.status === 'running', {
      what: 'the task to run',
    });

    // Act
    child.kill('SIGTERM');

    // Assert: readiness turns 503 while the handler still runs (the drain has not ended)...
    const draining = await waitFor(
      async () => {
        const res = await http.get('/health/ready');
        return res.status === 503 ? res : undefined;
      },
      { what: 'readiness to turn 503' },
    );
    expect(draining.body).toEqual({ status: 'shutting_down' });
    expect((await http.get(`/tasks/${id}`).expect(200)).body.status).toBe('running');
    // ...the process is still alive and says so...
    await http.get('/health/live').expect(200);
    await http.get('/health').expect(503);
    // ...and it exits 0 once the handler finished and its result was recorded.
    expect(await exited).toMatchObject({ code: 0, signal: null });
  }, 120_000);
});
