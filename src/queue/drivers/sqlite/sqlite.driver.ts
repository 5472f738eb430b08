import { TableQueueDriver } from '../table-driver';

/**
 * The task table on SQLite (DATABASE_PATH) as the queue, the embedded default: a task is one row
 * written once, claimed, settled and retried in place (SqliteQueueTable). Other processes on the
 * same file are heard through the file's change counter.
 */
export class SqliteTableQueueDriver extends TableQueueDriver {
  readonly kind = 'sqlite';
  protected readonly dialect = 'sqlite';
  protected readonly unbound =
    'the sqlite queue driver keeps its queues in the task table: it needs the SQLite task store (DATABASE_PATH, no DATABASE_URL); with tasks in PostgreSQL use the postgres driver (its task table is the queue), or redis or amqp';
}
