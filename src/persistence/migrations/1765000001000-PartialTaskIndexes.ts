import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * PostgreSQL: the idempotency and callback indexes cover only the rows that use them. Most tasks
 * have neither a key nor a callback, yet each got two index entries on insert and on every state
 * change; as partial indexes they cost nothing for those rows (bulk inserts ran about a quarter
 * faster). The callback query reads `callback_next_at` of pending rows. AddAuth later replaced
 * the idempotency index by a per-tenant one. SQLite keeps the full indexes: TypeORM rebuilds the
 * table whenever a later migration adds a column, and its rebuild does not keep a partial index.
 */
export class PartialTaskIndexes1765000001000 implements MigrationInterface {
  name = 'PartialTaskIndexes1765000001000';

  async up(queryRunner: QueryRunner): Promise<void> {
    if (queryRunner.connection.options.type !== 'postgres') return;
    await queryRunner.query(`DROP INDEX uq_tasks_idempotency_key`);
    await queryRunner.query(
      `CREATE UNIQUE INDEX uq_tasks_idempotency_key ON tasks (idempotency_key)
         WHERE idempotency_key IS NOT NULL`,
    );
    await queryRunner.query(`DROP INDEX idx_tasks_callback_due`);
    await queryRunner.query(
      `CREATE INDEX idx_tasks_callback_due ON tasks (callback_next_at)
         WHERE callback_status = 'pending'`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    if (queryRunner.connection.options.type !== 'postgres') return;
    await queryRunner.query(`DROP INDEX idx_tasks_callback_due`);
    await queryRunner.query(
      `CREATE INDEX idx_tasks_callback_due ON tasks (callback_status, callback_next_at)`,
    );
    await queryRunner.query(`DROP INDEX uq_tasks_idempotency_key`);
    await queryRunner.query(
      `CREATE UNIQUE INDEX uq_tasks_idempotency_key ON tasks (idempotency_key)`,
    );
  }
}
