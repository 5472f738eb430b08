import { Client, type Pool, type QueryResult } from 'pg';
import type {
  DeadLetter,
  Delivery,
  PublishMessage,
  QueueStats,
  QueueTable,
  TableDelivery,
  TableSettle,
} from '../queue';
import {
  type ClaimedRow,
  dedupKey,
  inLine,
  MESSAGE_ACTION,
  messageRows,
  publishedIds,
  takenKeys,
  toDeadLetter,
  toDeliveries,
} from './queue-rows';
import { TaskStatus } from './task-status.enum';

const { Queued, Running, Completed, Failed } = TaskStatus;

/** Where a queued row stands in line: its run time, or its creation for an undelayed one. */
const DUE = `COALESCE(t.run_at, t.created_at)`;

/**
 * The task table as the postgres driver's queue (QueueTable): the claim, the settles, the
 * leases and the heartbeats, each one statement on the pool TaskStatements uses. A task's row is
 * its own message; a plain message is a row of MESSAGE_ACTION whose payload holds its body and
 * headers, and whose deduplication key lives in the idempotency index (as `$message:queue:key`,
 * cleared when it is acked or dead). Tables are found through the connection's search_path,
 * like PgTaskStatements'.
 */
export class PgQueueTable implements QueueTable {
  readonly dialect = 'postgres';
  private readonly names = new Map<string, string>();

  constructor(private readonly pool: Pool) {}

  async publish<T>(queue: string, messages: PublishMessage<T>[]): Promise<string[]> {
    const now = Date.now();
    const planned = messageRows(queue, messages, now);
    const { rows, byKey } = planned;
    // Tasks only: their committed rows are the messages (the insert trigger woke the listeners).
    if (rows.length === 0) return planned.ids as string[];
    const inserted = await this.query(
      `INSERT INTO tasks (id, action, payload, status, attempt, max_attempts, priority, queue,
         created_at, updated_at, run_at, idempotency_key)
       SELECT v.id, $1, v.payload, '${Queued}', v.attempt, 1, v.priority, $2, $3, $3, v.run_at, v.key
       FROM unnest($4::varchar[], $5::text[], $6::int[], $7::int[], $8::bigint[], $9::varchar[])
         AS v(id, payload, priority, attempt, run_at, key)
       ON CONFLICT (tenant, idempotency_key) DO NOTHING RETURNING id`,
      [
        MESSAGE_ACTION,
        queue,
        now,
        rows.map((r) => r.id),
        rows.map((r) => r.payload),
        rows.map((r) => r.priority),
        rows.map((r) => r.attempt),
        rows.map((r) => r.runAt),
        rows.map((r) => r.key),
      ],
    );
    const went = new Set((inserted.rows as { id: string }[]).map((r) => r.id));
    const taken = takenKeys(byKey, went);
    const live = new Map<string, string>();
    if (taken.length > 0) {
      const found = await this.query(
        `SELECT id, idempotency_key AS key FROM tasks WHERE idempotency_key = ANY($1::varchar[])`,
        [taken],
      );
      for (const row of found.rows as { id: string; key: string }[]) live.set(row.key, row.id);
    }
    return publishedIds(queue, messages, planned, went, live);
  }

