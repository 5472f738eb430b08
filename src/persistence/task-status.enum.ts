/** A task's lifecycle; the values are the wire values. */
export enum TaskStatus {
  Queued = 'queued',
  Running = 'running',
  Completed = 'completed',
  /** Terminal: attempts used up or a non-retryable error. The dead-letter view is `?status=failed`. */
  Failed = 'failed',
  Cancelled = 'cancelled',
}

export const TERMINAL_STATUSES: readonly TaskStatus[] = [
  TaskStatus.Completed,
  TaskStatus.Failed,
  TaskStatus.Cancelled,
];

/** Delivery of a task's result callback, recorded in its row so a restart cannot lose it. */
export type CallbackStatus = 'pending' | 'delivered' | 'failed';
