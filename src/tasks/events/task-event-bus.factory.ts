import { createHash } from 'node:crypto';
import type { DataSource } from 'typeorm';
import type { AppConfig } from '../../config/app.config';
import type { QueueTopology } from '../../queue';
import { betterSqliteHandle } from '../../persistence/sqlite-task-statements';
import { PgEventBus } from './pg-event-bus';
import { RedisEventBus } from './redis-event-bus';
import { SqliteEventFeed } from './sqlite-event-feed';
import type { TaskEventBus } from './task-event-bus';

/** The config a process boots with; the topology is there when booted through AppModule. */
export type EventBusConfig = AppConfig & { queue: { topology?: QueueTopology } };

/**
 * The bus that carries task events to the other processes (TASK_EVENTS_BUS), or null when events
 * stay in this process (`local`, or a SQLite database in memory, which no other process can open).
 * `auto`: Redis pub/sub when a queue runs on a redis driver (the broker is already shared and
 * fans out without touching the database); otherwise LISTEN/NOTIFY when the tasks are in
 * PostgreSQL; otherwise the change feed in the SQLite file.
 */
export function createTaskEventBus(
  config: EventBusConfig,
  dataSource: DataSource,
): TaskEventBus | null {
  const choice = config.events.bus;
  if (choice === 'local') return null;
  const redisDriver = config.queue.topology?.drivers.find((d) => d.kind === 'redis');
  if (choice === 'redis' || (choice === 'auto' && redisDriver)) {
    const options = redisDriver?.options ?? {};
    const url = typeof options.url === 'string' ? options.url : config.queue.redis.url;
    const prefix = typeof options.keyPrefix === 'string' ? options.keyPrefix : 'taskq';
    return new RedisEventBus(url, prefix, databaseScope(config));
  }
  if (choice === 'postgres' || (choice === 'auto' && config.databaseUrl)) {
    if (!config.databaseUrl) {
      throw new Error('TASK_EVENTS_BUS=postgres needs the tasks in PostgreSQL (DATABASE_URL)');
    }
    return new PgEventBus(config.databaseUrl);
  }
  const db = betterSqliteHandle(dataSource);
  if (!db) {
    throw new Error('TASK_EVENTS_BUS=sqlite needs the tasks in SQLite (DATABASE_URL unset)');
  }
  if (db.memory) return null;
  return new SqliteEventFeed(db, config.events.pollMs);
}

/**
 * A short name of the task database (its URL without credentials, or its file), so deployments
 * sharing a Redis server but not a task database stay apart. Processes of one deployment must
 * therefore name their database alike.
 */
export function databaseScope(config: Pick<AppConfig, 'databaseUrl' | 'databasePath'>): string {
  let name = config.databasePath;
  if (config.databaseUrl) {
    const url = new URL(config.databaseUrl);
    url.username = '';
    url.password = '';
    name = url.toString();
  }
  return createHash('sha256').update(name).digest('hex').slice(0, 12);
}
