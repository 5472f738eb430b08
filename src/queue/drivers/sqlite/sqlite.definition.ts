import { defineDriver } from '../driver-kind';
import { tableDriverOptions } from '../table-driver.definition';
import type { TableDriverOptions } from '../table-driver';
import { SqliteTableQueueDriver } from './sqlite.driver';

/** The task table on SQLite as the queue: the embedded default (QUEUE_DRIVER unset). */
export const sqliteDriver = defineDriver({
  kind: 'sqlite',
  ...tableDriverOptions,
  create: (options, logger) =>
    new SqliteTableQueueDriver(options as Partial<TableDriverOptions>, logger),
});
