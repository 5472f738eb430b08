import { defineDriver } from '../driver-kind';
import { resolveSqliteDriverOptions } from './sqlite-driver.options';
import { SqliteQueueDriver } from './sqlite.driver';

/** A message table in a SQLite file of its own (or the task file), beside any task store. */
export const sqliteMessagesDriver = defineDriver({
  kind: 'sqlite-messages',
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
  create: (options, logger) => {
    const resolved = resolveSqliteDriverOptions(options);
    try {
      return new SqliteQueueDriver(resolved, logger);
    } catch (error) {
      // SQLite's message alone ("unable to open database file") names no file; say which and why.
      throw new Error(
        `sqlite queue driver: file ${resolved.path} (its path option: a topology entry's, else QUEUE_SQLITE_PATH, else DATABASE_PATH): ${(error as Error).message}`,
        { cause: error },
      );
    }
  },
});
