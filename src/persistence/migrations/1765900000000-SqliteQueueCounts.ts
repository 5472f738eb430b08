import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * SQLite: queue counts that do not grow with the backlog. Counting a queue's waiting rows walked
 * its partial index: 430 ms with 1M waiting, on the event loop (better-sqlite3 is synchronous),
 * for every `GET /queues`, metrics scrape and depth check. `taskq_queue_counts` holds each
 * queue's queued and failed rows, kept by triggers in the writing transaction itself, so no
 * write path can forget it. Running rows are not counted here: they are bounded by the workers'
 * credit, and the lease index counts them cheaply. Queued rows with a future `run_at` (delayed
 * and backing-off tasks) get their own partial index, so the ready/delayed split reads only
 * those. The triggers cost about 4 µs of CPU per task (insert, claim and outcome together).
 */
export class SqliteQueueCounts1765900000000 implements MigrationInterface {
  name = 'SqliteQueueCounts1765900000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    if (queryRunner.connection.options.type !== 'better-sqlite3') return;
    await queryRunner.query(
      `CREATE TABLE taskq_queue_counts (
         queue varchar(64) NOT NULL, status varchar(16) NOT NULL, n integer NOT NULL,
         PRIMARY KEY (queue, status)) WITHOUT ROWID`,
    );
    await queryRunner.query(
      `INSERT INTO taskq_queue_counts (queue, status, n)
       SELECT queue, status, count(*) FROM tasks WHERE status = 'queued' GROUP BY queue
       UNION ALL
       SELECT queue, status, count(*) FROM tasks WHERE status = 'failed' GROUP BY queue`,
    );
    const add = (row: 'NEW' | 'OLD', status: string): string =>
      `INSERT INTO taskq_queue_counts (queue, status, n) VALUES (${row}.queue, '${status}', 1)
         ON CONFLICT (queue, status) DO UPDATE SET n = n + 1;`;
    const remove = (status: string): string =>
      `UPDATE taskq_queue_counts SET n = n - 1 WHERE queue = OLD.queue AND status = '${status}';`;
    // One trigger per status and direction, each with a WHEN that is false for most writes:
    // an outcome (running → completed) runs none of their bodies.
    for (const status of ['queued', 'failed']) {
      await queryRunner.query(
        `CREATE TRIGGER trg_tasks_count_insert_${status} AFTER INSERT ON tasks
         WHEN NEW.status = '${status}' BEGIN ${add('NEW', status)} END`,
      );
      await queryRunner.query(
        `CREATE TRIGGER trg_tasks_count_enter_${status} AFTER UPDATE OF status ON tasks
         WHEN NEW.status = '${status}' AND OLD.status IS NOT '${status}' BEGIN ${add('NEW', status)} END`,
      );
      await queryRunner.query(
        `CREATE TRIGGER trg_tasks_count_leave_${status} AFTER UPDATE OF status ON tasks
         WHEN OLD.status = '${status}' AND NEW.status IS NOT '${status}' BEGIN ${remove(status)} END`,
      );
      await queryRunner.query(
        `CREATE TRIGGER trg_tasks_count_delete_${status} AFTER DELETE ON tasks
         WHEN OLD.status = '${status}' BEGIN ${remove(status)} END`,
      );
    }
    await queryRunner.query(
      `CREATE INDEX idx_tasks_queued_later ON tasks (queue, run_at)
         WHERE status = 'queued' AND run_at IS NOT NULL`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    if (queryRunner.connection.options.type !== 'better-sqlite3') return;
    await queryRunner.query(`DROP INDEX idx_tasks_queued_later`);
    for (const status of ['queued', 'failed']) {
      for (const event of ['insert', 'enter', 'leave', 'delete']) {
        await queryRunner.query(`DROP TRIGGER trg_tasks_count_${event}_${status}`);
      }
    }
    await queryRunner.query(`DROP TABLE taskq_queue_counts`);
  }
}
