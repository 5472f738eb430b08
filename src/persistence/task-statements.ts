import type { TaskActor } from '../auth/actor';
import type { QueueTable, SharedWrite } from '../queue';
import type { CallbackStatus, TaskStatus } from './task-status.enum';
import type { TaskEntity } from './task.entity';

/**
 * Header of a message the reconciler publishes for a running task whose delivery is gone: the
 * claim token it saw. Only a row still held under that token may be taken over (see reclaim).
 */
export const RECLAIM_HEADER = 'x-taskq-reclaim';

/**
 * Header of a delivery whose row the queue driver claimed itself (the postgres driver, whose
 * messages are the task rows): the claim token. The processor records outcomes under it and
 * makes no claim of its own.
 */
export const CLAIMED_HEADER = 'x-taskq-claimed';

/**
 * Headers of such a delivery with who the task runs for, as its claim read them from the row
 * (the key's name, absent for open mode; the tenant). The processor believes these, and
 * CLAIMED_HEADER, only on a delivery the task table's own claim made (`settledByOutcome`, a
 * property no broker message can carry): a message's headers are anyone's to write.
 */
export const CLAIMED_ACTOR_KEY_HEADER = 'x-taskq-claimed-actor-key';
export const CLAIMED_TENANT_HEADER = 'x-taskq-claimed-tenant';

/** Where a queued task sits in the start-up sweep's order, and which queue it belongs to. */
export interface TaskKey {
  id: string;
  queue: string;
  createdAt: number;
}

export interface ListTasksFilter {
  /** Only this tenant's tasks (the API always sets it; unset is for internal callers). */
  tenant?: string;
  status?: TaskStatus;
  action?: string;
  createdAfter?: number;
  createdBefore?: number;
  /** Keyset position: tasks strictly older than this one (createdAt, then id). */
  before?: { createdAt: number; id: string };
  limit: number;
}

/** A callback this process holds: the row as claimed, and the lease that fences its outcome. */
export interface ClaimedCallback {
  task: TaskEntity;
  /** 1-based; already counted in the row. */
  attempt: number;
  leaseUntil: number;
}

/** How one callback attempt ended. */
export interface CallbackOutcome {
  status: CallbackStatus;
  error: string | null;
  nextAt: number | null;
}

/** A change of the callback columns: a claim counts an attempt; an outcome sets a status. */
export type CallbackChange = { attempts: number; nextAt: number } | CallbackOutcome;

/**
 * Every read and write of the task table, with one implementation per database (SQLite and
 * PostgreSQL, chosen once at boot: see createTaskStatements). Each state change is a conditional
 * update, so a duplicate or stale delivery changes nothing: the outcome of an attempt is
 * recorded once. A write's promise settles only after its change has committed.
 *
 * The task-state rules are stated once per dialect: an outcome (complete, fail, progress) needs
 * the row `running` under the caller's claim token; a terminal change of a task with a callback
 * URL queues its callback in the same statement; a claim takes a queued row of an earlier
 * attempt or, for a redelivered message, a running row of the same attempt.
 */
export abstract class TaskStatements {
  /** The table as a queue (the postgres driver's port), where the dialect offers it. */
  queueTable(): QueueTable | undefined {
    return undefined;
  }

  /** Inserts all rows in one transaction: all or none. */
  abstract insert(tasks: TaskEntity[]): Promise<void>;

  /**
   * Inserts, in one transaction, the rows whose idempotency key is free, skipping those whose key
   * a stored row or an earlier row of `tasks` already has (the unique index decides a race, so
   * one row per key goes in). Answers the ids of the rows that went in, in no particular order.
   */
  abstract insertNew(tasks: TaskEntity[]): Promise<string[]>;

  /**
   * The row of `id`; with `tenant`, only if it is that tenant's (the condition is in the query, so
   * another tenant's task reads as absent). Without: internal callers (schedules, tests).
   */
  abstract findById(id: string, tenant?: string): Promise<TaskEntity | null>;

  /** Idempotency keys are unique per tenant. */
  abstract findByIdempotencyKey(key: string, tenant?: string): Promise<TaskEntity | null>;

