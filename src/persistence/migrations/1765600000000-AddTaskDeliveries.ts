import { type MigrationInterface, type QueryRunner, TableColumn } from 'typeorm';

/**
 * `deliveries`: how often a worker claimed the task. A task picked up again after its worker
 * died keeps its attempt number, so without this count the API could not show the re-run.
 * Rows stored before the column existed start from their attempt (each attempt was a claim).
 */
export class AddTaskDeliveries1765600000000 implements MigrationInterface {
  name = 'AddTaskDeliveries1765600000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.addColumn(
      'tasks',
      new TableColumn({ name: 'deliveries', type: 'integer', default: 0 }),
    );
    await queryRunner.query('UPDATE tasks SET deliveries = attempt');
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropColumn('tasks', 'deliveries');
  }
}
