import { TaskStatus } from './task-status.enum';

/**
 * SQL expressions for a queue's counts on SQLite, named parameters @queue and @now. Queued and
 * failed rows come from `taskq_queue_counts`, which triggers keep (SqliteQueueCounts
 * 1765900000000): reading them costs the same with 10 or 1M waiting. Delayed rows are read from
 * their own partial index, so they cost what there are of them.
 */
const counted = (status: TaskStatus): string =>
  `coalesce((SELECT n FROM taskq_queue_counts WHERE queue = @queue AND status = '${status}'), 0)`;

export const SQLITE_COUNTS = {
  queued: counted(TaskStatus.Queued),
  failed: counted(TaskStatus.Failed),
  delayed: `(SELECT count(*) FROM tasks INDEXED BY idx_tasks_queued_later
              WHERE status = '${TaskStatus.Queued}' AND queue = @queue
                AND run_at IS NOT NULL AND run_at > @now)`,
} as const;
