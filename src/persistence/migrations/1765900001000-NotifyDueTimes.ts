import type { MigrationInterface, QueryRunner } from 'typeorm';

/** The insert trigger's function, which the listener parses (PgQueueTable.listen). */
const FUNCTION = (body: string): string =>
  `CREATE OR REPLACE FUNCTION taskq_notify_queued() RETURNS trigger LANGUAGE plpgsql AS $$
   BEGIN
     ${body}
     RETURN NULL;
   END $$`;

/**
 * PostgreSQL: the insert trigger's NOTIFY also tells of delayed rows, as `<queue> <due epoch
 * ms>` (the earliest in the statement), so a listening process wakes when they become due
 * rather than at its next poll; rows due now still send the bare `<queue>`. A listener older
 * than this reads the new payload as an unknown queue and ignores it (the poll finds the row).
 */
export class NotifyDueTimes1765900001000 implements MigrationInterface {
  name = 'NotifyDueTimes1765900001000';

  async up(queryRunner: QueryRunner): Promise<void> {
    if (queryRunner.connection.options.type !== 'postgres') return;
    await queryRunner.query(
      FUNCTION(`PERFORM pg_notify('taskq:' || TG_TABLE_SCHEMA, q.payload) FROM (
         SELECT n.queue AS payload FROM taskq_new_rows n
           WHERE n.status = 'queued' AND n.run_at IS NULL GROUP BY n.queue
         UNION ALL
         SELECT n.queue || ' ' || min(n.run_at) FROM taskq_new_rows n
           WHERE n.status = 'queued' AND n.run_at IS NOT NULL GROUP BY n.queue) q;`),
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    if (queryRunner.connection.options.type !== 'postgres') return;
    await queryRunner.query(
      FUNCTION(`PERFORM pg_notify('taskq:' || TG_TABLE_SCHEMA, q.queue)
         FROM (SELECT DISTINCT n.queue FROM taskq_new_rows n WHERE n.status = 'queued') q;`),
    );
  }
}
