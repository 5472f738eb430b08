import { Column, Entity, Index, PrimaryColumn, type ValueTransformer } from 'typeorm';
import { type CallbackStatus, TaskStatus } from './task-status.enum';

/** Epoch milliseconds in a BIGINT column; PostgreSQL hands BIGINT back as a string. */
const epochMs: ValueTransformer = {
  to: (value?: number | null) => value,
  from: (value?: string | number | null) =>
    value === null || value === undefined ? null : Number(value),
};

/**
 * One task: the tutorial's columns (id, payload, status, result, created_at, processed_at) plus
 * what the lifecycle needs. The table is the source of truth; the queue is only transport.
 */
@Entity('tasks')
// (status, created_at) on PostgreSQL. SQLite replaces it by partial indexes of the rows that use
// it (SqliteTableQueue 1765800000000): a status change there rewrote two of its entries. Its form
// differs by engine, so it is not synchronised.
@Index('idx_tasks_status_created', { synchronize: false })
@Index('idx_tasks_tenant_created', ['tenant', 'createdAt', 'id'])
@Index('idx_tasks_tenant_status_created', ['tenant', 'status', 'createdAt', 'id'])
@Index('idx_tasks_tenant_action_created', ['tenant', 'action', 'createdAt', 'id'])
@Index('idx_tasks_tenant_status_action_created', ['tenant', 'status', 'action', 'createdAt', 'id'])
@Index('uq_tasks_tenant_idempotency_key', ['tenant', 'idempotencyKey'], { unique: true })
// (callback_status, callback_next_at); on PostgreSQL partial, (callback_next_at) of pending rows
// (PartialTaskIndexes 1765000001000), since most tasks have no callback. Its form differs by
// engine, so it is not synchronised.
@Index('idx_tasks_callback_due', { synchronize: false })
// The table drivers' claim and lease indexes (TaskTableQueue 1765000000000 on PostgreSQL,
// SqliteTableQueue 1765800000000 on SQLite): partial, so not synchronised.
@Index('idx_tasks_queued_claim', { synchronize: false })
@Index('idx_tasks_running_lease', { synchronize: false })
// SQLite's partial indexes in place of (status, created_at) (SqliteTableQueue 1765800000000).
@Index('idx_tasks_queued_created', { synchronize: false })
@Index('idx_tasks_finished', { synchronize: false })
// SQLite's rare rows a queue's counts read: queued with a run time, and failed
// (SqliteQueueCountIndexes 1765900000000).
@Index('idx_tasks_queued_later', { synchronize: false })
@Index('idx_tasks_failed', { synchronize: false })
export class TaskEntity {
  @PrimaryColumn({ type: 'varchar', length: 36 })
  id!: string;

  @Column({ type: 'varchar', length: 64 })
  action!: string;

  /** The task's `data`, as JSON text. */
  @Column({ type: 'text' })
  payload!: string;

  @Column({ type: 'varchar', length: 16 })
  status!: TaskStatus;

  /** The handler's return value, as JSON text. */
  @Column({ type: 'text', nullable: true })
  result!: string | null;

  @Column({ type: 'text', nullable: true })
  error!: string | null;

  /** Attempts started so far. */
  @Column({ type: 'int', default: 0 })
  attempt!: number;

  @Column({ name: 'max_attempts', type: 'int' })
  maxAttempts!: number;

  /**
   * Times a worker claimed the row (every pickup, a redelivery after a crash or a lost lease
   * included), so a re-run is visible: more deliveries than attempts means a pickup was repeated.
   */
  @Column({ type: 'int', default: 0 })
  deliveries!: number;

  @Column({ type: 'int', default: 0 })
  priority!: number;

  @Column({ type: 'varchar', length: 64 })
  queue!: string;

  @Column({ type: 'int', nullable: true })
  progress!: number | null;

  /** Fencing token of the attempt that holds the row; only its holder may record an outcome. */
  @Column({ name: 'claim_token', type: 'varchar', length: 36, nullable: true })
  claimToken!: string | null;

  @Column({ name: 'created_at', type: 'bigint', transformer: epochMs })
  createdAt!: number;

  @Column({ name: 'started_at', type: 'bigint', nullable: true, transformer: epochMs })
  startedAt!: number | null;

  @Column({ name: 'processed_at', type: 'bigint', nullable: true, transformer: epochMs })
  processedAt!: number | null;

  @Column({ name: 'updated_at', type: 'bigint', transformer: epochMs })
  updatedAt!: number;

  /** Not deliverable before this time (a delayed task). */
  @Column({ name: 'run_at', type: 'bigint', nullable: true, transformer: epochMs })
  runAt!: number | null;

  /** Per-attempt time limit; null means none. */
  @Column({ name: 'timeout_ms', type: 'int', nullable: true })
  timeoutMs!: number | null;

  /** The tenant of the key that created the task; only that tenant's keys see the task. */
  @Column({ type: 'varchar', length: 64, default: 'default' })
  tenant!: string;

  /** Name of the API key that created the task (`schedule:<name>` for a schedule's); null in open mode. */
  @Column({ name: 'actor_key', type: 'varchar', length: 160, nullable: true })
  actorKey!: string | null;

  /**
   * The client's Idempotency-Key; unique within a tenant, so one key makes one task however many
   * requests race.
   */
  @Column({ name: 'idempotency_key', type: 'varchar', length: 255, nullable: true })
  idempotencyKey!: string | null;

  /** SHA-256 of the request that created the task, to tell a replay from a conflicting reuse. */
  @Column({ name: 'request_hash', type: 'varchar', length: 64, nullable: true })
  requestHash!: string | null;

  @Column({ name: 'progress_message', type: 'varchar', length: 500, nullable: true })
  progressMessage!: string | null;

  @Column({ name: 'callback_url', type: 'varchar', length: 2048, nullable: true })
  callbackUrl!: string | null;

  /** pending | delivered | failed; null without a callback URL. */
  @Column({ name: 'callback_status', type: 'varchar', length: 16, nullable: true })
  callbackStatus!: CallbackStatus | null;

  @Column({ name: 'callback_attempts', type: 'int', default: 0 })
  callbackAttempts!: number;

  @Column({ name: 'callback_error', type: 'text', nullable: true })
  callbackError!: string | null;

  @Column({ name: 'callback_next_at', type: 'bigint', nullable: true, transformer: epochMs })
  callbackNextAt!: number | null;

  /** A table driver's claim: held until this time unless extended (see QueueTable). */
  @Column({ name: 'lease_until', type: 'bigint', nullable: true, transformer: epochMs })
  leaseUntil!: number | null;

  /** The table driver instance holding the claim; its missed heartbeats free the row. */
  @Column({ name: 'lease_owner', type: 'varchar', length: 36, nullable: true })
  leaseOwner!: string | null;

  /**
   * The trace the task was created in (`traceparent`, `tracestate` as JSON) when tracing is on:
   * where the row is the message (sqlite, postgres drivers) it carries what a message's headers
   * would, so the handler's span joins the request's trace.
   */
  @Column({ name: 'trace_headers', type: 'text', nullable: true })
  traceHeaders!: string | null;
}
