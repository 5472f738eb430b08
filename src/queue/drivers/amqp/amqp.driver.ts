import { randomUUID } from 'node:crypto';
import {
  connect,
  type Channel,
  type ChannelModel,
  type ConfirmChannel,
  type ConsumeMessage,
} from 'amqplib';
import { DriverUnavailableError } from '../../errors/driver-unavailable.error';
import { StaleDeliveryError } from '../../errors/stale-delivery.error';
import type {
  ConsumeOptions,
  ConsumerHandle,
  DeliveryCallback,
  DriverCapabilities,
  QueueDriver,
} from '../../interfaces/queue-driver.interface';
import type {
  DeadLetter,
  Delivery,
  PublishMessage,
  QueueStats,
} from '../../interfaces/queue-message.interface';
import { AmqpConsumer, type AmqpConsumerHost, type HeldMessage } from './amqp-consumer';
import { decodeMessage, encodeEnvelope, ENVELOPE_TYPE, type Envelope } from './amqp-envelope';
import { coalesceWrites } from './amqp-socket';
import { deadQueue, delayBucket, delayQueue, mainQueue, MAX_PRIORITY } from './amqp-topology';

export interface AmqpDriverOptions {
  /** Default amqp://guest:guest@127.0.0.1:5672. Carries credentials; it is never logged. */
  url?: string;
  /**
   * AMQP heartbeat in seconds, unless the URL sets one. RabbitMQ closes a connection that
   * missed two, requeueing its unacknowledged deliveries: a hung (stopped, partitioned) worker
   * then loses its tasks to the others within about twice this. Default 5; 0 turns it off.
   */
  heartbeatSec?: number;
  logger?: { error(message: string, stack?: string): void };
}

/** The most dead letters `deadLetters` reads to find the newest. */
const DEAD_LETTER_SCAN = 10_000;
/** Delay queues expire when unused; publishing does not count as use, so redeclare this often. */
const REDECLARE_DELAY_MS = 30_000;

/** One message on its way to a queue (or, when delayed, to one of its delay queues). */
interface Outgoing {
  queue: string;
  envelope: Envelope;
  delayMs: number;
}

/**
 * RabbitMQ through amqplib. One connection; a ConfirmChannel for publishes (publish resolves on
 * the broker's confirm), an admin channel for declarations, and one channel per consumer whose
 * basic.qos is the consumer's prefetch. When the connection drops, the driver reconnects on next
 * use and every consumer reopens its channel and subscribes again.
 *
 * - Delays: per-bucket TTL queues that dead-letter back to the main queue (no plugin needed).
 * - nack: republishes a copy with attempt + 1 (through the delay path when delayed), waits for
 *   the confirm, then acks the original. A crash in between delivers the message twice, never
 *   zero times. release is basic.nack with requeue (same attempt).
 * - Dead letters: republished with their reason to `<queue>.dead`, then the original is acked.
 * - Metadata (id, attempt, deliveries, priority, headers, dedup key) rides in a JSON envelope
 *   body, not in AMQP headers (see amqp-envelope.ts). A publish sends its whole batch, pausing
 *   only when the channel asks to (flow control), and resolves once every message is confirmed.
 * - Deduplication is best effort: only messages published and settled through this driver
 *   instance are known; RabbitMQ has no lookup by key.
 * - pauseQueue and in-flight counts are this driver instance's, not the broker's.
 */
export class AmqpQueueDriver implements QueueDriver, AmqpConsumerHost {
  readonly kind = 'amqp';
  readonly capabilities: DriverCapabilities = {
    durable: true,
    leases: false,
    deduplication: 'best-effort',
  };
  /** How the broker lists this driver's connection (rabbitmqctl list_connections). */
  readonly connectionName = `taskq-${randomUUID()}`;

  private readonly url: string;
  private conn?: Promise<ChannelModel>;
  private confirm?: Promise<ConfirmChannel>;
  private admin?: Promise<Channel>;
  private readonly declared = new Map<string, number>();
  private readonly delayBuckets = new Map<string, Set<number>>();
  private readonly dedup = new Map<string, string>();
  private readonly pausedQueues = new Set<string>();
  private readonly consumers = new Map<number, AmqpConsumer>();
  private consumerSeq = 0;
  private closing?: Promise<void>;

  constructor(private readonly options: AmqpDriverOptions = {}) {
    // Kept whole (heartbeat included), so error messages can have it cut out.
    this.url = withHeartbeat(
      options.url ?? 'amqp://guest:guest@127.0.0.1:5672',
      options.heartbeatSec ?? 5,
    );
  }

