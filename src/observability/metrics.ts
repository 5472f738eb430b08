import { Injectable, Logger, type OnApplicationBootstrap } from '@nestjs/common';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { QueueConsumerService, QueueDriverRegistry, type QueueStats } from '../queue';
import { TaskStatements } from '../persistence/task-statements';
import type { AppConfig } from '../config/app.config';
import { InjectAppConfig } from '../config/inject-app-config.decorator';
import { FALLBACK_ACTION } from '../handlers/task-handler.decorator';
import { TaskHandlerExplorer } from '../handlers/task-handler.explorer';

/** Seconds: from a fast handler or pickup to a long backlog. */
const LATENCY_BUCKETS = [
  0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800,
];
const HTTP_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10];

type QueueAction = 'queue' | 'action';

/**
 * Every Prometheus family taskq exports, in one registry per application instance (tests run
 * several apps in one process; the global registry would mix them). Event counters and
 * histograms are updated where things happen; queue gauges are read when scraped, at a cost
 * that does not grow with the backlog (see the README, "Metrics").
 */
@Injectable()
export class TaskMetrics implements OnApplicationBootstrap {
  readonly registry = new Registry();
  private readonly logger = new Logger(TaskMetrics.name);
  /** The queue reading of the scrape in progress. */
  private reading?: Promise<QueueSnapshot[]>;

  readonly accepted = this.counter(
    'taskq_tasks_accepted_total',
    'Tasks accepted (stored and queued).',
  );
  readonly completed = this.counter('taskq_tasks_completed_total', 'Tasks completed by a handler.');
  readonly failed = this.counter(
    'taskq_tasks_failed_total',
    'Tasks failed for good (attempts used up, or a non-retryable error).',
  );
  readonly retried = this.counter(
    'taskq_tasks_retried_total',
    'Failed attempts queued again for a retry after backoff.',
  );
  readonly cancelled = this.counter(
    'taskq_tasks_cancelled_total',
    'Tasks cancelled through the API.',
  );
  readonly timedOut = this.counter(
    'taskq_tasks_timed_out_total',
    'Attempts stopped by their time limit (also counted as retried or failed).',
  );
  readonly duplicates = this.counter(
    'taskq_deliveries_duplicate_total',
    'Deliveries that found nothing to claim (duplicate or stale), acked and skipped.',
  );
  readonly orphans = this.counter(
    'taskq_messages_orphaned_total',
    'Messages naming a task that does not exist, acked and dropped.',
  );
  readonly callbacksDelivered = this.counter(
    'taskq_callbacks_delivered_total',
    'Result callbacks the receiver accepted.',
  );
  readonly callbacksFailed = this.counter(
    'taskq_callbacks_failed_total',
    'Result callback attempts that failed (refused, unreachable or timed out).',
  );

