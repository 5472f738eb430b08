import { v7 as uuidv7 } from 'uuid';
import { DEFAULT_TENANT, type TaskActor } from '../auth/actor';
import { TaskStatus } from '../persistence/task-status.enum';
import { TaskEntity } from '../persistence/task.entity';

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
  /** Who the task runs for; open mode's default tenant and no key when absent. */
  actor?: TaskActor;
  id?: string;
  now?: number;
  /** The creating request's trace headers (empty or absent: none). */
  trace?: Record<string, string>;
}

/** A fresh queued task row: the one place that knows every column's starting value. */
export function newTask(input: NewTaskInput): TaskEntity {
  const now = input.now ?? Date.now();
  return Object.assign(new TaskEntity(), {
    // Time-ordered (UUIDv7): new ids land at the end of the primary-key and deduplication
    // indexes and tasks taken in FIFO order sit on neighbouring pages, so a long backlog does
    // not turn every claim and completion into a random page read, as random v4 ids did.
    id: input.id ?? uuidv7(),
    action: input.action,
    payload: JSON.stringify(input.data),
    status: TaskStatus.Queued,
    result: null,
    error: null,
    attempt: 0,
    deliveries: 0,
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
    tenant: input.actor?.tenant ?? DEFAULT_TENANT,
    actorKey: input.actor?.keyName ?? null,
    idempotencyKey: input.idempotencyKey ?? null,
    requestHash: input.requestHash ?? null,
    callbackUrl: input.callbackUrl ?? null,
    callbackStatus: null,
    callbackAttempts: 0,
    callbackError: null,
    callbackNextAt: null,
    leaseUntil: null,
    leaseOwner: null,
    traceHeaders:
      input.trace && Object.keys(input.trace).length > 0 ? JSON.stringify(input.trace) : null,
  } satisfies TaskEntity);
}
