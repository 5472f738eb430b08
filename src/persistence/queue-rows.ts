import { v7 as uuidv7 } from 'uuid';
import {
  type DeadLetter,
  MAX_ATTEMPTS_HEADER,
  type PublishMessage,
  type TableDelivery,
} from '../queue';
import { CREATED_AT_HEADER, DUE_AT_HEADER } from '../tasks/task-message.interface';
import { CLAIMED_ACTOR_KEY_HEADER, CLAIMED_HEADER, CLAIMED_TENANT_HEADER } from './task-statements';

/*
 * What both task tables as queues (PgQueueTable, SqliteQueueTable) agree on: how a plain
 * message is a row, and how a claimed row becomes a delivery.
 */

/**
 * The action of a row that is a plain message rather than a task (the conformance suite's, any
 * non-task use of the driver). No handler can have it: action names are identifiers.
 */
export const MESSAGE_ACTION = '$message';

export interface ClaimedRow {
  id: string;
  queue: string;
  action: string;
  payload: string;
  priority: number;
  attempt: number;
  deliveries: number;
  claim_token: string;
  max_attempts: number;
  timeout_ms: number | null;
  /** Epoch ms (a string from PostgreSQL's bigint): the task's latency headers. */
  created_at?: number | string;
  run_at?: number | string | null;
  /** The creating request's trace headers, as JSON (see TaskEntity.traceHeaders). */
  trace_headers?: string | null;
  /** Who the task runs for, read by the claim itself. */
  actor_key?: string | null;
  tenant?: string;
}

export interface MessageEnvelope {
  b: unknown;
  h?: Record<string, string>;
}

/** A plain message as the columns of its new row. */
export interface MessageRow {
  id: string;
  payload: string;
  priority: number;
  attempt: number;
  runAt: number | null;
  key: string | null;
}

/**
 * What a publish writes: one id per message (a task's own id already, for a task's message,
 * whose committed row is its message), the rows of the plain messages (one per deduplication
 * key within the batch), and which new row each key went to.
 */
export function messageRows(
  queue: string,
  messages: PublishMessage<unknown>[],
  now: number,
): { ids: (string | undefined)[]; rows: MessageRow[]; byKey: Map<string, string> } {
  const ids: (string | undefined)[] = messages.map((m) =>
    isTaskMessage(m) ? m.deduplicationKey : undefined,
  );
  const byKey = new Map<string, string>();
  const rows: MessageRow[] = [];
  messages.forEach((m, i) => {
    if (ids[i] !== undefined) return;
    const key = m.deduplicationKey === undefined ? null : dedupKey(queue, m.deduplicationKey);
    if (key !== null && byKey.has(key)) return; // a duplicate within this batch
    const id = uuidv7();
    if (key !== null) byKey.set(key, id);
    ids[i] = id;
    const envelope: MessageEnvelope = {
      b: m.body,
      ...(m.headers && Object.keys(m.headers).length > 0 ? { h: m.headers } : {}),
    };
    rows.push({
      id,
      payload: JSON.stringify(envelope),
      priority: m.priority ?? 0,
      attempt: Math.max(0, (m.attempt ?? 1) - 1),
      runAt: m.delayMs && m.delayMs > 0 ? now + Math.trunc(m.delayMs) : null,
      key,
    });
  });
  return { ids, rows, byKey };
}

/**
 * The ids a publish answers once its rows are written: a deduplicated message answers the row
 * its key went to in this batch, or, when that row did not go in (`went`), the live message that
 * holds the key (`live`, by key).
 */
export function publishedIds(
  queue: string,
  messages: PublishMessage<unknown>[],
  planned: ReturnType<typeof messageRows>,
  went: Set<string>,
  live: Map<string, string>,
): string[] {
  const { ids, byKey } = planned;
  messages.forEach((m, i) => {
    if (m.deduplicationKey === undefined || isTaskMessage(m)) return;
    const key = dedupKey(queue, m.deduplicationKey);
    const first = byKey.get(key)!;
    ids[i] = went.has(first) ? first : (live.get(key) ?? first);
  });
  return ids as string[];
}

/** Keys whose planned row did not go in: a live message holds them already. */
export function takenKeys(byKey: Map<string, string>, went: Set<string>): string[] {
  return [...byKey].filter(([, id]) => !went.has(id)).map(([key]) => key);
}

