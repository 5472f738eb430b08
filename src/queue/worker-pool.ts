import { setMaxListeners } from 'node:events';
import { backoffDelay, type BackoffOptions } from './backoff';
import { NonRetryableError } from './errors/non-retryable.error';
import { StaleDeliveryError } from './errors/stale-delivery.error';
import type { FailureDecision, MessageProcessor } from './interfaces/message-processor.interface';
import type { ConsumerHandle, QueueDriver, Settle } from './interfaces/queue-driver.interface';
import type { Delivery } from './interfaces/queue-message.interface';
import type { SharedWrite } from './interfaces/shared-write.interface';
import { settleBy } from './settle';

/** Header a publisher may set to bound one message's attempts below or above the consumer's default. */
export const MAX_ATTEMPTS_HEADER = 'x-max-attempts';

export interface WorkerPoolOptions {
  /** Parallel workers (1..1000). */
  concurrency: number;
  /** Unsettled deliveries held at once, running plus buffered (1..10000). */
  prefetch: number;
  /** Attempts per message unless its MAX_ATTEMPTS_HEADER says otherwise. */
  maxAttempts: number;
  backoff: BackoffOptions;
  /**
   * Lease length of lease-based drivers: every delivery this pool holds, buffered or running,
   * is extended every `leaseMs / 2`, so a long handler never loses its message to another
   * worker while it is alive. Default 30000.
   */
  leaseMs?: number;
}

export interface WorkerPoolLogger {
  warn(message: string): void;
  error(message: string, stack?: string): void;
}

export interface WorkerPoolStats {
  queue: string;
  concurrency: number;
  prefetch: number;
  busy: number;
  buffered: number;
  succeeded: number;
  retried: number;
  deadLettered: number;
  /** Settle calls the driver refused because the delivery was no longer ours. */
  staleSettles: number;
}

/**
 * One consumer of one queue: the driver fills a buffer of at most `prefetch` deliveries and
 * `concurrency` workers pull from it. A full buffer with every worker busy means the driver is
 * not asked for more (backpressure lives in the driver's prefetch credit).
 *
 * Return acks; throw retries with backoff until the attempts are used up, then dead-letters.
 */
export class WorkerPool<T = unknown> {
  private readonly buffer: Delivery<T>[] = [];
  private readonly running = new Set<Delivery<T>>();
  /**
   * One signal for every handler of this pool: it aborts only on shutdown, for all of them at
   * once, so a controller per delivery would cost CPU and buy nothing.
   */
  private readonly shutdown = new AbortController();
  private readonly settling = new Set<Promise<void>>();
  private handle?: ConsumerHandle;
  private leaseTimer?: NodeJS.Timeout;
  private renewing = false;
  private stopping?: Promise<void>;
  private idle?: () => void;
  private counters = { succeeded: 0, retried: 0, deadLettered: 0, staleSettles: 0 };

  constructor(
    private readonly driver: QueueDriver,
    readonly queue: string,
    private readonly processor: MessageProcessor<T>,
    private readonly options: WorkerPoolOptions,
    private readonly logger: WorkerPoolLogger,
    private readonly random: () => number = Math.random,
  ) {
    // Each running handler may listen to the shared signal; that many are expected.
    setMaxListeners(options.concurrency + 10, this.shutdown.signal);
  }

  /** Subscribes to the queue. */
  start(): void {
    if (this.handle) return;
    const { prefetch, concurrency } = this.options;
    this.handle = this.driver.consume<T>(this.queue, (d) => this.accept(d), {
      prefetch,
      // Refill once half the buffered slack beyond the running handlers is used up.
      lowWater: prefetch - Math.max(1, (prefetch - concurrency) >> 1),
    });
    if (this.driver.capabilities.leases) {
      const leaseMs = this.options.leaseMs ?? 30_000;
      this.leaseTimer = setInterval(() => void this.renewLeases(leaseMs), leaseMs / 2);
      this.leaseTimer.unref();
    }
  }

