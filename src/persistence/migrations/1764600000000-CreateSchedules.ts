import { type MigrationInterface, type QueryRunner, Table, TableIndex } from 'typeorm';

/**
 * The schedules table (see src/schedules). Times are epoch milliseconds in bigint columns and
 * flags are ints, as in `tasks`, so the same statements run on SQLite and PostgreSQL.
 */
export class CreateSchedules1764600000000 implements MigrationInterface {
  name = 'CreateSchedules1764600000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.createTable(
      new Table({
        name: 'schedules',
        columns: [
          { name: 'name', type: 'varchar', length: '128', isPrimary: true },
          { name: 'action', type: 'varchar', length: '64' },
          { name: 'payload', type: 'text' },
          { name: 'cron', type: 'varchar', length: '255', isNullable: true },
          { name: 'every_ms', type: 'bigint', isNullable: true },
          { name: 'timezone', type: 'varchar', length: '64' },
          { name: 'missed', type: 'varchar', length: '8' },
          { name: 'overlap', type: 'int', default: 1 },
          { name: 'priority', type: 'int', isNullable: true },
          { name: 'max_attempts', type: 'int', isNullable: true },
          { name: 'timeout_ms', type: 'int', isNullable: true },
          { name: 'callback_url', type: 'varchar', length: '2048', isNullable: true },
          { name: 'start_at', type: 'bigint', isNullable: true },
          { name: 'end_at', type: 'bigint', isNullable: true },
          { name: 'run_limit', type: 'int', isNullable: true },
          { name: 'source', type: 'varchar', length: '8' },
          { name: 'definition_hash', type: 'varchar', length: '64' },
          { name: 'state', type: 'varchar', length: '16' },
          { name: 'next_run_at', type: 'bigint', isNullable: true },
          { name: 'run_count', type: 'int', default: 0 },
          { name: 'missed_count', type: 'bigint', default: 0 },
          { name: 'overlap_skipped', type: 'int', default: 0 },
          { name: 'last_run_at', type: 'bigint', isNullable: true },
          { name: 'last_task_id', type: 'varchar', length: '36', isNullable: true },
          { name: 'claim_token', type: 'varchar', length: '36', isNullable: true },
          { name: 'claimed_until', type: 'bigint', isNullable: true },
          { name: 'created_at', type: 'bigint' },
          { name: 'updated_at', type: 'bigint' },
        ],
      }),
    );
    // The scheduler reads only the head of this index: its cost per wake-up does not grow with
    // the number of schedules.
    await queryRunner.createIndex(
      'schedules',
      new TableIndex({ name: 'idx_schedules_next_run', columnNames: ['next_run_at'] }),
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropTable('schedules');
  }
}
