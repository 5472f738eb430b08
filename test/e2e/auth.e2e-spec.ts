import { Injectable, Module } from '@nestjs/common';
import { existsSync, readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { type TaskContext, TaskHandler } from '../../src/handlers';
import { type KeysOutput, runKeys } from '../../src/auth/keys.cli';
import { TaskStatements } from '../../src/persistence/task-statements';
import { QueueDriverRegistry } from '../../src/queue';
import { TaskStatus } from '../../src/persistence/task-status.enum';
import { newTask } from '../../src/tasks/task.factory';
import { TasksService } from '../../src/tasks/tasks.service';
import {
  E2E_DATABASE_URL,
  databaseEnv,
  startTestApp,
  tempDir,
  withPg,
  type TestApp,
} from '../helpers/create-test-app';
import { openSse, type SseStream } from '../helpers/sse-client';
import { waitFor } from '../helpers/wait-for';

/** Every run of `intruder` and `whoami`, so a test can tell a handler never ran. */
const ran: { action: string; actor: unknown; data: unknown }[] = [];

@Injectable()
class AuthHandlers {
  @TaskHandler('whoami')
  whoami(data: unknown, ctx: TaskContext): unknown {
    ran.push({ action: 'whoami', actor: ctx.actor, data });
    return ctx.actor;
  }

  @TaskHandler('intruder', { maxAttempts: 3 })
  intruder(data: unknown, ctx: TaskContext): string {
    ran.push({ action: 'intruder', actor: ctx.actor, data });
    return 'ran';
  }
}

@Module({ providers: [AuthHandlers] })
class AuthHandlersModule {}

interface Task {
  id: string;
  status: string;
  error: string | null;
  tenant: string;
  createdBy: string | null;
  result: unknown;
}

describe.each(['express', 'fastify'] as const)('API keys, scopes and tenants on %s', (adapter) => {
  const dir = tempDir();
  const dbPath = join(dir.path, 'tasks.db');
  let t: TestApp;
  let base: string;
  const key: Record<string, string> = {};
  /** Everything the application wrote to stdout and stderr while this suite ran. */
  let logs = '';
  const streams: SseStream[] = [];
  const writes: jest.SpyInstance[] = [];

  async function keys(...argv: string[]): Promise<string> {
    const out: string[] = [];
    const io: KeysOutput = { out: (l) => out.push(l), err: (l) => (logs += `${l}\n`) };
    const code = await runKeys(argv, { ...(await databaseEnv(dbPath)) }, io);
    if (code !== 0) throw new Error(`keys ${argv.join(' ')} exited ${code}`);
    return out[0];
  }

  beforeAll(async () => {
    for (const stream of [process.stdout, process.stderr]) {
      writes.push(
        jest.spyOn(stream, 'write').mockImplementation((chunk: string | Uint8Array) => {
          logs += chunk.toString();
          return true;
        }),
      );
    }
    key.writer = await keys(
      ...['create', '--name', 'writer', '--tenant', 'acme'],
      ...['--scopes', 'tasks:write,tasks:read,tasks:cancel', '--actions', 'uppercase,whoami,sum'],
    );
    key.reader = await keys(
      ...['create', '--name', 'reader', '--tenant', 'acme', '--scopes', 'tasks:read'],
    );
    key.other = await keys(
      ...['create', '--name', 'other', '--tenant', 'globex'],
      ...['--scopes', 'tasks:write,tasks:read,tasks:cancel'],
    );
    key.ops = await keys('create', '--name', 'ops', '--scopes', 'queues:admin');
    key.admin = await keys('create', '--name', 'root', '--scopes', 'admin');
    key.revoked = await keys(
      ...['create', '--name', 'gone', '--tenant', 'acme', '--scopes', 'tasks:write'],
    );
    await keys('revoke', 'gone');
    // Verbose logs, so the check that no key is logged covers everything the service says.
    t = await startTestApp({
      adapter,
      dbPath,
      env: { LOG_LEVEL: 'verbose', API_KEYS_REFRESH_MS: '200' },
      modules: [AuthHandlersModule],
    });
    await t.app.listen(0, '127.0.0.1');
    base = `http://127.0.0.1:${(t.app.getHttpServer().address() as AddressInfo).port}`;
  });
  afterEach(() => streams.splice(0).forEach((s) => s.close()));
  afterAll(async () => {
    await t?.close();
    writes.forEach((w) => w.mockRestore());
    dir.remove();
  });

  const as = (name: string) => ({ Authorization: `Bearer ${key[name]}` });
  const submit = async (
    name: string,
    body: object,
    headers: Record<string, string> = {},
  ): Promise<string> =>
    (await t.http.post('/tasks').set(as(name)).set(headers).send(body).expect(202)).body.id;
  const task = async (name: string, id: string): Promise<Task> =>
    (await t.http.get(`/tasks/${id}`).set(as(name)).expect(200)).body;
  const settled = (name: string, id: string): Promise<Task> =>
    waitFor(
      async () => {
        const found = await task(name, id);
        return ['completed', 'failed', 'cancelled'].includes(found.status) && found;
      },
      { timeoutMs: 20_000, what: `task ${id} to finish` },
    ) as Promise<Task>;

  describe('authentication', () => {
    it('answers 401 JSON without a key, or with a wrong or revoked one', async () => {
      const none = await t.http.get('/tasks').expect(401);
      expect(none.body).toEqual({
        statusCode: 401,
        error: 'Unauthorized',
        message: 'an API key is required: send Authorization: Bearer <key> or X-API-Key: <key>',
      });
      expect(none.headers['www-authenticate']).toBe('Bearer');
      for (const wrong of [`${key.writer}x`, key.revoked, 'x'.repeat(5000)]) {
        const res = await t.http.get('/tasks').set('X-API-Key', wrong).expect(401);
        expect(res.body).toEqual({
          statusCode: 401,
          error: 'Unauthorized',
          message: 'the API key is not valid (unknown or revoked)',
        });
      }
      await t.http.post('/tasks').send({ action: 'uppercase' }).expect(401);
      await t.http.post('/queues/tasks/pause').expect(401);
      await t.http.get('/schedules').expect(401);
    });

    it('takes the key as Bearer or X-API-Key', async () => {
      await t.http.get('/tasks').set('Authorization', `Bearer ${key.reader}`).expect(200);
      await t.http.get('/tasks').set('X-API-Key', key.reader).expect(200);
    });

    it('keeps /health and the docs open, and says auth is on', async () => {
      const health = await t.http.get('/health').expect(200);
      expect(health.body).toMatchObject({ status: 'ok', auth: 'keys' });
      const doc = await t.http.get('/docs-json').expect(200);
      expect(doc.body.components.securitySchemes).toEqual({
        bearer: expect.objectContaining({ type: 'http', scheme: 'bearer' }),
        'api-key': expect.objectContaining({ type: 'apiKey', in: 'header', name: 'X-API-Key' }),
      });
      expect(doc.body.paths['/tasks'].post.security).toEqual([{ bearer: [] }, { 'api-key': [] }]);
      expect(doc.body.paths['/health'].get.security).toBeUndefined();
      await t.http.get('/docs').expect(200);
    });
  });

  describe('scopes', () => {
    it.each([
      ['reader', 'post', '/tasks', 'tasks:write'],
      ['reader', 'post', '/tasks/batch', 'tasks:write'],
      ['reader', 'post', '/tasks/0/cancel', 'tasks:cancel'],
      ['reader', 'post', '/tasks/0/retry', 'tasks:write'],
      ['ops', 'get', '/tasks', 'tasks:read'],
      ['ops', 'get', '/tasks/0', 'tasks:read'],
      ['ops', 'get', '/tasks/events', 'tasks:read'],
      ['writer', 'get', '/queues', 'queues:admin'],
      ['writer', 'post', '/queues/tasks/pause', 'queues:admin'],
      ['writer', 'post', '/queues/tasks/resume', 'queues:admin'],
      ['writer', 'get', '/schedules', 'admin'],
      ['ops', 'post', '/schedules', 'admin'],
      ['ops', 'delete', '/schedules/x', 'admin'],
    ] as const)('%s: %s %s needs %s (403 naming it)', async (name, method, path, scope) => {
      const res = await t.http[method](path)
        .set(as(name))
        .send(method === 'post' ? {} : undefined)
        .expect(403);
      expect(res.body).toEqual({
        statusCode: 403,
        error: 'Forbidden',
        message: `API key "${name === 'ops' ? 'ops' : name}" lacks the scope ${scope}`,
      });
    });

    it('lets queues:admin manage queues and admin do everything', async () => {
      await t.http.get('/queues').set(as('ops')).expect(200);
      await t.http.post('/queues/tasks/pause').set(as('ops')).expect(200);
      await t.http.post('/queues/tasks/resume').set(as('ops')).expect(200);
      await t.http.get('/schedules').set(as('admin')).expect(200);
      await t.http.get('/queues').set(as('admin')).expect(200);
      await t.http.get('/tasks').set(as('admin')).expect(200);
    });
  });

  describe('action policy', () => {
    it('refuses an action the key may not submit with 403 naming it', async () => {
      const res = await t.http
        .post('/tasks')
        .set(as('writer'))
        .send({ action: 'sleep', data: { ms: 1 } })
        .expect(403);
      expect(res.body).toEqual({
        statusCode: 403,
        error: 'Forbidden',
        message: 'API key "writer" may not submit action "sleep"',
      });
    });

    it('refuses a batch with one forbidden action whole, storing nothing', async () => {
      const before = (await t.http.get('/tasks').set(as('writer')).expect(200)).body.count;
      const res = await t.http
        .post('/tasks/batch')
        .set(as('writer'))
        .send({
          tasks: [
            { action: 'uppercase', data: { text: 'a' } },
            { action: 'intruder', data: {} },
          ],
        })
        .expect(403);
      expect(res.body.message).toBe('API key "writer" may not submit action "intruder"');
      expect((await t.http.get('/tasks').set(as('writer')).expect(200)).body.count).toBe(before);
      await t.http
        .post('/tasks/batch')
        .set(as('writer'))
        .send({ tasks: [{ action: 'uppercase', data: { text: 'a' } }] })
        .expect(202);
    });

    it('runs an allowed task with ctx.actor and records who made it', async () => {
      const id = await submit('writer', { action: 'whoami', data: {} });
      const done = await settled('writer', id);
      expect(done).toMatchObject({
        status: 'completed',
        tenant: 'acme',
        createdBy: 'writer',
        result: { keyName: 'writer', tenant: 'acme' },
      });
    });

    it('has the consumer refuse a task that reached the queue without an allowed actor', async () => {
      const store = t.app.get(TaskStatements);
      const tasks = t.app.get(TasksService);
      const queue = t.config.queue.name;
      // Rows and messages made around the API, as another service with database and broker
      // access might: no actor; a key that may not submit the action; a revoked key; a key of
      // another tenant.
      const forged = [
        newTask({ action: 'intruder', data: { n: 1 }, queue, maxAttempts: 3 }),
        newTask({
          action: 'intruder',
          data: { n: 2 },
          queue,
          maxAttempts: 3,
          actor: { keyName: 'writer', tenant: 'acme' },
        }),
        newTask({
          action: 'whoami',
          data: { n: 3 },
          queue,
          maxAttempts: 3,
          actor: { keyName: 'gone', tenant: 'acme' },
        }),
        newTask({
          action: 'whoami',
          data: { n: 4 },
          queue,
          maxAttempts: 3,
          actor: { keyName: 'writer', tenant: 'globex' },
        }),
      ];
      await store.insert(forged);
      await tasks.publish(forged);
      const outcome = async (id: string) => (await store.findById(id))!;
      const reasons = await Promise.all(
        forged.map((row) =>
          waitFor(async () => {
            const found = await outcome(row.id);
            return found.status === TaskStatus.Failed && found.error;
          }),
        ),
      );
      expect(reasons).toEqual([
        'refused: the task has no actor (API keys are required)',
        'refused: API key "writer" may not submit action "intruder"',
        'refused: API key "gone" is revoked or unknown',
        'refused: API key "writer" does not belong to tenant "globex"',
      ]);
      // Dead-lettered at once: one attempt, the handler never called.
      for (const row of forged) expect((await outcome(row.id)).attempt).toBe(1);
      const forgedIds = new Set(forged.map((row) => JSON.stringify(JSON.parse(row.payload))));
      expect(ran.filter((r) => forgedIds.has(JSON.stringify(r.data)))).toEqual([]);
      // And their messages are in the driver's dead letters with the reason.
      const letters = await t.app
        .get(QueueDriverRegistry)
        .driverFor(queue)
        .deadLetters(queue, 1000);
      // A broker's dead letter carries the error's kind; a task row's (sqlite, postgres) is
      // the row's own recorded error.
      const lettered = letters.map((d) => d.reason.replace(/^non-retryable: /, ''));
      for (const reason of reasons) expect(lettered).toContain(reason);
    });

    it('dead-letters a message published for no task at all, with the reason', async () => {
      const queue = t.config.queue.name;
      const driver = t.app.get(QueueDriverRegistry).driverFor(queue);
      // A message as another service might publish it: its task row does not exist.
      const ghost = newTask({ action: 'intruder', data: { n: 5 }, queue, maxAttempts: 3 });
      await t.app.get(TasksService).publish([ghost]);
      if (driver.capabilities.rowBacked) {
        // Where the task row is the message, a publish without a row makes nothing deliverable.
        expect(await t.app.get(TaskStatements).exists(ghost.id)).toBe(false);
        expect(await driver.stats(queue)).toMatchObject({ ready: 0, inFlight: 0 });
        return;
      }
      const letter = await waitFor(async () =>
        (await driver.deadLetters(queue)).find((d) => d.reason.includes(ghost.id)),
      );
      expect(letter.reason).toMatch(
        new RegExp(
          `^non-retryable: refused: message .+ names task ${ghost.id}, which does not exist`,
        ),
      );
      expect(ran.filter((r) => JSON.stringify(r.data) === '{"n":5}')).toEqual([]);
    });
  });

  describe('tenants', () => {
    it('lists, gets and long-polls only the key’s tenant’s tasks', async () => {
      const mine = await submit('writer', { action: 'uppercase', data: { text: 'acme' } });
      const theirs = await submit('other', { action: 'uppercase', data: { text: 'globex' } });
      const ids = async (name: string): Promise<string[]> =>
        (await t.http.get('/tasks?limit=100').set(as(name)).expect(200)).body.tasks.map(
          (x: Task) => x.id,
        );
      expect(await ids('writer')).toContain(mine);
      expect(await ids('writer')).not.toContain(theirs);
      expect(await ids('reader')).toContain(mine);
      expect(await ids('other')).toContain(theirs);
      expect(await ids('other')).not.toContain(mine);
      const filtered = await t.http
        .get('/tasks?status=queued&action=uppercase&limit=100')
        .set(as('other'))
        .expect(200);
      for (const x of filtered.body.tasks as Task[]) expect(x.tenant).toBe('globex');

      await t.http.get(`/tasks/${theirs}`).set(as('writer')).expect(404);
      await t.http.get(`/tasks/${mine}`).set(as('other')).expect(404);
      await t.http.get(`/tasks/${mine}?waitMs=50`).set(as('other')).expect(404);
      expect((await settled('writer', mine)).status).toBe('completed');
      const polled = await t.http.get(`/tasks/${theirs}?waitMs=5000`).set(as('other')).expect(200);
      expect(polled.body).toMatchObject({ id: theirs, tenant: 'globex', createdBy: 'other' });
    });

    it('cancels and retries only the key’s tenant’s tasks', async () => {
      // Paused, so the task stays queued until the test is done with it.
      await t.http.post(`/queues/${t.config.queue.name}/pause`).set(as('ops')).expect(200);
      const mine = await submit('writer', { action: 'uppercase', data: { text: 'later' } });
      await t.http.post(`/tasks/${mine}/cancel`).set(as('other')).expect(404);
      expect((await task('writer', mine)).status).toBe('queued');
      await t.http.post(`/tasks/${mine}/cancel`).set(as('writer')).expect(200);
      expect((await task('writer', mine)).status).toBe('cancelled');
      await t.http.post(`/tasks/${mine}/retry`).set(as('other')).expect(404);
      expect((await task('writer', mine)).status).toBe('cancelled');
      await t.http.post(`/tasks/${mine}/retry`).set(as('writer')).expect(202);
      await t.http.post(`/queues/${t.config.queue.name}/resume`).set(as('ops')).expect(200);
      expect((await settled('writer', mine)).status).toBe('completed');
    });

    it('refuses a retry of an action the key may no longer submit (403)', async () => {
      const theirs = await submit('other', { action: 'sleep', data: { ms: 1 }, delayMs: 600_000 });
      await t.http.post(`/tasks/${theirs}/cancel`).set(as('other')).expect(200);
      // Same tenant, narrower policy: a globex key limited to uppercase.
      key.narrow = await keys(
        ...['create', '--name', `narrow-${adapter}`, '--tenant', 'globex'],
        ...['--scopes', 'tasks:write,tasks:read', '--actions', 'uppercase'],
      );
      await waitFor(async () => (await t.http.get('/tasks').set(as('narrow'))).status === 200, {
        what: 'the new key to be picked up',
      });
      const res = await t.http.post(`/tasks/${theirs}/retry`).set(as('narrow')).expect(403);
      expect(res.body.message).toBe(`API key "narrow-${adapter}" may not submit action "sleep"`);
      expect((await task('other', theirs)).status).toBe('cancelled');
    });

    it('scopes idempotency keys to the tenant', async () => {
      const body = { action: 'uppercase', data: { text: 'same key' } };
      const idem = { 'Idempotency-Key': `shared-${adapter}` };
      const mine = await submit('writer', body, idem);
      // Another tenant's request with the same key is its own task, not a replay or a 409.
      const theirs = await submit('other', { ...body, data: { text: 'other body' } }, idem);
      expect(theirs).not.toBe(mine);
      const replay = await t.http.post('/tasks').set(as('writer')).set(idem).send(body).expect(200);
      expect(replay.body.id).toBe(mine);
      const conflict = await t.http
        .post('/tasks')
        .set(as('other'))
        .set(idem)
        .send(body)
        .expect(409);
      expect(conflict.body.statusCode).toBe(409);
    });

    it('streams only the key’s tenant’s events', async () => {
      const acme = await openSse(`${base}/tasks/events`, { headers: as('writer') });
      const globex = await openSse(`${base}/tasks/events`, { headers: as('other') });
      streams.push(acme, globex);
      expect([acme.status, globex.status]).toEqual([200, 200]);
      const unauthenticated = await openSse(`${base}/tasks/events`);
      streams.push(unauthenticated);
      expect(unauthenticated.status).toBe(401);

      const mine = await submit('writer', { action: 'uppercase', data: { text: 'evt' } });
      await waitFor(() =>
        acme.events.some((e) => (e as Task & { taskId: string }).taskId === mine),
      );
      // globex's own later event arrives; events go out in order, so acme's would have first.
      const theirs = await submit('other', { action: 'uppercase', data: { text: 'evt' } });
      await waitFor(() => globex.events.some((e) => (e as { taskId: string }).taskId === theirs));
      expect(globex.events.map((e) => (e as { tenant: string }).tenant)).not.toContain('acme');
      expect(acme.events.map((e) => (e as { tenant: string }).tenant)).not.toContain('globex');
    });
  });

  it('never stores or logs a key in plain text', async () => {
    // A failed request with a wrong key must not be logged with it either.
    await t.http.get('/tasks').set('X-API-Key', 'tq_wrong_key_never_logged').expect(401);
    const secrets = [...Object.values(key), 'tq_wrong_key_never_logged'];
    let stored: string;
    if (E2E_DATABASE_URL) {
      const url = new URL((await databaseEnv(dbPath)).DATABASE_URL);
      stored = await withPg(async (client) => {
        const tasks = await client.query('SELECT * FROM tasks');
        const apiKeys = await client.query('SELECT * FROM api_keys');
        return JSON.stringify([tasks.rows, apiKeys.rows]);
      }, url.toString());
    } else {
      stored = [dbPath, `${dbPath}-wal`]
        .filter((file) => existsSync(file))
        .map((file) => readFileSync(file).toString('latin1'))
        .join('');
    }
    expect(stored).toContain('writer'); // the database was read: key names are there
    expect(logs).toContain('Mapped {/tasks, POST} route'); // and the logs were captured
    for (const secret of secrets) {
      expect(stored).not.toContain(secret);
      expect(logs).not.toContain(secret);
    }
  });
});
