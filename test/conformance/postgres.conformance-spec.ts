import { PgTaskStatements, pgPool } from '../../src/persistence/pg-task-statements';
import { TaskEntity } from '../../src/persistence/task.entity';
import {
  PostgresQueueDriver,
  type PostgresDriverOptions,
} from '../../src/queue/drivers/postgres/postgres.driver';
import { describeQueueDriverConformance } from '../../src/queue/testing';
import { migratedPgSchema, type MigratedPgSchema } from '../helpers/pg-schema';
import { describeWithService, postgresServiceAt } from '../helpers/service-available';

const url = process.env.PG_TEST_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const shortLeaseMs = 1000;

describeWithService(postgresServiceAt(url), 'postgres conformance', () => {
  /** A schema of its own, dropped afterwards whatever the outcome. */
  let pgSchema: MigratedPgSchema;
  let statements: PgTaskStatements;

  beforeAll(async () => {
    pgSchema = await migratedPgSchema('conformance', url, { extra: { max: 10 } });
    const { dataSource } = pgSchema;
    statements = new PgTaskStatements(
      pgPool(dataSource)!,
      dataSource.driver,
      dataSource.getMetadata(TaskEntity),
    );
  });

  afterAll(() => pgSchema?.drop());

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
