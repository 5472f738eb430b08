import { randomUUID } from 'node:crypto';
import { DriverUnavailableError } from '../errors/driver-unavailable.error';
import { StaleDeliveryError } from '../errors/stale-delivery.error';
import type {
  ConsumeOptions,
  ConsumerHandle,
  DeliveryCallback,
  DriverCapabilities,
  QueueDriver,
  Settle,
} from '../interfaces/queue-driver.interface';
import type {
  DeadLetter,
  Delivery,
  PublishMessage,
  QueueStats,
} from '../interfaces/queue-message.interface';
import type { QueueTable, TableDelivery, TableSettle } from '../interfaces/queue-table.interface';
import type { SharedWrite } from '../interfaces/shared-write.interface';
import type { DriverLogger } from './driver-kind';
import { ConsumerCredit } from './consumer-credit';

export interface TableDriverOptions {
  /** Lease of a claim unless extended (the worker pool extends what it holds). */
  leaseMs: number;
  /** How often this process proves it is alive; its claims are taken after maxStalls misses. */
  heartbeatMs: number;
  maxStalls: number;
  /** Idle consumers claim again this often: the safety net behind the listener, and lease expiry. */
  pollMs: number;
  /**
   * Hear of new rows from other processes (PostgreSQL: LISTEN on a dedicated session, false
   * behind a transaction-mode pooler; SQLite: a cheap check of the file's change counter).
   */
  listen: boolean;
}

export const TABLE_DRIVER_DEFAULTS: TableDriverOptions = {
  leaseMs: 30_000,
  heartbeatMs: 1_000,
  maxStalls: 5,
  pollMs: 1_000,
  listen: true,
};

const quietLogger: DriverLogger = { error: () => undefined };

/**
 * A queue driver whose transport is the application's own task table (see docs/architecture.md,
 * "The task table as the queue"): `postgres` and `sqlite`, one subclass each. It holds no SQL:
 * every statement is a call of the QueueTable port, which the table's owner binds at boot
 * (bindTable). The driver keeps the per-consumer credit, the wake-ups (the table's listener,
 * local timers for delays, a slow poll) and this process's heartbeat.
 */
export abstract class TableQueueDriver implements QueueDriver {
  abstract readonly kind: string;
  /** The database whose task table this kind takes. */
  protected abstract readonly dialect: QueueTable['dialect'];
  /** Why no table is bound: the database this kind needs (DATABASE_URL, DATABASE_PATH). */
  protected abstract readonly unbound: string;
  readonly capabilities: DriverCapabilities = {
    durable: true,
    leases: true,
    deduplication: 'exact',
    rowBacked: true,
  };
  /** This driver instance, as the owner of its claims (see the heartbeat). */
  readonly owner = randomUUID();
  private readonly options: TableDriverOptions;
  private table?: QueueTable;
  private readonly consumers = new Set<TableConsumer>();
  /** Which consumer holds each outstanding receipt, so a settle returns credit once. */
  private readonly holders = new Map<string, TableConsumer>();
  private readonly paused = new Set<string>();
  private readonly timers = new Set<NodeJS.Timeout>();
  /** Due times with a wake-up armed (`<queue> <epoch ms>`), this process's or told of. */
  private readonly dueWakes = new Set<string>();
  private heartbeat?: NodeJS.Timeout;
  private unlisten?: () => Promise<void>;
  /** The listener's start (by the first consume; it restarts itself when lost). */
  private listening?: Promise<void>;
  private closing?: Promise<void>;

  constructor(
    options: Partial<TableDriverOptions> = {},
    private readonly logger: DriverLogger = quietLogger,
  ) {
    this.options = { ...TABLE_DRIVER_DEFAULTS, ...options };
  }

  /** The table port, from the table's owner (PersistenceModule, or a test). */
  bindTable(table: QueueTable): void {
    // Another database's table is not ours: unbound, connect fails naming what this kind needs.
    if (table.dialect !== this.dialect) return;
    this.table = table;
  }

