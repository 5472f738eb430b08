import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { migrations } from '../../src/persistence/migrations';
import { SqliteTaskStatements } from '../../src/persistence/sqlite-task-statements';
import { TaskEntity } from '../../src/persistence/task.entity';
import { SqliteTableQueueDriver } from '../../src/queue/drivers/sqlite/sqlite.driver';
import type { TableDriverOptions } from '../../src/queue/drivers/table-driver';
import { describeQueueDriverConformance } from '../../src/queue/testing';

const dir = mkdtempSync(join(tmpdir(), 'taskq-sqlite-table-conformance-'));
const path = join(dir, 'tasks.db');
const shortLeaseMs = 1000;
let dataSource: DataSource;
const connections: Database.Database[] = [];

beforeAll(async () => {
  dataSource = await new DataSource({
    type: 'better-sqlite3',
    database: path,
    entities: [TaskEntity],
    migrations,
    migrationsTransactionMode: 'each',
    enableWAL: true,
  }).initialize();
  await dataSource.runMigrations();
});

afterAll(async () => {
  for (const db of connections) db.close();
  await dataSource?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

/**
 * Every driver gets a connection of its own to one migrated file, as the processes of one
 * machine would: what one commits, the others hear of through the file's change counter.
 */
const build = async (options: Partial<TableDriverOptions> = {}) => {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('busy_timeout = 5000');
  connections.push(db);
  const statements = new SqliteTaskStatements(db, dataSource.getMetadata(TaskEntity));
  const driver = new SqliteTableQueueDriver({ pollMs: 100, ...options });
  driver.bindTable(statements.queueTable()!);
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
