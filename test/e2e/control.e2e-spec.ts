import Database from 'better-sqlite3';
import { join } from 'node:path';
import { startTestApp, tempDir, type TestApp } from '../helpers/create-test-app';
import { probe, TestHandlersModule } from '../helpers/test-handlers';
import { waitFor } from '../helpers/wait-for';

const TERMINAL = ['completed', 'failed', 'cancelled'];

describe('task control API', () => {
  const dir = tempDir();
  let t: TestApp;

  beforeAll(async () => {
    t = await startTestApp({
      dbPath: join(dir.path, 'control.db'),
      modules: [TestHandlersModule],
      env: { WORKER_CONCURRENCY: '4', WORKER_PREFETCH: '8' },
    });
  });
  afterAll(async () => {
    probe.gate.resolve();
    await t.close();
    dir.remove();
  });
  beforeEach(() => probe.reset());

  const submit = (body: object) => t.http.post('/tasks').send(body);
  const get = async (id: string) => (await t.http.get(`/tasks/${id}`).expect(200)).body;
  const settled = (id: string) =>
    waitFor(async () => {
      const task = await get(id);
      return TERMINAL.includes(task.status) ? task : undefined;
    });
  const running = (id: string) => waitFor(async () => (await get(id)).status === 'running');

  describe('cancel', () => {
    it('a queued task never runs', async () => {
      const { id } = (
        await submit({ action: 'record', data: { name: 'x' }, delayMs: 60_000 }).expect(202)
      ).body;
      const res = await t.http.post(`/tasks/${id}/cancel`).expect(200);
      expect(res.body).toMatchObject({ id, status: 'cancelled', attempt: 0 });
      await t.http.post(`/tasks/${id}/cancel`).expect(409);
      expect(probe.order).toEqual([]);
    });

    it('a running task is aborted, ends cancelled and frees its worker', async () => {
      const { id } = (await submit({ action: 'hold' }).expect(202)).body;
      await running(id);
      await t.http.post(`/tasks/${id}/cancel`).expect(200);
      const task = await settled(id);
      expect(task).toMatchObject({ status: 'cancelled', attempt: 1, result: null });
      const next = (await submit({ action: 'uppercase', data: { text: 'after' } }).expect(202)).body
        .id;
      expect((await settled(next)).result).toEqual({ output: 'AFTER' });
      // Not retried: still cancelled with one attempt.
      expect(await get(id)).toMatchObject({ status: 'cancelled', attempt: 1 });
    });

    it('answers 404 for an unknown task and 409 for a finished one', async () => {
      await t.http.post('/tasks/nope/cancel').expect(404);
      const { id } = (await submit({ action: 'uppercase', data: { text: 'x' } }).expect(202)).body;
      await settled(id);
      const res = await t.http.post(`/tasks/${id}/cancel`).expect(409);
      expect(res.body.message).toBe(`task ${id} is completed: it cannot be cancelled`);
    });
  });

  describe('retry', () => {
    it('queues a failed task again with fresh attempts', async () => {
      const { id } = (await submit({ action: 'flaky-once' }).expect(202)).body;
      expect(await settled(id)).toMatchObject({
        status: 'failed',
        attempt: 1,
        error: 'first call fails',
      });
      const res = await t.http.post(`/tasks/${id}/retry`).expect(202);
      expect(res.body).toMatchObject({ status: 'queued', attempt: 0, error: null });
      expect(await settled(id)).toMatchObject({
        status: 'completed',
        attempt: 1,
        result: { output: 'fine' },
      });
      await t.http.post(`/tasks/${id}/retry`).expect(409);
    });
  });

  describe('timeouts', () => {
    it('abort the attempt at timeoutMs, retry it, then fail the task', async () => {
      const { id } = (
        await submit({
          action: 'sleep',
          data: { ms: 60_000 },
          timeoutMs: 50,
          maxAttempts: 2,
        }).expect(202)
      ).body;
      expect(await settled(id)).toMatchObject({
        status: 'failed',
        attempt: 2,
        maxAttempts: 2,
        timeoutMs: 50,
        error: 'timed out after 50 ms',
      });
    });

    it('free the worker even when the handler ignores its signal', async () => {
      const { id } = (
        await submit({ action: 'stubborn', timeoutMs: 50, maxAttempts: 1 }).expect(202)
      ).body;
      expect(await settled(id)).toMatchObject({ status: 'failed', error: 'timed out after 50 ms' });
    });
  });

  describe('Idempotency-Key', () => {
    it('turns 20 concurrent identical requests into one task', async () => {
      const body = { action: 'uppercase', data: { text: 'once' } };
      const responses = await Promise.all(
        Array.from({ length: 20 }, () =>
          t.http.post('/tasks').set('Idempotency-Key', 'key-20').send(body),
        ),
      );
      const ids = new Set(responses.map((r) => r.body.id));
      expect(ids.size).toBe(1);
      expect(responses.filter((r) => r.status === 202)).toHaveLength(1);
      expect(responses.filter((r) => r.status === 200)).toHaveLength(19);
      const db = new Database(t.dbPath, { readonly: true });
      expect(
        db.prepare("SELECT count(*) AS n FROM tasks WHERE idempotency_key = 'key-20'").get(),
      ).toEqual({ n: 1 });
      db.close();
    });

    it('answers 409 when the key comes back with another body', async () => {
      await t.http
        .post('/tasks')
        .set('Idempotency-Key', 'key-409')
        .send({ action: 'sum', data: { numbers: [2] } })
        .expect(202);
      const res = await t.http
        .post('/tasks')
        .set('Idempotency-Key', 'key-409')
        .send({ action: 'sum', data: { numbers: [1] } })
        .expect(409);
      expect(res.body.message).toBe(
        'Idempotency-Key key-409 was already used with a different request',
      );
    });
  });

  describe('POST /tasks/batch', () => {
    it('accepts up to 1000 tasks in one go', async () => {
      const tasks = Array.from({ length: 3 }, (_, i) => ({
        action: 'sum',
        data: { numbers: [i, 1] },
      }));
      const res = await t.http.post('/tasks/batch').send({ tasks }).expect(202);
      expect(res.body.count).toBe(3);
      const results = await Promise.all(res.body.tasks.map((x: { id: string }) => settled(x.id)));
      expect(results.map((x) => x.result)).toEqual([{ output: 1 }, { output: 2 }, { output: 3 }]);
    });

    it('stores nothing when one task is bad, naming its index and field', async () => {
      const before = (await t.http.get('/tasks?action=batch-probe').expect(200)).body.count;
      const res = await t.http
        .post('/tasks/batch')
        .send({
          tasks: [
            { action: 'batch-probe' },
            { action: 'sum', data: { numbers: ['x'] } },
            { action: 'batch-probe', delayMs: 1, runAt: '2030-01-01T00:00:00Z' },
          ],
        })
        .expect(400);
      expect(res.body.message).toEqual([
        'tasks.1.data.numbers: each value in numbers must be a number conforming to the specified constraints',
        'tasks.2.delayMs and runAt cannot both be set',
      ]);
      const shape = await t.http
        .post('/tasks/batch')
        .send({ tasks: [{ action: 'ok' }, { data: {} }] })
        .expect(400);
      expect(shape.body.message).toContain('tasks.1.action must be a string');
      await t.http.post('/tasks/batch').send({ tasks: [] }).expect(400);
      expect((await t.http.get('/tasks?action=batch-probe').expect(200)).body.count).toBe(before);
    });
  });

  describe('scheduling', () => {
    it('runs higher priorities first, FIFO within one priority', async () => {
      // Hold every worker, queue the rest, then let them go.
      const holders = await Promise.all(
        Array.from(
          { length: 4 },
          async () => (await submit({ action: 'hold' }).expect(202)).body.id,
        ),
      );
      await Promise.all(holders.map(running));
      for (const [name, priority] of [
        ['low-1', 0],
        ['high-1', 9],
        ['mid', 5],
        ['high-2', 9],
        ['low-2', 0],
      ] as const) {
        await submit({ action: 'record', data: { name }, priority }).expect(202);
      }
      probe.gate.resolve();
      await waitFor(() => probe.order.length === 5);
      expect(probe.order).toEqual(['high-1', 'high-2', 'mid', 'low-1', 'low-2']);
    });

    it('does not start a delayed task before its time', async () => {
      const { id } = (
        await submit({ action: 'uppercase', data: { text: 'x' }, delayMs: 300 }).expect(202)
      ).body;
      const queued = await get(id);
      expect(queued.status).toBe('queued');
      const task = await settled(id);
      expect(Date.parse(task.startedAt)).toBeGreaterThanOrEqual(Date.parse(queued.runAt));
    });

    it('rejects delayMs together with runAt, and out-of-range values', async () => {
      const both = await submit({
        action: 'sum',
        delayMs: 5,
        runAt: '2030-01-01T00:00:00Z',
      }).expect(400);
      expect(both.body.message).toEqual(['delayMs and runAt cannot both be set']);
      const bad = await submit({
        action: 'sum',
        priority: 11,
        maxAttempts: 0,
        timeoutMs: 0,
        callbackUrl: 'ftp://x',
      }).expect(400);
      expect(bad.body.message).toEqual(
        expect.arrayContaining([
          'priority must not be greater than 10',
          'maxAttempts must not be less than 1',
          'timeoutMs must not be less than 1',
          'callbackUrl must be an http or https URL',
        ]),
      );
    });
  });

  describe('waiting and progress', () => {
    it('GET ?waitMs answers as soon as the task ends', async () => {
      const { id } = (await submit({ action: 'sleep', data: { ms: 200 } }).expect(202)).body;
      const res = await t.http.get(`/tasks/${id}?waitMs=20000`).expect(200);
      expect(res.body).toMatchObject({
        status: 'completed',
        result: { output: 'slept', sleptMs: 200 },
      });
    });

    it('GET ?waitMs answers with the current state when the time is up', async () => {
      const { id } = (await submit({ action: 'hold' }).expect(202)).body;
      await running(id);
      const res = await t.http.get(`/tasks/${id}?waitMs=100`).expect(200);
      expect(res.body).toMatchObject({
        status: 'running',
        progress: 50,
        progressMessage: 'half way',
      });
      await t.http.get(`/tasks/${id}?waitMs=30001`).expect(400);
      probe.gate.resolve();
      await settled(id);
    });
  });

  describe('listing', () => {
    it('pages with a cursor that stays stable while tasks are added', async () => {
      const ids: string[] = [];
      for (let i = 0; i < 5; i++)
        ids.push((await submit({ action: 'page-probe' }).expect(202)).body.id);
      const seen: string[] = [];
      let cursor: string | null = null;
      do {
        const query: string = `/tasks?action=page-probe&limit=2${cursor ? `&cursor=${cursor}` : ''}`;
        const page = (await t.http.get(query).expect(200)).body;
        seen.push(...page.tasks.map((x: { id: string }) => x.id));
        cursor = page.nextCursor;
        // A newer task arriving mid-listing must not shift the pages.
        if (seen.length === 2) await submit({ action: 'page-probe' }).expect(202);
      } while (cursor);
      expect(seen).toEqual([...ids].reverse());
      await t.http.get('/tasks?cursor=garbage').expect(400);
    });

    it('filters by action and creation time', async () => {
      const from = new Date(Date.now() - 1).toISOString();
      const { id } = (await submit({ action: 'filter-probe' }).expect(202)).body;
      const after = (
        await t.http.get(`/tasks?action=filter-probe&createdAfter=${from}`).expect(200)
      ).body;
      expect(after.tasks.map((x: { id: string }) => x.id)).toEqual([id]);
      const before = (
        await t.http.get(`/tasks?action=filter-probe&createdBefore=${from}`).expect(200)
      ).body;
      expect(before.count).toBe(0);
      await t.http.get('/tasks?createdAfter=yesterday').expect(400);
    });
  });
});

