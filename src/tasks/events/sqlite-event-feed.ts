import { Logger } from '@nestjs/common';
import type { Database, Statement } from 'better-sqlite3';
import { TaskEventBus } from './task-event-bus';

interface Statements {
  insert: Statement;
  after: Statement;
  prune: Statement;
}

/** Rows older than this are pruned; a process that falls further behind misses them. */
export const FEED_RETENTION_MS = 60_000;
/** Rows read per query; a poll reads on until it is caught up. */
const PAGE = 500;
/** How often a process deletes rows older than the retention it has read. */
const PRUNE_EVERY_MS = 5_000;

/**
 * The event bus of processes that share one SQLite file: each message is a row of `task_events`,
 * and every process reads the rows after the last `seq` it has seen every `pollMs`. A poll is a
 * primary-key range read that returns only the new rows, so its cost does not grow with the task
 * table or the backlog; rows are pruned once older than FEED_RETENTION_MS.
 *
 * Runs on the task file's TypeORM connection: writes wait while a TypeORM transaction is open on
 * it (migrations), as the task statements do.
 */
export class SqliteEventFeed extends TaskEventBus {
  readonly kind = 'sqlite';
  private readonly logger = new Logger(SqliteEventFeed.name);
  private statements?: Statements;
  private last = 0;
  /** (seq, at) of read pages, oldest first: what may be pruned once old enough. */
  private readonly seen: { seq: number; at: number }[] = [];
  private timer?: NodeJS.Timeout;
  private lastPrune = 0;
  private onMessage?: (message: string) => void;
  private missingTableLogged = false;

  constructor(
    private readonly db: Database,
    private readonly pollMs: number,
    private readonly now: () => number = Date.now,
  ) {
    super();
  }

  start(onMessage: (message: string) => void): Promise<void> {
    this.onMessage = onMessage;
    this.prepare();
    this.timer = setInterval(() => this.poll(), this.pollMs).unref();
    return Promise.resolve();
  }

  /**
   * Prepares the statements once `task_events` exists. A process started with
   * MIGRATIONS_RUN=false may come up before another one has migrated: it then shares no events
   * until the table appears, and says so once.
   */
  private prepare(): Statements | undefined {
    if (this.statements) return this.statements;
    const db = this.db;
    try {
      const statements = {
        insert: db.prepare('INSERT INTO task_events (at, message) VALUES (?, ?)'),
        after: db.prepare(
          'SELECT seq, at, message FROM task_events WHERE seq > ? ORDER BY seq LIMIT ?',
        ),
        prune: db.prepare('DELETE FROM task_events WHERE seq <= ?'),
      };
      // Events are not replayed: a process starts after the newest row. Rows written before it
      // started are pruned by it too, once they are old enough.
      const { seq } = db.prepare('SELECT COALESCE(MAX(seq), 0) AS seq FROM task_events').get() as {
        seq: number;
      };
      this.last = seq;
      this.seen.push({ seq, at: this.now() });
      this.statements = statements;
      return statements;
    } catch (error) {
      if (!/no such table/.test((error as Error).message)) throw error;
      if (!this.missingTableLogged) {
        this.missingTableLogged = true;
        this.logger.warn('table task_events is missing (migrations pending?): events stay local');
      }
      return undefined;
    }
  }

  publish(message: string): Promise<void> {
    const statements = this.db.open ? this.prepare() : undefined;
    if (!statements) return Promise.resolve();
    if (this.db.inTransaction) {
      // A TypeORM transaction holds the connection across awaits: joining it could roll back.
      return new Promise((resolve) => setTimeout(resolve, 5)).then(() => this.publish(message));
    }
    statements.insert.run(this.now(), message);
    return Promise.resolve();
  }

  /** Reads every row after the last one seen; also called by tests to poll now. */
  poll(): void {
    if (!this.onMessage || !this.db.open) return;
    try {
      const statements = this.prepare();
      if (!statements) return;
      for (;;) {
        const rows = statements.after.all(this.last, PAGE) as {
          seq: number;
          at: number;
          message: string;
        }[];
        if (rows.length === 0) break;
        for (const row of rows) this.onMessage(row.message);
        const tail = rows[rows.length - 1];
        this.last = tail.seq;
        this.seen.push({ seq: tail.seq, at: Number(tail.at) });
        if (rows.length < PAGE) break;
      }
      this.prune();
    } catch (error) {
      this.logger.warn(`reading task events failed: ${(error as Error).message}`);
    }
  }

  close(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    this.onMessage = undefined;
    return Promise.resolve();
  }

  private prune(): void {
    const now = this.now();
    if (now - this.lastPrune < PRUNE_EVERY_MS) return;
    this.lastPrune = now;
    let upTo = 0;
    while (this.seen.length > 0 && this.seen[0].at < now - FEED_RETENTION_MS) {
      upTo = this.seen.shift()!.seq;
    }
    if (upTo > 0 && !this.db.inTransaction) this.statements!.prune.run(upTo);
  }
}
