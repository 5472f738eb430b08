import type { TaskActor } from '../auth/actor';

/** What a handler gets besides the task's data. */
export interface TaskContext {
  taskId: string;
  action: string;
  /** 1-based attempt number of this run. */
  attempt: number;
  maxAttempts: number;
  /** Aborts on shutdown, on cancel and at the task's time limit: stop and throw when it fires. */
  signal: AbortSignal;
  /** Records progress (0-100) and an optional message on the task; cheap to call often, writes are throttled. */
  progress(percent: number, message?: string): void;
  /** Who the task runs for: the API key that created it (null in open mode) and its tenant. */
  actor: TaskActor;
}

export type TaskHandlerFn = (data: Record<string, unknown>, ctx: TaskContext) => unknown;
