import { TaskStatus } from './task-status.enum';

/**
 * SQL for a queue's counts on SQLite, named parameters @queue and @now. Each reads a partial
 * index holding only the rows it counts (covering, so no table rows are read). Queued rows are
 * what there are; delayed and failed rows are usually few (SqliteQueueCountIndexes).
 */
export const SQLITE_COUNTS = {
  queued: `(SELECT count(*) FROM tasks INDEXED BY idx_tasks_queued_claim
             WHERE status = '${TaskStatus.Queued}' AND queue = @queue)`,
  delayed: `(SELECT count(*) FROM tasks INDEXED BY idx_tasks_queued_later
              WHERE status = '${TaskStatus.Queued}' AND queue = @queue
                AND run_at IS NOT NULL AND run_at > @now)`,
  failed: `(SELECT count(*) FROM tasks INDEXED BY idx_tasks_failed
             WHERE status = '${TaskStatus.Failed}' AND queue = @queue)`,
} as const;