  /**
   * One statement: expired or orphaned claims first (a dead holder's work), then due queued rows
   * by priority and time, each locked with SKIP LOCKED so concurrent claimers never wait on each
   * other or take the same row; the picked rows turn running under fresh tokens and a lease.
   */
  async claim<T>(
    queue: string,
    limit: number,
    owner: string,
    leaseMs: number,
    staleBefore: number,
  ): Promise<TableDelivery<T>[]> {
    if (limit <= 0) return [];
    const now = Date.now();
    const result = await this.query(
      `WITH open AS (SELECT NOT EXISTS (SELECT 1 FROM taskq_queue_paused p WHERE p.queue = $1) AS ok),
       expired AS (
         SELECT t.id FROM tasks t, open WHERE open.ok AND t.status = '${Running}' AND t.queue = $1
           AND (t.lease_until < $3
                OR t.lease_owner IN (SELECT c.id FROM taskq_queue_consumers c WHERE c.seen_at < $6)
                OR (t.lease_owner IS NULL AND t.updated_at < $3 - $4::bigint))
         LIMIT $2 FOR UPDATE OF t SKIP LOCKED),
       due AS (
         SELECT t.id FROM tasks t, open WHERE open.ok AND t.status = '${Queued}' AND t.queue = $1
           AND ${DUE} <= $3
         ORDER BY t.priority DESC, ${DUE}, t.id LIMIT $2 FOR UPDATE OF t SKIP LOCKED),
       picked AS (SELECT id FROM expired UNION ALL SELECT id FROM due LIMIT $2)
       UPDATE tasks t SET
         attempt = CASE WHEN t.status = '${Queued}' THEN t.attempt + 1 ELSE t.attempt END,
         status = '${Running}', claim_token = gen_random_uuid()::text,
         lease_until = $3 + $4::bigint, lease_owner = $5, deliveries = t.deliveries + 1,
         started_at = $3, updated_at = $3
       FROM picked WHERE t.id = picked.id
       RETURNING t.id, t.queue, t.action, t.payload, t.priority, t.attempt, t.deliveries,
         t.claim_token, t.max_attempts, t.timeout_ms, t.created_at, t.run_at,
         t.trace_headers, t.actor_key, t.tenant`,
      [queue, limit, now, leaseMs, owner, staleBefore],
    );
    const rows = result.rows as ClaimedRow[];
    // The statement returns rows in no set order: hand them out as the line had them.
    rows.sort(inLine);
    const { deliveries, undecodable } = toDeliveries<T>(rows);
    // Poison rows are dead at once, under the token just taken: they never reach a consumer.
    for (const { row, reason } of undecodable) {
      const held = { id: row.id, receipt: row.claim_token } as Delivery;
      await this.settle(held, { kind: 'dead', reason });
    }
    return deliveries;
  }

  async settle(delivery: Delivery, how: TableSettle): Promise<boolean> {
    const now = Date.now();
    const { id, receipt } = delivery;
    let result: QueryResult;
    switch (how.kind) {
      case 'ack':
        // A message row goes; a task row acked without an outcome (cancelled meanwhile, or a
        // handler that recorded nothing) lets go of its claim, finishing it if still running.
        result = await this.query(
          `WITH gone AS (
             DELETE FROM tasks t WHERE t.id = $1 AND t.claim_token = $2
               AND t.status = '${Running}' AND t.action = $4 RETURNING t.id),
           done AS (
             UPDATE tasks t SET status = CASE t.status WHEN '${Running}' THEN '${Completed}'
                 ELSE t.status END,
               processed_at = COALESCE(t.processed_at, $3), updated_at = $3,
               claim_token = NULL, lease_until = NULL, lease_owner = NULL
             WHERE t.id = $1 AND t.claim_token = $2 AND t.action <> $4 RETURNING t.id)
           SELECT id FROM gone UNION ALL SELECT id FROM done`,
          [id, receipt, now, MESSAGE_ACTION],
        );
        break;
      case 'nack':
      case 'release':
        result = await this.query(
          `UPDATE tasks t SET status = '${Queued}',
             attempt = CASE WHEN $4 THEN t.attempt - 1 ELSE t.attempt END,
             run_at = CASE WHEN $4 THEN t.run_at ELSE $3 + $5::bigint END,
             updated_at = $3, claim_token = NULL, lease_until = NULL, lease_owner = NULL
           WHERE t.id = $1 AND t.claim_token = $2 AND t.status = '${Running}' RETURNING t.id`,
          [
            id,
            receipt,
            now,
            how.kind === 'release',
            how.kind === 'nack' ? Math.trunc(how.delayMs) : 0,
          ],
        );
        break;
      case 'dead':
        result = await this.query(
          `UPDATE tasks t SET status = '${Failed}', error = $4, processed_at = $3, updated_at = $3,
             claim_token = NULL, lease_until = NULL, lease_owner = NULL,
             idempotency_key = CASE WHEN t.action = $5 THEN NULL ELSE t.idempotency_key END
           WHERE t.id = $1 AND t.claim_token = $2 AND t.status = '${Running}' RETURNING t.id`,
          [id, receipt, now, how.reason, MESSAGE_ACTION],
        );
        break;
    }
    return result.rows.length > 0;
  }

