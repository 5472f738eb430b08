import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * `trace_headers`: the creating request's trace context, which the table drivers hand to the
 * handler as a message's headers would. Plain ALTER TABLE on both engines: on SQLite, TypeORM's
 * addColumn would rebuild the table, declaring the integer columns `int` again and dropping the
 * partial indexes (see SqliteIntegerColumns1765700000000), where SQLite adds a column in place.
 */
export class AddTaskTraceHeaders1765800001000 implements MigrationInterface {
  name = 'AddTaskTraceHeaders1765800001000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE tasks ADD COLUMN trace_headers text`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE tasks DROP COLUMN trace_headers`);
  }
}
