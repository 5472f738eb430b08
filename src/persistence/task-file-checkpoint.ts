import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { BACKSTOP_AUTOCHECKPOINT_PAGES, WalCheckpointer } from '../common/wal-checkpointer';
import type { AppConfig } from '../config/app.config';
import { APP_CONFIG } from '../config/config.constants';
import { DatabaseFileMonitor } from './database-file.monitor';
import { betterSqliteHandle, SqliteTaskStatements } from './sqlite-task-statements';
import { TaskStatements } from './task-statements';

/**
 * Checkpoints the SQLite task file from a thread of its own (see WalCheckpointer), where the
 * task statements write on TypeORM's connection: with the task table as the queue every claim
 * and outcome is a commit there, and SQLite's own autocheckpoint would stall the event loop
 * with an fsync every thousand pages.
 */
@Injectable()
export class TaskFileCheckpoint implements OnApplicationShutdown {
  private readonly checkpointer?: WalCheckpointer;

  constructor(
    dataSource: DataSource,
    statements: TaskStatements,
    @Inject(APP_CONFIG) config: AppConfig,
    monitor: DatabaseFileMonitor,
  ) {
    const db = betterSqliteHandle(dataSource);
    if (!db || db.memory || !(statements instanceof SqliteTaskStatements)) return;
    // Through the file monitor: while space is short its own, smaller setting stands.
    monitor.useAutocheckpoint(BACKSTOP_AUTOCHECKPOINT_PAGES);
    this.checkpointer = new WalCheckpointer(db.name, config.queue.sqlite.synchronous);
  }

  async onApplicationShutdown(): Promise<void> {
    await this.checkpointer?.close();
  }
}
