import { type MigrationInterface, type QueryRunner, Table, TableIndex } from 'typeorm';

/** The task table. Written with TypeORM's schema API so it runs on SQLite and PostgreSQL alike. */
export class CreateTasks1763900000000 implements MigrationInterface {
  name = 'CreateTasks1763900000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.createTable(
      new Table({
        name: 'tasks',
        columns: [
          { name: 'id', type: 'varchar', length: '36', isPrimary: true },
          { name: 'action', type: 'varchar', length: '64' },
          { name: 'payload', type: 'text' },
          { name: 'status', type: 'varchar', length: '16' },
          { name: 'result', type: 'text', isNullable: true },
          { name: 'error', type: 'text', isNullable: true },
          { name: 'attempt', type: 'int', default: 0 },
          { name: 'max_attempts', type: 'int' },
          { name: 'priority', type: 'int', default: 0 },
          { name: 'queue', type: 'varchar', length: '64' },
          { name: 'progress', type: 'int', isNullable: true },
          { name: 'claim_token', type: 'varchar', length: '36', isNullable: true },
          { name: 'created_at', type: 'bigint' },
          { name: 'started_at', type: 'bigint', isNullable: true },
          { name: 'processed_at', type: 'bigint', isNullable: true },
          { name: 'updated_at', type: 'bigint' },
        ],
      }),
    );
    await queryRunner.createIndex(
      'tasks',
      new TableIndex({ name: 'idx_tasks_created', columnNames: ['created_at'] }),
    );
    await queryRunner.createIndex(
      'tasks',
      new TableIndex({ name: 'idx_tasks_status_created', columnNames: ['status', 'created_at'] }),
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropTable('tasks');
  }
}
