import type { Channel, ChannelModel, ConsumeMessage } from 'amqplib';
import type { ConsumerHandle, DeliveryCallback } from '../../interfaces/queue-driver.interface';
import type { Delivery } from '../../interfaces/queue-message.interface';
import { decodeMessage, type Envelope } from './amqp-envelope';

/** What a consumer needs from its driver. */
export interface AmqpConsumerHost {
  connection(): Promise<ChannelModel>;
  ensureQueue(queue: string): Promise<void>;
  isQueuePaused(queue: string): boolean;
  /** Keeps a message that cannot be decoded in the queue's dead letters, with the reason. */
  deadLetterUndecodable(queue: string, message: ConsumeMessage, reason: string): Promise<void>;
  logError(message: string, error: unknown): void;
}

/** A delivery still held on the consumer's current channel. */
export interface HeldMessage {
  consumer: AmqpConsumer;
  channel: Channel;
  message: ConsumeMessage;
  /** The decoded message, for republishing it (nack, dead letter). */
  envelope: Envelope;
}

/**
 * One consumer of one queue on its own channel, whose basic.qos is the consumer's prefetch. A
 * closed channel (connection lost, channel error) is reopened with backoff and the consumer
 * subscribes again; deliveries of the old channel are forgotten, because RabbitMQ requeued them
 * and settling them would be refused (StaleDeliveryError).
 *
 * Acks are gathered for one event-loop turn: the oldest unsettled deliveries that were all
 * acked go out as one basic.ack with `multiple`, the rest one by one. A delivery being nacked
 * (its copy waiting for a confirm) stays unsettled on the channel, so no `multiple` covers it.
 */
export class AmqpConsumer implements ConsumerHandle {
  private channel?: Channel;
  private consumerTag?: string;
  private generation = 0;
  private paused = false;
  private cancelled = false;
  private failures = 0;
  private reopenTimer?: NodeJS.Timeout;
  private syncing: Promise<void> = Promise.resolve();
  private readonly held = new Map<string, HeldMessage>();
  /** Deliveries of the current channel not yet acked or nacked to the broker, oldest first. */
  private readonly unsettled = new Map<number, ConsumeMessage>();
  private acks: number[] = [];
  private flushScheduled = false;

  constructor(
    private readonly host: AmqpConsumerHost,
    readonly id: number,
    readonly queue: string,
    private readonly onDelivery: DeliveryCallback<unknown>,
    private readonly prefetch: number,
  ) {
    void this.open();
  }

  get inFlight(): number {
    return this.held.size;
  }

  pause(): void {
    this.paused = true;
    this.sync();
  }

  resume(): void {
    this.paused = false;
    this.sync();
  }

  /** Subscribes or unsubscribes after a change of the local or the queue-wide pause. */
  sync(): void {
    this.syncing = this.syncing.then(() => this.applyPause()).catch(() => undefined);
  }

  async cancel(): Promise<void> {
    this.cancelled = true;
    clearTimeout(this.reopenTimer);
    this.sync();
    await this.syncing;
    // Unsettled deliveries keep the channel open so they can still be settled.
    if (this.held.size === 0) await this.closeChannel();
  }

  /** Takes a held delivery out for settling; undefined when it is no longer current. */
  take(receipt: string): HeldMessage | undefined {
    const held = this.held.get(receipt);
    if (held) this.held.delete(receipt);
    if (this.cancelled && this.held.size === 0) {
      // After the caller's ack or nack went out on this channel.
      setImmediate(() => {
        if (this.held.size === 0) void this.closeChannel();
      });
    }
    return held;
  }

