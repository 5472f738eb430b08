/** The body of a task's queue message: enough to run it without reading the row first. */
export interface TaskMessage {
  taskId: string;
  action: string;
  data: Record<string, unknown>;
  /** Per-attempt time limit; absent means none. */
  timeoutMs?: number;
}

/** When the task was created (epoch ms), for end-to-end latency. */
export const CREATED_AT_HEADER = 'x-taskq-created-at';
/** When the task became due (its runAt, else its creation; epoch ms), for pickup latency. */
export const DUE_AT_HEADER = 'x-taskq-due-at';
