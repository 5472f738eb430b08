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
import { decodeReceipt, encodeReceipt, shardOf } from './receipt';
import {
  resolveSqliteDriverOptions,
  shardPaths,
  type ResolvedSqliteDriverOptions,
  type SqliteDriverOptions,
} from './sqlite-driver.options';
import {
  isBusyError,
  SqliteShard,
  type ClaimedRow,
  type LeaseRef,
  type NewRow,
} from './sqlite-shard';
import { WriteBatcher } from './write-batcher';

/** A process is presumed dead once it has missed this many heartbeats. */
const HEARTBEATS_UNTIL_STALE = 5;
const OPEN_GIVE_UP_MS = 30_000;

interface SqliteConsumer {
  queue: QueueRuntime;
  onDelivery: DeliveryCallback<unknown>;
  prefetch: number;
  unsettled: number;
  paused: boolean;
  cancelled: boolean;
}

/** Per-queue state of this process's consumers. */
interface QueueRuntime {
  name: string;
  consumers: SqliteConsumer[];
  /** Round-robin start among consumers, and among shards. */
  nextConsumer: number;
  nextShard: number;
  scheduled: boolean;
  timer?: NodeJS.Timeout;
  /** The current idle poll interval, doubling from pollMinMs to pollMaxMs. */
  idleDelayMs: number;
}

interface Held {
  consumer: SqliteConsumer;
  settling: boolean;
}

/**
 * A durable queue in SQLite files (WAL), shareable by several processes on one machine.
 *
 * Every delivery is a lease with a fencing token that changes on each claim; settle calls must
 * present the current token or fail with StaleDeliveryError. A lease ends by settling it, by
 * expiring (leaseMs without extendLease), by its process missing heartbeats, or by a clean
 * close; the message then becomes deliverable again. A message that loses `maxStalls` leases is
 * dead-lettered (a message that kills its worker must not kill every worker in turn).
 *
 * Consumers claim up to their free prefetch slots in one transaction; settles and publishes of
 * one event-loop turn share one commit. A publish wakes this process's consumers at once;
 * other processes find it by polling with a back-off from pollMinMs to pollMaxMs while idle.
 * With `shards` > 1 messages spread over several files by a hash of their dedup key or id;
 * priority order then holds within each shard.
 */
export class SqliteQueueDriver implements QueueDriver {
  readonly kind = 'sqlite';
  readonly capabilities: DriverCapabilities = { durable: true, leases: true };
  /** Identifies this driver instance's leases and heartbeat row. */
  readonly workerId = randomUUID();

  private readonly options: ResolvedSqliteDriverOptions;
  private readonly shards: SqliteShard[];
  private readonly batchers: WriteBatcher[];
  private readonly queues = new Map<string, QueueRuntime>();
  private readonly held = new Map<string, Held>();
  private readonly opened: Promise<void>;
  private isOpen = false;
  private claimSeq = 0;
  private heartbeatTimer?: NodeJS.Timeout;
  private closing?: Promise<void>;
  /** The last unexpected claim failure, cleared by the next successful claim. */
  private pumpError?: unknown;

  constructor(options: SqliteDriverOptions) {
    this.options = resolveSqliteDriverOptions(options);
    const { synchronous, busyTimeoutMs } = this.options;
    this.shards = shardPaths(this.options.path, this.options.shards).map(
      (path, i) => new SqliteShard(i, path, synchronous, busyTimeoutMs),
    );
    this.batchers = this.shards.map((shard) => new WriteBatcher(shard, this.kind));
    this.opened = this.open();
    // A failed open surfaces through every call that awaits it; this only keeps it from being unhandled.
    this.opened.catch(() => undefined);
  }

  private get home(): SqliteShard {
    return this.shards[0];
  }

  async publish<T>(queue: string, messages: PublishMessage<T>[]): Promise<string[]> {
    await this.ready();
    const now = Date.now();
    const byShard = new Map<number, { index: number; row: NewRow }[]>();
    messages.forEach((message, index) => {
      const row: NewRow = {
        id: randomUUID(),
        body: JSON.stringify(message.body) ?? 'null',
        headers: JSON.stringify(message.headers ?? {}),
        priority: message.priority ?? 0,
        attempt: message.attempt ?? 1,
        dedupKey: message.deduplicationKey ?? null,
        availableAt: now + Math.max(0, message.delayMs ?? 0),
      };
      const shard = shardOf(row.dedupKey ?? row.id, this.shards.length);
      const group = byShard.get(shard) ?? [];
      group.push({ index, row });
      byShard.set(shard, group);
    });
    const ids: string[] = new Array<string>(messages.length);
    await Promise.all(
      [...byShard].map(async ([shardIndex, group]) => {
        const shard = this.shards[shardIndex];
        const stored = await this.batchers[shardIndex].submit(
          () => group.map(({ row }) => shard.insert(queue, row, now)),
          true,
        );
        group.forEach(({ index }, i) => (ids[index] = stored[i]));
      }),
    );
    const runtime = this.queues.get(queue);
    if (runtime) this.wake(runtime);
    return ids;
  }

