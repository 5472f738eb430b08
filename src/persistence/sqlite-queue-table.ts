import type { Database } from 'better-sqlite3';
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
import { PacedRead } from '../common/paced-read';
import { SQLITE_COUNTS } from './sqlite-queue-counts';
import { TaskStatus } from './task-status.enum';

const { Queued, Running, Completed, Failed } = TaskStatus;

/** Where a queued row stands in line (the claim index's third column). */
const DUE = 'coalesce(run_at, created_at)';

/** How often the listener reads the file's change counter: the pickup delay across processes. */
const LISTEN_INTERVAL_MS = 5;

/** A write for the task statements' group commit; it settles once its transaction committed. */
export type SubmitWrite = <T>(run: () => T) => Promise<T>;

/**
 * The task table on SQLite as the `sqlite` driver's queue (QueueTable), on the task statements'
 * connection and group commit: a claim, a settle or a lease renewal joins the transaction of the
 * other writes of its event-loop turn, and answers once that committed. SQLite has one writer at
 * a time, so a claim needs no row locks: the UPDATE picks and takes its rows in one statement.
 * A task's row is its own message; plain messages are rows of MESSAGE_ACTION, as on PostgreSQL.
 *
 * A claim first looks without writing (a read takes no lock), so idle consumers and wake-ups
 * that find nothing cost no transaction.
 */
export class SqliteQueueTable implements QueueTable {
  readonly dialect = 'sqlite';
  private prepared?: ReturnType<SqliteQueueTable['prepare']>;
  /**
   * Counting walks the queue's waiting rows (about 125 ms with 1M waiting), on the event loop:
   * a slow count is reused for a while, so scrapes and dashboards cannot keep the loop busy.
   */
  private readonly counts = new PacedRead((queue: string) => this.readStats(queue));

  constructor(
    private readonly db: Database,
    private readonly submit: SubmitWrite,
  ) {}

  private get s(): ReturnType<SqliteQueueTable['prepare']> {
    this.prepared ??= this.prepare();
    return this.prepared;
  }

