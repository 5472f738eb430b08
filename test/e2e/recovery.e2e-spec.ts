import Database from 'better-sqlite3';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { E2E_QUEUE_DRIVER, startTestApp, tempDir, type TestApp } from '../helpers/create-test-app';
import { waitFor } from '../helpers/wait-for';

/** Inserts a row as a process that died right after committing it would have left it. */
function leaveRow(dbPath: string, status: 'queued' | 'running', text: string): string {
  const db = new Database(dbPath);
  const id = randomUUID();
  const now = Date.now();
  db.prepare(
    `INSERT INTO tasks (id, action, payload, status, attempt, max_attempts, priority, queue,
       claim_token, created_at, started_at, updated_at)
     VALUES (?, 'uppercase', ?, ?, ?, 3, 0, 'tasks', ?, ?, ?, ?)`,
  ).run(
    id,
    JSON.stringify({ text }),
    status,
    status === 'running' ? 1 : 0,
    status === 'running' ? randomUUID() : null,
    now,
    status === 'running' ? now : null,
    now,
  );
  db.close();
  return id;
}

async function completed(t: TestApp, id: string): Promise<{ result: unknown; attempt: number }> {
  return waitFor(async () => {
    const res = await t.http.get(`/tasks/${id}`).expect(200);
    return res.body.status === 'completed' ? res.body : undefined;
  });
}

describe(`recovery sweep (${E2E_QUEUE_DRIVER} driver)`, () => {
  const dir = tempDir();
  afterAll(() => dir.remove());

  async function restartWith(rows: (dbPath: string) => string[]) {
    const dbPath = join(dir.path, `${randomUUID()}.db`);
    await (await startTestApp({ dbPath })).close(); // a schema built by the real migrations
    const ids = rows(dbPath);
    return { t: await startTestApp({ dbPath }), ids };
  }

  it('publishes a task whose row was committed but whose message never was', async () => {
    const { t, ids } = await restartWith((db) => [leaveRow(db, 'queued', 'never published')]);
    try {
      expect(await completed(t, ids[0])).toMatchObject({
        result: { output: 'NEVER PUBLISHED' },
        attempt: 1,
      });
    } finally {
      await t.close();
    }
  });

  (E2E_QUEUE_DRIVER === 'memory' ? it : it.skip)(
    'runs again a task that was running when the memory driver died with its message',
    async () => {
      const { t, ids } = await restartWith((db) => [leaveRow(db, 'running', 'was running')]);
      try {
        expect(await completed(t, ids[0])).toMatchObject({
          result: { output: 'WAS RUNNING' },
          attempt: 2,
        });
      } finally {
        await t.close();
      }
    },
  );
});
