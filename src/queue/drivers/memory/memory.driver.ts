import { randomUUID } from 'node:crypto';
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
import { MinHeap } from '../../min-heap';
import { ConsumerCredit } from '../consumer-credit';

interface StoredMessage {
  id: string;
  body: unknown;
  headers: Record<string, string>;
  priority: number;
  attempt: number;
  deliveryCount: number;
  dedupKey?: string;
  /** Publish order, so one priority stays FIFO. */
  seq: number;
  dueAt: number;
}

interface MemoryConsumer {
  onDelivery: DeliveryCallback<unknown>;
  credit: ConsumerCredit;
}

interface InFlight {
  message: StoredMessage;
  consumer: MemoryConsumer;
}

class QueueState {
  readonly ready = new MinHeap<StoredMessage>((a, b) =>
    a.priority === b.priority ? a.seq < b.seq : a.priority > b.priority,
  );
  readonly delayed = new MinHeap<StoredMessage>((a, b) =>
    a.dueAt === b.dueAt ? a.seq < b.seq : a.dueAt < b.dueAt,
  );
  readonly inFlight = new Map<string, InFlight>();
  readonly dead: DeadLetter[] = [];
  readonly dedup = new Map<string, string>();
  consumers: MemoryConsumer[] = [];
  paused = false;
  /** Round-robin start, so consumers of one queue share its messages fairly. */
  nextConsumer = 0;
  dispatchScheduled = false;
  timer?: NodeJS.Timeout;
  timerDueAt = Infinity;

  constructor(readonly name: string) {}
}

/**
 * Messages in this process's memory, handed over without serialising. Nothing survives the
 * process: taskq's recovery sweep republishes unfinished tasks from the task table at start-up.
 */
export class MemoryQueueDriver implements QueueDriver {
  readonly kind = 'memory';
  readonly capabilities: DriverCapabilities = { durable: false, leases: false };

  private readonly queues = new Map<string, QueueState>();
  private seq = 0;
  private receiptSeq = 0;
  private closing?: Promise<void>;

  async publish<T>(queue: string, messages: PublishMessage<T>[]): Promise<string[]> {
    this.assertOpen();
    const state = this.queue(queue);
    const now = Date.now();
    const ids = messages.map((input) => {
      if (input.deduplicationKey !== undefined) {
        const existing = state.dedup.get(input.deduplicationKey);
        if (existing !== undefined) return existing;
      }
      const message: StoredMessage = {
        id: randomUUID(),
        body: input.body,
        headers: { ...input.headers },
        priority: input.priority ?? 0,
        attempt: input.attempt ?? 1,
        deliveryCount: 0,
        dedupKey: input.deduplicationKey,
        seq: ++this.seq,
        dueAt: now + Math.max(0, input.delayMs ?? 0),
      };
      if (message.dedupKey !== undefined) state.dedup.set(message.dedupKey, message.id);
      this.enqueue(state, message, now);
      return message.id;
    });
    this.scheduleDispatch(state);
    return ids;
  }

  missingKeys(queue: string, keys: string[]): Promise<string[]> {
    this.assertOpen();
    const dedup = this.queues.get(queue)?.dedup;
    return Promise.resolve(dedup ? keys.filter((key) => !dedup.has(key)) : keys);
  }

  consume<T>(
    queue: string,
    onDelivery: DeliveryCallback<T>,
    options: ConsumeOptions,
  ): ConsumerHandle {
    this.assertOpen();
    const state = this.queue(queue);
    const consumer: MemoryConsumer = {
      onDelivery: onDelivery as DeliveryCallback<unknown>,
      // No low-water mark: a refill here is a heap pop, not a round trip worth batching.
      credit: new ConsumerCredit({ prefetch: options.prefetch }),
    };
    state.consumers.push(consumer);
    this.scheduleDispatch(state);
    return {
      pause: () => consumer.credit.pause(),
      resume: () => {
        consumer.credit.resume();
        this.scheduleDispatch(state);
      },
      cancel: () => {
        consumer.credit.cancel();
        state.consumers = state.consumers.filter((c) => c !== consumer);
        return Promise.resolve();
      },
    };
  }

  async ack(delivery: Delivery): Promise<void> {
    const { state, entry } = this.settle(delivery);
    this.forget(state, entry.message);
  }

  async nack(delivery: Delivery, options: { delayMs?: number } = {}): Promise<void> {
    const { state, entry } = this.settle(delivery);
    const now = Date.now();
    entry.message.attempt += 1;
    entry.message.dueAt = now + Math.max(0, options.delayMs ?? 0);
    this.enqueue(state, entry.message, now);
  }

  async release(delivery: Delivery): Promise<void> {
    const { state, entry } = this.settle(delivery);
    entry.message.dueAt = 0;
    this.enqueue(state, entry.message, Date.now());
  }

