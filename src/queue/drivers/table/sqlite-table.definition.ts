import { defineDriver } from '../driver-kind';
import { tableDriverOptions } from './table.definition';
import { SqliteTableQueueDriver } from './sqlite-table.driver';
import type { TableDriverOptions } from './table.driver';

/** The task table on SQLite as the queue: the embedded default (QUEUE_DRIVER unset). */
export const sqliteTableDriver = defineDriver({
  kind: 'sqlite',
  ...tableDriverOptions,
  // On one file the listener is a cheap local check, so an idle consumer's poll can be slow.
  create: (options, logger) =>
    new SqliteTableQueueDriver(options as Partial<TableDriverOptions>, logger),
});
