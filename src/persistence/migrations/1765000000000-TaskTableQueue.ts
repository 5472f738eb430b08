import { type MigrationInterface, type QueryRunner, TableColumn } from 'typeorm';

/**
 * The task table as a queue (the postgres driver, docs/architecture.md): a claim's lease, its
 * owner and the delivery count on every row; on PostgreSQL also the partial indexes the claim
 * reads, the heartbeat and pause tables, and the NOTIFY trigger on inserts.
 */
export class TaskTableQueue1765000000000 implements MigrationInterface {
  name = 'TaskTableQueue1765000000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.addColumns('tasks', [
      new TableColumn({ name: 'lease_until', type: 'bigint', isNullable: true }),
      new TableColumn({ name: 'lease_owner', type: 'varchar', length: '36', isNullable: true }),
    ]);
    if (queryRunner.connection.options.type !== 'postgres') return;
    // Only queued rows are in it, so its size follows the backlog, and the claim reads its head.
    await queryRunner.query(
      `CREATE INDEX idx_tasks_queued_claim ON tasks
         (queue, priority DESC, (COALESCE(run_at, created_at)), id) WHERE status = 'queued'`,
    );
    // Running rows, for the takeover of expired or orphaned claims (a few per worker).
    await queryRunner.query(
      `CREATE INDEX idx_tasks_running_lease ON tasks (queue, lease_until) WHERE status = 'running'`,
    );
    await queryRunner.query(
      `CREATE TABLE taskq_queue_consumers (id varchar(36) PRIMARY KEY, seen_at bigint NOT NULL)`,
    );
    await queryRunner.query(`CREATE TABLE taskq_queue_paused (queue varchar(64) PRIMARY KEY)`);
    // One NOTIFY per statement and queue (not per row); the channel names the schema, so
    // databases shared by several schemas (tests) wake only their own listeners.
    await queryRunner.query(
      `CREATE FUNCTION taskq_notify_queued() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         PERFORM pg_notify('taskq:' || TG_TABLE_SCHEMA, q.queue)
           FROM (SELECT DISTINCT n.queue FROM taskq_new_rows n WHERE n.status = 'queued') q;
         RETURN NULL;
       END $$`,
    );
    await queryRunner.query(
      `CREATE TRIGGER taskq_tasks_notify AFTER INSERT ON tasks
         REFERENCING NEW TABLE AS taskq_new_rows
         FOR EACH STATEMENT EXECUTE FUNCTION taskq_notify_queued()`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    if (queryRunner.connection.options.type === 'postgres') {
      await queryRunner.query(`DROP TRIGGER IF EXISTS taskq_tasks_notify ON tasks`);
      await queryRunner.query(`DROP FUNCTION IF EXISTS taskq_notify_queued()`);
      await queryRunner.query(`DROP TABLE IF EXISTS taskq_queue_paused`);
      await queryRunner.query(`DROP TABLE IF EXISTS taskq_queue_consumers`);
      await queryRunner.query(`DROP INDEX IF EXISTS idx_tasks_running_lease`);
      await queryRunner.query(`DROP INDEX IF EXISTS idx_tasks_queued_claim`);
    }
    // `deliveries` (counted by every claim) comes with AddTaskDeliveries1765600000000.
    for (const column of ['lease_owner', 'lease_until']) {
      await queryRunner.dropColumn('tasks', column);
    }
  }
}
