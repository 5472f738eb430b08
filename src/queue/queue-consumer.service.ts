import { BeforeApplicationShutdown, Inject, Injectable, Logger } from '@nestjs/common';
import { MAX_CONCURRENCY, MAX_PREFETCH } from '../common/queue-rules';
import { InvalidConsumerOptionsError } from './errors/invalid-consumer-options.error';
import type { MessageProcessor } from './interfaces/message-processor.interface';
import type { QueueModuleOptions } from './interfaces/queue-module-options.interface';
import { QueueDriverRegistry } from './queue-driver.registry';
import { QUEUE_MODULE_OPTIONS } from './queue.module-definition';
import { WorkerPool, type WorkerPoolOptions, type WorkerPoolStats } from './worker-pool';

/**
 * Starts consumers (one worker pool each) and stops them all gracefully before the application
 * shuts down, so drivers and the database are still open while in-flight work finishes.
 */
@Injectable()
export class QueueConsumerService implements BeforeApplicationShutdown {
  private readonly logger = new Logger(QueueConsumerService.name);
  private readonly pools: WorkerPool<unknown>[] = [];

  constructor(
    private readonly registry: QueueDriverRegistry,
    @Inject(QUEUE_MODULE_OPTIONS) private readonly options: QueueModuleOptions,
  ) {}

  /**
   * Starts a consumer on `queue`. Several consumers may read one queue; each has its own
   * concurrency and prefetch. Throws InvalidConsumerOptionsError for values out of bounds.
   */
  consume<T>(
    queue: string,
    processor: MessageProcessor<T>,
    overrides: Partial<WorkerPoolOptions> = {},
  ): WorkerPool<T> {
    const options = { ...this.options.consumerDefaults, ...overrides };
    validateConsumerOptions(queue, options);
    if (options.prefetch < options.concurrency) {
      this.logger.warn(
        `queue ${queue}: prefetch ${options.prefetch} < concurrency ${options.concurrency}; at most ${options.prefetch} workers will be busy`,
      );
    }
    const pool = new WorkerPool<T>(
      this.registry.driverFor(queue),
      queue,
      processor,
      options,
      this.logger,
    );
    this.pools.push(pool);
    pool.start();
    this.logger.log(
      `consuming ${queue} (concurrency ${options.concurrency}, prefetch ${options.prefetch})`,
    );
    return pool;
  }

  /**
   * Starts the configured consumers of every declared queue (a queue without configured
   * consumers gets one with the defaults). Returns the pools started.
   */
  consumeDeclared<T>(processor: MessageProcessor<T>): WorkerPool<T>[] {
    const configured = this.options.consumers ?? [];
    return this.registry.queueNames().flatMap((queue) => {
      const own = configured.filter((c) => c.queue === queue);
      if (own.length === 0) return [this.consume(queue, processor)];
      return own.map(({ concurrency, prefetch }) =>
        this.consume(queue, processor, { concurrency, prefetch }),
      );
    });
  }

  stats(): WorkerPoolStats[] {
    return this.pools.map((pool) => pool.stats());
  }

  async beforeApplicationShutdown(): Promise<void> {
    await Promise.all(this.pools.map((pool) => pool.stop(this.options.shutdownTimeoutMs)));
  }
}

/** Bounds from the consumer semantics taskq follows (concurrency 1..1000, prefetch 1..10000). */
export function validateConsumerOptions(queue: string, options: WorkerPoolOptions): void {
  const check = (field: string, value: number, max: number): void => {
    if (!Number.isInteger(value) || value < 1 || value > max) {
      throw new InvalidConsumerOptionsError(
        `consumer of ${queue}: ${field} must be an integer from 1 to ${max}, got ${value}`,
      );
    }
  };
  check('concurrency', options.concurrency, MAX_CONCURRENCY);
  check('prefetch', options.prefetch, MAX_PREFETCH);
  check('maxAttempts', options.maxAttempts, 1000);
}