  /**
   * Renews every delivery held, buffered or running, in one driver call where the driver has
   * extendLeases, else one extendLease each. A renewal still in flight when the next falls due
   * is not doubled, so a slow store is not sent a growing pile of them.
   */
  private async renewLeases(leaseMs: number): Promise<void> {
    if (this.renewing || (this.buffer.length === 0 && this.running.size === 0)) return;
    this.renewing = true;
    const held = [...this.buffer, ...this.running];
    try {
      if (this.driver.extendLeases) {
        for (const delivery of await this.driver.extendLeases(held, leaseMs)) {
          this.leaseLost(delivery, new StaleDeliveryError(this.queue, delivery.id));
        }
      } else {
        await Promise.all(
          held.map((delivery) =>
            this.driver
              .extendLease(delivery, leaseMs)
              .catch((error: unknown) => this.leaseLost(delivery, error)),
          ),
        );
      }
    } catch (error) {
      this.logger.warn(
        `queue ${this.queue}: leases of ${held.length} message(s) not extended: ${(error as Error).message}`,
      );
    } finally {
      this.renewing = false;
    }
  }

  /** A lost lease is not fatal: fencing stops this holder from recording anything. */
  private leaseLost(delivery: Delivery, error: unknown): void {
    this.logger.warn(
      `queue ${this.queue}: lease of message ${delivery.id} not extended: ${(error as Error).message}`,
    );
  }

  pause(): void {
    this.handle?.pause();
  }

  resume(): void {
    this.handle?.resume();
  }

  stats(): WorkerPoolStats {
    return {
      queue: this.queue,
      concurrency: this.options.concurrency,
      prefetch: this.options.prefetch,
      busy: this.running.size,
      buffered: this.buffer.length,
      ...this.counters,
    };
  }

  /**
   * Graceful stop: no new deliveries, buffered ones handed back, running ones given
   * `timeoutMs` to finish; the rest are aborted through their signal and left unsettled so the
   * broker redelivers them. Idempotent.
   */
  stop(timeoutMs: number): Promise<void> {
    this.stopping ??= this.drain(timeoutMs);
    return this.stopping;
  }

  private async drain(timeoutMs: number): Promise<void> {
    await this.handle?.cancel();
    for (const delivery of this.buffer.splice(0)) this.settle(delivery, { kind: 'release' });
    if (this.running.size > 0 && !(await this.waitIdle(timeoutMs))) {
      this.logger.warn(
        `queue ${this.queue}: ${this.running.size} handler(s) still running after ${timeoutMs} ms; aborting them`,
      );
      this.shutdown.abort(new ShutdownAbort());
      // A handler that honours its signal unwinds at once; one that ignores it is not waited for.
      await this.waitIdle(Math.min(1000, timeoutMs));
    }
    clearInterval(this.leaseTimer);
    await Promise.allSettled([...this.settling]);
  }

