import type {
  ConsumeOptions,
  ConsumerHandle,
  DeliveryCallback,
} from '../../interfaces/queue-driver.interface';
import type { Delivery } from '../../interfaces/queue-message.interface';
import { ConsumerCredit } from '../consumer-credit';
import { encodeReceipt } from './receipt';
import type { ResolvedSqliteDriverOptions } from './sqlite-driver.options';
import { isBusyError, type ClaimedRow, type SqliteShard } from './sqlite-shard';

interface SqliteConsumer {
  queue: QueueRuntime;
  onDelivery: DeliveryCallback<unknown>;
  credit: ConsumerCredit;
}

/** Per-queue state of this process's consumers. */
interface QueueRuntime {
  name: string;
  consumers: SqliteConsumer[];
  /** Round-robin starts among consumers and among shards. */
  nextConsumer: number;
  nextShard: number;
  scheduled: boolean;
  /** Fill every free slot on the next pump, not only at the low-water mark. */
  eager: boolean;
  timer?: NodeJS.Timeout;
  /** The current idle poll interval, doubling from pollMinMs to pollMaxMs. */
  idleDelayMs: number;
}

interface Held {
  consumer: SqliteConsumer;
  settling: boolean;
}

interface Claimed {
  shard: number;
  token: string;
  row: ClaimedRow;
}

/**
 * This process's consumers of a sqlite driver: claims up to their free prefetch slots, one
 * transaction per shard, and hands the deliveries out round-robin. It looks again when woken
 * (a local publish, a settle, a resume, freed leases) or, while idle, on a backing-off poll
 * that finds messages other processes published.
 */
export class SqliteDispatcher {
  private readonly queues = new Map<string, QueueRuntime>();
  private readonly held = new Map<string, Held>();
  private claimSeq = 0;
  private running = false;
  /** The last unexpected claim failure, cleared by the next successful claim. */
  lastError?: unknown;

  constructor(
    private readonly shards: SqliteShard[],
    private readonly options: ResolvedSqliteDriverOptions,
    private readonly workerId: string,
    /** Hands back a delivery no consumer can take any more. */
    private readonly giveBack: (delivery: Delivery) => void,
    /** Keeps a claimed row it cannot decode as a dead letter (its body as stored), with why. */
    private readonly undecodable: (delivery: Delivery, reason: string) => void = () => undefined,
  ) {}

  /** Starts claiming (once the files are open). */
  start(): void {
    this.running = true;
    this.wakeAll();
  }

  /** Stops for good: no claim and no delivery after this returns. */
  stop(): void {
    this.running = false;
    for (const runtime of this.queues.values()) {
      if (runtime.timer) clearTimeout(runtime.timer);
      for (const consumer of runtime.consumers) consumer.credit.cancel();
      runtime.consumers = [];
    }
    this.held.clear();
  }

  consume(queue: string, onDelivery: DeliveryCallback<unknown>, options: ConsumeOptions) {
    const runtime = this.runtime(queue);
    const consumer: SqliteConsumer = {
      queue: runtime,
      onDelivery,
      credit: new ConsumerCredit(options),
    };
    runtime.consumers.push(consumer);
    this.schedule(runtime);
    const handle: ConsumerHandle = {
      pause: () => consumer.credit.pause(),
      resume: () => {
        consumer.credit.resume();
        this.schedule(runtime);
      },
      cancel: () => {
        // Deliveries are handed out synchronously after a claim, so none can follow this line.
        consumer.credit.cancel();
        runtime.consumers = runtime.consumers.filter((c) => c !== consumer);
        return Promise.resolve();
      },
    };
    return handle;
  }

  /** There may be work on `queue` now: claim on the next turn instead of waiting for a poll. */
  wake(queue: string): void {
    const runtime = this.queues.get(queue);
    if (runtime) this.schedule(runtime);
  }

  wakeAll(): void {
    for (const runtime of this.queues.values()) this.schedule(runtime);
  }

  /**
   * Marks the start of a settle. Answers a function to call once the lease has ended (settled,
   * or proved lost), which frees the consumer's prefetch slot; only the first of several
   * concurrent settles of one delivery gets one, so a slot is freed once.
   */
  settling(receipt: string): { ended: () => void; failed: () => void } | undefined {
    const held = this.held.get(receipt);
    if (!held || held.settling) return undefined;
    held.settling = true;
    return {
      ended: () => {
        if (this.held.get(receipt) !== held) return;
        this.held.delete(receipt);
        held.consumer.credit.give();
        if (!held.consumer.credit.isCancelled) this.schedule(held.consumer.queue, false);
      },
      failed: () => {
        held.settling = false;
      },
    };
  }

  private runtime(queue: string): QueueRuntime {
    let runtime = this.queues.get(queue);
    if (!runtime) {
      runtime = {
        name: queue,
        consumers: [],
        nextConsumer: 0,
        nextShard: 0,
        scheduled: false,
        eager: true,
        idleDelayMs: this.options.pollMinMs,
      };
      this.queues.set(queue, runtime);
    }
    return runtime;
  }

