/** The body of a task's queue message: enough to run it without reading the row first. */
export interface TaskMessage {
  taskId: string;
  action: string;
  data: Record<string, unknown>;
  /** Per-attempt time limit; absent means none. */
  timeoutMs?: number;
}