  private prepare() {
    const db = this.db;
    const open = `NOT EXISTS (SELECT 1 FROM taskq_queue_paused WHERE queue = @queue)`;
    // A claim whose lease ran out or whose owner stopped beating; or one made by a consumer
    // that keeps no lease in the row (another driver's, before an upgrade to this one) and
    // untouched for a lease: nothing else would ever free it.
    const expired = `SELECT id FROM tasks INDEXED BY idx_tasks_running_lease
      WHERE status = '${Running}' AND queue = @queue
        AND (lease_until < @now
             OR lease_owner IN (SELECT id FROM taskq_queue_consumers WHERE seen_at < @stale)
             OR (lease_owner IS NULL AND updated_at < @now - @lease))`;
    const due = `SELECT id FROM tasks INDEXED BY idx_tasks_queued_claim
      WHERE status = '${Queued}' AND queue = @queue AND ${DUE} <= @now
      ORDER BY priority DESC, ${DUE}, id`;
    const free = `claim_token = NULL, lease_until = NULL, lease_owner = NULL`;
    const held = `id = @id AND claim_token = @token AND status = '${Running}'`;
    return {
      anything: db.prepare(`SELECT ${open} AND (EXISTS (${due}) OR EXISTS (${expired}))`).pluck(),
      // Expired or orphaned claims first (a dead holder's work), then due rows in line.
      claim: db.prepare(
        `UPDATE tasks SET
           attempt = CASE WHEN status = '${Queued}' THEN attempt + 1 ELSE attempt END,
           status = '${Running}', claim_token = lower(hex(randomblob(16))),
           lease_until = @now + @lease, lease_owner = @owner, deliveries = deliveries + 1,
           started_at = @now, updated_at = @now
         WHERE id IN (SELECT id FROM (${expired} LIMIT @limit)
                      UNION ALL SELECT id FROM (${due} LIMIT @limit) LIMIT @limit)
           AND ${open}
         RETURNING id, queue, action, payload, priority, attempt, deliveries, claim_token,
           max_attempts, timeout_ms, created_at, run_at, trace_headers, actor_key, tenant`,
      ),
      insertMessage: db.prepare(
        `INSERT INTO tasks (id, action, payload, status, attempt, max_attempts, priority, queue,
           created_at, updated_at, run_at, idempotency_key)
         VALUES (@id, '${MESSAGE_ACTION}', @payload, '${Queued}', @attempt, 1, @priority, @queue,
           @now, @now, @runAt, @key)
         ON CONFLICT (tenant, idempotency_key) DO NOTHING`,
      ),
      byKey: db
        .prepare(`SELECT id FROM tasks WHERE tenant = 'default' AND idempotency_key = ?`)
        .pluck(),
      // A message row goes; a task row acked without an outcome (cancelled meanwhile, or a
      // handler that recorded nothing) lets go of its claim, finishing it if still running.
      deleteMessage: db.prepare(`DELETE FROM tasks WHERE ${held} AND action = '${MESSAGE_ACTION}'`),
      ackTask: db.prepare(
        `UPDATE tasks SET status = CASE status WHEN '${Running}' THEN '${Completed}' ELSE status END,
           processed_at = coalesce(processed_at, @now), updated_at = @now, ${free}
         WHERE id = @id AND claim_token = @token`,
      ),
      requeue: db.prepare(
        `UPDATE tasks SET status = '${Queued}',
           attempt = CASE WHEN @release THEN attempt - 1 ELSE attempt END,
           run_at = CASE WHEN @release THEN run_at ELSE @now + @delay END,
           updated_at = @now, ${free}
         WHERE ${held}`,
      ),
      dead: db.prepare(
        `UPDATE tasks SET status = '${Failed}', error = @reason, processed_at = @now,
           updated_at = @now, ${free},
           idempotency_key = CASE WHEN action = '${MESSAGE_ACTION}' THEN NULL ELSE idempotency_key END
         WHERE ${held}`,
      ),
      extend: db.prepare(`UPDATE tasks SET lease_until = @until WHERE ${held}`),
      heartbeat: db.prepare(
        `INSERT INTO taskq_queue_consumers (id, seen_at) VALUES (@owner, @at)
         ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at`,
      ),
      forgetOwners: db.prepare(
        `DELETE FROM taskq_queue_consumers WHERE seen_at < @before
           AND NOT EXISTS (SELECT 1 FROM tasks INDEXED BY idx_tasks_running_lease
                           WHERE status = '${Running}' AND lease_owner = taskq_queue_consumers.id)`,
      ),
      live: db
        .prepare(
          `SELECT EXISTS (SELECT 1 FROM tasks WHERE id = @key AND queue = @queue
                            AND status IN ('${Queued}', '${Running}'))
               OR EXISTS (SELECT 1 FROM tasks WHERE tenant = 'default' AND idempotency_key = @dedup
                            AND queue = @queue AND status IN ('${Queued}', '${Running}'))`,
        )
        .pluck(),
      // Each count reads a partial index of just its rows (SqliteQueueCountIndexes); only the
      // waiting count grows with the backlog, so stats() paces it (PacedRead).
      stats: db.prepare(
        `WITH c AS MATERIALIZED (SELECT
           ${SQLITE_COUNTS.queued} AS queued,
           ${SQLITE_COUNTS.delayed} AS delayed,
           (SELECT count(*) FROM tasks INDEXED BY idx_tasks_running_lease
             WHERE status = '${Running}' AND queue = @queue) AS inFlight,
           ${SQLITE_COUNTS.failed} AS dead,
           NOT ${open} AS paused)
         SELECT queued - delayed AS ready, delayed, inFlight, dead, paused FROM c`,
      ),
      deadLetters: db.prepare(
        `SELECT id, queue, action, payload, attempt, error, processed_at, max_attempts, timeout_ms
         FROM tasks WHERE queue = @queue AND status = '${Failed}'
         ORDER BY processed_at DESC, id DESC LIMIT @limit`,
      ),
      pause: db.prepare(`INSERT INTO taskq_queue_paused (queue) VALUES (?) ON CONFLICT DO NOTHING`),
      resume: db.prepare(`DELETE FROM taskq_queue_paused WHERE queue = ?`),
      dataVersion: db.prepare('PRAGMA data_version').pluck(),
      ping: db.prepare('SELECT 1').pluck(),
    };
  }

  async publish<T>(queue: string, messages: PublishMessage<T>[]): Promise<string[]> {
    const now = Date.now();
    const planned = messageRows(queue, messages, now);
    const { rows, byKey } = planned;
    // Tasks only: their committed rows are the messages.
    if (rows.length === 0) return planned.ids as string[];
    const { went, live } = await this.submit(() => {
      const went = new Set<string>();
      for (const row of rows) {
        if (this.s.insertMessage.run({ ...row, queue, now }).changes === 1) went.add(row.id);
      }
      // Keys a live message already has: answer its id instead.
      const live = new Map<string, string>();
      for (const key of takenKeys(byKey, went)) {
        const id = this.s.byKey.get(key) as string | undefined;
        if (id !== undefined) live.set(key, id);
      }
      return { went, live };
    });
    return publishedIds(queue, messages, planned, went, live);
  }

