import { TableQueueDriver } from '../table-driver';

export type { TableDriverOptions as PostgresDriverOptions } from '../table-driver';

/**
 * The task table on PostgreSQL (DATABASE_URL) as the queue: claims with SKIP LOCKED, wake-ups by
 * LISTEN/NOTIFY (PgQueueTable), so several machines share work with no broker.
 */
export class PostgresQueueDriver extends TableQueueDriver {
  readonly kind = 'postgres';
  protected readonly dialect = 'postgres';
  protected readonly unbound =
    'the postgres queue driver keeps its queues in the task table: set DATABASE_URL to a PostgreSQL database';
}
