import { type MigrationInterface, type QueryRunner, TableIndex } from 'typeorm';

/**
 * Indexes that give `GET /tasks` its whole order (created_at DESC, id DESC) for every filter
 * combination. The old ones stopped at created_at, so the id tie-break needed a sort, and at
 * small limits SQLite preferred a full scan plus a temporary B-tree over them. Each new index
 * starts with the old one's columns, so every other statement that used one still can.
 */
const REPLACED = [
  {
    old: ['idx_tasks_created', ['created_at']],
    new: ['idx_tasks_created_id', ['created_at', 'id']],
  },
  {
    old: ['idx_tasks_status_created', ['status', 'created_at']],
    new: ['idx_tasks_status_created_id', ['status', 'created_at', 'id']],
  },
  {
    old: ['idx_tasks_action_created', ['action', 'created_at']],
    new: ['idx_tasks_action_created_id', ['action', 'created_at', 'id']],
  },
] as const;
/** Both filters at once (status and action) would otherwise read one filter's rows and sift. */
const STATUS_ACTION = new TableIndex({
  name: 'idx_tasks_status_action_created_id',
  columnNames: ['status', 'action', 'created_at', 'id'],
});

export class ListIndexes1765200000000 implements MigrationInterface {
  name = 'ListIndexes1765200000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    for (const { old, new: next } of REPLACED) {
      await queryRunner.createIndex(
        'tasks',
        new TableIndex({ name: next[0], columnNames: [...next[1]] }),
      );
      await queryRunner.dropIndex('tasks', old[0]);
    }
    await queryRunner.createIndex('tasks', STATUS_ACTION);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropIndex('tasks', STATUS_ACTION.name!);
    for (const { old, new: next } of REPLACED) {
      await queryRunner.createIndex(
        'tasks',
        new TableIndex({ name: old[0], columnNames: [...old[1]] }),
      );
      await queryRunner.dropIndex('tasks', next[0]);
    }
  }
}