  /** @internal The shared connection, opened on first use and again after it was lost. */
  connection(): Promise<ChannelModel> {
    if (this.closing) return Promise.reject(new DriverUnavailableError(this.kind, 'closed'));
    this.conn ??= connect(this.url, {
      clientProperties: { connection_name: this.connectionName },
      // amqplib leaves Nagle on: a lone publish or ack then waits for the peer's delayed ACK
      // (up to 40 ms on Linux), which was most of the pickup latency.
      noDelay: true,
    }).then(
      (model) => {
        coalesceWrites(model);
        model.on('error', () => undefined);
        model.on('close', () => {
          this.conn = this.confirm = this.admin = undefined;
          this.declared.clear();
        });
        return model;
      },
      (error: unknown) => {
        this.conn = undefined;
        throw this.unavailable(error);
      },
    );
    return this.conn;
  }

  async publish<T>(queue: string, messages: PublishMessage<T>[]): Promise<string[]> {
    this.assertOpen();
    await this.ensureQueue(queue);
    const ids: string[] = [];
    const outgoing: Outgoing[] = [];
    const claimed: [string, string][] = [];
    for (const m of messages) {
      const key = m.deduplicationKey === undefined ? undefined : `${queue}\0${m.deduplicationKey}`;
      const existing = key === undefined ? undefined : this.dedup.get(key);
      if (existing !== undefined) {
        ids.push(existing);
        continue;
      }
      const id = randomUUID();
      if (key !== undefined) {
        this.dedup.set(key, id);
        claimed.push([key, id]);
      }
      ids.push(id);
      const envelope: Envelope = {
        i: id,
        a: m.attempt ?? 1,
        c: 0,
        p: Math.trunc(m.priority ?? 0),
        b: m.body ?? null,
      };
      if (m.headers && Object.keys(m.headers).length > 0) envelope.h = m.headers;
      if (m.deduplicationKey !== undefined) envelope.k = m.deduplicationKey;
      outgoing.push({ queue, envelope, delayMs: m.delayMs ?? 0 });
    }
    try {
      await this.send(outgoing);
    } catch (error) {
      // Unconfirmed messages may not exist: their keys must not refuse the next publish.
      for (const [key, id] of claimed) if (this.dedup.get(key) === id) this.dedup.delete(key);
      throw error;
    }
    return ids;
  }

  consume<T>(
    queue: string,
    onDelivery: DeliveryCallback<T>,
    options: ConsumeOptions,
  ): ConsumerHandle {
    this.assertOpen();
    const id = ++this.consumerSeq;
    const consumer = new AmqpConsumer(
      this,
      id,
      queue,
      onDelivery as DeliveryCallback<unknown>,
      options.prefetch,
    );
    this.consumers.set(id, consumer);
    return {
      pause: () => consumer.pause(),
      resume: () => consumer.resume(),
      cancel: () => consumer.cancel(),
    };
  }

  async ack(delivery: Delivery): Promise<void> {
    const held = this.take(delivery);
    this.forgetDedup(delivery.queue, held.envelope.k, delivery.id);
    this.settleHeld(delivery, held, 'ack');
  }

  async nack(delivery: Delivery, options: { delayMs?: number } = {}): Promise<void> {
    const held = this.take(delivery);
    const { r: _reason, t: _deadAt, ...envelope } = held.envelope;
    await this.send([
      {
        queue: delivery.queue,
        envelope: { ...envelope, a: delivery.attempt + 1, c: delivery.deliveryCount },
        delayMs: options.delayMs ?? 0,
      },
    ]);
    this.settleHeld(delivery, held, 'ack');
  }

  async release(delivery: Delivery): Promise<void> {
    const held = this.take(delivery);
    this.settleHeld(delivery, held, 'requeue');
  }

  async deadLetter(delivery: Delivery, reason: string): Promise<void> {
    const held = this.take(delivery);
    await this.send([
      {
        queue: deadQueue(delivery.queue).name,
        envelope: { ...held.envelope, a: delivery.attempt, r: reason, t: Date.now() },
        delayMs: 0,
      },
    ]);
    this.forgetDedup(delivery.queue, held.envelope.k, delivery.id);
    this.settleHeld(delivery, held, 'ack');
  }

  /** @internal Keeps an undecodable message's content, as text, in the dead-letter queue. */
  async deadLetterUndecodable(
    queue: string,
    message: ConsumeMessage,
    reason: string,
  ): Promise<void> {
    const { messageId, contentType } = message.properties as {
      messageId?: unknown;
      contentType?: unknown;
    };
    const envelope: Envelope = {
      i: typeof messageId === 'string' ? messageId : randomUUID(),
      a: 1,
      c: 0,
      p: 0,
      h: typeof contentType === 'string' ? { 'content-type': contentType } : {},
      r: `undecodable message: ${reason}`,
      t: Date.now(),
      b: message.content.toString('utf8'),
    };
    await this.send([{ queue: deadQueue(queue).name, envelope, delayMs: 0 }]);
  }