  /** One statement for all of them; the CASE keeps it a primary-key probe per id (see PgTaskStatements). */
  async extendLeases(deliveries: Delivery[], ms: number): Promise<string[]> {
    if (deliveries.length === 0) return [];
    const result = await this.query(
      `UPDATE tasks t SET lease_until = $3 + $4::bigint
       FROM unnest($1::varchar[], $2::varchar[]) AS v(id, token)
       WHERE t.id = v.id AND t.claim_token = v.token
         AND CASE t.status WHEN '${Running}' THEN true ELSE false END
       RETURNING t.claim_token AS token`,
      [deliveries.map((d) => d.id), deliveries.map((d) => d.receipt), Date.now(), Math.trunc(ms)],
    );
    const kept = new Set((result.rows as { token: string }[]).map((r) => r.token));
    return deliveries.filter((d) => !kept.has(d.receipt)).map((d) => d.receipt);
  }

  async heartbeat(owner: string, gone = false): Promise<void> {
    const now = Date.now();
    await this.query(
      `INSERT INTO taskq_queue_consumers (id, seen_at) VALUES ($1, $2)
       ON CONFLICT (id) DO UPDATE SET seen_at = EXCLUDED.seen_at`,
      [owner, gone ? 0 : now],
    );
  }

  /**
   * Forgets owners silent for a day (or closed) that hold no running row: a heartbeat row is
   * what frees a dead owner's claims, so it stays while any claim of its owner does.
   */
  async forgetOwners(): Promise<void> {
    await this.query(
      `DELETE FROM taskq_queue_consumers c WHERE c.seen_at < $1
         AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.status = '${Running}'
                           AND t.lease_owner = c.id)`,
      [Date.now() - 86_400_000],
    );
  }

  async missingKeys(queue: string, keys: string[]): Promise<string[]> {
    const result = await this.query(
      `SELECT k FROM unnest($1::varchar[]) AS k
       WHERE NOT EXISTS (SELECT 1 FROM tasks t WHERE t.id = k AND t.queue = $2
                           AND t.status IN ('${Queued}', '${Running}'))
         AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.idempotency_key = $3 || k AND t.queue = $2
                           AND t.status IN ('${Queued}', '${Running}'))`,
      [keys, queue, dedupKey(queue, '')],
    );
    return (result.rows as { k: string }[]).map((r) => r.k);
  }

  async stats(queue: string): Promise<QueueStats> {
    const result = await this.query(
      `SELECT
         count(*) FILTER (WHERE t.status = '${Queued}' AND ${DUE} <= $2)::int AS ready,
         count(*) FILTER (WHERE t.status = '${Queued}' AND ${DUE} > $2)::int AS delayed,
         count(*) FILTER (WHERE t.status = '${Running}')::int AS "inFlight",
         count(*) FILTER (WHERE t.status = '${Failed}')::int AS dead,
         EXISTS (SELECT 1 FROM taskq_queue_paused p WHERE p.queue = $1) AS paused
       FROM tasks t WHERE t.queue = $1 AND t.status IN ('${Queued}', '${Running}', '${Failed}')`,
      [queue, Date.now()],
    );
    const row = result.rows[0] as Omit<QueueStats, 'queue'>;
    return {
      queue,
      ready: row.ready,
      inFlight: row.inFlight,
      delayed: row.delayed,
      dead: row.dead,
      paused: row.paused,
    };
  }

  async deadLetters(queue: string, limit: number): Promise<DeadLetter[]> {
    const result = await this.query(
      `SELECT t.id, t.queue, t.action, t.payload, t.attempt, t.error, t.processed_at,
         t.max_attempts, t.timeout_ms
       FROM tasks t WHERE t.queue = $1 AND t.status = '${Failed}'
       ORDER BY t.processed_at DESC, t.id DESC LIMIT $2`,
      [queue, limit],
    );
    return (result.rows as Parameters<typeof toDeadLetter>[0][]).map(toDeadLetter);
  }