  consume<T>(
    queue: string,
    onDelivery: DeliveryCallback<T>,
    options: ConsumeOptions,
  ): ConsumerHandle {
    this.assertOpen();
    const runtime = this.runtime(queue);
    const consumer: SqliteConsumer = {
      queue: runtime,
      onDelivery: onDelivery as DeliveryCallback<unknown>,
      prefetch: options.prefetch,
      unsettled: 0,
      paused: false,
      cancelled: false,
    };
    runtime.consumers.push(consumer);
    this.wake(runtime);
    return {
      pause: () => {
        consumer.paused = true;
      },
      resume: () => {
        consumer.paused = false;
        this.wake(runtime);
      },
      cancel: () => {
        // Deliveries are handed out synchronously after a claim, so none can follow this line.
        consumer.cancelled = true;
        runtime.consumers = runtime.consumers.filter((c) => c !== consumer);
        return Promise.resolve();
      },
    };
  }

  ack(delivery: Delivery): Promise<void> {
    return this.settle(delivery, (shard, ref) => shard.ack(ref));
  }

  nack(delivery: Delivery, options: { delayMs?: number } = {}): Promise<void> {
    const delayMs = Math.max(0, options.delayMs ?? 0);
    return this.settle(delivery, (shard, ref, now) => shard.nack(ref, now + delayMs, now));
  }

  release(delivery: Delivery): Promise<void> {
    return this.settle(delivery, (shard, ref) => shard.release(ref));
  }

  deadLetter(delivery: Delivery, reason: string): Promise<void> {
    return this.settle(delivery, (shard, ref, now) => shard.bury(ref, reason, now), true);
  }

  async extendLease(delivery: Delivery, ms: number): Promise<void> {
    const { shard, ref } = await this.locate(delivery);
    const extended = await this.batchers[shard.index].submit(() =>
      shard.extend(ref, Date.now() + Math.max(0, ms)),
    );
    if (!extended) throw new StaleDeliveryError(delivery.queue, delivery.id);
  }

  async stats(queue: string): Promise<QueueStats> {
    await this.ready();
    const now = Date.now();
    const stats: QueueStats = { queue, ready: 0, inFlight: 0, delayed: 0, dead: 0, paused: false };
    for (const shard of this.shards) {
      const counts = shard.counts(queue, now);
      stats.ready += counts.ready;
      stats.inFlight += counts.inFlight;
      stats.delayed += counts.delayed;
      stats.dead += counts.dead;
    }
    stats.paused = this.home.isPaused(queue);
    return stats;
  }

  async deadLetters(queue: string, limit = 100): Promise<DeadLetter[]> {
    await this.ready();
    return this.shards
      .flatMap((shard) => shard.deadLetters(queue, limit))
      .sort((a, b) => b.deadAt.getTime() - a.deadAt.getTime())
      .slice(0, limit);
  }

  async pauseQueue(queue: string): Promise<void> {
    await this.ready();
    await this.batchers[0].submit(() => this.home.setPaused(queue, true, Date.now()));
  }

  async resumeQueue(queue: string): Promise<void> {
    await this.ready();
    await this.batchers[0].submit(() => this.home.setPaused(queue, false, Date.now()));
    const runtime = this.queues.get(queue);
    if (runtime) this.wake(runtime);
  }

