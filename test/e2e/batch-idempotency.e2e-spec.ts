import Database from 'better-sqlite3';
import { request } from 'node:http';
import { join } from 'node:path';
import { startTestApp, tempDir, type TestApp } from '../helpers/create-test-app';
import { distFile, startNode } from '../helpers/child-process';
import { waitFor } from '../helpers/wait-for';

const batch = (action: string, size: number, text = 'x') => ({
  tasks: Array.from({ length: size }, (_, i) => ({ action, data: { text: `${text} ${i}` } })),
});
const ids = (body: { tasks: { id: string }[] }) => body.tasks.map((task) => task.id);

describe('POST /tasks/batch with Idempotency-Key', () => {
  const dir = tempDir();
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ dbPath: join(dir.path, 'batch.db') });
  });
  afterAll(async () => {
    await t.close();
    dir.remove();
  });
  const count = async (action: string) =>
    (await t.http.get(`/tasks?action=${action}&limit=100`).expect(200)).body.count as number;

  it('answers a retry with the tasks the first request created, adding none', async () => {
    const body = batch('batch-replay', 25);
    const first = await t.http
      .post('/tasks/batch')
      .set('Idempotency-Key', 'batch-1')
      .send(body)
      .expect(202);
    const again = await t.http
      .post('/tasks/batch')
      .set('Idempotency-Key', 'batch-1')
      .send(body)
      .expect(200);
    expect(again.body.count).toBe(25);
    expect(ids(again.body)).toEqual(ids(first.body));
    expect(await count('batch-replay')).toBe(25);
  });

  it('answers 409 for the same key with another body, storing nothing', async () => {
    await t.http
      .post('/tasks/batch')
      .set('Idempotency-Key', 'batch-2')
      .send(batch('batch-conflict', 2))
      .expect(202);
    const res = await t.http
      .post('/tasks/batch')
      .set('Idempotency-Key', 'batch-2')
      .send(batch('batch-conflict', 3))
      .expect(409);
    expect(res.body.message).toBe(
      'Idempotency-Key batch-2 was already used with a different request',
    );
    expect(await count('batch-conflict')).toBe(2);
  });

  it('makes one batch of concurrent retries', async () => {
    const body = batch('batch-race', 50);
    const answers = await Promise.all(
      Array.from({ length: 8 }, () =>
        t.http.post('/tasks/batch').set('Idempotency-Key', 'batch-3').send(body),
      ),
    );
    expect(answers.map((a) => a.status).sort()).toEqual([200, 200, 200, 200, 200, 200, 200, 202]);
    for (const answer of answers) expect(ids(answer.body)).toEqual(ids(answers[0].body));
    expect(await count('batch-race')).toBe(50);
  });

  it('keeps batch keys apart from POST /tasks keys, and checks the key', async () => {
    await t.http
      .post('/tasks/batch')
      .set('Idempotency-Key', 'shared-key')
      .send(batch('batch-apart', 1))
      .expect(202);
    await t.http
      .post('/tasks')
      .set('Idempotency-Key', 'shared-key')
      .send({ action: 'batch-apart', data: { text: 'single' } })
      .expect(202);
    expect(await count('batch-apart')).toBe(2);
    const bad = await t.http
      .post('/tasks/batch')
      .set('Idempotency-Key', 'has space')
      .send(batch('batch-apart', 1))
      .expect(400);
    expect(bad.body.message).toEqual(['Idempotency-Key must be 1-255 visible ASCII characters']);
  });
});

describe('a batch whose answer was lost to a SIGKILL', () => {
  const dir = tempDir();
  afterAll(() => dir.remove());

  it('is not duplicated by its retry after the restart', async () => {
    const dbPath = join(dir.path, 'crash.db');
    const env = { DATABASE_PATH: dbPath, PORT: '0', HOST: '127.0.0.1', QUEUE_DRIVER: 'sqlite' };
    const start = async () => {
      const child = startNode(distFile('main.js'), env);
      const url = await waitFor(() => /listening on (http:\/\/\S+)/.exec(child.output())?.[1], {
        timeoutMs: 60_000,
        what: `the service to listen; output:\n${child.output().slice(-2000)}`,
      });
      return { child, url: url.replace('[::1]', '127.0.0.1') };
    };
    const rows = () => {
      const db = new Database(dbPath, { readonly: true, fileMustExist: true });
      try {
        return db
          .prepare("SELECT id FROM tasks WHERE action = 'batch-crash' ORDER BY created_at, id")
          .all()
          .map((row) => (row as { id: string }).id);
      } catch {
        return []; // the table is not there yet
      } finally {
        db.close();
      }
    };
    const body = JSON.stringify(batch('batch-crash', 500));
    const post = (url: string) => {
      const req = request(`${url}/tasks/batch`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'Idempotency-Key': 'crash-1' },
      });
      req.on('error', () => undefined); // the first answer is lost with the process
      req.end(body);
      return req;
    };

    const first = await start();
    const exited = new Promise((resolve) => first.child.once('exit', resolve));
    post(first.url);
    // Killed as soon as the batch is committed: the client cannot know whether it was.
    await waitFor(() => rows().length > 0, { intervalMs: 1, what: 'the batch to commit' });
    first.child.kill('SIGKILL');
    await exited;
    expect(rows()).toHaveLength(500);

    const second = await start();
    try {
      const answer = await new Promise<{ status: number; body: { tasks: { id: string }[] } }>(
        (resolve, reject) => {
          const req = post(second.url);
          req.on('error', reject);
          req.on('response', (res) => {
            let text = '';
            res.on('data', (chunk: Buffer) => (text += chunk.toString()));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
          });
        },
      );
      expect(answer.status).toBe(200);
      expect(rows()).toHaveLength(500);
      expect(new Set(ids(answer.body))).toEqual(new Set(rows()));
    } finally {
      const stopped = new Promise((resolve) => second.child.once('exit', resolve));
      second.child.kill('SIGTERM');
      await stopped;
    }
  });
});