  async claim<T>(
    queue: string,
    limit: number,
    owner: string,
    leaseMs: number,
    staleBefore: number,
  ): Promise<TableDelivery<T>[]> {
    if (limit <= 0) return [];
    const lease = Math.trunc(leaseMs);
    if (!this.s.anything.get({ queue, now: Date.now(), stale: staleBefore, lease })) return [];
    return this.submit(() => {
      const now = Date.now();
      const params = { queue, limit, owner, lease, stale: staleBefore, now };
      const rows = this.s.claim.all(params) as ClaimedRow[];
      // RETURNING gives rows in no set order: hand them out as the line had them.
      rows.sort(inLine);
      const { deliveries, undecodable } = toDeliveries<T>(rows);
      // Poison rows are dead in the claim's own transaction: they never reach a consumer.
      for (const { row, reason } of undecodable) {
        this.s.dead.run({ id: row.id, token: row.claim_token, now, reason });
      }
      return deliveries;
    });
  }

  settle(delivery: Delivery, how: TableSettle): Promise<boolean> {
    const params = { id: delivery.id, token: delivery.receipt };
    return this.submit(() => {
      const now = Date.now();
      switch (how.kind) {
        case 'ack':
          return (
            this.s.deleteMessage.run(params).changes === 1 ||
            this.s.ackTask.run({ ...params, now }).changes === 1
          );
        case 'nack':
        case 'release': {
          const release = how.kind === 'release' ? 1 : 0;
          const delay = how.kind === 'nack' ? Math.trunc(how.delayMs) : 0;
          return this.s.requeue.run({ ...params, now, release, delay }).changes === 1;
        }
        case 'dead':
          return this.s.dead.run({ ...params, now, reason: how.reason }).changes === 1;
      }
    });
  }

  /** One transaction for all of them, each a primary-key probe. */
  async extendLeases(deliveries: Delivery[], ms: number): Promise<string[]> {
    if (deliveries.length === 0) return [];
    return this.submit(() => {
      const until = Date.now() + Math.trunc(ms);
      return deliveries
        .filter((d) => this.s.extend.run({ id: d.id, token: d.receipt, until }).changes === 0)
        .map((d) => d.receipt);
    });
  }

  async heartbeat(owner: string, gone = false): Promise<void> {
    const at = gone ? 0 : Date.now();
    await this.submit(() => this.s.heartbeat.run({ owner, at }));
  }

  /** As PgQueueTable.forgetOwners: a heartbeat row stays while its owner holds any claim. */
  async forgetOwners(): Promise<void> {
    const before = Date.now() - 86_400_000;
    await this.submit(() => this.s.forgetOwners.run({ before }));
  }

  async missingKeys(queue: string, keys: string[]): Promise<string[]> {
    return keys.filter((key) => !this.s.live.get({ key, queue, dedup: dedupKey(queue, key) }));
  }

  stats(queue: string): Promise<QueueStats> {
    return this.counts.get(queue);
  }

  private readStats(queue: string): QueueStats {
    const row = this.s.stats.get({ queue, now: Date.now() }) as Omit<QueueStats, 'queue'>;
    return {
      queue,
      ready: row.ready,
      inFlight: row.inFlight,
      delayed: row.delayed,
      dead: row.dead,
      paused: Boolean(row.paused),
    };
  }

  async deadLetters(queue: string, limit: number): Promise<DeadLetter[]> {
    const rows = this.s.deadLetters.all({ queue, limit }) as Parameters<typeof toDeadLetter>[0][];
    return rows.map(toDeadLetter);
  }

  async setPaused(queue: string, paused: boolean): Promise<void> {
    await this.submit(() => (paused ? this.s.pause : this.s.resume).run(queue));
    this.counts.forget(queue);
  }

  /** Nothing to send: listeners on the file see the commit itself (see listen). */
  async notify(): Promise<void> {}

  /**
   * SQLite has no notifications, but `PRAGMA data_version` changes whenever another connection
   * committed to the file, and reading it costs about a microsecond: checked every few
   * milliseconds, it wakes this process's consumers (of every queue: the counter does not say
   * which) soon after another process inserted, released or retried a row. This process's own
   * commits do not move it; the driver wakes its consumers for those directly.
   */
  async listen(
    onWake: (queue?: string) => void,
    onLost: (error: Error) => void,
  ): Promise<() => Promise<void>> {
    const read = (): number => this.s.dataVersion.get() as number;
    let seen = read();
    const timer = setInterval(() => {
      // Closed at shutdown (the connection may close before the driver): nothing was lost.
      if (!this.db.open) return clearInterval(timer);
      let now: number;
      try {
        now = read();
      } catch (error) {
        clearInterval(timer);
        onLost(error as Error);
        return;
      }
      if (now !== seen) {
        seen = now;
        onWake();
      }
    }, LISTEN_INTERVAL_MS);
    timer.unref();
    return () => {
      clearInterval(timer);
      return Promise.resolve();
    };
  }

  async ping(): Promise<void> {
    this.s.ping.get();
  }
}