  private waitIdle(timeoutMs: number): Promise<boolean> {
    if (this.running.size === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.idle = () => {
        clearTimeout(timer);
        resolve(true);
      };
    });
  }

  private accept(delivery: Delivery<T>): void {
    if (this.stopping) {
      this.settle(delivery, { kind: 'release' });
      return;
    }
    // Higher priority first, FIFO within one: prefetched deliveries must not jump the order
    // the driver delivered by.
    const at = this.buffer.findIndex((held) => held.priority < delivery.priority);
    if (at === -1) this.buffer.push(delivery);
    else this.buffer.splice(at, 0, delivery);
    this.pump();
  }

  private pump(): void {
    while (
      this.running.size < this.options.concurrency &&
      this.buffer.length > 0 &&
      !this.stopping
    ) {
      void this.run(this.buffer.shift()!);
    }
  }

  private run(delivery: Delivery<T>): Promise<void> {
    const work = () => this.runOne(delivery);
    return this.processor.inScope ? this.processor.inScope(delivery, work) : work();
  }

  private async runOne(delivery: Delivery<T>): Promise<void> {
    const signal = this.shutdown.signal;
    this.running.add(delivery);
    try {
      const outcome = await this.processor.process(delivery, signal);
      if (outcome) {
        // The worker moves on; the outcome is recorded with the ack (see recordAndSettle).
        this.track(this.recordAndSettle(delivery, outcome, { kind: 'ack' }));
      } else {
        this.counters.succeeded += 1;
        this.settle(delivery, { kind: 'ack' });
      }
    } catch (error) {
      if (signal.reason instanceof ShutdownAbort) {
        // Left unsettled on purpose: the attempt did not fail, the process is going away.
        return;
      }
      await this.fail(delivery, error);
    } finally {
      this.running.delete(delivery);
      if (this.running.size === 0) this.idle?.();
      this.pump();
    }
  }

  private async fail(delivery: Delivery<T>, error: unknown): Promise<void> {
    const decision = this.decide(delivery, error);
    const message = error instanceof Error ? error.message : String(error);
    let outcome: SharedWrite | void;
    try {
      outcome = await this.processor.onFailure?.(delivery, error, decision);
    } catch (hookError) {
      this.logger.error(
        `queue ${this.queue}: recording the failure of message ${delivery.id} failed; releasing it`,
        hookError instanceof Error ? hookError.stack : String(hookError),
      );
      this.settle(delivery, { kind: 'release' });
      return;
    }
    let settle: Settle;
    if (decision.kind === 'retry') {
      this.counters.retried += 1;
      this.logger.warn(
        `queue ${this.queue}: message ${delivery.id} attempt ${delivery.attempt} failed (${message}); retry in ${decision.delayMs} ms`,
      );
      settle = { kind: 'nack', delayMs: decision.delayMs };
    } else {
      this.counters.deadLettered += 1;
      this.logger.error(
        `queue ${this.queue}: message ${delivery.id} dead-lettered: ${decision.reason}`,
        error instanceof Error ? error.stack : undefined,
      );
      settle = { kind: 'dead', reason: decision.reason };
    }
    if (outcome) this.track(this.recordAndSettle(delivery, outcome, settle));
    else this.settle(delivery, settle);
  }

  private decide(delivery: Delivery<T>, error: unknown): FailureDecision {
    const message = error instanceof Error ? error.message : String(error);
    if (error instanceof NonRetryableError) {
      return { kind: 'dead', reason: `non-retryable: ${message}` };
    }
    const header = Number(delivery.headers[MAX_ATTEMPTS_HEADER]);
    const maxAttempts = Number.isInteger(header) && header > 0 ? header : this.options.maxAttempts;
    if (delivery.attempt >= maxAttempts) {
      return {
        kind: 'dead',
        reason: `attempts exhausted (${delivery.attempt}/${maxAttempts}): ${message}`,
      };
    }
    return {
      kind: 'retry',
      delayMs: backoffDelay(delivery.attempt, this.options.backoff, this.random),
      nextAttempt: delivery.attempt + 1,
    };
  }

  /**
   * Commits the processor's outcome first and the settle after it ("ack last"; through
   * settleWith where the driver has it, as the table drivers, whose outcome is the settle).
   * An outcome that could not be recorded
   * releases the delivery, so it is tried again rather than settled unrecorded.
   */
  private async recordAndSettle(
    delivery: Delivery<T>,
    outcome: SharedWrite,
    settle: Settle,
  ): Promise<void> {
    let recorded = false;
    const counted: SharedWrite = {
      ...outcome,
      committed: (applied) => {
        recorded = true;
        if (settle.kind === 'ack') this.counters.succeeded += 1;
        outcome.committed(applied);
      },
    };
    try {
      if (this.driver.settleWith) {
        await this.driver.settleWith(delivery, counted, settle);
      } else {
        counted.committed(await counted.commit());
        await settleBy(this.driver, delivery, settle);
      }
    } catch (error) {
      if (!recorded) {
        this.logger.error(
          `queue ${this.queue}: recording the outcome of message ${delivery.id} failed; releasing it`,
          error instanceof Error ? error.stack : String(error),
        );
        this.settle(delivery, { kind: 'release' });
        return;
      }
      this.reportSettleError(delivery, settle.kind, error);
    }
  }

  /** Settles without blocking the worker; a refused settle is counted, never thrown. */
  private settle(delivery: Delivery<T>, how: Settle | { kind: 'release' }): void {
    const call =
      how.kind === 'release' ? this.driver.release(delivery) : settleBy(this.driver, delivery, how);
    this.track(call.catch((error: unknown) => this.reportSettleError(delivery, how.kind, error)));
  }

  private reportSettleError(delivery: Delivery<T>, how: string, error: unknown): void {
    if (error instanceof StaleDeliveryError) {
      this.counters.staleSettles += 1;
      this.logger.warn(`queue ${this.queue}: ${how} refused: ${error.message}`);
    } else {
      this.logger.error(
        `queue ${this.queue}: ${how} of message ${delivery.id} failed`,
        error instanceof Error ? error.stack : String(error),
      );
    }
  }

  /** Keeps a settle in flight visible to stop(), which waits for it. */
  private track(settle: Promise<void>): void {
    this.settling.add(settle);
    void settle.finally(() => this.settling.delete(settle));
  }
}

/** The abort reason used on shutdown, told apart from a cancel or a timeout. */
export class ShutdownAbort extends Error {
  override readonly name = 'ShutdownAbort';
  constructor() {
    super('the worker is shutting down');
  }
}
