import type { MigrationInterface, QueryRunner } from 'typeorm';

const COLUMNS =
  '"id", "action", "payload", "status", "result", "error", "attempt", "max_attempts", "priority", "queue", "progress", "claim_token", "created_at", "started_at", "processed_at", "updated_at", "run_at", "timeout_ms", "idempotency_key", "request_hash", "progress_message", "callback_url", "callback_status", "callback_attempts", "callback_error", "callback_next_at"';

/** The tasks table as the entity declares it on SQLite, with `{int}` for its integer columns. */
const createTasks = (name: string, int: 'integer' | 'int'): string =>
  `CREATE TABLE "${name}" ("id" varchar(36) PRIMARY KEY NOT NULL, "action" varchar(64) NOT NULL, "payload" text NOT NULL, "status" varchar(16) NOT NULL, "result" text, "error" text, "attempt" ${int} NOT NULL DEFAULT (0), "max_attempts" ${int} NOT NULL, "priority" ${int} NOT NULL DEFAULT (0), "queue" varchar(64) NOT NULL, "progress" ${int}, "claim_token" varchar(36), "created_at" bigint NOT NULL, "started_at" bigint, "processed_at" bigint, "updated_at" bigint NOT NULL, "run_at" bigint, "timeout_ms" ${int}, "idempotency_key" varchar(255), "request_hash" varchar(64), "progress_message" varchar(500), "callback_url" varchar(2048), "callback_status" varchar(16), "callback_attempts" ${int} NOT NULL DEFAULT (0), "callback_error" text, "callback_next_at" bigint)`;

const INDEXES = [
  'CREATE INDEX "idx_tasks_created" ON "tasks" ("created_at")',
  'CREATE INDEX "idx_tasks_status_created" ON "tasks" ("status", "created_at")',
  'CREATE INDEX "idx_tasks_action_created" ON "tasks" ("action", "created_at")',
  'CREATE UNIQUE INDEX "uq_tasks_idempotency_key" ON "tasks" ("idempotency_key")',
  'CREATE INDEX "idx_tasks_callback_due" ON "tasks" ("callback_status", "callback_next_at")',
];

/**
 * SQLite only: the earlier migrations declared the integer columns of `tasks` as `int`, which
 * TypeORM reads back as a type other than the entity's (`integer`), so `migration:generate` on
 * an up-to-date database produced a migration rebuilding the table. Same affinity (INTEGER),
 * same data: the table is rebuilt once with `integer` (SQLite cannot change a column's declared
 * type in place), every row copied, the indexes recreated. PostgreSQL reads both as `integer`
 * already, so nothing changes there.
 */
export class SqliteIntegerColumns1764700000000 implements MigrationInterface {
  name = 'SqliteIntegerColumns1764700000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await rebuild(queryRunner, 'integer');
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await rebuild(queryRunner, 'int');
  }
}

async function rebuild(queryRunner: QueryRunner, int: 'integer' | 'int'): Promise<void> {
  if (queryRunner.connection.options.type !== 'better-sqlite3') return;
  await queryRunner.query(createTasks('temporary_tasks', int));
  await queryRunner.query(
    `INSERT INTO "temporary_tasks" (${COLUMNS}) SELECT ${COLUMNS} FROM "tasks"`,
  );
  await queryRunner.query('DROP TABLE "tasks"');
  await queryRunner.query('ALTER TABLE "temporary_tasks" RENAME TO "tasks"');
  for (const index of INDEXES) await queryRunner.query(index);
}
