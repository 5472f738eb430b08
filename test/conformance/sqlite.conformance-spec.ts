import { SqliteTaskStatements } from '../../src/persistence/sqlite-task-statements';
import { SqliteTableQueueDriver } from '../../src/queue/drivers/sqlite/sqlite.driver';
import type { TableDriverOptions } from '../../src/queue/drivers/table-driver';
import { describeQueueDriverConformance } from '../../src/queue/testing';
import { suiteSqliteFile } from '../helpers/sqlite-file';

const suite = suiteSqliteFile('taskq-sqlite-table-conformance-');
const shortLeaseMs = 1000;

/**
 * Every driver gets a connection of its own to one migrated file, as the processes of one
 * machine would: what one commits, the others hear of through the file's change counter.
 */
const build = async (options: Partial<TableDriverOptions> = {}) => {
  const statements = new SqliteTaskStatements(suite.file.open(), suite.file.metadata);
  const driver = new SqliteTableQueueDriver({ pollMs: 100, ...options });
  driver.bindTable(statements.queueTable());
  await driver.connect();
  return driver;
};

describeQueueDriverConformance('sqlite', () => build(), {
  shortLease: {
    // The default heartbeat: only the lease may expire here, not a loaded machine's slow beat.
    factory: () => build({ leaseMs: shortLeaseMs }),
    leaseMs: shortLeaseMs,
  },
});
