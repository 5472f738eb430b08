import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { DataSourceOptions } from 'typeorm';
import type { AppConfig } from '../config/app.config';
import { redactUrl } from '../config/app.config';
import { ApiKeyEntity } from '../auth/api-key.entity';
import { TaskEntity } from './task.entity';
import { migrations } from './migrations';

/** Longest wait for a PostgreSQL connection (a new one, or a free one from the pool). */
export const PG_CONNECT_TIMEOUT_MS = 5000;

/**
 * The one description of the database, shared by the app, `ormconfig.ts` (TypeORM CLI) and the
 * standalone migrate command. Migrations only: `synchronize` stays off. `DATABASE_URL` selects
 * PostgreSQL; otherwise SQLite at `DATABASE_PATH`. The same migrations run on both.
 */
export function buildDataSourceOptions(config: AppConfig): DataSourceOptions {
  const common = {
    entities: [TaskEntity, ApiKeyEntity],
    migrations,
    migrationsTransactionMode: 'each' as const,
    synchronize: false,
  };
  if (config.databaseUrl) {
    // A `?options=-c search_path=...` in the URL reaches the server: tables follow it.
    return {
      ...common,
      type: 'postgres',
      url: config.databaseUrl,
      // A server that stops answering (network gone, not refused) fails a request within the
      // bound, as a 503, instead of holding it until TCP gives up minutes later.
      extra: { max: 10, connectionTimeoutMillis: PG_CONNECT_TIMEOUT_MS },
    };
  }
  if (config.databasePath !== ':memory:')
    mkdirSync(dirname(config.databasePath), { recursive: true });
  return {
    ...common,
    type: 'better-sqlite3',
    database: config.databasePath,
    // WAL lets readers (GET /tasks) run while a writer commits; NORMAL is durable across a
    // process crash (FULL also across power loss), and busy_timeout makes concurrent writers
    // wait instead of failing.
    enableWAL: true,
    prepareDatabase: (db: { pragma(sql: string): unknown }) => {
      db.pragma(`synchronous = ${config.queue.sqlite.synchronous}`);
      db.pragma('busy_timeout = 5000');
      // 32 MiB of pages (SQLite's default is 2 MiB): the upper levels of every index of a large
      // task table stay in memory, so a claim or an outcome on a long backlog reads few pages.
      db.pragma('cache_size = -32768');
      // Statement journals (every multi-row UPDATE, a claim for one, keeps one) in memory rather
      // than in temporary files. With a trigger on `tasks` they made each insert 5x dearer.
      db.pragma('temp_store = MEMORY');
    },
  };
}

/** Where the tasks live, for messages: the SQLite file or the PostgreSQL URL without credentials. */
export function describeDatabase(config: AppConfig): string {
  return config.databaseUrl ? redactUrl(config.databaseUrl) : config.databasePath;
}
