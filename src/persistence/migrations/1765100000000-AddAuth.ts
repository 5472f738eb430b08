import { type MigrationInterface, type QueryRunner, Table, TableColumn, TableIndex } from 'typeorm';

/**
 * Authentication and tenants (src/auth): the api_keys table (hashes only), and on tasks the
 * tenant and the key that created each one. Idempotency keys become unique per tenant, and the
 * list indexes lead with the tenant, since every list is of one tenant.
 */
export class AddAuth1765100000000 implements MigrationInterface {
  name = 'AddAuth1765100000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.createTable(
      new Table({
        name: 'api_keys',
        columns: [
          { name: 'name', type: 'varchar', length: '64', isPrimary: true },
          { name: 'key_hash', type: 'varchar', length: '64', isUnique: true },
          { name: 'tenant', type: 'varchar', length: '64' },
          { name: 'scopes', type: 'varchar', length: '255' },
          { name: 'actions', type: 'text' },
          { name: 'created_at', type: 'bigint' },
          { name: 'revoked_at', type: 'bigint', isNullable: true },
        ],
      }),
    );
    await queryRunner.addColumns('tasks', [
      // Rows older than tenants belong to the default one (open mode's).
      new TableColumn({ name: 'tenant', type: 'varchar', length: '64', default: "'default'" }),
      // Long enough for `schedule:<name>` (names are up to 128 characters).
      new TableColumn({ name: 'actor_key', type: 'varchar', length: '160', isNullable: true }),
    ]);
    await queryRunner.dropIndex('tasks', 'uq_tasks_idempotency_key');
    await queryRunner.dropIndex('tasks', 'idx_tasks_created');
    await queryRunner.dropIndex('tasks', 'idx_tasks_action_created');
    for (const [name, columnNames, isUnique] of [
      ['uq_tasks_tenant_idempotency_key', ['tenant', 'idempotency_key'], true],
      ['idx_tasks_tenant_created', ['tenant', 'created_at', 'id'], false],
      ['idx_tasks_tenant_status_created', ['tenant', 'status', 'created_at', 'id'], false],
      ['idx_tasks_tenant_action_created', ['tenant', 'action', 'created_at', 'id'], false],
    ] as const) {
      await queryRunner.createIndex(
        'tasks',
        new TableIndex({ name, columnNames: [...columnNames], isUnique }),
      );
    }
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    for (const name of [
      'idx_tasks_tenant_action_created',
      'idx_tasks_tenant_status_created',
      'idx_tasks_tenant_created',
      'uq_tasks_tenant_idempotency_key',
    ]) {
      await queryRunner.dropIndex('tasks', name);
    }
    await queryRunner.dropColumn('tasks', 'actor_key');
    await queryRunner.dropColumn('tasks', 'tenant');
    await queryRunner.createIndex(
      'tasks',
      new TableIndex({ name: 'idx_tasks_action_created', columnNames: ['action', 'created_at'] }),
    );
    await queryRunner.createIndex(
      'tasks',
      new TableIndex({ name: 'idx_tasks_created', columnNames: ['created_at'] }),
    );
    await queryRunner.createIndex(
      'tasks',
      new TableIndex({
        name: 'uq_tasks_idempotency_key',
        columnNames: ['idempotency_key'],
        isUnique: true,
      }),
    );
    await queryRunner.dropTable('api_keys');
  }
}
