import { defineDriver } from '../driver-kind';
import { tableDriverOptions } from '../table-driver.definition';
import { PostgresQueueDriver, type PostgresDriverOptions } from './postgres.driver';

/** The task table on PostgreSQL (DATABASE_URL) as the queue: no broker. */
export const postgresDriver = defineDriver({
  kind: 'postgres',
  ...tableDriverOptions,
  create: (options, logger) =>
    new PostgresQueueDriver(options as Partial<PostgresDriverOptions>, logger),
});
