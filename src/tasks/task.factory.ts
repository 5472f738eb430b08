import { randomUUID } from 'node:crypto';
import { TaskStatus } from './task-status.enum';
import { TaskEntity } from './task.entity';

export interface NewTaskInput {
  action: string;
  data: Record<string, unknown>;
  queue: string;
  maxAttempts: number;
  priority?: number;
  runAt?: number | null;
  timeoutMs?: number | null;
  idempotencyKey?: string | null;
  requestHash?: string | null;
  callbackUrl?: string | null;
  id?: string;
  now?: number;
}

/** A fresh queued task row: the one place that knows every column's starting value. */
export function newTask(input: NewTaskInput): TaskEntity {
  const now = input.now ?? Date.now();
  return Object.assign(new TaskEntity(), {
    id: input.id ?? randomUUID(),
    action: input.action,
    payload: JSON.stringify(input.data),
    status: TaskStatus.Queued,
    result: null,
    error: null,
    attempt: 0,
    maxAttempts: input.maxAttempts,
    priority: input.priority ?? 0,
    queue: input.queue,
    progress: null,
    progressMessage: null,
    claimToken: null,
    createdAt: now,
    startedAt: null,
    processedAt: null,
    updatedAt: now,
    runAt: input.runAt ?? null,
    timeoutMs: input.timeoutMs ?? null,
    idempotencyKey: input.idempotencyKey ?? null,
    requestHash: input.requestHash ?? null,
    callbackUrl: input.callbackUrl ?? null,
    callbackStatus: null,
    callbackAttempts: 0,
    callbackError: null,
    callbackNextAt: null,
  } satisfies TaskEntity);
}