  /**
   * Checks the database and starts the heartbeat. The listener waits for the first consume: a
   * process that only publishes (APP_ROLE=api, a driver whose queues another process consumes)
   * needs none, and on PostgreSQL it holds a session of its own.
   */
  async connect(): Promise<void> {
    const table = this.port();
    await table.ping();
    await table.heartbeat(this.owner);
    await table.forgetOwners();
    this.heartbeat = setInterval(() => {
      table
        .heartbeat(this.owner)
        .catch((error: unknown) => this.logger.error(`heartbeat failed: ${msg(error)}`));
    }, this.options.heartbeatMs);
    this.heartbeat.unref();
  }

  private async startListening(): Promise<void> {
    if (this.closing) return;
    try {
      const unlisten = await this.port().listen(
        (queue, dueAt) =>
          queue === undefined || dueAt === undefined ? this.wake(queue) : this.wakeAt(queue, dueAt),
        (error) => {
          this.logger.error(`listener lost (${error.message}); polling until it is back`);
          this.unlisten = undefined;
          this.later(() => void this.startListening(), this.options.pollMs);
        },
      );
      // Closed while it connected: nothing may keep its session open.
      if (this.closing) return void (await unlisten().catch(() => undefined));
      this.unlisten = unlisten;
      // What others wrote before it heard anything (since the consumers' first claim, or while
      // it was lost) is claimed now rather than at the next poll.
      this.wake();
    } catch (error) {
      this.logger.error(`listener failed (${msg(error)}); polling every ${this.options.pollMs} ms`);
      this.later(() => void this.startListening(), this.options.pollMs * 5);
    }
  }

  async publish<T>(queue: string, messages: PublishMessage<T>[]): Promise<string[]> {
    const table = this.port();
    if (messages.length === 0) return [];
    const ids = await table.publish(queue, messages);
    this.wakeAfterDelays(
      queue,
      messages.map((m) => m.delayMs ?? 0),
    );
    this.wake(queue);
    return ids;
  }

  consume<T>(
    queue: string,
    onDelivery: DeliveryCallback<T>,
    options: ConsumeOptions,
  ): ConsumerHandle {
    this.port();
    const consumer = new TableConsumer(
      this,
      queue,
      onDelivery as DeliveryCallback<unknown>,
      options,
    );
    this.consumers.add(consumer);
    if (this.options.listen) this.listening ??= this.startListening();
    consumer.pump();
    return consumer;
  }

  /** Claims up to `limit` rows for `consumer` (the consumer's fetch). */
  claim(consumer: TableConsumer, limit: number): Promise<TableDelivery[]> {
    const stale = Date.now() - this.options.heartbeatMs * this.options.maxStalls;
    return this.port().claim(consumer.queue, limit, this.owner, this.options.leaseMs, stale);
  }

  /** A delivery handed to `consumer`: its settle will come back here. */
  hold(consumer: TableConsumer, delivery: Delivery): void {
    this.holders.set(delivery.receipt, consumer);
  }

  dropConsumer(consumer: TableConsumer): void {
    this.consumers.delete(consumer);
  }

  get pollMs(): number {
    return this.options.pollMs;
  }

  isPaused(queue: string): boolean {
    return this.paused.has(queue);
  }

  reportError(message: string, error: unknown): void {
    this.logger.error(`${message}: ${msg(error)}`);
  }

  ack(delivery: Delivery): Promise<void> {
    return this.settle(delivery, { kind: 'ack' });
  }

  nack(delivery: Delivery, options: { delayMs?: number } = {}): Promise<void> {
    return this.settle(delivery, { kind: 'nack', delayMs: options.delayMs ?? 0 });
  }

  release(delivery: Delivery): Promise<void> {
    return this.settle(delivery, { kind: 'release' });
  }

  deadLetter(delivery: Delivery, reason: string): Promise<void> {
    return this.settle(delivery, { kind: 'dead', reason });
  }

  /**
   * A task row's outcome write is its settle (complete, retry with its backoff, or failed): it
   * is committed and nothing more is sent. A plain message row is settled after the write.
   */
  async settleWith(delivery: Delivery, write: SharedWrite, settle: Settle): Promise<void> {
    this.port();
    if (!(delivery as Partial<TableDelivery>).settledByOutcome) {
      write.committed(await write.commit());
      return this.settle(delivery, settle);
    }
    const applied = await write.commit();
    write.committed(applied);
    this.settled(delivery);
    if (settle.kind === 'nack') this.retryLater(delivery.queue, settle.delayMs);
  }

