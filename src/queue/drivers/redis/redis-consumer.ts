import type Redis from 'ioredis';
import type { ConsumerHandle, DeliveryCallback } from '../../interfaces/queue-driver.interface';
import type { Delivery } from '../../interfaces/queue-message.interface';
import { ConsumerCredit } from '../consumer-credit';
import { encodeReceipt, type RedisReceipt } from './redis-receipt';
import { parseData } from './redis-data';

/** One entry handed out by the fetch script: level, entry id, stream deliveries, fields. */
type FetchedEntry = [string, string, number, string[]];
type FetchReply = [number, number, FetchedEntry[], string[], string[]];

/** What a consumer loop needs from its driver. */
export interface RedisConsumerHost {
  readonly leaseMs: number;
  readonly blockMs: number;
  /** Heartbeat TTL; dead consumers' entries are looked for three times per TTL. */
  readonly livenessMs: number;
  /** Runs the fetch script on the consumer's own connection. */
  fetch(
    conn: Redis,
    queue: string,
    consumer: string,
    credit: number,
    reclaim: boolean,
    takeOverDead: boolean,
  ): Promise<unknown>;
  /** Moves an entry this consumer cannot decode to the dead letters, with the reason. */
  deadLetterUndecodable(queue: string, receipt: RedisReceipt, reason: string): void;
  /** Hands entries back that were taken after the consumer was cancelled. */
  releaseTaken(entries: { queue: string; receipt: RedisReceipt }[]): void;
  logError(message: string, error: unknown): void;
}

/**
 * One consumer of one queue on its own blocking connection. The loop takes at most the free
 * prefetch credit per fetch, hands entries to the callback, and when the queue is empty blocks in
 * XREAD (which consumes nothing) until something arrives, a delay falls due or a lease could
 * expire. Errors never end the loop: ioredis reconnects and the loop fetches again.
 */
export class RedisConsumer implements ConsumerHandle {
  /**
   * Receipts handed to the callback and not yet settled. The driver reports every settle
   * attempt, a repeated one included, so credit returns only for a receipt still in here.
   */
  private readonly outstanding = new Set<string>();
  private readonly credit: ConsumerCredit;
  private blocking = false;
  private lastReclaim = 0;
  private lastTakeOver = 0;
  private signal?: () => void;
  private readonly done: Promise<void>;
  private cancelling?: Promise<void>;

  constructor(
    private readonly host: RedisConsumerHost,
    private readonly conn: Redis,
    readonly queue: string,
    readonly name: string,
    private readonly onDelivery: DeliveryCallback<unknown>,
    prefetch: number,
  ) {
    // No low-water mark: an idle consumer blocks in XREAD, so waiting for more free slots
    // would only delay the next fetch.
    this.credit = new ConsumerCredit({ prefetch });
    this.done = this.run();
  }

  pause(): void {
    this.credit.pause();
  }

  resume(): void {
    this.credit.resume();
    this.wake();
  }

  cancel(): Promise<void> {
    this.cancelling ??= (async () => {
      this.credit.cancel();
      this.wake();
      // A blocking XREAD holds nothing, so cutting it short loses nothing.
      if (this.blocking) this.conn.disconnect();
      await this.done;
      this.conn.disconnect();
    })();
    return this.cancelling;
  }

  /** Called by the driver once a settle of one of this consumer's deliveries went through. */
  settled(receipt: string): void {
    if (!this.outstanding.delete(receipt)) return;
    this.credit.give();
    this.wake();
  }

  private wake(): void {
    const signal = this.signal;
    this.signal = undefined;
    signal?.();
  }

  private waitForWake(): Promise<void> {
    return new Promise((resolve) => (this.signal = resolve));
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.credit.isCancelled) {
      if (!this.credit.hasRoom) {
        await this.waitForWake();
        // Let the rest of this turn's settles land, so one fetch takes them all as credit.
        await new Promise((resolve) => setImmediate(resolve));
        continue;
      }
      try {
        await this.once();
        failures = 0;
      } catch (error) {
        if (this.credit.isCancelled) break;
        failures += 1;
        if (failures === 1 || failures % 20 === 0) {
          this.host.logError(`consumer of ${this.queue} failed (${failures}x); retrying`, error);
        }
        await sleep(Math.min(2000, 50 * 2 ** Math.min(failures, 6)));
      }
    }
  }

  private async once(): Promise<void> {
    const reclaim = Date.now() - this.lastReclaim >= this.host.leaseMs / 2;
    const takeOverEvery = this.host.livenessMs / 3;
    const takeOver = Date.now() - this.lastTakeOver >= takeOverEvery;
    const credit = this.credit.room;
    const [, nextDue, entries, wakeKeys, wakeIds] = (await this.host.fetch(
      this.conn,
      this.queue,
      this.name,
      credit,
      reclaim,
      takeOver,
    )) as FetchReply;
    if (reclaim) this.lastReclaim = Date.now();
    if (takeOver) this.lastTakeOver = Date.now();
    if (this.credit.isCancelled) {
      this.host.releaseTaken(
        entries.map((e) => ({ queue: this.queue, receipt: this.receiptOf(e) })),
      );
      return;
    }
    for (const entry of entries) {
      let delivery: Delivery<unknown>;
      try {
        delivery = this.toDelivery(entry);
      } catch (error) {
        // Redelivered it would fail again forever: kept as a dead letter with the reason.
        this.host.deadLetterUndecodable(
          this.queue,
          this.receiptOf(entry),
          (error as Error).message,
        );
        continue;
      }
      this.outstanding.add(delivery.receipt);
      this.credit.take();
      this.onDelivery(delivery);
    }
    if (entries.length > 0 || this.credit.isCancelled || this.credit.isPaused) return;
    // Sleep no longer than the next delay's due time or the next reclaim or takeover pass.
    const reclaimIn = this.lastReclaim + this.host.leaseMs / 2 - Date.now();
    const takeOverIn = this.lastTakeOver + takeOverEvery - Date.now();
    const timeout = Math.max(
      1,
      Math.ceil(
        Math.min(this.host.blockMs, reclaimIn, takeOverIn, nextDue >= 0 ? nextDue : Infinity),
      ),
    );
    this.blocking = true;
    try {
      if (this.credit.isCancelled) return;
      await this.conn.xread('COUNT', 1, 'BLOCK', timeout, 'STREAMS', ...wakeKeys, ...wakeIds);
    } finally {
      this.blocking = false;
    }
  }

  private receiptOf(entry: FetchedEntry): RedisReceipt {
    return { level: entry[0], entryId: entry[1], consumer: this.name, count: Number(entry[2]) };
  }

  private toDelivery(entry: FetchedEntry): Delivery<unknown> {
    const fields: Record<string, string> = {};
    const raw = entry[3];
    for (let i = 0; i < raw.length; i += 2) fields[raw[i]] = raw[i + 1];
    const data = parseData(fields.d);
    if (!data || typeof fields.i !== 'string' || !Number.isInteger(Number(fields.a))) {
      throw new Error('not a message of this driver (fields i, a and a JSON d {body} expected)');
    }
    const receipt = this.receiptOf(entry);
    return {
      id: fields.i,
      queue: this.queue,
      body: data.body,
      headers: data.headers ?? {},
      priority: Number(entry[0]),
      attempt: Number(fields.a),
      deliveryCount: (Number(fields.c) || 0) + receipt.count,
      receipt: encodeReceipt(receipt),
    };
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
