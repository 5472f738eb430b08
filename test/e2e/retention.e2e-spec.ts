import Database from 'better-sqlite3';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { TaskRetentionService } from '../../src/maintenance/task-retention.service';
import { startTestApp, tempDir } from '../helpers/create-test-app';
import { waitFor } from '../helpers/wait-for';

const DAY = 24 * 60 * 60 * 1000;

interface Row {
  status: string;
  ageDays: number;
  callbackStatus?: 'pending' | 'delivered';
}

/** Inserts finished tasks, `ageDays` after they finished; returns their ids. */
function insert(dbPath: string, rows: Row[]): string[] {
  const db = new Database(dbPath);
  const now = Date.now();
  const statement = db.prepare(
    `INSERT INTO tasks (id, action, payload, status, attempt, max_attempts, priority, queue,
       created_at, processed_at, updated_at, callback_url, callback_status, callback_next_at)
     VALUES (?, 'uppercase', '{}', ?, 1, 3, 0, 'tasks', ?, ?, ?, ?, ?, ?)`,
  );
  const ids = db.transaction(() =>
    rows.map((row) => {
      const id = randomUUID();
      const finished = now - row.ageDays * DAY;
      const pending = row.callbackStatus === 'pending';
      statement.run(
        id,
        row.status,
        finished - 1000,
        finished,
        finished,
        row.callbackStatus ? 'http://127.0.0.1:9/hook' : null,
        row.callbackStatus ?? null,
        pending ? now + DAY : null, // pending but not due: it stays pending during the test
      );
      return id;
    }),
  )();
  db.close();
  return ids;
}

function existing(dbPath: string, ids: string[]): string[] {
  const db = new Database(dbPath, { readonly: true });
  const found = ids.filter((id) => db.prepare('SELECT 1 FROM tasks WHERE id = ?').get(id));
  db.close();
  return found;
}

describe('retention', () => {
  const dir = tempDir();
  afterAll(() => dir.remove());

  async function schema(): Promise<string> {
    const dbPath = join(dir.path, `${randomUUID()}.db`);
    // Schema only: an API process (on sqlite, which allows split roles) starts no worker.
    await (
      await startTestApp({ dbPath, env: { APP_ROLE: 'api', QUEUE_DRIVER: 'sqlite' } })
    ).close();
    return dbPath;
  }

  it('deletes, shortly after start, finished tasks older than TASK_RETENTION_DAYS, in batches', async () => {
    const dbPath = await schema();
    const old = insert(dbPath, [
      { status: 'completed', ageDays: 8 },
      { status: 'failed', ageDays: 30 },
      { status: 'cancelled', ageDays: 7.5 },
      { status: 'completed', ageDays: 9, callbackStatus: 'delivered' },
      ...Array.from({ length: 1200 }, () => ({ status: 'completed', ageDays: 10 })),
    ]);
    const kept = insert(dbPath, [
      { status: 'completed', ageDays: 6 },
      { status: 'failed', ageDays: 1 },
      { status: 'completed', ageDays: 20, callbackStatus: 'pending' },
    ]);

    const t = await startTestApp({ dbPath, env: { TASK_RETENTION_DAYS: '7' } });
    try {
      await waitFor(() => existing(dbPath, old).length === 0, {
        timeoutMs: 30_000,
        intervalMs: 100,
        what: 'the old tasks to be deleted',
      });
      expect(existing(dbPath, kept)).toEqual(kept);
      // Nothing is left for a second sweep.
      expect(await t.app.get(TaskRetentionService).sweep()).toBe(0);
    } finally {
      await t.close();
    }
  });

  it('keeps every task with TASK_RETENTION_DAYS=0', async () => {
    const dbPath = await schema();
    const ids = insert(dbPath, [{ status: 'completed', ageDays: 3650 }]);
    const t = await startTestApp({ dbPath, env: { TASK_RETENTION_DAYS: '0' } });
    try {
      expect(await t.app.get(TaskRetentionService).sweep()).toBe(0);
      expect(existing(dbPath, ids)).toEqual(ids);
    } finally {
      await t.close();
    }
  });
});
