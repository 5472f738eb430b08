import { defineDriver } from '../driver-kind';
import { resolveSqliteDriverOptions } from './sqlite-driver.options';
import { SqliteQueueDriver } from './sqlite.driver';

export const sqliteDriver = defineDriver({
  kind: 'sqlite',
  optionKeys: [
    'path',
    'synchronous',
    'shards',
    'leaseMs',
    'heartbeatMs',
    'maxStalls',
    'pollMinMs',
    'pollMaxMs',
  ],
  envOptions: (env) => ({ ...env.sqlite, leaseMs: env.leaseMs }),
  validateOptions: (options, fail) => {
    try {
      return { ...resolveSqliteDriverOptions(options) };
    } catch (error) {
      // `fail` names the option itself, so the resolver's own prefix is dropped.
      const message = (error as Error).message.replace(/^sqlite queue driver: option (\w+) /, '');
      const key = /option (\w+)/.exec((error as Error).message)?.[1] ?? 'path';
      return fail(key, message);
    }
  },
  create: (options, logger) => new SqliteQueueDriver(resolveSqliteDriverOptions(options), logger),
});