  /** AMQP has no leases: a delivery is ours until our channel closes. */
  async extendLease(): Promise<void> {}

  async stats(queue: string): Promise<QueueStats> {
    this.assertOpen();
    const admin = await this.adminChannel();
    const main = mainQueue(queue);
    const dead = deadQueue(queue);
    const ready = (await this.call(() => admin.assertQueue(main.name, main.options))).messageCount;
    const deadCount = (await this.call(() => admin.assertQueue(dead.name, dead.options)))
      .messageCount;
    let delayed = 0;
    for (const bucket of this.delayBuckets.get(queue) ?? []) {
      const q = delayQueue(queue, bucket);
      delayed += (await this.call(() => admin.assertQueue(q.name, q.options))).messageCount;
    }
    let inFlight = 0;
    for (const c of this.consumers.values()) if (c.queue === queue) inFlight += c.inFlight;
    return {
      queue,
      ready,
      inFlight,
      delayed,
      dead: deadCount,
      paused: this.pausedQueues.has(queue),
    };
  }

  /** Reads up to 10,000 dead letters without removing them (they return to the queue). */
  async deadLetters(queue: string, limit = 100): Promise<DeadLetter[]> {
    this.assertOpen();
    await this.ensureQueue(queue);
    const connection = await this.connection();
    const channel = await this.call(() => connection.createChannel());
    channel.on('error', () => undefined);
    const letters: DeadLetter[] = [];
    try {
      for (let i = 0; i < DEAD_LETTER_SCAN; i++) {
        const message = await channel.get(deadQueue(queue).name, { noAck: false });
        if (!message) break;
        const e = decodeMessage(message);
        letters.push({
          id: e.i,
          queue,
          body: e.b,
          headers: e.h ?? {},
          attempt: e.a,
          reason: e.r ?? '',
          deadAt: new Date(e.t ?? 0),
        });
      }
    } finally {
      // Closing the channel requeues every message it got, in their original order.
      await channel.close().catch(() => undefined);
    }
    return letters.slice(-limit).reverse();
  }

  async pauseQueue(queue: string): Promise<void> {
    this.pausedQueues.add(queue);
    for (const c of this.consumers.values()) if (c.queue === queue) c.sync();
  }

  async resumeQueue(queue: string): Promise<void> {
    this.pausedQueues.delete(queue);
    for (const c of this.consumers.values()) if (c.queue === queue) c.sync();
  }

  /** @internal */
  isQueuePaused(queue: string): boolean {
    return this.pausedQueues.has(queue);
  }

