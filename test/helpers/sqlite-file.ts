import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataSource, type EntityMetadata } from 'typeorm';
import { migrations } from '../../src/persistence/migrations';
import { TaskEntity } from '../../src/persistence/task.entity';

export interface MigratedSqliteFile {
  /** The task table's metadata, as SqliteTaskStatements takes it. */
  metadata: EntityMetadata;
  /** A connection of its own to the file, set up as the service's (WAL, busy timeout). */
  open(): Database.Database;
  /** Closes every connection opened and the migrating DataSource. */
  close(): Promise<void>;
}

/**
 * The SQLite task file at `path`, migrated, with connections to it on demand: each stands for
 * a process of its own on the one file.
 */
export async function migratedSqliteFile(path: string): Promise<MigratedSqliteFile> {
  const dataSource = await new DataSource({
    type: 'better-sqlite3',
    database: path,
    entities: [TaskEntity],
    migrations,
    migrationsTransactionMode: 'each',
    enableWAL: true,
  }).initialize();
  await dataSource.runMigrations();
  const connections: Database.Database[] = [];
  return {
    metadata: dataSource.getMetadata(TaskEntity),
    open: () => {
      const db = new Database(path);
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      db.pragma('busy_timeout = 5000');
      connections.push(db);
      return db;
    },
    close: async () => {
      for (const db of connections.splice(0)) db.close();
      await dataSource.destroy();
    },
  };
}

/**
 * A migrated task file for the calling suite: made in a temporary folder named from `prefix`
 * before its tests (beforeAll), closed and deleted after them (afterAll), pass or fail.
 */
export function suiteSqliteFile(prefix: string): { readonly file: MigratedSqliteFile } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  let file: MigratedSqliteFile | undefined;
  beforeAll(async () => {
    file = await migratedSqliteFile(join(dir, 'tasks.db'));
  });
  afterAll(async () => {
    await file?.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return {
    get file(): MigratedSqliteFile {
      if (!file) throw new Error('the suite file is made in beforeAll: use it inside tests');
      return file;
    },
  };
}