  /**
   * Settles a held delivery on its channel: `ack` in the next batch, `requeue` at once
   * (basic.nack with requeue). False when that channel is gone (RabbitMQ requeued it).
   */
  settle(held: HeldMessage, how: 'ack' | 'requeue'): boolean {
    if (held.channel !== this.channel) return false;
    const tag = held.message.fields.deliveryTag;
    if (how === 'requeue') {
      this.unsettled.delete(tag);
      held.channel.nack(held.message, false, true);
      return true;
    }
    this.acks.push(tag);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flushAcks());
    }
    return true;
  }

  private flushAcks(): void {
    this.flushScheduled = false;
    const channel = this.channel;
    const tags = this.acks;
    this.acks = [];
    if (!channel || tags.length === 0) return;
    const acked = new Set(tags);
    let last: ConsumeMessage | undefined;
    for (const [tag, message] of this.unsettled) {
      if (!acked.has(tag)) break;
      last = message;
      acked.delete(tag);
      this.unsettled.delete(tag);
    }
    try {
      if (last) channel.ack(last, true);
      for (const tag of acked) {
        const message = this.unsettled.get(tag);
        if (!message) continue;
        this.unsettled.delete(tag);
        channel.ack(message);
      }
    } catch {
      // The channel closed under us: RabbitMQ requeues what it held.
    }
  }

  async close(): Promise<void> {
    this.cancelled = true;
    clearTimeout(this.reopenTimer);
    await this.closeChannel();
  }

  private async open(): Promise<void> {
    if (this.cancelled) return;
    try {
      const connection = await this.host.connection();
      await this.host.ensureQueue(this.queue);
      const channel = await connection.createChannel();
      channel.on('error', () => undefined);
      channel.on('close', () => this.lost(channel));
      await channel.prefetch(this.prefetch);
      this.generation += 1;
      this.channel = channel;
      this.unsettled.clear();
      this.acks = [];
      this.consumerTag = undefined;
      this.failures = 0;
      this.sync();
    } catch (error) {
      this.failures += 1;
      if (this.failures === 1 || this.failures % 20 === 0) {
        this.host.logError(`consumer of ${this.queue} cannot open a channel; retrying`, error);
      }
      this.scheduleReopen();
    }
  }

  private lost(channel: Channel): void {
    if (channel !== this.channel) return;
    this.channel = undefined;
    this.consumerTag = undefined;
    this.held.clear();
    this.unsettled.clear();
    this.acks = [];
    this.scheduleReopen();
  }

  private scheduleReopen(): void {
    if (this.cancelled || this.reopenTimer) return;
    const delay = Math.min(5000, 100 * 2 ** Math.min(this.failures, 6));
    this.reopenTimer = setTimeout(() => {
      this.reopenTimer = undefined;
      void this.open();
    }, delay);
  }

  private async applyPause(): Promise<void> {
    const channel = this.channel;
    if (!channel) return;
    const wanted = !this.cancelled && !this.paused && !this.host.isQueuePaused(this.queue);
    if (wanted && !this.consumerTag) {
      const generation = this.generation;
      const { consumerTag } = await channel.consume(this.queue, (message) =>
        this.deliver(channel, generation, message),
      );
      this.consumerTag = consumerTag;
    } else if (!wanted && this.consumerTag) {
      const tag = this.consumerTag;
      this.consumerTag = undefined;
      await channel.cancel(tag);
    }
  }

  private deliver(channel: Channel, generation: number, message: ConsumeMessage | null): void {
    if (message === null) {
      // The server cancelled us (queue deleted): subscribe again on a fresh channel.
      void channel.close().catch(() => undefined);
      return;
    }
    if (this.cancelled || generation !== this.generation) {
      // Arrived between basic.cancel and its reply: back to the queue, untouched.
      try {
        channel.nack(message, false, true);
      } catch {
        // The channel is closed, which requeues it anyway.
      }
      return;
    }
    const receipt = `${this.id}:${generation}:${message.fields.deliveryTag}`;
    let envelope: Envelope;
    try {
      envelope = decodeMessage(message);
    } catch (error) {
      // Not a message any taskq driver wrote. Requeued it would come back forever: its copy
      // goes to the dead letters with the reason, then it is acked. Until then it stays
      // unsettled, so no `multiple` ack covers it before its copy is confirmed.
      const tag = message.fields.deliveryTag;
      this.unsettled.set(tag, message);
      const reason = (error as Error).message;
      this.host.logError(
        `dead-lettered a message of ${this.queue} it cannot decode (message id ${String(message.properties.messageId)})`,
        error,
      );
      this.host.deadLetterUndecodable(this.queue, message, reason).then(
        () => {
          if (channel !== this.channel) return; // the channel closed: RabbitMQ requeued it
          this.acks.push(tag);
          if (!this.flushScheduled) {
            this.flushScheduled = true;
            setImmediate(() => this.flushAcks());
          }
        },
        // Left unsettled: it returns when the channel closes, and is tried again then.
        (failure: unknown) =>
          this.host.logError(`dead-lettering a message of ${this.queue} failed`, failure),
      );
      return;
    }
    this.unsettled.set(message.fields.deliveryTag, message);
    this.held.set(receipt, { consumer: this, channel, message, envelope });
    this.onDelivery(toDelivery(this.queue, envelope, message.fields.redelivered, receipt));
  }

  private async closeChannel(): Promise<void> {
    // Acks still gathered must leave before the close, or their messages come back.
    this.flushAcks();
    const channel = this.channel;
    this.channel = undefined;
    this.held.clear();
    this.unsettled.clear();
    await channel?.close().catch(() => undefined);
  }
}

function toDelivery(
  queue: string,
  e: Envelope,
  redelivered: boolean,
  receipt: string,
): Delivery<unknown> {
  return {
    id: e.i,
    queue,
    body: e.b,
    headers: e.h ?? {},
    priority: e.p,
    attempt: e.a,
    // Classic queues do not count redeliveries; `redelivered` says there was at least one.
    deliveryCount: e.c + (redelivered ? 2 : 1),
    receipt,
  };
}
