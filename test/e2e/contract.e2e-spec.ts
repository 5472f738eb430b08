import Ajv from 'ajv';
import { randomBytes } from 'node:crypto';
import request from 'supertest';
import { hashKey } from '../../src/auth/api-key';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { startCallbackReceiver } from '../helpers/callback-receiver';
import { ROOT } from '../helpers/child-process';
import { startTestApp, tempDir, type TestApp } from '../helpers/create-test-app';
import { startPrismProxy, type PrismProxy } from '../helpers/prism';
import { writeFileSync } from 'node:fs';
import { waitFor } from '../helpers/wait-for';

interface Answer {
  status: number;
  headers: Headers;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any -- JSON of many shapes
}

/**
 * The contract test: real responses of every route, on both HTTP adapters, pass through Prism's
 * validating proxy (`prism proxy openapi.json <service> --errors`), which replaces any response
 * that does not match the committed document with an error of its own. Requests are ones the
 * document allows (Prism refuses the others itself, so their answers would be Prism's, not the
 * service's); refusals the service makes of allowed requests (unknown handler data, a taken
 * Idempotency-Key, a full queue, ...) are among them.
 */
const documented = JSON.parse(readFileSync(join(ROOT, 'openapi.json'), 'utf8'));
/** OpenAPI 3.0 schemas are JSON Schema with a few keywords more (`nullable`, `example`). */
const ajv = new Ajv({ strict: false });
/**
 * The document says every route but health and docs needs a key, and Prism checks requests for
 * it: the service under test has one key (admin) and every request carries it.
 */
const KEY = `tq_${randomBytes(32).toString('hex')}`;
const AUTH = { Authorization: `Bearer ${KEY}` };
function withKeyFile(dir: string): Record<string, string> {
  const file = join(dir, 'keys.json');
  writeFileSync(
    file,
    JSON.stringify({
      keys: [{ name: 'contract', hash: `sha256:${hashKey(KEY)}`, scopes: ['admin'] }],
    }),
  );
  return { API_KEYS_FILE: file };
}
/** supertest against the app, with the key on every request. */
const keyed = (t: TestApp) => request.agent(t.app.getHttpServer()).set(AUTH);

