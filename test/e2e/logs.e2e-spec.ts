import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import request from 'supertest';
import { distFile, finished, startNode } from '../helpers/child-process';
import { databaseEnv, tempDir } from '../helpers/create-test-app';
import { waitFor } from '../helpers/wait-for';

const secret = (name: string) => `${name}-${randomBytes(8).toString('hex')}`;

describe.each(['express', 'fastify'])('logs (a real process, %s)', (adapter) => {
  const dir = tempDir();
  const children: ReturnType<typeof startNode>[] = [];
  // A failed assertion must not leave the process running.
  afterEach(() => children.splice(0).forEach((c) => c.exitCode === null && c.kill('SIGKILL')));
  afterAll(() => dir.remove());

  it('writes JSON lines with request ids and task fields, and never a secret', async () => {
    // Arrange: secrets in the config, in a request's headers and query, and in a task's error.
    const callbackSecret = secret('cbsecret');
    const redisPassword = secret('redispass');
    const dbPassword = secret('dbpass');
    const apiKey = secret('apikey');
    const child = startNode(distFile('main.js'), {
      ...(await databaseEnv(join(dir.path, 'logs.db'))),
      PORT: '0',
      HOST: '127.0.0.1',
      HTTP_ADAPTER: adapter,
      LOG_LEVEL: 'debug',
      CALLBACK_SECRET: callbackSecret,
      REDIS_URL: `redis://:${redisPassword}@127.0.0.1:6379`,
      TASK_BACKOFF_MS: '5',
      OTEL_EXPORTER_OTLP_ENDPOINT: '',
    });
    children.push(child);
    const exited = finished(child);
    const url = await waitFor(() => /listening on (http:\/\/\S+)/.exec(child.output())?.[1], {
      timeoutMs: 60_000,
      what: 'the service to listen',
    });
    const http = request(url);

    // Act
    const { id } = (
      await http
        .post('/tasks')
        .set('Authorization', `Bearer ${apiKey}`)
        .set('X-Api-Key', apiKey)
        .set('X-Request-Id', 'req-logs-1')
        .send({
          action: 'fail',
          maxAttempts: 2,
          data: {
            message: `cannot reach postgres://admin:${dbPassword}@db.internal/x (key ${callbackSecret})`,
          },
        })
        .expect(202)
    ).body as { id: string };
    const echoed = await http.get(`/tasks?api_key=${apiKey}`).expect(400);
    await waitFor(async () => (await http.get(`/tasks/${id}`)).body.status === 'failed', {
      what: 'the task to fail',
    });
    child.kill('SIGTERM');
    const result = await exited;

    // Assert: one JSON object per line, on stdout.
    expect(result.code).toBe(0);
    const lines = result.stdout
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(lines.length).toBeGreaterThan(5);
    // No secret anywhere, in any form.
    const output = child.output();
    for (const value of [callbackSecret, redisPassword, dbPassword, apiKey]) {
      expect([value, output.includes(value)]).toEqual([value, false]);
    }
    // The request line carries the caller's request id; a request without one gets a UUID.
    expect(echoed.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    const posted = lines.find(
      (l) => l.requestId === 'req-logs-1' && (l.req as { url?: string })?.url === '/tasks',
    );
    expect(posted).toMatchObject({ msg: 'request completed', res: { statusCode: 202 } });
    // A request with a key in its query is logged with the key replaced.
    expect(lines.some((l) => (l.req as { url?: string })?.url === '/tasks?api_key=***')).toBe(true);
    // Every line about the task names it, its action, attempt and queue.
    // (Lines naming it, and the worker pool's lines on its message: retry, dead letter.)
    const aboutTask = lines.filter(
      (l) => (typeof l.msg === 'string' && l.msg.includes(id)) || l.taskId === id,
    );
    expect(aboutTask.some((l) => String(l.msg).includes('retry in'))).toBe(true);
    expect(aboutTask.some((l) => String(l.msg).includes('dead-lettered'))).toBe(true);
    for (const line of aboutTask) {
      expect(line).toMatchObject({ taskId: id, action: 'fail', queue: 'tasks' });
      expect([1, 2]).toContain(line.attempt);
    }
    // The failure was logged, with the URL's credentials and the callback key scrubbed.
    const failure = lines.find(
      (l) => l.taskId === id && l.attempt === 2 && String(l.msg).includes('failed for good'),
    );
    expect(String(failure?.msg)).toContain('postgres://***@db.internal/x (key ***)');
  }, 120_000);
});
