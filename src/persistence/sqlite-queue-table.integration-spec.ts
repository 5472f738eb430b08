import type Database from 'better-sqlite3';
import { newTask } from '../tasks/task.factory';
import { CREATED_AT_HEADER, DUE_AT_HEADER } from '../tasks/task-message.interface';
import { SqliteQueueTable } from './sqlite-queue-table';
import { SqliteTaskStatements } from './sqlite-task-statements';
import { CLAIMED_HEADER } from './task-statements';
import { suiteSqliteFile } from '../../test/helpers/sqlite-file';

/**
 * The task table on SQLite as the sqlite driver's queue: what the conformance suite cannot see
 * (plans, the listener, writes avoided). Two connections to one file stand for two processes.
 */
describe('SqliteQueueTable', () => {
  const suite = suiteSqliteFile('taskq-sqlite-queue-table-');

  const open = () => {
    const db = suite.file.open();
    const statements = new SqliteTaskStatements(db, suite.file.metadata);
    return { db, statements, table: statements.queueTable() };
  };

  const plan = (db: Database.Database, sql: string): string =>
    (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all() as { detail: string }[])
      .map((row) => row.detail)
      .join('\n');

  it('reads partial indexes where (status, created_at) used to be, and scans nothing', () => {
    const { db } = open();
    expect(
      plan(db, `SELECT id FROM tasks WHERE status = 'queued' ORDER BY created_at, id`),
    ).toMatch(/^SCAN tasks USING (COVERING )?INDEX idx_tasks_queued_created$/);
    expect(
      plan(
        db,
        `SELECT id FROM tasks WHERE status IN ('completed', 'failed', 'cancelled')
           AND processed_at < 5 LIMIT 500`,
      ),
    ).toMatch(/^SEARCH tasks USING INDEX idx_tasks_finished \(processed_at<\?\)$/);
    const claim = plan(
      db,
      `SELECT id FROM tasks INDEXED BY idx_tasks_queued_claim WHERE status = 'queued'
         AND queue = 'q' AND coalesce(run_at, created_at) <= 5
       ORDER BY priority DESC, coalesce(run_at, created_at), id LIMIT 10`,
    );
    expect(claim).toMatch(/SEARCH tasks USING INDEX idx_tasks_queued_claim \(queue=\?\)/);
    expect(claim).not.toMatch(/TEMP B-TREE/);
  });

  it('has no partial index on tasks whose condition is an IN list', () => {
    // Such a condition (e.g. status IN the finished ones) made every claim and outcome several
    // times dearer (SQLite 3.53, better-sqlite3 12): each UPDATE of a row re-evaluates it for the index.
    const { db } = open();
    const partial = db
      .prepare(`SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'tasks'`)
      .all() as { name: string; sql: string | null }[];
    const conditions = partial
      .filter((index) => index.sql && / WHERE /i.test(index.sql))
      .map((index) => index.sql!.split(/ WHERE /i)[1]);
    expect(conditions.length).toBeGreaterThanOrEqual(4);
    for (const condition of conditions) expect(condition).not.toMatch(/\bIN\s*\(/i);
  });

  it('claims with the row as the delivery: token, latency and trace headers from the row', async () => {
    const { statements, table } = open();
    const row = newTask({
      action: 'noop',
      data: { n: 1 },
      queue: 'headers',
      maxAttempts: 3,
      trace: { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' },
    });
    await statements.insert([row]);
    const [delivery] = await table.claim('headers', 5, 'owner-a', 30_000, 0);
    expect(delivery).toMatchObject({
      id: row.id,
      attempt: 1,
      deliveryCount: 1,
      settledByOutcome: true,
      body: { taskId: row.id, action: 'noop', data: { n: 1 } },
    });
    expect(delivery.headers).toMatchObject({
      [CLAIMED_HEADER]: delivery.receipt,
      [CREATED_AT_HEADER]: String(row.createdAt),
      [DUE_AT_HEADER]: String(row.createdAt),
      traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
    });
    // The claim's token is the one the outcome is fenced by.
    expect(await statements.complete(row.id, delivery.receipt, { ok: true })).toBe(true);
  });

  it('dead-letters a row whose payload is not JSON in the claim itself, with the reason', async () => {
    const { db, statements, table } = open();
    const [good, bad] = [1, 2].map((n) =>
      newTask({ action: 'noop', data: { n }, queue: 'poison', maxAttempts: 3 }),
    );
    await statements.insert([good, bad]);
    // Written around taskq: the payload column holds text that is not JSON.
    db.prepare(`UPDATE tasks SET payload = '{not json' WHERE id = ?`).run(bad.id);
    const deliveries = await table.claim('poison', 10, 'owner-a', 30_000, 0);
    expect(deliveries.map((d) => d.id)).toEqual([good.id]);
    const dead = await statements.findById(bad.id);
    expect(dead).toMatchObject({ status: 'failed', claimToken: null });
    expect(dead!.error).toMatch(/^undecodable message: /);
    // Not claimed again after a lease, and listed with its text.
    expect(await table.claim('poison', 10, 'owner-a', 30_000, Date.now() + 60_000)).toEqual([]);
    const [letter] = await table.deadLetters('poison', 10);
    expect(letter).toMatchObject({ id: bad.id, body: '{not json' });
  });

  it('takes over a running row another driver claimed, once untouched for a lease', async () => {
    // As an upgrade from a message driver can leave it: running under the processor's own
    // claim token, no lease or owner in the row. Nothing else would ever free it.
    const { db, statements, table } = open();
    const [old, fresh] = [1, 2].map((n) =>
      newTask({ action: 'noop', data: { n }, queue: 'upgrade', maxAttempts: 3 }),
    );
    await statements.insert([old, fresh]);
    const hold = db.prepare(
      `UPDATE tasks SET status = 'running', attempt = 1, deliveries = 1, claim_token = 'theirs',
         updated_at = ? WHERE id = ?`,
    );
    hold.run(Date.now() - 60_000, old.id);
    hold.run(Date.now(), fresh.id);
    const [taken, ...rest] = await table.claim('upgrade', 10, 'owner-a', 30_000, 0);
    expect(rest).toEqual([]);
    expect(taken).toMatchObject({ id: old.id, attempt: 1, deliveryCount: 2 });
    expect(taken.receipt).not.toBe('theirs');
    // The old holder is fenced off; the new one records the outcome.
    expect(await statements.complete(old.id, 'theirs', 1)).toBe(false);
    expect(await statements.complete(old.id, taken.receipt, 2)).toBe(true);
  });

  it('writes nothing when a claim finds nothing, so idle consumers cost no commits', async () => {
    const a = open();
    const b = open();
    const version = () => b.db.pragma('data_version', { simple: true }) as number;
    const before = version();
    for (let i = 0; i < 5; i += 1) {
      expect(await a.table.claim('empty', 10, 'owner-a', 30_000, 0)).toEqual([]);
    }
    expect(version()).toBe(before);
  });

  it('wakes a listener when another connection commits, not for its own commits', async () => {
    const a = open();
    const b = open();
    const wakes: (string | undefined)[] = [];
    const stop = await a.table.listen(
      (queue) => wakes.push(queue ?? '*'),
      (error) => {
        throw error;
      },
    );
    try {
      await a.statements.insert([
        newTask({ action: 'noop', data: {}, queue: 'w', maxAttempts: 1 }),
      ]);
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(wakes).toEqual([]);
      await b.statements.insert([
        newTask({ action: 'noop', data: {}, queue: 'w', maxAttempts: 1 }),
      ]);
      const deadline = Date.now() + 2000;
      while (wakes.length === 0 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      expect(wakes).toEqual(['*']);
    } finally {
      await stop();
    }
  });

  it('is what the SQLite task statements offer as the queue, one per statements', () => {
    const { statements } = open();
    expect(statements.queueTable()).toBeInstanceOf(SqliteQueueTable);
    expect(statements.queueTable()).toBe(statements.queueTable());
  });
});
