import Database from 'better-sqlite3';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { startTestApp, tempDir } from '../helpers/create-test-app';
import { waitFor } from '../helpers/wait-for';

/** Rows a process left behind when it died: one never published, one mid-run. */
function leaveOrphans(dbPath: string): { queued: string; running: string } {
  const db = new Database(dbPath);
  const insert = db.prepare(
    `INSERT INTO tasks (id, action, payload, status, attempt, max_attempts, priority, queue,
       claim_token, created_at, started_at, updated_at)
     VALUES (?, 'uppercase', ?, ?, ?, 3, 0, 'tasks', ?, ?, ?, ?)`,
  );
  const now = Date.now();
  const queued = randomUUID();
  const running = randomUUID();
  insert.run(queued, JSON.stringify({ text: 'left queued' }), 'queued', 0, null, now, null, now);
  insert.run(
    running,
    JSON.stringify({ text: 'left running' }),
    'running',
    1,
    randomUUID(),
    now,
    now,
    now,
  );
  db.close();
  return { queued, running };
}

describe('recovery sweep', () => {
  const dir = tempDir();
  afterAll(() => dir.remove());

  it('processes tasks a dead process left queued or running', async () => {
    // Arrange: a database built by the real migrations, then rows left by a "crashed" process.
    const dbPath = join(dir.path, 'tasks.db');
    await (await startTestApp({ dbPath })).close();
    const { queued, running } = leaveOrphans(dbPath);

    // Act
    const t = await startTestApp({ dbPath });
    try {
      // Assert
      for (const [id, text] of [
        [queued, 'LEFT QUEUED'],
        [running, 'LEFT RUNNING'],
      ]) {
        const task = await waitFor(async () => {
          const res = await t.http.get(`/tasks/${id}`).expect(200);
          return res.body.status === 'completed' ? res.body : undefined;
        });
        expect(task.result).toEqual({ output: text });
      }
    } finally {
      await t.close();
    }
  });
});
