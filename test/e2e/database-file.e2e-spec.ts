import Database from 'better-sqlite3';
import { spawn } from 'node:child_process';
import {
  closeSync,
  copyFileSync,
  mkdirSync,
  openSync,
  renameSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { E2E_DATABASE_URL, startTestApp, tempDir, type TestApp } from '../helpers/create-test-app';
import { distFile, finished, ROOT } from '../helpers/child-process';
import { describeWithTmpfs, mountTmpfs, unmount } from '../helpers/tmpfs';
import { waitFor } from '../helpers/wait-for';

/** Starts the app on `dbPath` and answers the start-up error (the test expects one). */
async function startFailure(dbPath: string, env: Record<string, string> = {}): Promise<Error> {
  let started: TestApp | undefined;
  try {
    started = await startTestApp({ dbPath, env });
  } catch (error) {
    return error as Error;
  } finally {
    await started?.close();
  }
  throw new Error(`the app started on ${dbPath}`);
}

/** `npm run db:check` on `dbPath`, as its own process. */
function dbCheck(dbPath: string) {
  const child = spawn(process.execPath, [distFile('persistence/db-tools.js'), 'check'], {
    cwd: ROOT,
    env: { ...process.env, DATABASE_PATH: dbPath, DATABASE_URL: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return finished(child);
}

/** Overwrites one page in the middle of the file (past the schema) with garbage, as a bad disk would. */
function corruptMiddlePage(dbPath: string): void {
  const db = new Database(dbPath);
  const pageSize = db.pragma('page_size', { simple: true }) as number;
  const pages = db.pragma('page_count', { simple: true }) as number;
  // Every committed page into the file itself, so the garbage is not shadowed by the log.
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
  const fd = openSync(dbPath, 'r+');
  const page = Math.floor(pages / 2);
  writeSync(fd, Buffer.alloc(pageSize, 0x5a), 0, pageSize, (page - 1) * pageSize);
  closeSync(fd);
}

// These are faults of the SQLite file; a PostgreSQL run has none of them.
(E2E_DATABASE_URL ? describe.skip : describe)('the SQLite file under the service', () => {
  const dir = tempDir();
  afterAll(() => dir.remove());

  describe.each(['express', 'fastify'] as const)('on %s', (adapter) => {
    it('a deleted file turns health down and write requests into 503s', async () => {
      const dbPath = join(dir.path, `deleted-${adapter}.db`);
      const t = await startTestApp({ dbPath, adapter });
      try {
        await t.http
          .post('/tasks')
          .send({ action: 'uppercase', data: { text: 'a' } })
          .expect(202);
        unlinkSync(dbPath);

        const health = await t.http.get('/health').expect(503);
        expect(health.body.database).toMatch(
          new RegExp(`^down: the database file ${dbPath} was deleted`),
        );
        const refused = await t.http
          .post('/tasks')
          .send({ action: 'uppercase', data: { text: 'b' } })
          .expect(503);
        expect(refused.headers['retry-after']).toMatch(/^\d+$/);
        expect(refused.body.message).toMatch(/^database unavailable: /);
      } finally {
        await t.close();
      }
    });

    it('a file replaced by another is noticed on the interval, without a health request', async () => {
      const dbPath = join(dir.path, `replaced-${adapter}.db`);
      const t = await startTestApp({ dbPath, adapter });
      try {
        copyFileSync(dbPath, `${dbPath}.other`);
        renameSync(`${dbPath}.other`, dbPath);
        await waitFor(
          async () =>
            (await t.http.post('/tasks').send({ action: 'uppercase', data: {} })).status === 503,
          { timeoutMs: 10_000, intervalMs: 100, what: 'POST /tasks to answer 503' },
        );
        const health = await t.http.get('/health').expect(503);
        expect(health.body.database).toMatch(/was replaced by another file/);
      } finally {
        await t.close();
      }
    });
  });

  it('a page-corrupted file is refused at start-up, by path and setting', async () => {
    const dbPath = join(dir.path, 'corrupt.db');
    const t = await startTestApp({ dbPath, env: { QUEUE_DRIVER: 'sqlite' } });
    const tasks = Array.from({ length: 100 }, (_, i) => ({
      action: 'uppercase',
      data: { text: `task ${i} ${'x'.repeat(200)}` },
    }));
    for (let i = 0; i < 3; i++) await t.http.post('/tasks/batch').send({ tasks }).expect(202);
    await t.close();
    const sound = await dbCheck(dbPath);
    expect(sound).toMatchObject({ code: 0, stderr: '' });
    expect(sound.stdout).toContain(`db:check: ${dbPath} (DATABASE_PATH): integrity_check ok`);
    corruptMiddlePage(dbPath);
    const damaged = await dbCheck(dbPath);
    expect(damaged.code).toBe(1);
    expect(damaged.stderr).toContain(`db:check: ${dbPath} (DATABASE_PATH): integrity_check failed`);

    const error = await startFailure(dbPath);
    expect(error.message).toContain(
      `database ${dbPath} (DATABASE_PATH): quick_check found it corrupt`,
    );
    // DATABASE_CHECK=full runs the longer integrity_check instead.
    const full = await startFailure(dbPath, { DATABASE_CHECK: 'full' });
    expect(full.message).toContain(
      `database ${dbPath} (DATABASE_PATH): integrity_check found it corrupt`,
    );
  });

  it('a file that is not a database is refused at start-up, by path and setting', async () => {
    const dbPath = join(dir.path, 'not-a-database.db');
    writeFileSync(dbPath, 'these are notes, not a database\n'.repeat(200));
    const error = await startFailure(dbPath);
    expect(error.message).toBe(`database ${dbPath} (DATABASE_PATH): file is not a database`);
  });

  describeWithTmpfs('on a read-only file system', () => {
    const mount = join(dir.path, 'read-only');
    beforeAll(() => {
      mkdirSync(mount);
      mountTmpfs(mount, 64, true);
    });
    afterAll(() => unmount(mount));

    it('is refused at start-up, by path and setting', async () => {
      const dbPath = join(mount, 'tasks.db');
      const error = await startFailure(dbPath);
      expect(error.message).toMatch(
        new RegExp(
          `^database ${dbPath} \\(DATABASE_PATH\\): .*(readonly|read-only|unable to open)`,
        ),
      );
    });
  });
});
