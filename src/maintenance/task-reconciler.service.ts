import {
  BeforeApplicationShutdown,
  Injectable,
  Logger,
  OnApplicationBootstrap,
} from '@nestjs/common';
import type { AppConfig } from '../config/app.config';
import { InjectAppConfig } from '../config/inject-app-config.decorator';
import { groupBy } from '../common/group-by';
import { type QueueDriver, QueueDriverRegistry } from '../queue';
import { RECLAIM_HEADER, type TaskKey, TaskStatements } from '../persistence/task-statements';
import { TasksService } from '../tasks/tasks.service';

/** Rows looked at per queue and kind in one pass, oldest first; the rest wait for the next. */
const PAGE = 500;
/** Keys read per page of the start-up sweep; rows are loaded only for tasks without a message. */
const SWEEP_PAGE = 5000;
/** Rows per load and publish. */
const CHUNK = 500;

export interface ReconcileReport {
  /** Queued tasks published again (a deduplicating driver drops those it still holds). */
  queued: number;
  /** Running tasks whose claim went silent, published again for a fenced takeover. */
  running: number;
}

/**
 * Keeps the broker in step with the task table, in the worker roles.
 *
 * At start-up, before any consumer starts (sweepAtStart): every task left queued whose message
 * is gone is published again, so a crash between committing a row and publishing its message
 * loses nothing. Queues on a driver that keeps nothing across a restart (memory) also lost
 * what was running: those rows are put back to queued first. Durable drivers redeliver running
 * work themselves (lease expiry, a closed channel).
 *
 * Then every RECONCILE_INTERVAL_MS (reconcile):
 *
 * - Queued tasks untouched for RECONCILE_AFTER_MS (and due that long) are published again.
 *   Their message may never have reached the broker (the process died between commit and
 *   publish, or the broker refused it) or the broker may have lost it. The task id is the
 *   deduplication key: on drivers with exact deduplication (memory, sqlite, redis) a task whose
 *   message still waits, is delayed or is in flight gets nothing new. On amqp deduplication is
 *   best-effort (RabbitMQ cannot look a message up by key), so a republish can duplicate a
 *   message that is in fact still queued; to keep a long backlog from being doubled, amqp
 *   queues are only topped up by the shortfall between queued rows and the broker's count of
 *   ready and delayed messages. A duplicate that gets through finds nothing to claim: the task
 *   still runs once (at worst a retry runs before its backoff has passed).
 *
 * - Running tasks whose row has not been touched for RECONCILE_AFTER_MS (claim or progress)
 *   may have lost their delivery for good (a message dead-lettered after repeated lease losses,
 *   a broker that lost data). A healthy long task looks the same in the table, so the table is
 *   not trusted: the reconciler publishes the next attempt under the task id's deduplication
 *   key, carrying the claim token it saw. While the task's delivery is alive anywhere (held,
 *   leased, or waiting to be redelivered after its holder died) the broker refuses the
 *   publish, so a healthy task is never run twice. Only when the broker no longer has any
 *   message for the task does the new one get through, and it may take the row over only if the
 *   row is still held under the token the reconciler saw. This needs exact deduplication, so
 *   on amqp running rows are left to the broker, which requeues the unacknowledged deliveries
 *   of a connection that closes (a worker that dies).
 *
 * And whenever a driver reports that its broker lost data or came back after an outage
 * (QueueDriver.onRecovery: the redis driver's epoch keys and reconnects), every queued task of
 * the queues concerned whose message is missing is published again at once, at full speed,
 * not a page per interval.
 *
 * Several workers may reconcile at once; each step above is safe to repeat.
 */