  async deadLetter(delivery: Delivery, reason: string): Promise<void> {
    const { state, entry } = this.settle(delivery);
    this.forget(state, entry.message);
    const { id, body, headers, attempt } = entry.message;
    state.dead.push({ id, queue: state.name, body, headers, attempt, reason, deadAt: new Date() });
  }

  async extendLease(_delivery: Delivery, _ms: number): Promise<void> {}

  async stats(queue: string): Promise<QueueStats> {
    const state = this.queue(queue);
    return {
      queue,
      ready: state.ready.size,
      inFlight: state.inFlight.size,
      delayed: state.delayed.size,
      dead: state.dead.length,
      paused: state.paused,
    };
  }

  async deadLetters(queue: string, limit = 100): Promise<DeadLetter[]> {
    return this.queue(queue).dead.slice(-limit).reverse();
  }

  async pauseQueue(queue: string): Promise<void> {
    this.queue(queue).paused = true;
  }

  async resumeQueue(queue: string): Promise<void> {
    const state = this.queue(queue);
    state.paused = false;
    this.scheduleDispatch(state);
  }

  ping(): Promise<void> {
    return this.closing
      ? Promise.reject(new DriverUnavailableError(this.kind, 'closed'))
      : Promise.resolve();
  }

  close(): Promise<void> {
    this.closing ??= Promise.resolve().then(() => {
      for (const state of this.queues.values()) {
        if (state.timer) clearTimeout(state.timer);
        for (const consumer of state.consumers) consumer.credit.cancel();
        state.consumers = [];
      }
    });
    return this.closing;
  }

  private assertOpen(): void {
    if (this.closing) throw new DriverUnavailableError(this.kind, 'closed');
  }

  private queue(name: string): QueueState {
    let state = this.queues.get(name);
    if (!state) {
      state = new QueueState(name);
      this.queues.set(name, state);
    }
    return state;
  }

  private enqueue(state: QueueState, message: StoredMessage, now: number): void {
    if (message.dueAt > now) {
      state.delayed.push(message);
      this.armTimer(state);
    } else {
      state.ready.push(message);
    }
  }

  private forget(state: QueueState, message: StoredMessage): void {
    if (message.dedupKey !== undefined) state.dedup.delete(message.dedupKey);
  }

  private settle(delivery: Delivery): { state: QueueState; entry: InFlight } {
    // After close the message is gone (the contract's "lost"); a settle must not pretend otherwise.
    this.assertOpen();
    const state = this.queues.get(delivery.queue);
    const entry = state?.inFlight.get(delivery.receipt);
    if (!state || !entry) throw new StaleDeliveryError(delivery.queue, delivery.id);
    state.inFlight.delete(delivery.receipt);
    entry.consumer.credit.give();
    this.scheduleDispatch(state);
    return { state, entry };
  }

  /** One timer per queue, armed for the earliest delayed message. */
  private armTimer(state: QueueState): void {
    const next = state.delayed.peek();
    if (!next || next.dueAt >= state.timerDueAt || this.closing) return;
    if (state.timer) clearTimeout(state.timer);
    state.timerDueAt = next.dueAt;
    state.timer = setTimeout(
      () => {
        state.timer = undefined;
        state.timerDueAt = Infinity;
        this.scheduleDispatch(state);
      },
      Math.max(0, next.dueAt - Date.now()),
    );
    state.timer.unref();
  }

  /** Batches the dispatch of everything published or settled in one tick. */
  private scheduleDispatch(state: QueueState): void {
    if (state.dispatchScheduled || this.closing) return;
    state.dispatchScheduled = true;
    setImmediate(() => {
      state.dispatchScheduled = false;
      this.dispatch(state);
    });
  }

  private dispatch(state: QueueState): void {
    const now = Date.now();
    while (state.delayed.size > 0 && state.delayed.peek()!.dueAt <= now) {
      state.ready.push(state.delayed.pop()!);
    }
    this.armTimer(state);
    if (state.paused) return;
    while (state.ready.size > 0) {
      const consumer = this.nextConsumerWithRoom(state);
      if (!consumer) return;
      const message = state.ready.pop()!;
      message.deliveryCount += 1;
      const receipt = String(++this.receiptSeq);
      consumer.credit.take();
      state.inFlight.set(receipt, { message, consumer });
      consumer.onDelivery({
        id: message.id,
        queue: state.name,
        body: message.body,
        headers: message.headers,
        priority: message.priority,
        attempt: message.attempt,
        deliveryCount: message.deliveryCount,
        receipt,
      });
    }
  }

  private nextConsumerWithRoom(state: QueueState): MemoryConsumer | undefined {
    const count = state.consumers.length;
    for (let i = 0; i < count; i++) {
      const index = (state.nextConsumer + i) % count;
      const consumer = state.consumers[index];
      if (consumer.credit.hasRoom) {
        state.nextConsumer = (index + 1) % count;
        return consumer;
      }
    }
    return undefined;
  }
}
