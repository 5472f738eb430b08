import { Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { TypeOrmModule } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import type { AppConfig } from '../config/app.config';
import { APP_CONFIG } from '../config/config.constants';
import { QueueDriverRegistry } from '../queue';
import { buildDataSourceOptions } from './data-source.options';
import { DatabaseStartupError } from './database-file';
import { DatabaseFileGuard, DatabaseFileMonitor } from './database-file.monitor';
import { runMigrationsLocked } from './migration-lock';
import { TaskFileCheckpoint } from './task-file-checkpoint';
import { TaskStatements } from './task-statements';
import { createTaskStatements } from './task-statements.factory';

/**
 * The TypeORM connection and the task table's one owner: every read and write of `tasks` goes
 * through the TaskStatements exported here. Pending migrations run (under a cross-process lock) while the
 * DataSource initialises, which Nest finishes before any `onApplicationBootstrap` hook, so
 * consumers never start on an old schema.
 */
@Module({
  imports: [
    TypeOrmModule.forRootAsync({
      inject: [APP_CONFIG],
      useFactory: (config: AppConfig) => ({
        ...buildDataSourceOptions(config),
        migrationsRun: config.migrationsRun,
        logging: ['error', 'warn', 'migration'],
        retryAttempts: 0,
      }),
      // TypeORM's own migrationsRun takes no lock: the factory runs them instead, under one.
      dataSourceFactory: async (options) => {
        if (!options) throw new Error('database: no DataSource options');
        const dataSource = await new DataSource({ ...options, migrationsRun: false })
          .initialize()
          .catch((error: Error) => {
            if (options.type !== 'better-sqlite3') throw error;
            throw new DatabaseStartupError(`database ${options.database}: ${error.message}`, {
              cause: error,
            });
          });
        try {
          if (options.migrationsRun) await runMigrationsLocked(dataSource);
        } catch (error) {
          await dataSource.destroy().catch(() => undefined);
          throw error;
        }
        return dataSource;
      },
    }),
  ],
  providers: [
    DatabaseFileMonitor,
    TaskFileCheckpoint,
    { provide: APP_GUARD, useClass: DatabaseFileGuard },
    {
      provide: TaskStatements,
      inject: [DataSource, { token: QueueDriverRegistry, optional: true }],
      useFactory: (dataSource: DataSource, drivers?: QueueDriverRegistry) => {
        const statements = createTaskStatements(dataSource);
        // The table drivers' queue is this table: they get the port before they connect.
        const table = statements.queueTable();
        if (table) drivers?.bindQueueTable(table);
        return statements;
      },
    },
  ],
  exports: [TaskStatements, DatabaseFileMonitor],
})
export class PersistenceModule {}
