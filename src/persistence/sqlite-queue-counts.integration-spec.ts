import { newTask } from '../tasks/task.factory';
import { SQLITE_COUNTS } from './sqlite-queue-counts';
import { SqliteTaskStatements } from './sqlite-task-statements';
import { suiteSqliteFile } from '../../test/helpers/sqlite-file';

/**
 * A queue's counts on SQLite (GET /queues, metrics, the reconciler): right through every kind of
 * write, and read from partial indexes of the rows counted, never by scanning the task table.
 */
describe('SQLite queue counts', () => {
  const suite = suiteSqliteFile('taskq-sqlite-counts-');

  it('follow inserts, claims, outcomes, retries, cancels and deletes', async () => {
    const db = suite.file.open();
    const statements = new SqliteTaskStatements(db, suite.file.metadata);
    const table = statements.queueTable();
    const check = async (
      queue: string,
      expected: { ready: number; delayed: number; inFlight: number; dead: number },
    ) => {
      expect(await table.stats(queue)).toMatchObject(expected);
      expect(await statements.countQueuedDue(queue, Date.now())).toBe(expected.ready);
    };
    const task = (queue: string, runAt: number | null = null) =>
      newTask({ action: 'a', data: {}, queue, maxAttempts: 2, runAt });

    const rows = Array.from({ length: 6 }, () => task('q'));
    const later = task('q', Date.now() + 60_000);
    await statements.insert([...rows, later, task('other')]);
    await check('q', { ready: 6, delayed: 1, inFlight: 0, dead: 0 });

    const claimed = await table.claim('q', 4, 'owner', 30_000, 0);
    expect(claimed).toHaveLength(4);
    await check('q', { ready: 2, delayed: 1, inFlight: 4, dead: 0 });

    const [done, retried, dead, released] = claimed;
    expect(await statements.complete(done.id, done.receipt, { ok: true })).toBe(true);
    // A failed attempt with a retry: queued again, due after its backoff.
    expect(await table.settle(retried, { kind: 'nack', delayMs: 60_000 })).toBe(true);
    expect(await statements.fail(dead.id, dead.receipt, 'boom', true)).toBe(true);
    expect(await table.settle(released, { kind: 'release' })).toBe(true);
    await check('q', { ready: 3, delayed: 2, inFlight: 0, dead: 1 });

    // The API's cancel of a waiting task, and its retry of a failed one.
    expect(await statements.cancel(rows[5].id)).toBe(true);
    expect(await statements.requeueFinished(dead.id)).toBe(true);
    await check('q', { ready: 3, delayed: 2, inFlight: 0, dead: 0 });

    // Recovery after a crash puts running rows back; retention deletes finished ones.
    expect(await table.claim('q', 2, 'owner', 30_000, 0)).toHaveLength(2);
    expect(await statements.requeueRunning(['q'])).toBe(2);
    expect(await statements.deleteExpired(Date.now() + 1, 100)).toBeGreaterThan(0);
    await check('q', { ready: 3, delayed: 2, inFlight: 0, dead: 0 });
    await check('other', { ready: 1, delayed: 0, inFlight: 0, dead: 0 });
  });

  it('read partial indexes of the rows they count, never the task table', () => {
    const db = suite.file.open();
    for (const [name, sql] of Object.entries(SQLITE_COUNTS)) {
      const plan = (
        db.prepare(`EXPLAIN QUERY PLAN SELECT ${sql}`).all({ queue: 'q', now: 0 }) as {
          detail: string;
        }[]
      )
        .map((row) => row.detail)
        .join('\n');
      expect([name, plan]).toEqual([
        name,
        expect.stringMatching(/SEARCH tasks USING COVERING INDEX idx_tasks_\w+ \(queue=\?/),
      ]);
      expect(plan).not.toMatch(/SCAN tasks/);
    }
  });
});
