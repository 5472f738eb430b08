import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * `task_events`: the change feed that carries task events between processes sharing one SQLite
 * file (src/tasks/events/sqlite-event-feed.ts). AUTOINCREMENT because readers remember the last
 * `seq` they read: a plain rowid could be handed out again once pruning empties the table.
 * PostgreSQL deployments use LISTEN/NOTIFY or Redis instead, so the table exists on SQLite only.
 */
export class CreateTaskEvents1765350000000 implements MigrationInterface {
  name = 'CreateTaskEvents1765350000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    if (queryRunner.connection.options.type !== 'better-sqlite3') return;
    await queryRunner.query(
      `CREATE TABLE "task_events" ("seq" integer PRIMARY KEY AUTOINCREMENT NOT NULL,
        "at" bigint NOT NULL, "message" text NOT NULL)`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    if (queryRunner.connection.options.type !== 'better-sqlite3') return;
    await queryRunner.query(`DROP TABLE "task_events"`);
  }
}