export function dedupKey(queue: string, key: string): string {
  return `${MESSAGE_ACTION}:${queue}:${key}`;
}

/** A task's message (TasksService): keyed by its own task id, whose row is already stored. */
export function isTaskMessage(message: PublishMessage<unknown>): message is PublishMessage & {
  deduplicationKey: string;
} {
  const body = message.body as { taskId?: unknown; action?: unknown } | null;
  return (
    message.deduplicationKey !== undefined &&
    typeof body === 'object' &&
    body !== null &&
    body.taskId === message.deduplicationKey &&
    typeof body.action === 'string'
  );
}

export function decode(row: ClaimedRow): { body: unknown; headers: Record<string, string> } {
  if (row.action === MESSAGE_ACTION) {
    const envelope = JSON.parse(row.payload) as MessageEnvelope;
    return { body: envelope.b, headers: envelope.h ?? {} };
  }
  return {
    body: {
      taskId: row.id,
      action: row.action,
      data: JSON.parse(row.payload) as Record<string, unknown>,
      ...(row.timeout_ms ? { timeoutMs: row.timeout_ms } : {}),
    },
    headers: {
      ...(row.trace_headers ? (JSON.parse(row.trace_headers) as Record<string, string>) : {}),
      [MAX_ATTEMPTS_HEADER]: String(row.max_attempts),
      // As TasksService's messages carry them: pickup and end-to-end latency are measured alike.
      ...(row.created_at !== undefined
        ? {
            [CREATED_AT_HEADER]: String(row.created_at),
            [DUE_AT_HEADER]: String(row.run_at ?? row.created_at),
          }
        : {}),
    },
  };
}

/** The order of the line: priority first, then id (time-ordered UUIDv7). */
export function inLine(a: ClaimedRow, b: ClaimedRow): number {
  return b.priority - a.priority || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/** The claim's token and, where the claim read them, who the task runs for. */
function claimedHeaders(row: ClaimedRow): Record<string, string> {
  return {
    [CLAIMED_HEADER]: row.claim_token,
    ...(row.tenant !== undefined ? { [CLAIMED_TENANT_HEADER]: row.tenant } : {}),
    ...(row.actor_key ? { [CLAIMED_ACTOR_KEY_HEADER]: row.actor_key } : {}),
  };
}

export function toDelivery<T>(row: ClaimedRow): TableDelivery<T> {
  const { body, headers } = decode(row);
  const task = row.action !== MESSAGE_ACTION;
  return {
    id: row.id,
    queue: row.queue,
    body: body as T,
    headers: task ? { ...headers, ...claimedHeaders(row) } : headers,
    priority: row.priority,
    attempt: row.attempt,
    deliveryCount: row.deliveries,
    receipt: row.claim_token,
    settledByOutcome: task,
  };
}

/** A claimed row that cannot be a delivery: its payload (or trace) is not the JSON it must be. */
export interface UndecodableRow {
  row: ClaimedRow;
  reason: string;
}

/**
 * The claimed rows as deliveries, in the order given. A row written around taskq with a
 * payload that is not JSON cannot be handed out: it is returned apart, for the claimer to
 * dead-letter at once under its fresh token, so it neither breaks the batch nor comes back
 * after every lease (a poison row).
 */
export function toDeliveries<T>(rows: ClaimedRow[]): {
  deliveries: TableDelivery<T>[];
  undecodable: UndecodableRow[];
} {
  const deliveries: TableDelivery<T>[] = [];
  const undecodable: UndecodableRow[] = [];
  for (const row of rows) {
    try {
      deliveries.push(toDelivery<T>(row));
    } catch (error) {
      undecodable.push({ row, reason: `undecodable message: ${(error as Error).message}` });
    }
  }
  return { deliveries, undecodable };
}

/** A failed row as a dead letter; a payload that is not JSON is shown as its text. */
export function toDeadLetter(
  row: ClaimedRow & { error: string | null; processed_at: number | string },
): DeadLetter {
  let decoded: { body: unknown; headers: Record<string, string> };
  try {
    decoded = decode(row);
  } catch {
    decoded = { body: row.payload, headers: {} };
  }
  return {
    id: row.id,
    queue: row.queue,
    ...decoded,
    attempt: row.attempt,
    reason: row.error ?? '',
    deadAt: new Date(Number(row.processed_at)),
  };
}