  async ping(): Promise<void> {
    await this.ready();
    const failure = this.pumpError ?? probe(this.home);
    if (failure !== undefined) {
      throw new DriverUnavailableError(
        this.kind,
        failure instanceof Error ? failure.message : 'unknown failure',
      );
    }
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async open(): Promise<void> {
    const started = Date.now();
    for (const shard of this.shards) {
      // Another connection (TypeORM running migrations in this very process, or another
      // process) may hold the write lock; wait for it without blocking the event loop.
      for (let delay = 5; ; delay = Math.min(delay * 2, 200)) {
        if (this.closing) return;
        try {
          shard.open();
          break;
        } catch (error) {
          if (!isBusyError(error) || Date.now() - started > OPEN_GIVE_UP_MS) throw error;
          await new Promise((resolve) => setTimeout(resolve, delay));
        }
      }
    }
    await this.beat();
    this.isOpen = true;
    this.heartbeatTimer = setInterval(
      () => void this.beat().catch(() => undefined),
      this.options.heartbeatMs,
    );
    this.heartbeatTimer.unref();
    for (const runtime of this.queues.values()) this.wake(runtime);
  }

  private async ready(): Promise<void> {
    this.assertOpen();
    try {
      await this.opened;
    } catch (error) {
      throw new DriverUnavailableError(this.kind, (error as Error).message);
    }
    this.assertOpen();
  }

  private assertOpen(): void {
    if (this.closing) throw new DriverUnavailableError(this.kind, 'closed');
  }

  /**
   * Proves this process alive, and ends the leases of processes that stopped proving it and
   * leases that expired. Freed messages wake this process's consumers.
   */
  private async beat(): Promise<void> {
    const { heartbeatMs, maxStalls } = this.options;
    const now = Date.now();
    await this.batchers[0].submit(() =>
      this.home.heartbeat(this.workerId, now, now + heartbeatMs * HEARTBEATS_UNTIL_STALE),
    );
    const dead = this.home.staleWorkers(now, this.workerId);
    let freed = 0;
    for (const [i, shard] of this.shards.entries()) {
      if (dead.length === 0 && !shard.anyExpired(now)) continue;
      freed += await this.batchers[i].submit(() => {
        let count = shard.reap({ now }, now, maxStalls);
        for (const owner of dead) count += shard.reap({ owner }, now, maxStalls);
        return count;
      });
    }
    if (dead.length > 0) {
      await this.batchers[0].submit(() => dead.forEach((id) => this.home.dropWorker(id)));
    }
    if (freed > 0) for (const runtime of this.queues.values()) this.wake(runtime);
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
        idleDelayMs: this.options.pollMinMs,
      };
      this.queues.set(queue, runtime);
    }
    return runtime;
  }

  /** Claims on the next turn, cancelling any idle poll: there may be work now. */
  private wake(runtime: QueueRuntime): void {
    runtime.idleDelayMs = this.options.pollMinMs;
    if (runtime.timer) {
      clearTimeout(runtime.timer);
      runtime.timer = undefined;
    }
    if (runtime.scheduled || this.closing || !this.isOpen) return;
    runtime.scheduled = true;
    setImmediate(() => {
      runtime.scheduled = false;
      this.pump(runtime);
    });
  }

  private poll(runtime: QueueRuntime, delayMs: number): void {
    if (runtime.scheduled || runtime.timer || this.closing) return;
    runtime.timer = setTimeout(() => {
      runtime.timer = undefined;
      this.pump(runtime);
    }, delayMs);
  }

  /** Fills every consumer's free prefetch slots, or arranges to look again later. */
  private pump(runtime: QueueRuntime): void {
    if (this.closing) return;
    const room = runtime.consumers.reduce(
      (sum, c) => sum + (c.paused ? 0 : Math.max(0, c.prefetch - c.unsettled)),
      0,
    );
    // With no room a settle or a resume wakes the queue; no need to poll.
    if (room === 0) return;
    let rows: { shard: number; token: string; row: ClaimedRow }[];
    try {
      if (this.home.isPaused(runtime.name)) return this.poll(runtime, this.options.pollMaxMs);
      rows = this.claim(runtime, room);
    } catch (error) {
      // Busy: another writer holds the file. Anything else is kept for ping() to report.
      if (!isBusyError(error)) this.pumpError = error;
      return this.poll(runtime, this.options.pollMaxMs);
    }
    this.pumpError = undefined;
    if (rows.length < room) {
      this.poll(runtime, runtime.idleDelayMs);
      runtime.idleDelayMs = Math.min(Math.max(1, runtime.idleDelayMs * 2), this.options.pollMaxMs);
    }
    this.distribute(runtime, rows);
  }

  /** One transaction per shard holding work, starting at a rotating shard so all drain fairly. */
  private claim(runtime: QueueRuntime, room: number) {
    const now = Date.now();
    const token = `${(++this.claimSeq).toString(36)}.${this.workerId}`;
    const until = now + this.options.leaseMs;
    const claimed: { shard: number; token: string; row: ClaimedRow }[] = [];
    const count = this.shards.length;
    const start = runtime.nextShard++ % count;
    for (let i = 0; i < count && claimed.length < room; i++) {
      const shard = this.shards[(start + i) % count];
      // A read first, so idle polling never takes the write lock.
      if (!shard.hasWork(runtime.name, now)) continue;
      const rows = shard.write(() =>
        shard.claim(runtime.name, room - claimed.length, this.workerId, token, until, now),
      );
      // RETURNING does not promise the ORDER BY of the subquery.
      rows.sort((a, b) => b.priority - a.priority || a.seq - b.seq);
      for (const row of rows) claimed.push({ shard: shard.index, token, row });
    }
    return claimed;
  }

  private distribute(
    runtime: QueueRuntime,
    rows: { shard: number; token: string; row: ClaimedRow }[],
  ): void {
    for (const { shard, token, row } of rows) {
      const receipt = encodeReceipt({ shard, seq: row.seq, token });
      const delivery: Delivery = {
        id: row.id,
        queue: runtime.name,
        body: JSON.parse(row.body) as unknown,
        headers: JSON.parse(row.headers) as Record<string, string>,
        priority: row.priority,
        attempt: row.attempt,
        deliveryCount: row.deliveryCount,
        receipt,
      };
      const consumer = this.nextConsumerWithRoom(runtime);
      if (!consumer) {
        // Only if a callback paused or cancelled a consumer mid-distribution.
        void this.release(delivery).catch(() => undefined);
        continue;
      }
      consumer.unsettled += 1;
      this.held.set(receipt, { consumer, settling: false });
      consumer.onDelivery(delivery);
    }
  }

  private nextConsumerWithRoom(runtime: QueueRuntime): SqliteConsumer | undefined {
    const count = runtime.consumers.length;
    for (let i = 0; i < count; i++) {
      const index = (runtime.nextConsumer + i) % count;
      const consumer = runtime.consumers[index];
      if (!consumer.paused && !consumer.cancelled && consumer.unsettled < consumer.prefetch) {
        runtime.nextConsumer = (index + 1) % count;
        return consumer;
      }
    }
    return undefined;
  }

  private async locate(delivery: Delivery): Promise<{ shard: SqliteShard; ref: LeaseRef }> {
    await this.ready();
    const receipt = decodeReceipt(delivery.receipt);
    const shard = receipt && this.shards[receipt.shard];
    if (!receipt || !shard) throw new StaleDeliveryError(delivery.queue, delivery.id);
    return { shard, ref: { seq: receipt.seq, id: delivery.id, token: receipt.token } };
  }

  /**
   * Ends a lease through the shard's group commit. The consumer's prefetch slot is freed only
   * after the commit (or once the lease proves lost), so the bound holds even while settling.
   */
  private async settle(
    delivery: Delivery,
    write: (shard: SqliteShard, ref: LeaseRef, now: number) => boolean,
    atomic = false,
  ): Promise<void> {
    const { shard, ref } = await this.locate(delivery);
    const held = this.held.get(delivery.receipt);
    // Only the first of several concurrent settles of one delivery may free its slot.
    const owner = held !== undefined && !held.settling;
    if (held) held.settling = true;
    let settled: boolean;
    try {
      settled = await this.batchers[shard.index].submit(
        () => write(shard, ref, Date.now()),
        atomic,
      );
    } catch (error) {
      if (owner) held.settling = false;
      throw error;
    }
    if (owner) {
      this.held.delete(delivery.receipt);
      held.consumer.unsettled -= 1;
      if (!held.consumer.cancelled) this.wake(held.consumer.queue);
    }
    if (!settled) throw new StaleDeliveryError(delivery.queue, delivery.id);
  }

  private async shutdown(): Promise<void> {
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    for (const runtime of this.queues.values()) {
      if (runtime.timer) clearTimeout(runtime.timer);
      for (const consumer of runtime.consumers) consumer.cancelled = true;
      runtime.consumers = [];
    }
    await this.opened.catch(() => undefined);
    // Writes accepted before close still commit; then our leases go back for others at once.
    await Promise.all(this.batchers.map((batcher) => batcher.drain()));
    if (this.isOpen) {
      for (const [i, shard] of this.shards.entries()) {
        await this.batchers[i]
          .submit(() => {
            shard.releaseOwner(this.workerId);
            if (i === 0) shard.dropWorker(this.workerId);
          })
          .catch(() => undefined);
      }
    }
    this.held.clear();
    for (const shard of this.shards) {
      try {
        shard.close();
      } catch {
        // Each file closes on its own; one failure must not keep the others open.
      }
    }
  }
}

/** Answers the error a trivial query raises, or undefined when the file answers. */
function probe(shard: SqliteShard): unknown {
  try {
    shard.db.prepare('SELECT 1').get();
    return undefined;
  } catch (error) {
    return error;
  }
}