describe.each(['express', 'fastify'] as const)('the OpenAPI contract on %s', (adapter) => {
  const dir = tempDir();
  let t: TestApp;
  let prism: PrismProxy;
  let receiver: Awaited<ReturnType<typeof startCallbackReceiver>>;

  beforeAll(async () => {
    receiver = await startCallbackReceiver(() => 200);
    t = await startTestApp({
      adapter,
      dbPath: join(dir.path, 'tasks.db'),
      env: { CALLBACK_ALLOW_PRIVATE: 'true', QUEUE_MAX_DEPTH: '40', ...withKeyFile(dir.path) },
    });
    await t.app.listen(0, '127.0.0.1');
    const { port } = t.app.getHttpServer().address() as AddressInfo;
    prism = await startPrismProxy(`http://127.0.0.1:${port}`);
  });
  afterAll(async () => {
    await prism?.close();
    await t.close();
    await receiver.close();
    dir.remove();
  });

  /** One request through Prism; fails on any violation Prism reports. */
  async function call(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<Answer> {
    const res = await fetch(prism.url + path, {
      method,
      headers: {
        ...AUTH,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...headers,
      },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await res.text();
    const parsed: unknown =
      text && /json/.test(res.headers.get('content-type') ?? '') ? JSON.parse(text) : text;
    const violations = res.headers.get('sl-violations');
    if (violations || /stoplight\.io\/prism\/errors/.test(text)) {
      throw new Error(
        `${method} ${path}: Prism reports a contract violation: ${violations ?? text}`,
      );
    }
    return { status: res.status, headers: res.headers, body: parsed };
  }
  const expectError = (answer: Answer, status: number) => {
    expect(answer.status).toBe(status);
    expect(answer.body).toEqual({
      statusCode: status,
      error: expect.any(String),
      message: expect.anything(),
    });
  };
  const ended = (id: string) =>
    waitFor(
      async () => {
        const task = (await call('GET', `/tasks/${id}?waitMs=2000`)).body;
        return ['completed', 'failed', 'cancelled'].includes(task.status) ? task : undefined;
      },
      { what: `task ${id} to end` },
    );

  it('serves at /docs-json the document committed as openapi.json', async () => {
    const committed: unknown = JSON.parse(readFileSync(join(ROOT, 'openapi.json'), 'utf8'));
    // Straight from the service: the document does not describe itself.
    expect((await t.http.get('/docs-json').expect(200)).body).toEqual(committed);
  });

  it('tasks: submit, read, list, batch, idempotency, cancel, retry, failures', async () => {
    const accepted = await call('POST', '/tasks', { action: 'uppercase', data: { text: 'hi' } });
    expect(accepted.status).toBe(202);
    const done = await ended(accepted.body.id);
    expect(done).toMatchObject({ status: 'completed', result: { output: 'HI' }, callback: null });

    const called = await call('POST', '/tasks', {
      action: 'uppercase',
      data: { text: 'call' },
      callbackUrl: receiver.url,
    });
    await waitFor(async () => {
      const task = (await call('GET', `/tasks/${called.body.id}`)).body;
      return task.callback?.status === 'delivered';
    });

    const failed = await call('POST', '/tasks', { action: 'fail', maxAttempts: 1 });
    expect(await ended(failed.body.id)).toMatchObject({ status: 'failed', result: null });
    expect((await call('POST', `/tasks/${failed.body.id}/retry`)).status).toBe(202);
    expectError(await call('POST', `/tasks/${accepted.body.id}/retry`), 409);
    expectError(await call('POST', `/tasks/${accepted.body.id}/cancel`), 409);
    const later = await call('POST', '/tasks', { action: 'noop', delayMs: 60_000 });
    expect((await call('POST', `/tasks/${later.body.id}/cancel`)).status).toBe(200);

    const list = await call('GET', '/tasks?status=completed&limit=2');
    expect(list.status).toBe(200);
    expect(list.body.count).toBe(list.body.tasks.length);
    const page2 = await call('GET', `/tasks?limit=1&cursor=${list.body.nextCursor}`);
    expect(page2.status).toBe(200);
    expect((await call('GET', '/tasks?action=uppercase')).status).toBe(200);

    const batch = await call('POST', '/tasks/batch', {
      tasks: [{ action: 'sum', data: { numbers: [1, 2] } }, { action: 'noop' }],
    });
    expect(batch.status).toBe(202);
    expect(batch.body.count).toBe(2);

    const key = { 'Idempotency-Key': `contract-${adapter}` };
    const first = await call('POST', '/tasks', { action: 'noop', data: { n: 1 } }, key);
    const replay = await call('POST', '/tasks', { action: 'noop', data: { n: 1 } }, key);
    expect([first.status, replay.status]).toEqual([202, 200]);
    expect(replay.body.id).toBe(first.body.id);
    expectError(await call('POST', '/tasks', { action: 'noop', data: { n: 2 } }, key), 409);

    expectError(await call('GET', '/tasks/0195c0de-0000-7000-8000-000000000000'), 404);
    expectError(await call('POST', '/tasks/0195c0de-0000-7000-8000-000000000000/cancel'), 404);
  });

  it('refusals of requests the document allows carry the error schema', async () => {
    expectError(await call('POST', '/tasks', { action: 'uppercase', data: {} }), 400);
    expectError(await call('POST', '/tasks', { action: 'sum', data: { numbers: ['x'] } }), 400);
    expectError(
      await call('POST', '/tasks', { action: 'noop', delayMs: 1, runAt: '2030-01-01T00:00:00Z' }),
      400,
    );
    expectError(
      await call('POST', '/tasks/batch', { tasks: [{ action: 'uppercase', data: { t: 1 } }] }),
      400,
    );
    expectError(await call('GET', '/tasks?cursor=not-a-cursor'), 400);
    expectError(
      await call('POST', '/tasks', `{"action":"noop","data":{"s":"${'x'.repeat(1_100_000)}"}}`),
      413,
    );
  });

  /**
   * Requests the document itself forbids (Prism would answer them with its own 4xx): the service's
   * answer is checked directly: its status is one the operation documents, and its body matches
   * the shared error schema, validated with Ajv.
   */
  it.each([
    [
      'post',
      '/tasks',
      415,
      () => keyed(t).post('/tasks').set('Content-Type', 'text/plain').send('x'),
    ],
    ['post', '/tasks', 400, () => keyed(t).post('/tasks').send({ action: 'noop', data: null })],
    ['post', '/tasks', 400, () => keyed(t).post('/tasks').send({ action: 'noop', colour: 1 })],
    [
      'post',
      '/tasks',
      400,
      () => keyed(t).post('/tasks').set('Content-Type', 'application/json').send('{'),
    ],
    ['post', '/tasks/batch', 400, () => keyed(t).post('/tasks/batch').send({ tasks: [] })],
    ['get', '/tasks/{id}', 400, () => keyed(t).get(`/tasks/${crypto.randomUUID()}?waitMs=abc`)],
    ['get', '/tasks/{id}', 400, () => keyed(t).get(`/tasks/${crypto.randomUUID()}?waitMs=99999`)],
    ['get', '/tasks', 400, () => keyed(t).get('/tasks?limit=0')],
    ['get', '/tasks/events', 400, () => keyed(t).get('/tasks/events?taskId=not-a-uuid')],
    ['post', '/schedules', 400, () => keyed(t).post('/schedules').send({ name: 'x' })],
  ])('%s %s answering %i (a request outside the document)', async (method, path, status, send) => {
    const res = await send();
    expect(res.status).toBe(status);
    const operation = documented.paths[path][method];
    expect(Object.keys(operation.responses)).toContain(String(status));
    const schema = operation.responses[String(status)].content['application/json'].schema;
    const validate = ajv.compile({ ...schema, components: documented.components });
    expect(validate(res.body) ? [] : validate.errors).toEqual([]);
  });

  it('queues and health', async () => {
    const queues = await call('GET', '/queues');
    expect(queues.status).toBe(200);
    const name = queues.body.queues[0].name as string;
    expect((await call('POST', `/queues/${name}/pause`)).body.paused).toBe(true);
    expect((await call('POST', `/queues/${name}/resume`)).body.paused).toBe(false);
    expectError(await call('POST', '/queues/no-such-queue/pause'), 404);
    expect((await call('GET', '/health')).status).toBe(200);
  });

  it('schedules: create, read, replace, pause, resume, trigger, delete', async () => {
    const body = { name: `contract-${adapter}`, action: 'noop', data: { a: 1 }, every: '1h' };
    expect((await call('POST', '/schedules', body)).status).toBe(201);
    expectError(await call('POST', '/schedules', body), 409);
    expect((await call('GET', '/schedules?limit=5')).status).toBe(200);
    expect((await call('GET', `/schedules/${body.name}`)).status).toBe(200);
    const replaced = await call('PUT', `/schedules/${body.name}`, {
      action: 'noop',
      cron: '0 4 * * *',
    });
    expect(replaced.status).toBe(200);
    expect(
      (await call('PUT', `/schedules/${body.name}-2`, { action: 'noop', every: '1d' })).status,
    ).toBe(201);
    expectError(
      await call('PUT', `/schedules/${body.name}-3`, { action: 'noop', every: '1x' }),
      400,
    );
    expect((await call('POST', `/schedules/${body.name}/pause`)).status).toBe(200);
    expect((await call('POST', `/schedules/${body.name}/resume`)).status).toBe(200);
    expect((await call('POST', `/schedules/${body.name}/trigger`)).status).toBe(202);
    expect((await call('DELETE', `/schedules/${body.name}`)).status).toBe(204);
    expectError(await call('GET', `/schedules/${body.name}`), 404);
    expectError(await call('DELETE', `/schedules/${body.name}`), 404);
  });

  it('a full queue answers 429 with Retry-After (last: it fills the queue)', async () => {
    let answer: Answer | undefined;
    for (let i = 0; i < 50 && answer?.status !== 429; i++) {
      answer = await call('POST', '/tasks', { action: 'noop', delayMs: 3_600_000 });
    }
    expectError(answer!, 429);
    expect(answer!.headers.get('retry-after')).toBe('1');
  });
});

/** The proxy is not a rubber stamp: a response that breaks the document is replaced. */
describe('Prism as the contract check', () => {
  const dir = tempDir();
  let t: TestApp;
  let prism: PrismProxy;

  beforeAll(async () => {
    t = await startTestApp({ dbPath: join(dir.path, 'tasks.db'), env: withKeyFile(dir.path) });
    await t.app.listen(0, '127.0.0.1');
    const { port } = t.app.getHttpServer().address() as AddressInfo;
    // A document that is wrong about the service: a task's status could only be `queued`.
    const doc = JSON.parse(readFileSync(join(ROOT, 'openapi.json'), 'utf8'));
    doc.components.schemas.TaskResponseDto.properties.status.enum = ['queued'];
    writeFileSync(join(dir.path, 'wrong.json'), JSON.stringify(doc));
    prism = await startPrismProxy(`http://127.0.0.1:${port}`, join(dir.path, 'wrong.json'));
  });
  afterAll(async () => {
    await prism?.close();
    await t.close();
    dir.remove();
  });

  it('rejects a response that does not match the document', async () => {
    const { id } = (await keyed(t).post('/tasks').send({ action: 'noop' }).expect(202)).body;
    await keyed(t).get(`/tasks/${id}?waitMs=5000`).expect(200);
    const res = await fetch(`${prism.url}/tasks/${id}`, { headers: AUTH });
    expect(res.status).toBe(500);
    expect(await res.text()).toMatch(/stoplight\.io\/prism\/errors#VIOLATIONS[\s\S]*status/);
  });
});
