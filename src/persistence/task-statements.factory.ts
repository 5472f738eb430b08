import type { DataSource } from 'typeorm';
import { PgTaskStatements, pgPool } from './pg-task-statements';
import { betterSqliteHandle, SqliteTaskStatements } from './sqlite-task-statements';
import type { TaskStatements } from './task-statements';
import { TaskEntity } from './task.entity';

/**
 * The task statements for `dataSource`'s database, chosen once. Any other database type fails
 * the boot here, by name.
 */
export function createTaskStatements(dataSource: DataSource): TaskStatements {
  const metadata = dataSource.getMetadata(TaskEntity);
  const type = dataSource.options.type;
  if (type === 'better-sqlite3') {
    const db = betterSqliteHandle(dataSource);
    if (!db) throw new Error('task statements: the better-sqlite3 DataSource has no connection');
    return new SqliteTaskStatements(db, metadata);
  }
  if (type === 'postgres') {
    const pool = pgPool(dataSource);
    if (!pool) throw new Error('task statements: the postgres DataSource has no pool');
    return new PgTaskStatements(pool, dataSource.driver, metadata);
  }
  throw new Error(
    `task statements: database type "${type}" is not supported (use better-sqlite3 or postgres)`,
  );
}
