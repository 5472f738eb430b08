import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { DataSource } from 'typeorm';
import { migrations } from '../../src/persistence/migrations';
import { PgTaskStatements, pgPool } from '../../src/persistence/pg-task-statements';
import { TaskEntity } from '../../src/persistence/task.entity';
import {
  PostgresQueueDriver,
  type PostgresDriverOptions,
} from '../../src/queue/drivers/postgres/postgres.driver';
import { describeQueueDriverConformance } from '../../src/queue/testing';
import { describeWithService, POSTGRES_SERVICE } from '../helpers/service-available';

const url = process.env.PG_TEST_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
/** A schema of its own, dropped afterwards whatever the outcome. */
const schema = `conformance_${randomBytes(4).toString('hex')}`;
const shortLeaseMs = 1000;

describeWithService(POSTGRES_SERVICE, 'postgres conformance', () => {
  let dataSource: DataSource;
  let statements: PgTaskStatements;

  beforeAll(async () => {
    const admin = new Client({ connectionString: url });
    await admin.connect();
    await admin.query(`CREATE SCHEMA ${schema}`);
    await admin.end();
    const scoped = new URL(url);
    scoped.searchParams.set('options', `-c search_path=${schema}`);
    dataSource = await new DataSource({
      type: 'postgres',
      url: scoped.toString(),
      entities: [TaskEntity],
      migrations,
      migrationsTransactionMode: 'each',
      extra: { max: 10 },
    }).initialize();
    await dataSource.runMigrations();
    statements = new PgTaskStatements(
      pgPool(dataSource)!,
      dataSource.driver,
      dataSource.getMetadata(TaskEntity),
    );
  });

  afterAll(async () => {
    await dataSource?.destroy();
    const admin = new Client({ connectionString: url });
    await admin.connect();
    await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await admin.end();
  });

  /** Every driver shares the schema's task table, as the processes of one deployment would. */
  const build = async (options: Partial<PostgresDriverOptions> = {}) => {
    const driver = new PostgresQueueDriver({ pollMs: 100, ...options });
    driver.bindTable(statements.queueTable());
    await driver.connect();
    return driver;
  };

  describeQueueDriverConformance('postgres', () => build(), {
    shortLease: {
      // The default heartbeat (a process is dead after 5 s of silence): only the lease may
      // expire here, not a loaded machine's slow beat.
      factory: () => build({ leaseMs: shortLeaseMs }),
      leaseMs: shortLeaseMs,
    },
  });
});
