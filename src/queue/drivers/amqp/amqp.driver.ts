import { randomUUID } from 'node:crypto';
import {
  connect,
  type Channel,
  type ChannelModel,
  type ConfirmChannel,
  type Options,
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
import {
  deadQueue,
  delayBucket,
  delayQueue,
  HEADER,
  isBrokerHeader,
  mainQueue,
  MAX_PRIORITY,
} from './amqp-topology';

export interface AmqpDriverOptions {
  /** Default amqp://guest:guest@127.0.0.1:5672. Carries credentials; it is never logged. */
  url?: string;
  logger?: { error(message: string, stack?: string): void };
}

/** The most dead letters `deadLetters` reads to find the newest. */
const DEAD_LETTER_SCAN = 10_000;
/** Delay queues expire when unused; publishing does not count as use, so redeclare this often. */
const REDECLARE_DELAY_MS = 30_000;

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
    this.url = options.url ?? 'amqp://guest:guest@127.0.0.1:5672';
  }

  /** @internal The shared connection, opened on first use and again after it was lost. */
  connection(): Promise<ChannelModel> {
    if (this.closing) return Promise.reject(new DriverUnavailableError(this.kind, 'closed'));
    this.conn ??= connect(this.url, {
      clientProperties: { connection_name: this.connectionName },
    }).then(
      (model) => {
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
    const sends: Promise<void>[] = [];
    for (const m of messages) {
      const key = m.deduplicationKey === undefined ? undefined : `${queue}\0${m.deduplicationKey}`;
      const existing = key === undefined ? undefined : this.dedup.get(key);
      if (existing !== undefined) {
        ids.push(existing);
        continue;
      }
      const id = randomUUID();
      if (key !== undefined) this.dedup.set(key, id);
      ids.push(id);
      const priority = Math.trunc(m.priority ?? 0);
      const headers: Record<string, unknown> = {
        ...m.headers,
        [HEADER.attempt]: m.attempt ?? 1,
        [HEADER.deliveries]: 0,
        [HEADER.priority]: priority,
      };
      if (m.deduplicationKey !== undefined) headers[HEADER.dedup] = m.deduplicationKey;
      sends.push(
        this.send(
          queue,
          Buffer.from(JSON.stringify(m.body ?? null)),
          {
            messageId: id,
            priority: Math.min(MAX_PRIORITY, Math.max(0, priority)),
            headers,
          },
          m.delayMs ?? 0,
        ),
      );
    }
    await Promise.all(sends);
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
    this.forgetDedup(delivery.queue, held.message.properties.headers?.[HEADER.dedup], delivery.id);
    this.onChannel(delivery, () => held.channel.ack(held.message));
  }

  async nack(delivery: Delivery, options: { delayMs?: number } = {}): Promise<void> {
    const held = this.take(delivery);
    await this.republish(held, delivery.queue, options.delayMs ?? 0, {
      [HEADER.attempt]: delivery.attempt + 1,
      [HEADER.deliveries]: delivery.deliveryCount,
    });
    this.onChannel(delivery, () => held.channel.ack(held.message));
  }

  async release(delivery: Delivery): Promise<void> {
    const held = this.take(delivery);
    this.onChannel(delivery, () => held.channel.nack(held.message, false, true));
  }

  async deadLetter(delivery: Delivery, reason: string): Promise<void> {
    const held = this.take(delivery);
    await this.republish(held, deadQueue(delivery.queue).name, 0, {
      [HEADER.reason]: reason,
      [HEADER.deadAt]: Date.now(),
      [HEADER.attempt]: delivery.attempt,
    });
    this.forgetDedup(delivery.queue, held.message.properties.headers?.[HEADER.dedup], delivery.id);
    this.onChannel(delivery, () => held.channel.ack(held.message));
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
        const raw = message.properties.headers ?? {};
        const headers: Record<string, string> = {};
        for (const [name, value] of Object.entries(raw)) {
          if (!isBrokerHeader(name)) headers[name] = String(value);
        }
        letters.push({
          id: String(message.properties.messageId),
          queue,
          body: JSON.parse(message.content.toString('utf8')) as unknown,
          headers,
          attempt: Number(raw[HEADER.attempt] ?? 1),
          reason: String(raw[HEADER.reason] ?? ''),
          deadAt: new Date(Number(raw[HEADER.deadAt] ?? 0)),
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
  private onChannel(delivery: Delivery, settle: () => void): void {
    try {
      settle();
    } catch {
      throw new StaleDeliveryError(delivery.queue, delivery.id);
    }
  }

  private async republish(
    { message }: HeldMessage,
    target: string,
    delayMs: number,
    overrides: Record<string, unknown>,
  ): Promise<void> {
    const headers: Record<string, unknown> = {};
    for (const [name, value] of Object.entries(message.properties.headers ?? {})) {
      if (
        name === 'x-death' ||
        name.startsWith('x-first-death-') ||
        name.startsWith('x-last-death-')
      )
        continue;
      headers[name] = value;
    }
    Object.assign(headers, overrides);
    const { messageId, priority } = message.properties as Options.Publish;
    await this.send(target, message.content, { messageId, priority, headers }, delayMs);
  }

  /** Publishes one message with persistence and waits for the broker's confirm. */
  private async send(
    queue: string,
    content: Buffer,
    options: Options.Publish,
    delayMs: number,
  ): Promise<void> {
    const target = delayMs > 0 ? await this.ensureDelayQueue(queue, delayBucket(delayMs)) : queue;
    const channel = await this.confirmChannel();
    await new Promise<void>((resolve, reject) => {
      try {
        // `false` only asks for a slower pace; the channel buffers the message either way.
        channel.sendToQueue(
          target,
          content,
          { ...options, persistent: true, contentType: 'application/json' },
          (error: unknown) => (error ? reject(this.unavailable(error)) : resolve()),
        );
      } catch (error) {
        reject(this.unavailable(error));
      }
    });
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