  /** Newest first, ties broken by id, so keyset pages stay stable while tasks are added. */
  abstract list(filter: ListTasksFilter): Promise<TaskEntity[]>;

  /**
   * Claims the row for `attempt` under a new fencing `token`: a queued row from an earlier
   * attempt, or, when the broker redelivered the message (its holder died), a running row of
   * this same attempt. False means the delivery is a duplicate or stale.
   */
  claim(id: string, attempt: number, token: string, redelivered: boolean): Promise<boolean> {
    return this.claimActor(id, attempt, token, redelivered).then((actor) => actor !== null);
  }

  /**
   * `claim`, answering who the task runs for (its tenant and the key that made it, read in the
   * claiming statement itself), or null where `claim` answers false.
   */
  abstract claimActor(
    id: string,
    attempt: number,
    token: string,
    redelivered: boolean,
  ): Promise<TaskActor | null>;

  /** Who the task runs for; null when it does not exist. */
  abstract actorOf(id: string): Promise<TaskActor | null>;

  /** Stores progress while the claim holds. */
  abstract progress(
    id: string,
    token: string,
    percent: number,
    message: string | null,
  ): Promise<boolean>;

  /**
   * Queued or running → cancelled. False when the task is in neither status (or absent, or,
   * with `tenant`, another tenant's).
   */
  abstract cancel(id: string, tenant?: string): Promise<boolean>;

  /** Failed or cancelled → queued with fresh attempts (the dead-letter redrive); `tenant` as cancel. */
  abstract requeueFinished(id: string, tenant?: string): Promise<boolean>;

  /** Which of `ids` have been cancelled (so their handlers can be stopped). */
  abstract cancelledAmong(ids: string[]): Promise<string[]>;

  abstract countQueued(): Promise<number>;

  /**
   * Puts the running rows of `queues` back to queued. Only safe where no other process can hold
   * their claims: queues of a driver that keeps nothing across a restart (memory), at start-up.
   */
  abstract requeueRunning(queues: string[]): Promise<number>;

  /**
   * Queued tasks oldest first, a page at a time (keyset on created_at, id): only their keys,
   * so a sweep over a long backlog reads little and builds no entities.
   */
  abstract queuedKeys(limit: number, after?: TaskKey): Promise<TaskKey[]>;

  /** The queued ones among `ids`. */
  abstract queuedByIds(ids: string[]): Promise<TaskEntity[]>;

  /**
   * Queued rows of `queue` untouched since `before` and due since then (a delayed task waiting
   * for its time is not suspect), oldest first; from just after `after` when given.
   */
  abstract staleQueued(
    queue: string,
    before: number,
    limit: number,
    after?: { updatedAt: number; id: string },
  ): Promise<TaskEntity[]>;

  /** Running rows of `queue` whose claim has not been touched (claimed, progress) since `before`. */
  abstract staleRunning(queue: string, before: number, limit: number): Promise<TaskEntity[]>;

  /** Queued rows of `queue` that are due now (what a broker should be holding as ready). */
  abstract countQueuedDue(queue: string, now: number): Promise<number>;

  /**
   * When the oldest due queued row of `queue` (by creation) became due (its run_at, else its
   * creation), or null when none waits. Walks the status-and-creation index from its oldest end
   * and stops at the first due row, so its cost does not grow with the backlog (metrics read it
   * per scrape). Queued rows of other queues created earlier are stepped over.
   */
  abstract oldestQueuedAt(queue: string, now: number): Promise<number | null>;

  /**
   * Takes over a running row for `attempt` under `token`, only if it is still held under
   * `staleToken` by an earlier attempt: if its holder finished, failed or was replaced meanwhile,
   * nothing changes and false is returned.
   */
  abstract reclaim(
    id: string,
    staleToken: string,
    attempt: number,
    token: string,
  ): Promise<boolean>;

  abstract exists(id: string): Promise<boolean>;

  /** Pending callbacks due by `now`, the longest-waiting first. */
  abstract dueCallbacks(now: number, limit: number): Promise<TaskEntity[]>;

