import { type MigrationInterface, type QueryRunner, TableColumn, TableIndex } from 'typeorm';

/** Columns for the task control API: delays, timeouts, idempotency, progress text, callbacks. */
export class AddTaskControl1763910000000 implements MigrationInterface {
  name = 'AddTaskControl1763910000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.addColumns('tasks', [
      new TableColumn({ name: 'run_at', type: 'bigint', isNullable: true }),
      new TableColumn({ name: 'timeout_ms', type: 'int', isNullable: true }),
      new TableColumn({
        name: 'idempotency_key',
        type: 'varchar',
        length: '255',
        isNullable: true,
      }),
      new TableColumn({ name: 'request_hash', type: 'varchar', length: '64', isNullable: true }),
      new TableColumn({
        name: 'progress_message',
        type: 'varchar',
        length: '500',
        isNullable: true,
      }),
      new TableColumn({ name: 'callback_url', type: 'varchar', length: '2048', isNullable: true }),
      new TableColumn({ name: 'callback_status', type: 'varchar', length: '16', isNullable: true }),
      new TableColumn({ name: 'callback_attempts', type: 'int', default: 0 }),
      new TableColumn({ name: 'callback_error', type: 'text', isNullable: true }),
      new TableColumn({ name: 'callback_next_at', type: 'bigint', isNullable: true }),
    ]);
    await queryRunner.createIndex(
      'tasks',
      new TableIndex({
        name: 'uq_tasks_idempotency_key',
        columnNames: ['idempotency_key'],
        isUnique: true,
      }),
    );
    await queryRunner.createIndex(
      'tasks',
      new TableIndex({ name: 'idx_tasks_action_created', columnNames: ['action', 'created_at'] }),
    );
    await queryRunner.createIndex(
      'tasks',
      new TableIndex({
        name: 'idx_tasks_callback_due',
        columnNames: ['callback_status', 'callback_next_at'],
      }),
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropIndex('tasks', 'idx_tasks_callback_due');
    await queryRunner.dropIndex('tasks', 'idx_tasks_action_created');
    await queryRunner.dropIndex('tasks', 'uq_tasks_idempotency_key');
    for (const column of [
      'callback_next_at',
      'callback_error',
      'callback_attempts',
      'callback_status',
      'callback_url',
      'progress_message',
      'request_hash',
      'idempotency_key',
      'timeout_ms',
      'run_at',
    ]) {
      await queryRunner.dropColumn('tasks', column);
    }
  }
}
