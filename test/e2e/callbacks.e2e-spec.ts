import Database from 'better-sqlite3';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { verifyCallbackSignature } from '../../src/callbacks';
import { startCallbackReceiver } from '../helpers/callback-receiver';
import { E2E_QUEUE_DRIVER, startTestApp, tempDir, type TestApp } from '../helpers/create-test-app';
import { deferred, waitFor } from '../helpers/wait-for';

const SECRET = 'test-callback-secret';
const ENV = {
  CALLBACK_SECRET: SECRET,
  CALLBACK_ALLOW_PRIVATE: 'true',
  CALLBACK_MAX_ATTEMPTS: '3',
};

/** Inserts a task that already finished, its callback pending and due, as a dead process left it. */
function leaveFinishedTask(dbPath: string, callbackUrl: string): string {
  const db = new Database(dbPath);
  const id = randomUUID();
  const now = Date.now();
  db.prepare(
    `INSERT INTO tasks (id, action, payload, status, result, attempt, max_attempts, priority, queue,
       created_at, started_at, processed_at, updated_at,
       callback_url, callback_status, callback_attempts, callback_next_at)
     VALUES (?, 'uppercase', '{"text":"left"}', 'completed', '{"output":"LEFT"}', 1, 3, 0, 'tasks',
       ?, ?, ?, ?, ?, 'pending', 0, ?)`,
  ).run(id, now, now, now, now, callbackUrl, now);
  db.close();
  return id;
}

