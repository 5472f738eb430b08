import BetterSqlite3 from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DataSource } from 'typeorm';
import { loadAppConfig } from '../../app.config.loader';
import { PgEventBus } from './pg-event-bus';
import { RedisEventBus } from './redis-event-bus';
import { SqliteEventFeed } from './sqlite-event-feed';
import type { TaskEventBus } from './task-event-bus';
import { createTaskEventBus, databaseScope } from './task-event-bus.factory';

/** A DataSource as far as the factory looks at it: its type and better-sqlite3 connection. */
function sqliteSource(db: BetterSqlite3.Database): DataSource {
  return {
    options: { type: 'better-sqlite3' },
    driver: { databaseConnection: db },
  } as unknown as DataSource;
}
const pgSource = { options: { type: 'postgres' }, driver: {} } as unknown as DataSource;
const PG = 'postgres://taskq:secret@db.example:5432/app';

describe(createTaskEventBus.name, () => {
  let dir: string;
  let file: BetterSqlite3.Database;
  const made: TaskEventBus[] = [];

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'taskq-bus-'));
    file = new BetterSqlite3(join(dir, 'tasks.db'));
  });
  afterAll(async () => {
    // Nothing was started: closing only drops the unconnected Redis clients.
    await Promise.all(made.map((bus) => bus.close()));
    file.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const choose = (env: Record<string, string>, source: DataSource = sqliteSource(file)) => {
    const bus = createTaskEventBus(loadAppConfig(env), source);
    if (bus) made.push(bus);
    return bus;
  };

  it('auto: Redis when a queue runs on a redis driver, even with the tasks in PostgreSQL', () => {
    const bus = choose({ QUEUE_DRIVER: 'redis', DATABASE_URL: PG }, pgSource);

    expect(bus).toBeInstanceOf(RedisEventBus);
    expect((bus as RedisEventBus).channel).toBe(
      `taskq:events:${databaseScope({ databaseUrl: PG, databasePath: '' })}`,
    );
  });

  it('auto: LISTEN/NOTIFY with the tasks in PostgreSQL and no redis driver', () => {
    expect(choose({ QUEUE_DRIVER: 'amqp', DATABASE_URL: PG }, pgSource)).toBeInstanceOf(PgEventBus);
  });

  it('auto: the change feed with the tasks in a SQLite file', () => {
    expect(choose({ QUEUE_DRIVER: 'sqlite' })).toBeInstanceOf(SqliteEventFeed);
  });

  it('auto: none for a SQLite database in memory, which no other process can share', () => {
    const memory = new BetterSqlite3(':memory:');
    expect(choose({ QUEUE_DRIVER: 'memory' }, sqliteSource(memory))).toBeNull();
    memory.close();
  });

  it('local: none, whatever the deployment has', () => {
    expect(
      choose({ TASK_EVENTS_BUS: 'local', QUEUE_DRIVER: 'redis', DATABASE_URL: PG }, pgSource),
    ).toBeNull();
  });

  it('an explicit choice wins over the order, and one that cannot work stops the boot', () => {
    expect(
      choose({ TASK_EVENTS_BUS: 'postgres', QUEUE_DRIVER: 'redis', DATABASE_URL: PG }, pgSource),
    ).toBeInstanceOf(PgEventBus);
    expect(choose({ TASK_EVENTS_BUS: 'redis', QUEUE_DRIVER: 'sqlite' })).toBeInstanceOf(
      RedisEventBus,
    );
    expect(() => choose({ TASK_EVENTS_BUS: 'postgres' })).toThrow(/needs the tasks in PostgreSQL/);
    expect(() => choose({ TASK_EVENTS_BUS: 'sqlite', DATABASE_URL: PG }, pgSource)).toThrow(
      /needs the tasks in SQLite/,
    );
  });

  it('names the Redis channel after the database without its credentials', () => {
    const a = databaseScope({ databaseUrl: PG, databasePath: '' });
    const b = databaseScope({
      databaseUrl: 'postgres://other:pw@db.example:5432/app',
      databasePath: '',
    });
    const c = databaseScope({
      databaseUrl: 'postgres://taskq:secret@db.example:5432/other',
      databasePath: '',
    });
    expect(a).toBe(b);
    expect(a).not.toBe(c);
  });
});
