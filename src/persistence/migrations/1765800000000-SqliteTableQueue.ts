import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * SQLite: the task table as the queue (the `sqlite` driver, SqliteQueueTable), as TaskTableQueue
 * 1765000000000 made it on PostgreSQL: the partial indexes the claim reads (queued rows by queue,
 * priority and due time; running rows by queue and lease), and the heartbeat and pause tables
 * the processes on one file share. Also the callback index becomes partial here, as on
 * PostgreSQL: most tasks have no callback, and each paid an index entry on every state change;
 * and (status, created_at) gives way to partial indexes (below).
 * (declareIntegers rebuilds keep every index, partial ones included.)
 */
export class SqliteTableQueue1765800000000 implements MigrationInterface {
  name = 'SqliteTableQueue1765800000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    if (queryRunner.connection.options.type !== 'better-sqlite3') return;
    await queryRunner.query(
      `CREATE INDEX idx_tasks_queued_claim ON tasks
         (queue, priority DESC, coalesce(run_at, created_at), id) WHERE status = 'queued'`,
    );
    await queryRunner.query(
      `CREATE INDEX idx_tasks_running_lease ON tasks (queue, lease_until) WHERE status = 'running'`,
    );
    await queryRunner.query(
      `CREATE TABLE taskq_queue_consumers (id varchar(36) PRIMARY KEY NOT NULL, seen_at bigint NOT NULL)`,
    );
    await queryRunner.query(
      `CREATE TABLE taskq_queue_paused (queue varchar(64) PRIMARY KEY NOT NULL)`,
    );
    await queryRunner.query(`DROP INDEX idx_tasks_callback_due`);
    await queryRunner.query(
      `CREATE INDEX idx_tasks_callback_due ON tasks (callback_next_at)
         WHERE callback_status = 'pending'`,
    );
    // (status, created_at) had two entries rewritten on every status change, the claim's and the
    // outcome's largest cost. Its readers get partial indexes of just their rows: queued ones
    // oldest first (the reconciler's sweep, the oldest-waiting metric), finished ones by when
    // (retention). Lists have their own per-tenant indexes.
    await queryRunner.query(`DROP INDEX idx_tasks_status_created`);
    await queryRunner.query(
      `CREATE INDEX idx_tasks_queued_created ON tasks (created_at, id) WHERE status = 'queued'`,
    );
    // Finished rows are those with processed_at (a retry clears it). Not `status IN (...)`: a
    // partial index with an IN list made every claim and outcome several times dearer.
    await queryRunner.query(
      `CREATE INDEX idx_tasks_finished ON tasks (processed_at) WHERE processed_at IS NOT NULL`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    if (queryRunner.connection.options.type !== 'better-sqlite3') return;
    await queryRunner.query(`DROP INDEX idx_tasks_finished`);
    await queryRunner.query(`DROP INDEX idx_tasks_queued_created`);
    await queryRunner.query(`CREATE INDEX idx_tasks_status_created ON tasks (status, created_at)`);
    await queryRunner.query(`DROP INDEX idx_tasks_callback_due`);
    await queryRunner.query(
      `CREATE INDEX idx_tasks_callback_due ON tasks (callback_status, callback_next_at)`,
    );
    await queryRunner.query(`DROP TABLE taskq_queue_paused`);
    await queryRunner.query(`DROP TABLE taskq_queue_consumers`);
    await queryRunner.query(`DROP INDEX idx_tasks_running_lease`);
    await queryRunner.query(`DROP INDEX idx_tasks_queued_claim`);
  }
}