  private async settle(delivery: Delivery, how: TableSettle): Promise<void> {
    const table = this.port();
    const held = await table.settle(delivery, how);
    this.settled(delivery);
    if (!held) throw new StaleDeliveryError(delivery.queue, delivery.id);
    if (how.kind === 'nack' || how.kind === 'release') {
      const delay = how.kind === 'nack' ? how.delayMs : 0;
      if (delay > 0) this.retryLater(delivery.queue, delay);
      else void table.notify(delivery.queue).catch(() => undefined);
      this.wake(delivery.queue);
    }
  }

  /**
   * A row of `queue` is due again in `delayMs`: this process's consumers are woken then, and
   * other processes told when (their listeners wake theirs then too), so a retry waits for no
   * poll even where this process is busy or gone by then.
   */
  private retryLater(queue: string, delayMs: number): void {
    if (!(delayMs > 0)) return;
    this.wakeAfterDelays(queue, [delayMs]);
    void this.port()
      .notify(queue, Date.now() + delayMs)
      .catch(() => undefined);
  }

  /** The receipt's slot is free again (once, however many settles raced). */
  private settled(delivery: Delivery): void {
    const consumer = this.holders.get(delivery.receipt);
    if (!consumer) return;
    this.holders.delete(delivery.receipt);
    consumer.give();
  }

  async extendLease(delivery: Delivery, ms: number): Promise<void> {
    const lost = await this.port().extendLeases([delivery], ms);
    if (lost.length > 0) throw new StaleDeliveryError(delivery.queue, delivery.id);
  }

  /** One statement for everything a consumer holds. */
  async extendLeases(deliveries: Delivery[], ms: number): Promise<Delivery[]> {
    if (deliveries.length === 0) return [];
    const lost = new Set(await this.port().extendLeases(deliveries, ms));
    return deliveries.filter((delivery) => lost.has(delivery.receipt));
  }

  missingKeys(queue: string, keys: string[]): Promise<string[]> {
    if (keys.length === 0) return Promise.resolve([]);
    return this.port().missingKeys(queue, keys);
  }

  stats(queue: string): Promise<QueueStats> {
    return this.port().stats(queue);
  }

  deadLetters(queue: string, limit = 100): Promise<DeadLetter[]> {
    return this.port().deadLetters(queue, limit);
  }

  async pauseQueue(queue: string): Promise<void> {
    await this.port().setPaused(queue, true);
    this.paused.add(queue);
  }

  async resumeQueue(queue: string): Promise<void> {
    const table = this.port();
    await table.setPaused(queue, false);
    this.paused.delete(queue);
    await table.notify(queue);
    this.wake(queue);
  }

  async ping(): Promise<void> {
    const table = this.port();
    try {
      await table.ping();
    } catch (error) {
      throw new DriverUnavailableError(this.kind, msg(error));
    }
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      clearInterval(this.heartbeat);
      for (const timer of this.timers) clearTimeout(timer);
      await Promise.all([...this.consumers].map((consumer) => consumer.cancel()));
      await this.listening;
      await this.unlisten?.().catch(() => undefined);
      // What this process still holds is free for others at once, not after the lease.
      if (this.table) await this.table.heartbeat(this.owner, true).catch(() => undefined);
    })();
    return this.closing;
  }

  /** Wakes this process's consumers of `queue`, or of every queue (a NOTIFY, a due delay, a local settle). */
  wake(queue?: string): void {
    for (const consumer of this.consumers) {
      if (queue === undefined || consumer.queue === queue) consumer.pump();
    }
  }

  /** Wakes the consumers of `queue` at `dueAt` (epoch ms), once however often it is asked. */
  private wakeAt(queue: string, dueAt: number): void {
    const key = `${queue} ${dueAt}`;
    if (this.dueWakes.has(key)) return;
    const delay = dueAt - Date.now();
    if (delay <= 0) return this.wake(queue);
    this.dueWakes.add(key);
    // A millisecond late, never early: the row's run_at is compared in whole milliseconds.
    this.later(() => {
      this.dueWakes.delete(key);
      this.wake(queue);
    }, delay + 1);
  }

  private wakeAfterDelays(queue: string, delays: number[]): void {
    const now = Date.now();
    for (const delay of delays) if (delay > 0) this.wakeAt(queue, now + delay);
  }

  private later(fn: () => void, ms: number): void {
    if (this.closing) return;
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      fn();
    }, ms);
    timer.unref();
    this.timers.add(timer);
  }

  private port(): QueueTable {
    if (this.closing) throw new DriverUnavailableError(this.kind, 'closed');
    if (!this.table) {
      throw new DriverUnavailableError(this.kind, this.unbound);
    }
    return this.table;
  }
}

