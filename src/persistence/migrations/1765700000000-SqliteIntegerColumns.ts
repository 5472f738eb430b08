import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * SQLite only: the integer columns of `tasks` were declared `int` (by the first migrations, and
 * again by TypeORM each time it rebuilds the table to add a column), which TypeORM reads back as
 * a type other than the entity's (`integer`), so `migration:generate` on an up-to-date database
 * produced a migration rebuilding the table. Same affinity (INTEGER), same data: the table is
 * rebuilt once with `integer` (SQLite cannot change a column's declared type in place), from its
 * own CREATE statement, every row and index kept. It runs after every migration that adds
 * columns; a later one that adds columns to `tasks` on SQLite calls `declareIntegers` after.
 * PostgreSQL reads both as `integer` already, so nothing changes there.
 */
export class SqliteIntegerColumns1765700000000 implements MigrationInterface {
  name = 'SqliteIntegerColumns1765700000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await declareIntegers(queryRunner, 'int', 'integer');
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await declareIntegers(queryRunner, 'integer', 'int');
  }
}

/** Rebuilds `tasks` with its `from` columns declared `to`, keeping rows, indexes and triggers. */
export async function declareIntegers(
  queryRunner: QueryRunner,
  from: 'int' | 'integer',
  to: 'int' | 'integer',
): Promise<void> {
  if (queryRunner.connection.options.type !== 'better-sqlite3') return;
  const [table] = (await queryRunner.query(
    `SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'tasks'`,
  )) as { sql: string }[];
  const dependants = (await queryRunner.query(
    `SELECT sql FROM sqlite_master
      WHERE type IN ('index', 'trigger') AND tbl_name = 'tasks' AND sql IS NOT NULL`,
  )) as { sql: string }[];
  const columns = ((await queryRunner.query(`PRAGMA table_info("tasks")`)) as { name: string }[])
    .map(({ name }) => `"${name}"`)
    .join(', ');
  const create = table.sql
    .replace(/^CREATE TABLE "tasks"/, 'CREATE TABLE "temporary_tasks"')
    .replace(new RegExp(`(" )${from}([ ,)])`, 'g'), `$1${to}$2`);
  await queryRunner.query(create);
  await queryRunner.query(
    `INSERT INTO "temporary_tasks" (${columns}) SELECT ${columns} FROM "tasks"`,
  );
  await queryRunner.query('DROP TABLE "tasks"');
  await queryRunner.query('ALTER TABLE "temporary_tasks" RENAME TO "tasks"');
  for (const { sql } of dependants) await queryRunner.query(sql);
}