  /**
   * Claims on the next turn. `eager`: new work may have arrived (a publish, a resume, freed
   * leases), so fill every free slot now, giving the consumers' buffers the chance to put a
   * higher priority first. A settle alone refills only at the low-water mark (see pump).
   */
  private schedule(runtime: QueueRuntime, eager = true): void {
    if (eager) runtime.eager = true;
    runtime.idleDelayMs = this.options.pollMinMs;
    if (runtime.timer) {
      clearTimeout(runtime.timer);
      runtime.timer = undefined;
    }
    if (runtime.scheduled || !this.running) return;
    runtime.scheduled = true;
    setImmediate(() => {
      runtime.scheduled = false;
      this.pump(runtime);
    });
  }

  private poll(runtime: QueueRuntime, delayMs: number): void {
    if (runtime.scheduled || runtime.timer || !this.running) return;
    runtime.timer = setTimeout(() => {
      runtime.timer = undefined;
      runtime.eager = true; // other processes may have published meanwhile
      this.pump(runtime);
    }, delayMs);
  }

  /** Fills every consumer's free prefetch slots, or arranges to look again later. */
  private pump(runtime: QueueRuntime): void {
    if (!this.running) return;
    const room = runtime.consumers.reduce((sum, c) => sum + c.credit.room, 0);
    // With no room, a settle or a resume wakes the queue; there is nothing to poll for.
    if (room === 0) return;
    // Refill at the consumers' low-water marks: one still holding more has work buffered, and
    // topping it up message by message would cost a claim transaction per task. The next
    // settles wake the queue again.
    if (!runtime.eager && !runtime.consumers.some((c) => c.credit.wantsRefill)) {
      return;
    }
    runtime.eager = false;
    let claimed: Claimed[];
    try {
      if (this.shards[0].isPaused(runtime.name)) {
        return this.poll(runtime, this.options.pollMaxMs);
      }
      claimed = this.claim(runtime, room);
    } catch (error) {
      // Busy: another connection holds the write lock. Anything else is kept for ping().
      if (!isBusyError(error)) this.lastError = error;
      return this.poll(runtime, this.options.pollMaxMs);
    }
    this.lastError = undefined;
    if (claimed.length < room) {
      const delay = runtime.idleDelayMs;
      this.poll(runtime, delay);
      runtime.idleDelayMs = Math.min(Math.max(1, delay * 2), this.options.pollMaxMs);
    }
    this.distribute(runtime, claimed);
  }

  /** One transaction per shard holding work, from a rotating first shard so all drain fairly. */
  private claim(runtime: QueueRuntime, room: number): Claimed[] {
    const now = Date.now();
    const token = `${(++this.claimSeq).toString(36)}.${this.workerId}`;
    const until = now + this.options.leaseMs;
    const claimed: Claimed[] = [];
    const count = this.shards.length;
    const start = runtime.nextShard++ % count;
    for (let i = 0; i < count && claimed.length < room; i++) {
      const shard = this.shards[(start + i) % count];
      // A read first, so idle polling never takes the write lock.
      if (!shard.hasWork(runtime.name, now)) continue;
      const rows = shard.write(() =>
        shard.claim(runtime.name, room - claimed.length, this.workerId, token, until, now),
      );
      // RETURNING does not promise the subquery's ORDER BY.
      rows.sort((a, b) => b.priority - a.priority || a.seq - b.seq);
      for (const row of rows) claimed.push({ shard: shard.index, token, row });
    }
    return claimed;
  }

  private distribute(runtime: QueueRuntime, claimed: Claimed[]): void {
    for (const { shard, token, row } of claimed) {
      const receipt = encodeReceipt({ shard, seq: row.seq, token });
      const delivery: Delivery = {
        id: row.id,
        queue: runtime.name,
        body: row.body,
        headers: {},
        priority: row.priority,
        attempt: row.attempt,
        deliveryCount: row.deliveryCount,
        receipt,
      };
      try {
        Object.assign(delivery, {
          body: JSON.parse(row.body) as unknown,
          headers: JSON.parse(row.headers) as Record<string, string>,
        });
      } catch (error) {
        // Written by something else than this driver: redelivered it would fail forever.
        this.undecodable(delivery, (error as Error).message);
        continue;
      }
      const consumer = this.nextConsumerWithRoom(runtime);
      if (!consumer) {
        // Only when a callback paused or cancelled a consumer while this batch was handed out.
        this.giveBack(delivery);
        continue;
      }
      consumer.credit.take();
      this.held.set(receipt, { consumer, settling: false });
      consumer.onDelivery(delivery);
    }
  }

  private nextConsumerWithRoom(runtime: QueueRuntime): SqliteConsumer | undefined {
    const count = runtime.consumers.length;
    for (let i = 0; i < count; i++) {
      const index = (runtime.nextConsumer + i) % count;
      const consumer = runtime.consumers[index];
      if (consumer.credit.hasRoom) {
        runtime.nextConsumer = (index + 1) % count;
        return consumer;
      }
    }
    return undefined;
  }
}