/**
 * One consumer: claims up to its free credit in one statement whenever it is woken (new rows, a
 * due delay, the poll) and has room, again at once while claims come back full, and otherwise
 * every pollMs. A settle alone refills only down at the low-water mark, so a busy consumer
 * claims its freed slots in batches rather than one statement per settle.
 */
class TableConsumer implements ConsumerHandle {
  private readonly credit: ConsumerCredit;
  private fetching = false;
  /** A wake-up (new rows) or a settle that came during a fetch: fetch again once it is done. */
  private again: 'wake' | 'refill' | undefined;
  private poll?: NodeJS.Timeout;
  private fetch?: Promise<void>;
  private cancelling?: Promise<void>;

  constructor(
    private readonly driver: TableQueueDriver,
    readonly queue: string,
    private readonly onDelivery: DeliveryCallback<unknown>,
    options: ConsumeOptions,
  ) {
    this.credit = new ConsumerCredit(options);
  }

  pause(): void {
    this.credit.pause();
  }

  resume(): void {
    this.credit.resume();
    this.pump();
  }

  cancel(): Promise<void> {
    this.cancelling ??= (async () => {
      this.credit.cancel();
      clearTimeout(this.poll);
      await this.fetch;
      this.driver.dropConsumer(this);
    })();
    return this.cancelling;
  }

  give(): void {
    this.credit.give();
    this.pump(true);
  }

  /** `refill`: called for a settle, which claims only down at the low-water mark. */
  pump(refill = false): void {
    if (this.fetching) {
      if (!refill || !this.again) this.again = refill ? 'refill' : 'wake';
      return;
    }
    if (this.credit.isCancelled) return;
    const room = refill ? this.credit.wantsRefill : this.credit.hasRoom;
    if (!room || this.driver.isPaused(this.queue)) {
      // Paused or full: a resume or a settle pumps again; the poll stays as the safety net.
      this.schedulePoll();
      return;
    }
    this.fetching = true;
    this.again = undefined;
    clearTimeout(this.poll);
    this.fetch = this.claim();
  }

  private async claim(): Promise<void> {
    const want = this.credit.room;
    let full = false;
    try {
      const deliveries = await this.driver.claim(this, want);
      full = deliveries.length === want && want > 0;
      for (const delivery of deliveries) {
        if (this.credit.isCancelled) {
          // Claimed while cancelling: hand it back at once.
          this.driver.hold(this, delivery);
          this.credit.take();
          void this.driver.release(delivery).catch(() => undefined);
          continue;
        }
        this.credit.take();
        this.driver.hold(this, delivery);
        this.onDelivery(delivery);
      }
    } catch (error) {
      if (!this.credit.isCancelled) this.driver.reportError(`claim on ${this.queue} failed`, error);
    }
    this.fetching = false;
    this.fetch = undefined;
    if (this.credit.isCancelled) return;
    // A full batch (more may be waiting) or a wake-up during the claim: again now, with the
    // room there is; settles during the claim: again if down at the low-water mark.
    const again = this.again;
    if (full || again === 'wake') queueMicrotask(() => this.pump());
    else if (again === 'refill') queueMicrotask(() => this.pump(true));
    else this.schedulePoll();
  }

  private schedulePoll(): void {
    if (this.credit.isCancelled) return;
    clearTimeout(this.poll);
    this.poll = setTimeout(() => this.pump(), this.driver.pollMs);
    this.poll.unref();
  }
}

function msg(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