  /**
   * Takes `task`'s callback for one attempt: counts the attempt and pushes its next time to
   * `leaseUntil`, so nobody else picks it up meanwhile (and, should this process die, somebody
   * does after the lease). Null when another process got there first. Like every callback
   * change, it applies only if the row still shows the attempts and next time the caller saw.
   */
  async claimCallback(task: TaskEntity, leaseUntil: number): Promise<ClaimedCallback | null> {
    const attempt = task.callbackAttempts + 1;
    const held = { attempts: task.callbackAttempts, nextAt: task.callbackNextAt };
    const set = { attempts: attempt, nextAt: leaseUntil };
    if (!(await this.updateCallback(task.id, held, set))) return null;
    return {
      task: { ...task, callbackAttempts: attempt, callbackNextAt: leaseUntil },
      attempt,
      leaseUntil,
    };
  }

  /** Marks a callback that has used its attempts (without sending again) as failed. */
  abandonCallback(task: TaskEntity, error: string): Promise<boolean> {
    const held = { attempts: task.callbackAttempts, nextAt: task.callbackNextAt };
    return this.updateCallback(task.id, held, { status: 'failed', error, nextAt: null });
  }

  /** Records an attempt's outcome; false when the claim was lost meanwhile. */
  settleCallback(claimed: ClaimedCallback, outcome: CallbackOutcome): Promise<boolean> {
    const held = { attempts: claimed.attempt, nextAt: claimed.leaseUntil };
    return this.updateCallback(claimed.task.id, held, outcome);
  }

  /**
   * Deletes up to `limit` terminal tasks processed before `cutoff`, keeping those whose callback
   * is still pending. Returns how many went.
   */
  abstract deleteExpired(cutoff: number, limit: number): Promise<number>;

  /** Records success; false if the claim was lost (taken over or cancelled). */
  complete(id: string, token: string, result: unknown, now = Date.now()): Promise<boolean> {
    return this.completeJson(id, token, resultJson(result), Math.trunc(now));
  }

  /** Records a failed attempt: back to queued for a retry, or failed for good. */
  fail(
    id: string,
    token: string,
    error: string,
    final: boolean,
    now = Date.now(),
  ): Promise<boolean> {
    return this.failAt(id, token, error, final, Math.trunc(now));
  }

  /**
   * Success as a write for the worker pool to commit with the ack (see SharedWrite), just before
   * it. `committed` hears whether the claim still held.
   */
  completion(
    id: string,
    token: string,
    result: unknown,
    committed: (applied: boolean) => void,
  ): SharedWrite {
    const json = resultJson(result);
    const now = Date.now();
    return { commit: () => this.completeJson(id, token, json, now), committed };
  }

  /**
   * A failed attempt as a write for the worker pool to commit with the nack or dead-letter. A
   * retry is due again after `retryDelayMs` (its run_at), so where the task row is the message
   * (the postgres driver) this write is the nack itself.
   */
  failure(
    id: string,
    token: string,
    error: string,
    final: boolean,
    committed: (applied: boolean) => void,
    retryDelayMs = 0,
  ): SharedWrite {
    const now = Date.now();
    const retryAt = now + Math.max(0, Math.trunc(retryDelayMs));
    return { commit: () => this.failAt(id, token, error, final, now, retryAt), committed };
  }

  protected abstract completeJson(
    id: string,
    token: string,
    result: string,
    now: number,
  ): Promise<boolean>;

  /** `retryAt`: when a retry is due (its run_at), where the dialect records it. */
  protected abstract failAt(
    id: string,
    token: string,
    error: string,
    final: boolean,
    now: number,
    retryAt?: number,
  ): Promise<boolean>;

  /**
   * The callback columns of `id` set to `set`, only while the callback is pending with the
   * attempts and next time in `held`.
   */
  protected abstract updateCallback(
    id: string,
    held: { attempts: number; nextAt: number | null },
    set: CallbackChange,
  ): Promise<boolean>;
}

function resultJson(result: unknown): string {
  return JSON.stringify(result ?? null);
}
