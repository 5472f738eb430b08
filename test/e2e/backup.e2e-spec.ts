import Database from 'better-sqlite3';
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { E2E_DATABASE_URL, startTestApp, tempDir, type TestApp } from '../helpers/create-test-app';
import { distFile, finished, ROOT } from '../helpers/child-process';
import { waitFor } from '../helpers/wait-for';

interface Row {
  id: string;
  status: string;
  payload: string;
  result: string | null;
}

function rows(dbPath: string): Map<string, Row> {
  const db = new Database(dbPath, { readonly: true });
  try {
    const all = db.prepare('SELECT id, status, payload, result FROM tasks').all() as Row[];
    return new Map(all.map((row) => [row.id, row]));
  } finally {
    db.close();
  }
}

/** `npm run db:backup -- file` as the operator runs it: its own process, beside the service. */
function backup(dbPath: string, file: string) {
  const child = spawn(process.execPath, [distFile('persistence/db-tools.js'), 'backup', file], {
    cwd: ROOT,
    env: { ...process.env, DATABASE_PATH: dbPath, DATABASE_URL: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return finished(child);
}

// An online copy of the SQLite file; PostgreSQL is backed up with pg_dump (README).
(E2E_DATABASE_URL ? describe.skip : describe)('npm run db:backup (SQLite)', () => {
  const dir = tempDir();
  const apps: TestApp[] = [];
  afterAll(async () => {
    await Promise.allSettled(apps.map((t) => t.close()));
    dir.remove();
  });

  it('copies the database while tasks pour in; the copy restores into a fresh app with the same rows', async () => {
    const dbPath = join(dir.path, 'live.db');
    const env = {
      QUEUE_LEASE_MS: '1000',
      RECONCILE_INTERVAL_MS: '500',
      RECONCILE_AFTER_MS: '1000',
    };
    const live = await startTestApp({ dbPath, env });
    apps.push(live);

    // Load: batches of tasks, back to back, until the backup has finished.
    let loading = true;
    let posted = 0;
    const load = (async () => {
      while (loading) {
        const tasks = Array.from({ length: 25 }, (_, i) => ({
          action: 'uppercase',
          data: { text: `task ${posted + i}` },
        }));
        await live.http.post('/tasks/batch').send({ tasks }).expect(202);
        posted += tasks.length;
      }
    })();
    await waitFor(() => posted >= 200, { timeoutMs: 30_000, what: '200 tasks posted' });
    const file = join(dir.path, 'backup.db');
    const postedBefore = posted;
    const result = await backup(dbPath, file);
    const postedAfter = posted;
    loading = false;
    await load;
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^db:backup: .* -> .*backup\.db: \d+ tasks/);
    expect(existsSync(`${file}.partial`)).toBe(false);
    // The service kept taking tasks while the backup ran: it is online, not a pause.
    expect(postedAfter).toBeGreaterThan(postedBefore);

    // The copy is a consistent snapshot: every row it holds is a row of the live file.
    const copied = rows(file);
    expect(copied.size).toBeGreaterThanOrEqual(postedBefore);
    await live.close();
    const original = rows(dbPath);
    expect(copied.size).toBeLessThanOrEqual(original.size);
    for (const [id, row] of copied) {
      const now = original.get(id);
      expect(now?.payload).toBe(row.payload);
      // A task finished in the copy finished the same way in the live file.
      if (row.status === 'completed') expect(now).toEqual(row);
    }

    // Restore: the backup file becomes a fresh service's database.
    const restoredPath = join(dir.path, 'restored.db');
    copyFileSync(file, restoredPath);
    const restored = await startTestApp({ dbPath: restoredPath, env });
    apps.push(restored);
    for (const [id, row] of copied) {
      const res = await waitFor(
        async () => {
          const r = await restored.http.get(`/tasks/${id}`).expect(200);
          return r.body.status === 'completed' ? r : undefined;
        },
        { timeoutMs: 30_000, intervalMs: 50, what: `task ${id} to complete after the restore` },
      );
      expect(res.body.data).toEqual(JSON.parse(row.payload));
      expect(res.body.result).toEqual({
        output: (JSON.parse(row.payload) as { text: string }).text.toUpperCase(),
      });
    }
  });
});
