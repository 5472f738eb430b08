import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * SQLite: indexes that let a queue's counts read only the rows they count. Its failed rows were
 * counted by scanning the whole table (133 ms with 1M rows, on the event loop: better-sqlite3 is
 * synchronous), and the delayed ones by walking every queued row of the queue. Both are partial,
 * so the rows they hold are rare ones: failed rows, and queued rows with a run time (delayed
 * tasks and retries waiting out their backoff). Counts kept by triggers were measured and
 * rejected: the statement journal a trigger forces on every write to `tasks` cost about 40 µs
 * of CPU per task.
 */
export class SqliteQueueCountIndexes1765900000000 implements MigrationInterface {
  name = 'SqliteQueueCountIndexes1765900000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    if (queryRunner.connection.options.type !== 'better-sqlite3') return;
    await queryRunner.query(
      `CREATE INDEX idx_tasks_queued_later ON tasks (queue, run_at)
         WHERE status = 'queued' AND run_at IS NOT NULL`,
    );
    await queryRunner.query(
      `CREATE INDEX idx_tasks_failed ON tasks (queue) WHERE status = 'failed'`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    if (queryRunner.connection.options.type !== 'better-sqlite3') return;
    await queryRunner.query(`DROP INDEX idx_tasks_failed`);
    await queryRunner.query(`DROP INDEX idx_tasks_queued_later`);
  }
}