@Injectable()
export class TaskReconciler implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(TaskReconciler.name);
  private timer?: NodeJS.Timeout;
  private running?: Promise<unknown>;
  /** Per queue, the last queued row the previous pass looked at. */
  private readonly cursors = new Map<string, { updatedAt: number; id: string }>();
  private unsubscribe: (() => void)[] = [];
  /** Recoveries run one after another; queues reported meanwhile are gathered for the next. */
  private recovering?: Promise<void>;
  private readonly pendingRecovery = new Set<string>();

  constructor(
    @InjectAppConfig() private readonly config: AppConfig,
    private readonly store: TaskStatements,
    private readonly tasks: TasksService,
    private readonly queues: QueueDriverRegistry,
  ) {}

  onApplicationBootstrap(): void {
    const carrying = new Set(this.queues.queueNames().map((q) => this.queues.driverFor(q)));
    for (const driver of carrying) {
      const off = driver.onRecovery?.((event) => {
        this.logger.warn(
          `queue(s) ${event.queues.join(', ')}: ${event.reason}; publishing their queued tasks again`,
        );
        void this.recover(event.queues);
      });
      if (off) this.unsubscribe.push(off);
    }
    const { intervalMs } = this.config.reconcile;
    if (intervalMs === 0) return;
    this.timer = setInterval(() => {
      this.running ??= this.reconcile()
        .catch((error: unknown) =>
          this.logger.warn(`reconciling failed: ${(error as Error).message}`),
        )
        .finally(() => (this.running = undefined));
    }, intervalMs);
    this.timer.unref();
  }

  async beforeApplicationShutdown(): Promise<void> {
    clearInterval(this.timer);
    for (const off of this.unsubscribe.splice(0)) off();
    await Promise.all([this.running, this.recovering]);
  }

  /**
   * Publishes again, at full speed, every queued task of `queues` whose message the broker no
   * longer holds. Resolves when the pass that covers them is done.
   */
  recover(queues: readonly string[]): Promise<void> {
    for (const queue of queues) this.pendingRecovery.add(queue);
    this.recovering ??= (async () => {
      while (this.pendingRecovery.size > 0) {
        const batch = new Set(this.pendingRecovery);
        this.pendingRecovery.clear();
        try {
          const published = await this.republishQueued(batch);
          this.logger.log(
            `recovery of ${[...batch].join(', ')}: republished ${published} queued task(s)`,
          );
        } catch (error) {
          // The broker went away again; its next recovery event (or the interval) tries again.
          this.logger.warn(
            `recovery of ${[...batch].join(', ')} failed: ${(error as Error).message}`,
          );
        }
      }
    })().finally(() => (this.recovering = undefined));
    return this.recovering;
  }

  /**
   * The first pass, run once by the worker before its consumers start. Pages through every
   * queued task (oldest first, only keys) and publishes those whose message is missing. Returns
   * how many were published again.
   */
  async sweepAtStart(): Promise<number> {
    const volatile = this.queues
      .queueNames()
      .filter((queue) => !this.queues.driverFor(queue).capabilities.durable);
    const requeued = await this.store.requeueRunning(volatile);
    const published = await this.republishQueued();
    if (published > 0) {
      this.logger.log(
        `republished ${published} queued task(s) (${requeued} had been running when the last process stopped)`,
      );
    }
    return published;
  }

  /**
   * Pages through every queued task (oldest first, only keys), of `only` the given queues when
   * named, and publishes those whose message is missing. Returns how many were published.
   */
  private async republishQueued(only?: ReadonlySet<string>): Promise<number> {
    let published = 0;
    // Where every queue's messages are its task rows, no queued row can lack its message.
    const names = this.queues.queueNames();
    if (names.length > 0 && names.every((q) => this.queues.driverFor(q).capabilities.rowBacked)) {
      return 0;
    }
    let after: TaskKey | undefined;
    for (;;) {
      const page = await this.store.queuedKeys(SWEEP_PAGE, after);
      if (page.length === 0) break;
      after = page[page.length - 1];
      for (const [queue, keys] of groupBy(page, (key) => key.queue)) {
        if (only && !only.has(queue)) continue;
        const driver = this.queues.driverFor(queue);
        if (driver.capabilities.rowBacked) continue;
        const missing = await this.missing(driver, queue, keys);
        for (let i = 0; i < missing.length; i += CHUNK) {
          const rows = await this.store.queuedByIds(missing.slice(i, i + CHUNK));
          await this.tasks.publish(rows);
          published += rows.length;
        }
      }
    }
    return published;
  }

  /**
   * The ids among `tasks` whose message `driver` does not hold: asked of drivers that can say
   * (an index probe per task), all of them otherwise (the publish's deduplication decides).
   */
  private async missing(
    driver: QueueDriver,
    queue: string,
    tasks: readonly { id: string }[],
  ): Promise<string[]> {
    const ids = tasks.map((task) => task.id);
    return driver.missingKeys ? driver.missingKeys(queue, ids) : ids;
  }

  /** One pass over every declared queue. */
  async reconcile(now = Date.now()): Promise<ReconcileReport> {
    const report: ReconcileReport = { queued: 0, running: 0 };
    const before = now - this.config.reconcile.afterMs;
    for (const queue of this.queues.queueNames()) {
      const driver = this.queues.driverFor(queue);
      // The task row is the message (postgres driver): nothing can be missing or orphaned.
      if (driver.capabilities.rowBacked) continue;
      const exact = driver.capabilities.deduplication !== 'best-effort';

      // Each pass goes on where the last one stopped and wraps at the end: a long backlog of
      // healthy old tasks must not hide, pass after pass, the few behind it that lost their
      // message.
      let queued = await this.store.staleQueued(queue, before, PAGE, this.cursors.get(queue));
      const last = queued.at(-1);
      if (queued.length < PAGE || !last) this.cursors.delete(queue);
      else this.cursors.set(queue, { updatedAt: last.updatedAt, id: last.id });
      if (exact && queued.length > 0) {
        const missing = new Set(await this.missing(driver, queue, queued));
        queued = queued.filter((task) => missing.has(task.id));
      }
      if (!exact && queued.length > 0) {
        const stats = await driver.stats(queue);
        const shortfall =
          (await this.store.countQueuedDue(queue, now)) - stats.ready - stats.delayed;
        queued = queued.slice(0, Math.max(0, shortfall));
      }
      if (queued.length > 0) {
        await this.tasks.publish(queued);
        report.queued += queued.length;
      }

      if (!exact) continue;
      const running = (await this.store.staleRunning(queue, before, PAGE)).filter(
        (task) => task.claimToken !== null,
      );
      if (running.length > 0) {
        await this.tasks.publish(running, (task) => ({ [RECLAIM_HEADER]: task.claimToken! }));
        report.running += running.length;
      }
    }
    if (report.queued + report.running > 0) {
      this.logger.log(
        `republished ${report.queued} queued and ${report.running} silent running task(s) (deduplicated by the broker where their message still exists)`,
      );
    }
    return report;
  }
}
