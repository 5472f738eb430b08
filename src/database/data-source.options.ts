import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { DataSourceOptions } from 'typeorm';
import type { AppConfig } from '../config/app.config';
import { TaskEntity } from '../tasks/task.entity';
import { migrations } from './migrations';

/**
 * The one description of the database, shared by the app, `ormconfig.ts` (TypeORM CLI) and the
 * standalone migrate command. Migrations only: `synchronize` stays off.
 */
export function buildDataSourceOptions(config: AppConfig): DataSourceOptions {
  if (config.databasePath !== ':memory:')
    mkdirSync(dirname(config.databasePath), { recursive: true });
  return {
    type: 'better-sqlite3',
    database: config.databasePath,
    entities: [TaskEntity],
    migrations,
    migrationsTransactionMode: 'each',
    synchronize: false,
    // WAL lets readers (GET /tasks) run while a writer commits; NORMAL is durable across a
    // process crash, and busy_timeout makes concurrent writers wait instead of failing.
    enableWAL: true,
    prepareDatabase: (db: { pragma(sql: string): unknown }) => {
      db.pragma('synchronous = NORMAL');
      db.pragma('busy_timeout = 5000');
    },
  };
}