  readonly handlerDuration = new Histogram({
    name: 'taskq_handler_duration_seconds',
    help: 'Time a handler ran, per attempt, by outcome (completed, failed, timed_out, cancelled).',
    labelNames: ['queue', 'action', 'outcome'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly pickupLatency = new Histogram({
    name: 'taskq_task_pickup_latency_seconds',
    help: 'From a task becoming due (created, or its runAt) to its first attempt starting.',
    labelNames: ['queue', 'action'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly endToEndLatency = new Histogram({
    name: 'taskq_task_end_to_end_latency_seconds',
    help: 'From a task being created to it finishing (completed or failed for good).',
    labelNames: ['queue', 'action', 'status'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly httpDuration = new Histogram({
    name: 'taskq_http_request_duration_seconds',
    help: 'HTTP requests by method, route template and status code.',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: HTTP_BUCKETS,
    registers: [this.registry],
  });

  constructor(
    private readonly queues: QueueDriverRegistry,
    private readonly consumers: QueueConsumerService,
    private readonly store: TaskStatements,
    private readonly handlers: TaskHandlerExplorer,
    @InjectAppConfig() private readonly config: AppConfig,
  ) {
    collectDefaultMetrics({ register: this.registry });
    this.scrapeTimeFamilies();
  }

  /**
   * Every counter starts at 0 for each registered action on its queue, so `rate()` and
   * `increase()` see the first event, and each family has samples from the first scrape.
   */
  onApplicationBootstrap(): void {
    const counters = [
      this.accepted,
      this.completed,
      this.failed,
      this.retried,
      this.cancelled,
      this.timedOut,
      this.duplicates,
      this.orphans,
      this.callbacksDelivered,
      this.callbacksFailed,
    ];
    for (const action of this.handlers.actions()) {
      if (action === FALLBACK_ACTION) continue; // its tasks carry their own action names
      const queue = this.handlers.resolve(action)?.queue ?? this.config.queue.name;
      for (const counter of counters) counter.inc({ queue, action }, 0);
    }
  }

  /** The exposition text; queue gauges are read now. */
  async scrape(): Promise<string> {
    this.reading = this.readQueues();
    try {
      return await this.registry.metrics();
    } finally {
      this.reading = undefined;
    }
  }

  private counter(name: string, help: string): Counter<QueueAction> {
    return new Counter({ name, help, labelNames: ['queue', 'action'], registers: [this.registry] });
  }

  /**
   * Families read at scrape time. One scrape reads each queue's driver counts once and the
   * task table's oldest due row once (an index seek), whatever the number of families.
   */
  private scrapeTimeFamilies(): void {
    const registers = [this.registry];
    // All queue gauges of one scrape share one reading (scrape() starts it); a registry read
    // some other way reads on its own.
    const read = (): Promise<QueueSnapshot[]> => this.reading ?? this.readQueues();
    const queueGauge = (
      name: string,
      help: string,
      pick: (s: QueueSnapshot) => number | undefined,
    ) =>
      new Gauge({
        name,
        help,
        labelNames: ['queue'] as const,
        registers,
        async collect() {
          this.reset();
          for (const s of await read()) {
            const value = pick(s);
            if (value !== undefined) this.set({ queue: s.queue }, value);
          }
        },
      });
    queueGauge('taskq_queue_waiting', 'Messages deliverable now.', (s) => s.stats?.ready);
    queueGauge(
      'taskq_queue_in_flight',
      'Messages delivered and not yet settled.',
      (s) => s.stats?.inFlight,
    );
    queueGauge(
      'taskq_queue_delayed',
      'Messages waiting for a delay or a retry backoff.',
      (s) => s.stats?.delayed,
    );
    queueGauge(
      'taskq_queue_dead_letters',
      "Messages in the queue's dead-letter store (failed).",
      (s) => s.stats?.dead,
    );
    queueGauge('taskq_queue_paused', '1 while the queue is paused.', (s) =>
      s.stats === undefined ? undefined : s.stats.paused ? 1 : 0,
    );
    queueGauge(
      'taskq_queue_oldest_waiting_age_seconds',
      'Age of the oldest queued task that is due, since it became due; 0 when none waits.',
      (s) => s.oldestAgeSeconds,
    );
    queueGauge('taskq_queue_up', "1 when the queue's driver answered this scrape.", (s) =>
      s.stats === undefined ? 0 : 1,
    );

    const consumers = this.consumers;
    const perQueue = (pick: (p: ReturnType<QueueConsumerService['stats']>[number]) => number) => {
      const totals = new Map<string, number>();
      for (const pool of consumers.stats()) {
        totals.set(pool.queue, (totals.get(pool.queue) ?? 0) + pick(pool));
      }
      return totals;
    };
    new Gauge({
      name: 'taskq_consumer_busy_workers',
      help: "Workers of this process's consumers running a handler now.",
      labelNames: ['queue'] as const,
      registers,
      collect() {
        this.reset();
        for (const [queue, n] of perQueue((p) => p.busy)) this.set({ queue }, n);
      },
    });
    new Gauge({
      name: 'taskq_consumer_concurrency',
      help: "Workers of this process's consumers (busy or idle).",
      labelNames: ['queue'] as const,
      registers,
      collect() {
        this.reset();
        for (const [queue, n] of perQueue((p) => p.concurrency)) this.set({ queue }, n);
      },
    });
    new Counter({
      name: 'taskq_settles_stale_total',
      help: "Settles the driver refused because the delivery was no longer this worker's (lease lost).",
      labelNames: ['queue'] as const,
      registers,
      collect() {
        // The worker pools count; this reads their totals (monotonic while the process lives).
        this.reset();
        for (const [queue, n] of perQueue((p) => p.staleSettles)) this.inc({ queue }, n);
      },
    });
  }

  private async readQueues(): Promise<QueueSnapshot[]> {
    const now = Date.now();
    return Promise.all(
      this.queues.queueNames().map(async (queue): Promise<QueueSnapshot> => {
        const [stats, oldest] = await Promise.all([
          this.queues
            .driverFor(queue)
            .stats(queue)
            .catch((error: Error) => {
              this.logger.debug(`metrics: queue ${queue}: driver stats failed: ${error.message}`);
              return undefined;
            }),
          this.store.oldestQueuedAt(queue, now).catch((error: Error) => {
            this.logger.debug(`metrics: queue ${queue}: oldest task not read: ${error.message}`);
            return undefined;
          }),
        ]);
        const oldestAgeSeconds =
          oldest === undefined ? undefined : oldest === null ? 0 : Math.max(0, now - oldest) / 1000;
        return { queue, stats, oldestAgeSeconds };
      }),
    );
  }
}

interface QueueSnapshot {
  queue: string;
  /** Undefined when the driver did not answer. */
  stats?: QueueStats;
  oldestAgeSeconds?: number;
}
