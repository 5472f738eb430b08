import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteQueueDriver } from '../../src/queue/drivers/sqlite-messages/sqlite.driver';
import type { SqliteDriverOptions } from '../../src/queue/drivers/sqlite-messages/sqlite-driver.options';
import { describeQueueDriverConformance } from '../../src/queue/testing';

const dir = mkdtempSync(join(tmpdir(), 'taskq-sqlite-conformance-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Every driver of the suite shares one file, as processes of one machine would. */
const path = join(dir, 'queue.db');
const build = (options: Partial<SqliteDriverOptions> = {}) =>
  Promise.resolve(new SqliteQueueDriver({ path, ...options }));

const shortLeaseMs = 1000;

describeQueueDriverConformance('sqlite-messages', () => build(), {
  shortLease: {
    factory: () => build({ leaseMs: shortLeaseMs, heartbeatMs: 100 }),
    leaseMs: shortLeaseMs,
  },
  sharedWriterPath: path,
});
