import { type MigrationInterface, type QueryRunner, TableIndex } from 'typeorm';

/**
 * `GET /tasks` filtered by status and action at once. The tenant indexes of AddAuth hold the
 * whole order (created_at DESC, id DESC) for one filter or none; with both filters SQLite would
 * read one filter's rows and sift them, or, at small limits, prefer a full scan and a temporary
 * B-tree (the plans are checked in task-list-plans.integration-spec.ts).
 */
const STATUS_ACTION = new TableIndex({
  name: 'idx_tasks_tenant_status_action_created',
  columnNames: ['tenant', 'status', 'action', 'created_at', 'id'],
});

export class ListIndexes1765200000000 implements MigrationInterface {
  name = 'ListIndexes1765200000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.createIndex('tasks', STATUS_ACTION);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropIndex('tasks', STATUS_ACTION.name!);
  }
}