  async ping(): Promise<void> {
    this.assertOpen();
    await this.adminChannel();
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      for (const consumer of this.consumers.values()) {
        try {
          await consumer.close();
        } catch (error) {
          this.logError(`closing a consumer of ${consumer.queue} failed`, error);
        }
      }
      this.consumers.clear();
      const conn = this.conn;
      this.conn = undefined;
      try {
        await (await conn)?.close();
      } catch {
        // Already closed or never opened: nothing left to release.
      }
    })();
    return this.closing;
  }

  /** @internal Declares a queue's main and dead-letter queues once per connection. */
  async ensureQueue(queue: string): Promise<void> {
    if (this.declared.has(queue)) return;
    const admin = await this.adminChannel();
    const main = mainQueue(queue);
    const dead = deadQueue(queue);
    await this.call(() => admin.assertQueue(main.name, main.options));
    await this.call(() => admin.assertQueue(dead.name, dead.options));
    this.declared.set(queue, Date.now());
  }

  /** @internal */
  logError(message: string, error: unknown): void {
    const detail = error instanceof Error ? (error.stack ?? error.message) : String(error);
    if (this.options.logger) this.options.logger.error(`amqp driver: ${message}`, detail);
    else console.error(`amqp driver: ${message}\n${detail}`);
  }

  private take(delivery: Delivery): HeldMessage {
    this.assertOpen();
    const consumerId = Number(delivery.receipt.split(':')[0]);
    const held = this.consumers.get(consumerId)?.take(delivery.receipt);
    if (!held) throw new StaleDeliveryError(delivery.queue, delivery.id);
    return held;
  }

  /** A settle on a channel that closed meanwhile: RabbitMQ has requeued the message. */
  private settleHeld(delivery: Delivery, held: HeldMessage, how: 'ack' | 'requeue'): void {
    if (!held.consumer.settle(held, how)) throw new StaleDeliveryError(delivery.queue, delivery.id);
  }

  /**
   * Publishes persistent messages and resolves once the broker confirmed every one; rejects on
   * the first nack or a channel lost with confirms outstanding.
   */
  private async send(outgoing: Outgoing[]): Promise<void> {
    if (outgoing.length === 0) return;
    const targets: string[] = [];
    for (const o of outgoing) {
      targets.push(
        o.delayMs > 0 ? await this.ensureDelayQueue(o.queue, delayBucket(o.delayMs)) : o.queue,
      );
    }
    const channel = await this.confirmChannel();
    let left = outgoing.length;
    let resolveAll!: () => void;
    let rejectAll!: (error: unknown) => void;
    const confirmed = new Promise<void>((resolve, reject) => {
      resolveAll = resolve;
      rejectAll = (error) => reject(this.unavailable(error));
    });
    // A rejection while we wait for 'drain' is seen by the await at the end, not unhandled.
    confirmed.catch(() => undefined);
    const onConfirm = (error: unknown): void => {
      if (error) rejectAll(error);
      else if (--left === 0) resolveAll();
    };
    for (let i = 0; i < outgoing.length; i++) {
      const { envelope } = outgoing[i];
      let accepted: boolean;
      try {
        accepted = channel.sendToQueue(
          targets[i],
          encodeEnvelope(envelope),
          {
            persistent: true,
            contentType: ENVELOPE_TYPE,
            priority: Math.min(MAX_PRIORITY, Math.max(0, envelope.p)),
          },
          onConfirm,
        );
      } catch (error) {
        rejectAll(error);
        break;
      }
      // Flow control: the channel buffered the message but asks us to wait before the next.
      if (!accepted && i < outgoing.length - 1) await drained(channel);
    }
    await confirmed;
  }

  private async ensureDelayQueue(queue: string, bucket: number): Promise<string> {
    const q = delayQueue(queue, bucket);
    const last = this.declared.get(q.name);
    if (last === undefined || Date.now() - last > REDECLARE_DELAY_MS) {
      const admin = await this.adminChannel();
      await this.call(() => admin.assertQueue(q.name, q.options));
      this.declared.set(q.name, Date.now());
      let buckets = this.delayBuckets.get(queue);
      if (!buckets) this.delayBuckets.set(queue, (buckets = new Set()));
      buckets.add(bucket);
    }
    return q.name;
  }

  private confirmChannel(): Promise<ConfirmChannel> {
    this.confirm ??= this.openChannel(
      (c) => c.createConfirmChannel(),
      () => (this.confirm = undefined),
    );
    return this.confirm;
  }

  private adminChannel(): Promise<Channel> {
    this.admin ??= this.openChannel(
      (c) => c.createChannel(),
      () => (this.admin = undefined),
    );
    return this.admin;
  }

  private openChannel<C extends Channel>(
    create: (connection: ChannelModel) => Promise<C>,
    forget: () => void,
  ): Promise<C> {
    return (async () => {
      try {
        const channel = await this.call(async () => create(await this.connection()));
        channel.on('error', () => undefined);
        channel.on('close', forget);
        return channel;
      } catch (error) {
        forget();
        throw error;
      }
    })();
  }

  private forgetDedup(queue: string, key: unknown, id: string): void {
    if (typeof key !== 'string') return;
    const mapKey = `${queue}\0${key}`;
    if (this.dedup.get(mapKey) === id) this.dedup.delete(mapKey);
  }

  private assertOpen(): void {
    if (this.closing) throw new DriverUnavailableError(this.kind, 'closed');
  }

  private async call<R>(command: () => Promise<R>): Promise<R> {
    try {
      return await command();
    } catch (error) {
      throw error instanceof DriverUnavailableError ? error : this.unavailable(error);
    }
  }

  private unavailable(error: unknown): DriverUnavailableError {
    // amqplib's messages name the host at most; the URL, with its password, is never included.
    const message = error instanceof Error ? error.message : String(error);
    return new DriverUnavailableError(this.kind, message.split(this.url).join('<url>'));
  }
}

/** The URL with a heartbeat parameter, unless it names one itself. */
function withHeartbeat(url: string, seconds: number): string {
  const parsed = new URL(url);
  if (parsed.searchParams.has('heartbeat')) return url;
  parsed.searchParams.set('heartbeat', String(seconds));
  return parsed.toString();
}

/** Resolves on the channel's next 'drain', or when it closes (the next send then throws). */
function drained(channel: Channel): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      channel.off('drain', done);
      channel.off('close', done);
      resolve();
    };
    channel.on('drain', done);
    channel.on('close', done);
  });
}
