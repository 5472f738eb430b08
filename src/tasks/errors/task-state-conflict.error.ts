import type { TaskStatus } from '../../persistence/task-status.enum';

/** The operation does not apply to a task in its current status (e.g. cancelling a completed one). */
export class TaskStateConflictError extends Error {
  override readonly name = 'TaskStateConflictError';
  constructor(
    readonly id: string,
    readonly status: TaskStatus,
    operation: string,
  ) {
    super(`task ${id} is ${status}: it cannot be ${operation}`);
  }
}
