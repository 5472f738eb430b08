import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { newTask } from '../tasks/task.factory';
import { migrations } from './migrations';
import { SqliteQueueCounts1765900000000 } from './migrations/1765900000000-SqliteQueueCounts';
import { SqliteTaskStatements } from './sqlite-task-statements';
import { TaskEntity } from './task.entity';
import { migratedSqliteFile, type MigratedSqliteFile } from '../../test/helpers/sqlite-file';

/**
 * The trigger-kept queue counts (SqliteQueueCounts 1765900000000) against a plain count of the
 * rows, after every kind of write the service makes: they must never drift, or `GET /queues`,
 * the metrics and the depth limit would lie from then on.
 */
describe('SQLite queue counts', () => {
  const dir = mkdtempSync(join(tmpdir(), 'taskq-sqlite-counts-'));
  let file: MigratedSqliteFile;

  afterAll(async () => {
    await file?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** What the counts table says, and what counting the rows says, by queue and status. */
  const both = (db: Database.Database) => {
    const kept = db
      .prepare(`SELECT queue, status, n FROM taskq_queue_counts WHERE n <> 0 ORDER BY 1, 2`)
      .all();
    const real = db
      .prepare(
        `SELECT queue, status, count(*) AS n FROM tasks WHERE status IN ('queued', 'failed')
         GROUP BY queue, status ORDER BY 1, 2`,
      )
      .all();
    return { kept, real };
  };

  it('counts the rows already there when the migration runs', async () => {
    const path = join(dir, 'backfill.db');
    const before = migrations.filter((m) => m !== SqliteQueueCounts1765900000000);
    const options = {
      type: 'better-sqlite3' as const,
      database: path,
      entities: [TaskEntity],
      migrationsTransactionMode: 'each' as const,
    };
    const old = await new DataSource({ ...options, migrations: before }).initialize();
    await old.runMigrations();
    const repo = old.getRepository(TaskEntity);
    const rows = ['queued', 'queued', 'running', 'failed', 'completed'].map((status, i) =>
      Object.assign(newTask({ action: 'a', data: {}, queue: i < 3 ? 'x' : 'y', maxAttempts: 1 }), {
        status,
      }),
    );
    await repo.insert(rows);
    await old.destroy();

    const migrated = await new DataSource({ ...options, migrations }).initialize();
    await migrated.runMigrations();
    await migrated.destroy();
    const db = new Database(path);
    try {
      const { kept, real } = both(db);
      expect(kept).toEqual(real);
      expect(kept).toEqual([
        { queue: 'x', status: 'queued', n: 2 },
        { queue: 'y', status: 'failed', n: 1 },
      ]);
    } finally {
      db.close();
    }
  });

  it('stay equal to the rows through inserts, claims, outcomes, retries, cancels and deletes', async () => {
    file = await migratedSqliteFile(join(dir, 'tasks.db'));
    const db = file.open();
    const statements = new SqliteTaskStatements(db, file.metadata);
    const table = statements.queueTable();
    const check = async (queue: string, expected: { ready: number; delayed: number }) => {
      const { kept, real } = both(db);
      expect(kept).toEqual(real);
      expect(await table.stats(queue)).toMatchObject(expected);
      expect(await statements.countQueuedDue(queue, Date.now())).toBe(expected.ready);
      const queued = db.prepare(`SELECT count(*) FROM tasks WHERE status = 'queued'`).pluck();
      expect(await statements.countQueued()).toBe(queued.get());
    };
    const task = (queue: string, runAt: number | null = null) =>
      newTask({ action: 'a', data: {}, queue, maxAttempts: 2, runAt });

    const now = Date.now();
    const rows = Array.from({ length: 6 }, () => task('q'));
    const later = task('q', now + 60_000);
    await statements.insert([...rows, later, task('other')]);
    await check('q', { ready: 6, delayed: 1 });

    const claimed = await table.claim('q', 4, 'owner', 30_000, 0);
    expect(claimed).toHaveLength(4);
    await check('q', { ready: 2, delayed: 1 });
    expect(await table.stats('q')).toMatchObject({ inFlight: 4 });

    const [done, retried, dead, released] = claimed;
    expect(await statements.complete(done.id, done.receipt, { ok: true })).toBe(true);
    // A failed attempt with a retry: queued again, due after its backoff.
    expect(await table.settle(retried, { kind: 'nack', delayMs: 60_000 })).toBe(true);
    expect(await statements.fail(dead.id, dead.receipt, 'boom', true)).toBe(true);
    expect(await table.settle(released, { kind: 'release' })).toBe(true);
    await check('q', { ready: 3, delayed: 2 });
    expect(await table.stats('q')).toMatchObject({ inFlight: 0, dead: 1 });

    // The API's cancel of a waiting task, and its retry of a failed one.
    expect(await statements.cancel(rows[5].id)).toBe(true);
    expect(await statements.requeueFinished(dead.id)).toBe(true);
    await check('q', { ready: 3, delayed: 2 });
    expect(await table.stats('q')).toMatchObject({ dead: 0 });

    // Recovery after a crash puts running rows back; retention deletes finished ones.
    const again = await table.claim('q', 2, 'owner', 30_000, 0);
    expect(again).toHaveLength(2);
    expect(await statements.requeueRunning(['q'])).toBe(2);
    await check('q', { ready: 3, delayed: 2 });
    expect(await statements.deleteExpired(Date.now() + 1, 100)).toBeGreaterThan(0);
    db.prepare(`DELETE FROM tasks WHERE id = ?`).run(later.id); // written around taskq
    await check('q', { ready: 3, delayed: 1 });
    await check('other', { ready: 1, delayed: 0 });
  });

  it('read the counts table and bounded index ranges, never the backlog', () => {
    const db = file.open();
    const plan = (sql: string) =>
      (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all({ queue: 'q', now: 0 }) as { detail: string }[])
        .map((row) => row.detail)
        .join('\n');
    const statements = new SqliteTaskStatements(db, file.metadata);
    const stats = (statements.queueTable() as unknown as { s: { stats: { source: string } } }).s
      .stats.source;
    const detail = plan(stats);
    expect(detail).not.toMatch(/SCAN tasks/);
    expect(detail).toMatch(/SEARCH taskq_queue_counts USING PRIMARY KEY/);
    expect(detail).toMatch(
      /SEARCH tasks USING (COVERING )?INDEX idx_tasks_queued_later \(queue=\? AND run_at>\?\)/,
    );
  });
});
