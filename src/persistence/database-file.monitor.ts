import { statSync, statfsSync } from 'node:fs';
import { dirname } from 'node:path';
import {
  type CanActivate,
  type ExecutionContext,
  Injectable,
  Logger,
  type OnModuleDestroy,
} from '@nestjs/common';
import Database from 'better-sqlite3';
import { DataSource } from 'typeorm';
import { RepeatLog } from '../common/repeat-log';
import { DatabaseUnavailableError } from '../common/storage-errors';
import type { AppConfig } from '../config/app.config';
import { InjectAppConfig } from '../config/inject-app-config.decorator';
import { type FileIdentity, fileIdentity, fileReplaced } from './database-file';
import { betterSqliteHandle } from './sqlite-task-statements';

/** How often the file's identity and the free space beside it are looked at. */
export const DATABASE_FILE_CHECK_MS = 1000;

/**
 * Free space below which the WAL is checkpointed with TRUNCATE on every check. A PASSIVE
 * checkpoint copies pages back but leaves the log file at its largest size, and on a nearly full
 * disk that size is the space new writes need; TRUNCATE gives it back to the file system. See
 * the README (Running it in production) for the headroom measured under load.
 */
export const LOW_SPACE_BYTES = 128 * 1024 * 1024;

/**
 * WAL pages after which the service's own connection checkpoints while space is low. SQLite's
 * default, 1000 pages (4 MiB), lets the log alone fill a nearly full disk before any checkpoint
 * copies it back; a full log then cannot be checkpointed, because the database file has no room
 * to grow into, and writes stay refused even after some space is freed.
 */
export const LOW_SPACE_AUTOCHECKPOINT_PAGES = 64;

/**
 * Watches the SQLite file under the running service (nothing for PostgreSQL or `:memory:`):
 *
 * - the path must keep naming the file the process opened (device and inode): once the file is
 *   deleted or replaced, every write would go to a file no one will open again, so `problem`
 *   says so from then on (health reports it, write requests answer 503);
 * - when the disk is nearly full, the WAL is checkpointed with TRUNCATE, so the space the log
 *   holds comes back and writes resume as soon as the operator frees some.
 */
@Injectable()
export class DatabaseFileMonitor implements OnModuleDestroy {
  private readonly logger = new Logger('DatabaseFile');
  private readonly repeats = new RepeatLog((line) => this.logger.warn(line), 60_000);
  private readonly path?: string;
  private readonly opened?: FileIdentity;
  private replaced?: string;
  private readonly timer?: NodeJS.Timeout;
  /** The service's own connection, and its autocheckpoint while space is not short. */
  private readonly db?: Database.Database;
  private autocheckpoint = 1000;
  private lowSpace = false;

  constructor(dataSource: DataSource, @InjectAppConfig() config: AppConfig) {
    if (dataSource.options.type !== 'better-sqlite3' || config.databasePath === ':memory:') return;
    this.path = config.databasePath;
    // The DataSource (a dependency, so constructed first) has the file open: this is its file.
    this.opened = fileIdentity(this.path);
    this.db = betterSqliteHandle(dataSource);
    this.autocheckpoint = Number(this.db?.pragma('wal_autocheckpoint', { simple: true }) ?? 1000);
    this.timer = setInterval(() => this.tick(), DATABASE_FILE_CHECK_MS);
    this.timer.unref();
    this.tick();
  }

  /** Why the database file cannot be used, checked now; undefined while all is well. */
  problem(): string | undefined {
    if (this.replaced || !this.path || !this.opened) return this.replaced;
    this.replaced = fileReplaced(this.path, this.opened);
    if (this.replaced) this.logger.error(this.replaced);
    return this.replaced;
  }

  /** The last check's verdict, without touching the file system (for every write request). */
  get lastProblem(): string | undefined {
    return this.replaced;
  }

  onModuleDestroy(): void {
    clearInterval(this.timer);
    this.repeats.close();
  }

  private tick(): void {
    if (this.problem() || !this.path) return;
    try {
      const { bavail, bsize } = statfsSync(dirname(this.path));
      const free = bavail * bsize;
      this.setLowSpace(free < LOW_SPACE_BYTES);
      if (this.lowSpace) this.truncateWal(free);
    } catch (error) {
      this.repeats.report(
        'statfs',
        `free space of ${dirname(this.path)} unknown: ${String(error)}`,
      );
    }
  }

  /**
   * The service connection's autocheckpoint while space is not short (TaskFileCheckpoint raises
   * it when a thread checkpoints): applied now unless space is short, else once it is back.
   */
  useAutocheckpoint(pages: number): void {
    this.autocheckpoint = pages;
    if (!this.lowSpace) this.db?.pragma(`wal_autocheckpoint = ${pages}`);
  }

  /** While space is short, the service's connection checkpoints every few pages it writes. */
  private setLowSpace(low: boolean): void {
    if (low === this.lowSpace) return;
    this.lowSpace = low;
    try {
      this.db?.pragma(
        `wal_autocheckpoint = ${low ? LOW_SPACE_AUTOCHECKPOINT_PAGES : this.autocheckpoint}`,
      );
    } catch {
      // The connection is closing (shutdown): nothing left to tune.
    }
  }

  /**
   * TRUNCATE waits for readers on the current snapshot and for the writer, so it runs on a
   * connection of its own with a short busy timeout: if the file is busy now, the next tick
   * tries again, and the event loop is never held for long.
   */
  private truncateWal(free: number): void {
    const wal = `${this.path}-wal`;
    const before = sizeOf(wal);
    if (before === 0) return;
    let db: Database.Database | undefined;
    try {
      db = new Database(this.path, { fileMustExist: true });
      db.pragma('busy_timeout = 100');
      db.pragma('wal_checkpoint(TRUNCATE)');
      const mib = (bytes: number) => (bytes / 1048576).toFixed(1);
      this.repeats.report(
        'low space',
        `low disk space (${mib(free)} MiB free beside ${this.path}): WAL checkpointed with TRUNCATE, ${mib(before)} MiB -> ${mib(sizeOf(wal))} MiB`,
      );
    } catch (error) {
      // Busy, or the disk is too full for the pages the checkpoint copies: the next tick retries.
      this.repeats.report(
        'checkpoint',
        `WAL checkpoint (TRUNCATE) failed: ${(error as Error).message}`,
      );
    } finally {
      db?.close();
    }
  }
}

function sizeOf(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

const READS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * Write requests answer 503 (through the storage errors filter) once the database file has gone
 * from under the service, instead of 202 for a task stored in a file no one will open again.
 */
@Injectable()
export class DatabaseFileGuard implements CanActivate {
  constructor(private readonly monitor: DatabaseFileMonitor) {}

  canActivate(context: ExecutionContext): boolean {
    if (context.getType() !== 'http') return true;
    const { method } = context.switchToHttp().getRequest<{ method: string }>();
    const problem = READS.has(method) ? undefined : this.monitor.lastProblem;
    if (problem) throw new DatabaseUnavailableError(problem);
    return true;
  }
}
