import { join } from 'node:path';
import { IdempotencyConflictError, InvalidTaskRequestError, TasksService } from '../../src/tasks';
import { startTestApp, tempDir, type TestApp } from '../helpers/create-test-app';
import { waitFor } from '../helpers/wait-for';

/** Task ids are UUIDv7: time-ordered, so new rows append to the id indexes. */
const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const TERMINAL = ['completed', 'failed', 'cancelled'];

describe.each(['express', 'fastify'] as const)('tasks API on %s', (adapter) => {
  const dir = tempDir();
  let t: TestApp;

  beforeAll(async () => {
    t = await startTestApp({ adapter, dbPath: join(dir.path, 'tasks.db') });
  });
  afterAll(async () => {
    await t.close();
    dir.remove();
  });

  const submit = (body: unknown) => t.http.post('/tasks').send(body as object);
  const settled = async (id: string) =>
    waitFor(
      async () => {
        const res = await t.http.get(`/tasks/${id}`).expect(200);
        return TERMINAL.includes(res.body.status) ? res.body : undefined;
      },
      { what: `task ${id} to finish` },
    );

  describe('the tutorial flow', () => {
    it('queues an uppercase task and stores its result', async () => {
      const res = await submit({ action: 'uppercase', data: { text: 'hello world' } }).expect(202);
      expect(res.body).toEqual({ id: expect.stringMatching(UUID_V7), status: 'queued' });

      const task = await settled(res.body.id);
      expect(task).toEqual({
        id: res.body.id,
        action: 'uppercase',
        data: { text: 'hello world' },
        status: 'completed',
        result: { output: 'HELLO WORLD' },
        error: null,
        attempt: 1,
        maxAttempts: 3,
        deliveries: 1,
        priority: 0,
        progress: null,
        progressMessage: null,
        runAt: null,
        timeoutMs: null,
        callback: null,
        tenant: 'default',
        createdBy: null,
        createdAt: expect.any(String),
        startedAt: expect.any(String),
        processedAt: expect.any(String),
      });
      expect(Date.parse(task.processedAt)).toBeGreaterThanOrEqual(Date.parse(task.createdAt));
    });

    it('sums numbers, floats included', async () => {
      const res = await submit({ action: 'sum', data: { numbers: [1.5, 2.25, 3, -1] } }).expect(
        202,
      );
      expect((await settled(res.body.id)).result).toEqual({ output: 5.75 });
    });

    it('answers any other action with the fallback handler', async () => {
      const res = await submit({ action: 'resize-image', data: { w: 10 } }).expect(202);
      expect((await settled(res.body.id)).result).toEqual({ output: 'processed' });
    });

    it('defaults data to {}', async () => {
      const res = await submit({ action: 'no-data' }).expect(202);
      const task = await settled(res.body.id);
      expect(task.data).toEqual({});
      expect(task.result).toEqual({ output: 'processed' });
    });

    it('lists tasks newest first with a count, filtered by status', async () => {
      const ids: string[] = [];
      for (const text of ['a', 'b', 'c']) {
        ids.push((await submit({ action: 'uppercase', data: { text } }).expect(202)).body.id);
      }
      await Promise.all(ids.map(settled));

      const all = await t.http.get('/tasks').expect(200);
      expect(all.body.count).toBe(all.body.tasks.length);
      const listed = all.body.tasks.map((task: { id: string }) => task.id);
      expect(listed.slice(0, 3)).toEqual([...ids].reverse());
      const created = all.body.tasks.map((task: { createdAt: string }) =>
        Date.parse(task.createdAt),
      );
      expect(created).toEqual([...created].sort((a, b) => b - a));

      const completed = await t.http.get('/tasks?status=completed').expect(200);
      expect(completed.body.tasks.length).toBeGreaterThanOrEqual(3);
      expect(
        completed.body.tasks.every((task: { status: string }) => task.status === 'completed'),
      ).toBe(true);

      const none = await t.http.get('/tasks?status=cancelled').expect(200);
      expect(none.body).toEqual({ tasks: [], count: 0, nextCursor: null });

      const limited = await t.http.get('/tasks?limit=2').expect(200);
      expect(limited.body.count).toBe(2);
    });

    it('returns at most 100 tasks', async () => {
      await Promise.all(
        Array.from({ length: 101 }, () => submit({ action: 'noop-batch' }).expect(202)),
      );
      const res = await t.http.get('/tasks').expect(200);
      expect(res.body.count).toBe(100);
      expect(res.body.tasks).toHaveLength(100);
    });
  });

  describe('keyed batches (the scheduler creates its ticks this way)', () => {
    it('creates each free key once, answers a taken key with its task, fails a bad request alone', async () => {
      const tasks = t.app.get(TasksService);
      const stored = await tasks.create({ action: 'uppercase', data: { text: 'old' } }, 'kb-old');
      const outcomes = await tasks.createKeyed([
        { dto: { action: 'uppercase', data: { text: 'kb-a' } }, idempotencyKey: 'kb-a' },
        { dto: { action: 'uppercase', data: { text: 'old' } }, idempotencyKey: 'kb-old' },
        { dto: { action: 'uppercase', data: { text: 'changed' } }, idempotencyKey: 'kb-old' },
        { dto: { action: 'uppercase', data: { text: 'kb-a' } }, idempotencyKey: 'kb-a' },
        { dto: { action: 'uppercase', data: { text: 1 } }, idempotencyKey: 'kb-bad' },
      ]);
      expect(outcomes.map((outcome) => outcome.status)).toEqual([
        'fulfilled',
        'fulfilled',
        'rejected',
        'fulfilled',
        'rejected',
      ]);
      const [a, old, changed, twin, bad] = outcomes;
      if (a.status !== 'fulfilled' || old.status !== 'fulfilled' || twin.status !== 'fulfilled') {
        throw new Error('unreachable');
      }
      expect(a.value.created).toBe(true);
      expect(old.value).toMatchObject({ created: false, task: { id: stored.task.id } });
      expect((changed as PromiseRejectedResult).reason).toBeInstanceOf(IdempotencyConflictError);
      expect(twin.value).toMatchObject({ created: false, task: { id: a.value.task.id } });
      expect((bad as PromiseRejectedResult).reason).toBeInstanceOf(InvalidTaskRequestError);
      // The twin's row was skipped; the inserted task was published and runs.
      expect((await settled(a.value.task.id)).result).toEqual({ output: 'KB-A' });
      const listed = await t.http.get('/tasks?action=uppercase&limit=100').expect(200);
      const rows = (listed.body.tasks as { data: { text?: unknown } }[]).filter(
        (task) => task.data.text === 'kb-a',
      );
      expect(rows).toHaveLength(1);
    });

    it('commits a batch of free keys whole, and every task runs', async () => {
      const tasks = t.app.get(TasksService);
      const outcomes = await tasks.createKeyed(
        ['x', 'y', 'z'].map((text) => ({
          dto: { action: 'uppercase', data: { text } },
          idempotencyKey: `kb-free-${text}`,
        })),
      );
      const created = outcomes.map((outcome) => {
        if (outcome.status !== 'fulfilled') throw outcome.reason;
        expect(outcome.value.created).toBe(true);
        return outcome.value.task.id;
      });
      const results = await Promise.all(created.map(async (id) => (await settled(id)).result));
      expect(results).toEqual([{ output: 'X' }, { output: 'Y' }, { output: 'Z' }]);
    });
  });

  describe('retries', () => {
    it('retries a failing handler with backoff, then marks it failed (the dead-letter view)', async () => {
      const res = await submit({ action: 'fail', data: { message: 'always broken' } }).expect(202);
      const task = await settled(res.body.id);
      expect(task).toMatchObject({
        status: 'failed',
        attempt: 3,
        maxAttempts: 3,
        // Each attempt was one pickup: no worker died, so nothing ran twice.
        deliveries: 3,
        error: 'always broken',
        result: null,
      });
      const failed = await t.http.get('/tasks?status=failed').expect(200);
      expect(failed.body.tasks.map((x: { id: string }) => x.id)).toContain(res.body.id);
    });

    it('completes a task that recovers on a later attempt', async () => {
      const res = await submit({ action: 'fail', data: { times: 1 } }).expect(202);
      const task = await settled(res.body.id);
      expect(task).toMatchObject({
        status: 'completed',
        attempt: 2,
        result: { output: 'recovered', attempts: 2 },
        error: null,
      });
    });
  });

  describe('bad input gets a 4xx naming the field', () => {
    it.each([
      [
        'a missing action',
        { data: {} },
        [
          'action must be a short identifier: a letter, then up to 63 letters, digits, _ . : or -',
          'action must be a string',
        ],
      ],
      [
        'an action that is not an identifier',
        { action: 'drop table;' },
        ['action must be a short identifier: a letter, then up to 63 letters, digits, _ . : or -'],
      ],
      [
        'an unknown field',
        { action: 'sum', colour: 'x', extra: 1 },
        ['property colour should not exist', 'property extra should not exist'],
      ],
      ['data that is not an object', { action: 'sum', data: [1, 2] }, ['data must be an object']],
      [
        'data that does not fit the handler',
        { action: 'sum', data: { numbers: [1, 'two'] } },
        [
          'data.numbers: each value in numbers must be a number conforming to the specified constraints',
        ],
      ],
      [
        'a sleep without ms',
        { action: 'sleep', data: {} },
        [
          'data.ms must not be greater than 600000',
          'data.ms must not be less than 0',
          'data.ms must be an integer number',
        ],
      ],
    ])('%s', async (_case, body, messages) => {
      const res = await submit(body).expect(400);
      expect(res.body).toEqual({
        statusCode: 400,
        error: 'Bad Request',
        message: expect.any(Array),
      });
      expect([...res.body.message].sort()).toEqual([...messages].sort());
    });

    it('invalid JSON', async () => {
      const res = await t.http
        .post('/tasks')
        .set('Content-Type', 'application/json')
        .send('{"action": "sum",')
        .expect(400);
      expect(res.body).toEqual({
        statusCode: 400,
        error: 'Bad Request',
        message: 'invalid JSON in request body: it could not be parsed',
      });
    });

    it.each([['[1,2]'], ['"text"'], ['null'], ['42']])(
      'a JSON body that is not an object: %s',
      async (body) => {
        const res = await t.http
          .post('/tasks')
          .set('Content-Type', 'application/json')
          .send(body)
          .expect(400);
        expect(res.body).toEqual({
          statusCode: 400,
          error: 'Bad Request',
          message: 'request body must be a JSON object',
        });
      },
    );

    it('an unknown status filter or limit', async () => {
      const res = await t.http.get('/tasks?status=done&limit=500').expect(400);
      expect(res.body.message).toEqual([
        'status must be one of: queued, running, completed, failed, cancelled',
        'limit must not be greater than 100',
      ]);
    });

    it('an unknown task id is a 404', async () => {
      for (const id of ['9b2f7a0e-2d4e-4a5e-9d8c-1f2e3d4c5b6a', 'not-a-uuid']) {
        const res = await t.http.get(`/tasks/${id}`).expect(404);
        expect(res.body).toEqual({
          statusCode: 404,
          error: 'Not Found',
          message: `task ${id} not found`,
        });
      }
    });

    it('keeps serving after bad requests and stores nothing for them', async () => {
      const before = (await t.http.get('/tasks?limit=100').expect(200)).body.tasks[0]?.id;
      await submit({ nope: true }).expect(400);
      await t.http.post('/tasks').set('Content-Type', 'application/json').send('{').expect(400);
      const after = (await t.http.get('/tasks?limit=100').expect(200)).body.tasks[0]?.id;
      expect(after).toBe(before);
      await t.http
        .get('/health')
        .expect(200, { status: 'ok', database: 'up', queue: 'up', auth: 'open' });
    });
  });

  describe('OpenAPI', () => {
    it('serves Swagger UI at /docs and the document at /docs-json', async () => {
      const ui = await t.http.get('/docs').expect(200);
      expect(ui.text).toContain('swagger-ui');
      const doc = await t.http.get('/docs-json').expect(200);
      expect(Object.keys(doc.body.paths)).toEqual(
        expect.arrayContaining(['/tasks', '/tasks/{id}', '/health']),
      );
      expect(doc.body.paths['/tasks'].post.responses).toHaveProperty('202');
      expect(doc.body.paths['/tasks'].post.responses).toHaveProperty('400');
      expect(doc.body.paths['/tasks/{id}'].get.responses).toHaveProperty('404');
      expect(doc.body.components.schemas.CreateTaskDto.required).toEqual(['action']);
      expect(doc.body.components.schemas.TaskResponseDto.properties).toHaveProperty('maxAttempts');
    });
  });
});
