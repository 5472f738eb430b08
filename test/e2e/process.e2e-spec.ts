import Database from 'better-sqlite3';
import { join } from 'node:path';
import request from 'supertest';
import { migrations } from '../../src/persistence/migrations';
import { distFile, finished, runNode, startNode } from '../helpers/child-process';
import { E2E_QUEUE_DRIVER, tempDir } from '../helpers/create-test-app';
import { waitFor } from '../helpers/wait-for';

/** The compiled service and migrate command as an operator runs them, as child processes. */
describe('processes', () => {
  const dir = tempDir();
  afterAll(() => dir.remove());
  const base = {
    QUEUE_DRIVER: E2E_QUEUE_DRIVER,
    // The shared test Redis runs without persistence (REDIS_ALLOW_VOLATILE accepts it).
    REDIS_ALLOW_VOLATILE: 'true',
    LOG_LEVEL: 'log',
    HOST: '127.0.0.1',
  };

  describe('npm run migrate (dist/persistence/migrate.js)', () => {
    it('migrates an empty database and exits 0, then finds nothing to do', async () => {
      const dbPath = join(dir.path, 'fresh', 'tasks.db');
      const first = await runNode(distFile('persistence/migrate.js'), {
        ...base,
        DATABASE_PATH: dbPath,
      });
      expect(first).toMatchObject({ code: 0 });
      expect(first.stdout).toContain(
        // Every migration, oldest first (the list, so a new migration needs no edit here).
        `migrate: applied ${migrations.map((m) => m.name).join(', ')} to ${dbPath}`,
      );

      const db = new Database(dbPath, { readonly: true });
      const columns = db.prepare("SELECT name FROM pragma_table_info('tasks')").all();
      db.close();
      expect(columns.map((c) => (c as { name: string }).name)).toEqual(
        expect.arrayContaining(['id', 'payload', 'status', 'result', 'created_at', 'processed_at']),
      );

      const second = await runNode(distFile('persistence/migrate.js'), {
        ...base,
        DATABASE_PATH: dbPath,
      });
      expect(second).toMatchObject({ code: 0 });
      expect(second.stdout).toContain('is up to date');
    });

    it('exits non-zero when it cannot migrate', async () => {
      const result = await runNode(distFile('persistence/migrate.js'), {
        ...base,
        DATABASE_PATH: '/dev/null/taskq-cannot-write-here/tasks.db',
      });
      expect(result.code).toBe(1);
      expect(result.stderr).toContain('migrate: failed');
    });
  });

  describe('the service (dist/main.js)', () => {
    it('refuses a bad setting with one line naming it and exits 1', async () => {
      const result = await runNode(distFile('main.js'), { ...base, WORKER_PREFETCH: '0' });
      expect(result.code).toBe(1);
      expect(result.stderr.trim()).toBe(
        'taskq: WORKER_PREFETCH=0 is invalid: expected an integer from 1 to 10000',
      );
    });

    it('on SIGTERM finishes the task in flight and exits 0', async () => {
      // Arrange
      const dbPath = join(dir.path, 'sigterm.db');
      const child = startNode(distFile('main.js'), { ...base, PORT: '0', DATABASE_PATH: dbPath });
      const exited = finished(child);
      const url = await waitFor(() => /listening on (http:\/\/\S+)/.exec(child.output())?.[1], {
        timeoutMs: 30_000,
        what: 'the service to listen',
      });
      const http = request(url);
      const { id } = (
        await http
          .post('/tasks')
          .send({ action: 'sleep', data: { ms: 700 } })
          .expect(202)
      ).body;
      await waitFor(async () => (await http.get(`/tasks/${id}`)).body.status === 'running');

      // Act
      child.kill('SIGTERM');
      const result = await exited;

      // Assert
      expect(result).toMatchObject({ code: 0, signal: null });
      const db = new Database(dbPath, { readonly: true });
      expect(db.prepare('SELECT status, result FROM tasks WHERE id = ?').get(id)).toEqual({
        status: 'completed',
        result: JSON.stringify({ output: 'slept', sleptMs: 700 }),
      });
      db.close();
    });
  });
});