describe.each(['express', 'fastify'] as const)('status codes on %s', (adapter) => {
  const dir = tempDir();
  afterAll(() => dir.remove());

  it('answers 429 with Retry-After while QUEUE_MAX_DEPTH tasks wait', async () => {
    const t = await startTestApp({
      adapter,
      dbPath: join(dir.path, 'full.db'),
      env: { QUEUE_MAX_DEPTH: '2' },
    });
    try {
      const sum = { action: 'sum', data: { numbers: [1] } };
      await t.http
        .post('/tasks')
        .send({ ...sum, delayMs: 60_000 })
        .expect(202);
      await t.http
        .post('/tasks')
        .send({ ...sum, delayMs: 60_000 })
        .expect(202);
      const res = await t.http.post('/tasks').send(sum).expect(429);
      expect(res.headers['retry-after']).toBe('1');
      expect(res.body).toEqual({
        statusCode: 429,
        error: 'Too Many Requests',
        message: '2 tasks are waiting, the limit is 2: retry later',
      });
    } finally {
      await t.close();
    }
  });

  it('answers an idempotent replay with 200 and the first task', async () => {
    const t = await startTestApp({ adapter, dbPath: join(dir.path, 'replay.db') });
    try {
      const first = await t.http
        .post('/tasks')
        .set('Idempotency-Key', 'replay')
        .send({ action: 'x' })
        .expect(202);
      const second = await t.http
        .post('/tasks')
        .set('Idempotency-Key', 'replay')
        .send({ action: 'x' })
        .expect(200);
      expect(second.body.id).toBe(first.body.id);
      await t.http
        .post('/tasks')
        .set('Idempotency-Key', 'bad key with spaces')
        .send({ action: 'x' })
        .expect(400);
    } finally {
      await t.close();
    }
  });
});
