import { defineDriver } from '../driver-kind';
import { PostgresQueueDriver, type PostgresDriverOptions } from './postgres.driver';

const INTEGER_OPTIONS = [
  ['leaseMs', 1000],
  ['heartbeatMs', 10],
  ['maxStalls', 1],
  ['pollMs', 10],
] as const;

/** The task table on PostgreSQL (DATABASE_URL) as the queue: no broker. */
export const postgresDriver = defineDriver({
  kind: 'postgres',
  optionKeys: ['leaseMs', 'heartbeatMs', 'maxStalls', 'pollMs', 'listen'],
  envOptions: (env) => ({ leaseMs: env.leaseMs }),
  validateOptions: (options, fail) => {
    for (const [key, min] of INTEGER_OPTIONS) {
      const value = options[key];
      if (value !== undefined && (!Number.isInteger(value) || (value as number) < min)) {
        fail(key, `expected an integer of at least ${min}`);
      }
    }
    if (options.listen !== undefined && typeof options.listen !== 'boolean') {
      fail('listen', 'expected true or false');
    }
    return options;
  },
  create: (options, logger) =>
    new PostgresQueueDriver(options as Partial<PostgresDriverOptions>, logger),
  // Fails the boot by name when no PostgreSQL task table was bound (DATABASE_URL on SQLite).
  connect: (driver) => driver.connect(),
});