describe(`result callbacks (${E2E_QUEUE_DRIVER} driver)`, () => {
  const dir = tempDir();
  const apps: TestApp[] = [];
  const closers: (() => Promise<void>)[] = [];
  afterEach(async () => {
    await Promise.all(apps.splice(0).map((t) => t.close()));
    await Promise.all(closers.splice(0).map((close) => close()));
  });
  afterAll(() => dir.remove());

  async function start(
    env: Record<string, string> = {},
    dbPath = join(dir.path, `${randomUUID()}.db`),
  ) {
    const t = await startTestApp({ dbPath, env: { ...ENV, ...env } });
    apps.push(t);
    return t;
  }

  async function receiver(answer: (n: number) => number | Promise<number>) {
    const r = await startCallbackReceiver(answer);
    closers.push(r.close);
    return r;
  }

  const callbackOf = (t: TestApp, id: string, status: string) =>
    waitFor(
      async () => {
        const res = await t.http.get(`/tasks/${id}`).expect(200);
        return res.body.callback?.status === status ? res.body : undefined;
      },
      { timeoutMs: 30_000, what: `task ${id}'s callback to be ${status}` },
    );

  it('retries a failing receiver with backoff until it answers 2xx, signing every attempt', async () => {
    const r = await receiver((n) => (n <= 2 ? 500 : 204));
    const t = await start();

    const res = await t.http
      .post('/tasks')
      .send({ action: 'uppercase', data: { text: 'call me' }, callbackUrl: r.url })
      .expect(202);
    const task = await callbackOf(t, res.body.id, 'delivered');

    expect(task.callback).toEqual({ status: 'delivered', attempts: 3, lastError: null });
    expect(r.received).toHaveLength(3);
    for (const { headers, body } of r.received) {
      expect(headers['content-type']).toBe('application/json');
      expect(headers['x-taskq-task-id']).toBe(res.body.id);
      expect(verifyCallbackSignature(body, SECRET, headers['x-taskq-signature'] as string)).toBe(
        true,
      );
      expect(
        verifyCallbackSignature(body, 'another secret', headers['x-taskq-signature'] as string),
      ).toBe(false);
    }
    const sent = JSON.parse(r.received[2].body);
    expect(sent).toMatchObject({
      id: res.body.id,
      action: 'uppercase',
      status: 'completed',
      result: { output: 'CALL ME' },
      callback: { status: 'pending', attempts: 3 },
    });
    // The first two attempts' errors were recorded while the callback was still pending.
    expect(JSON.parse(r.received[1].body).callback).toEqual({
      status: 'pending',
      attempts: 2,
      lastError: expect.stringMatching(/receiver answered 500/),
    });
  });

  it('gives up after CALLBACK_MAX_ATTEMPTS and records the last error', async () => {
    const r = await receiver(() => 503);
    const t = await start();
    const id = leaveFinishedTask(t.dbPath, r.url);

    const task = await callbackOf(t, id, 'failed');
    expect(task.callback).toEqual({
      status: 'failed',
      attempts: 3,
      lastError: expect.stringMatching(/^receiver answered 503: receiver says no/),
    });
    expect(r.received).toHaveLength(3);
  });

  it('records a receiver that cannot be reached as a failure', async () => {
    const r = await receiver(() => 200);
    await r.close(); // nothing listens on its port any more
    const t = await start({ CALLBACK_MAX_ATTEMPTS: '1' });
    const id = leaveFinishedTask(t.dbPath, r.url);

    const task = await callbackOf(t, id, 'failed');
    expect(task.callback).toEqual({
      status: 'failed',
      attempts: 1,
      lastError: expect.stringMatching(/ECONNREFUSED/),
    });
  });

  it('refuses at send time an address the policy forbids, without connecting or retrying', async () => {
    const t = await start({ CALLBACK_ALLOW_PRIVATE: 'false', CALLBACK_MAX_ATTEMPTS: '3' });
    const id = leaveFinishedTask(t.dbPath, 'http://127.0.0.1:9/hook');

    const task = await callbackOf(t, id, 'failed');
    // One attempt: a refusal by policy is final, not retried up to CALLBACK_MAX_ATTEMPTS.
    expect(task.callback).toEqual({
      status: 'failed',
      attempts: 1,
      lastError: expect.stringMatching(/loopback or private address/),
    });
  });

  it('sends, after a restart, a callback that was pending when the last process stopped', async () => {
    const r = await receiver(() => 200);
    const dbPath = join(dir.path, `${randomUUID()}.db`);
    // Schema only: an API process (on sqlite, which allows split roles) starts no worker.
    await (
      await startTestApp({ dbPath, env: { ...ENV, APP_ROLE: 'api', QUEUE_DRIVER: 'sqlite' } })
    ).close();
    const id = leaveFinishedTask(dbPath, r.url);

    const t = await start({}, dbPath);
    const task = await callbackOf(t, id, 'delivered');
    expect(task.callback).toEqual({ status: 'delivered', attempts: 1, lastError: null });
    expect(JSON.parse(r.received[0].body)).toMatchObject({ id, result: { output: 'LEFT' } });
  });

  it('puts a send interrupted by shutdown back as due, and the next process delivers it', async () => {
    const held = deferred<number>();
    const r = await receiver((n) => (n === 1 ? held.promise : 200));
    const dbPath = join(dir.path, `${randomUUID()}.db`);
    const first = await start({ SHUTDOWN_TIMEOUT_MS: '0' }, dbPath);
    const id = leaveFinishedTask(dbPath, r.url);
    await waitFor(() => r.received.length === 1, { timeoutMs: 30_000, what: 'the first send' });

    await first.close(); // the receiver has not answered: the send is aborted
    held.resolve(200);
    const second = await start({}, dbPath);
    const task = await callbackOf(second, id, 'delivered');
    expect(task.callback).toEqual({ status: 'delivered', attempts: 2, lastError: null });
    expect(r.received).toHaveLength(2);
  });

  it('shows no callback for a task without callbackUrl', async () => {
    const t = await start();
    const res = await t.http.post('/tasks').send({ action: 'uppercase', data: { text: 'x' } });
    const task = await waitFor(async () => {
      const body = (await t.http.get(`/tasks/${res.body.id}`).expect(200)).body;
      return body.status === 'completed' ? body : undefined;
    });
    expect(task.callback).toBeNull();
  });
});