  async setPaused(queue: string, paused: boolean): Promise<void> {
    await this.query(
      paused
        ? `INSERT INTO taskq_queue_paused (queue) VALUES ($1) ON CONFLICT DO NOTHING`
        : `DELETE FROM taskq_queue_paused WHERE queue = $1`,
      [queue],
    );
  }

  /** The payload is the insert trigger's (NotifyDueTimes1765900001000): `<queue>[ <due ms>]`. */
  async notify(queue: string, dueAt?: number): Promise<void> {
    const payload = dueAt === undefined ? queue : `${queue} ${Math.trunc(dueAt)}`;
    await this.query(`SELECT pg_notify('taskq:' || current_schema(), $1)`, [payload]);
  }

  /**
   * A session of its own, outside the pool: LISTEN is session state, which a pooled connection
   * (or PgBouncer in transaction mode) would hand to somebody else.
   *
   * Hears other processes only, as SQLite's listener does: a NOTIFY sent by a session of this
   * pool (an insert's trigger, a settle's notify) is this process's own write, whose driver
   * wakes its consumers itself once the write has committed. Waking them for the NOTIFY too
   * made a second claim per insert, which mostly found nothing and delayed the next pickup.
   */
  async listen(
    onWake: (queue: string, dueAt?: number) => void,
    onLost: (error: Error) => void,
  ): Promise<() => Promise<void>> {
    const own = this.ownSessions();
    const client = new Client(this.pool.options);
    let closing = false;
    client.on('error', (error) => {
      if (!closing) onLost(error);
    });
    client.on('end', () => {
      if (!closing) onLost(new Error('connection ended'));
    });
    try {
      await client.connect();
      const schema = ((await client.query('SELECT current_schema() AS s')).rows[0] as { s: string })
        .s;
      const channel = `taskq:${schema}`;
      client.on('notification', (note) => {
        if (note.channel !== channel || !note.payload || own.has(note.processId)) return;
        // `<queue>` (rows due now) or `<queue> <due epoch ms>`: queue names hold no space.
        const [queue, due] = note.payload.split(' ');
        const dueAt = due === undefined ? undefined : Number(due);
        onWake(queue, dueAt !== undefined && Number.isFinite(dueAt) ? dueAt : undefined);
      });
      await client.query(`LISTEN "${channel.replace(/"/g, '""')}"`);
    } catch (error) {
      own.stop();
      throw error;
    }
    return async () => {
      closing = true;
      own.stop();
      await client.end();
    };
  }

  /**
   * The backend process ids of this pool's sessions, kept as the pool opens and closes them.
   * pg-pool names its sessions only through its events, so those open already are read from
   * its list (a private field: if it is gone, their NOTIFYs just wake as before).
   */
  private ownSessions(): { has(pid: number): boolean; stop(): void } {
    const pids = new Set<number>();
    const pidOf = (client: unknown): number | undefined =>
      (client as { processID?: number | null }).processID ?? undefined;
    const add = (client: unknown): void => {
      const pid = pidOf(client);
      if (pid !== undefined) pids.add(pid);
    };
    const remove = (client: unknown): void => {
      const pid = pidOf(client);
      if (pid !== undefined) pids.delete(pid);
    };
    const open = (this.pool as unknown as { _clients?: unknown[] })._clients;
    if (Array.isArray(open)) open.forEach(add);
    this.pool.on('connect', add);
    this.pool.on('remove', remove);
    return {
      has: (pid) => pids.has(pid),
      stop: () => {
        this.pool.off('connect', add);
        this.pool.off('remove', remove);
      },
    };
  }

  async ping(): Promise<void> {
    await this.query('SELECT 1', []);
  }

  /** As a named statement: each connection parses and plans it once. */
  private query(text: string, values: unknown[]): Promise<QueryResult> {
    let name = this.names.get(text);
    if (!name) {
      name = `taskq_queue_${this.names.size}`;
      this.names.set(text, name);
    }
    return this.pool.query({ name, text, values });
  }
}
