import { randomUUID } from 'node:crypto';
import { resolve } from 'node:path';
import { DriverUnavailableError } from '../../errors/driver-unavailable.error';
import { StaleDeliveryError } from '../../errors/stale-delivery.error';
import type {
  ConsumeOptions,
  ConsumerHandle,
  DeliveryCallback,
  DriverCapabilities,
  QueueDriver,
  Settle,
} from '../../interfaces/queue-driver.interface';
import type {
  DeadLetter,
  Delivery,
  PublishMessage,
  QueueStats,
} from '../../interfaces/queue-message.interface';
import type { SharedWrite } from '../../interfaces/shared-write.interface';
import { decodeReceipt, shardOf } from './receipt';
import {
  resolveSqliteDriverOptions,
  shardPaths,
  type ResolvedSqliteDriverOptions,
  type SqliteDriverOptions,
} from './sqlite-driver.options';
import { isBusyError, SqliteShard, type LeaseRef, type NewRow } from './sqlite-shard';
import { SqliteDispatcher } from './sqlite-dispatcher';
import type { SqliteSharedTransaction } from './sqlite-shared-transaction';
import { WriteBatcher } from './write-batcher';

/** A process is presumed dead once it has missed this many heartbeats. */
const HEARTBEATS_UNTIL_STALE = 5;
const OPEN_GIVE_UP_MS = 30_000;

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
  readonly kind = 'sqlite-messages';
  readonly capabilities: DriverCapabilities = { durable: true, leases: true };
  /** Identifies this driver instance's leases and heartbeat row. */
  readonly workerId = randomUUID();

  private readonly options: ResolvedSqliteDriverOptions;
  private readonly shards: SqliteShard[];
  private readonly batchers: WriteBatcher[];
  private readonly dispatcher: SqliteDispatcher;
  private readonly opened: Promise<void>;
  private isOpen = false;
  private heartbeatTimer?: NodeJS.Timeout;
  private closing?: Promise<void>;
  private shared?: SqliteSharedTransaction;

  constructor(
    options: SqliteDriverOptions,
    private readonly logger?: { error(message: string, stack?: string): void },
  ) {
    this.options = resolveSqliteDriverOptions(options);
    const { synchronous, busyTimeoutMs } = this.options;
    this.shards = shardPaths(this.options.path, this.options.shards).map(
      (path, i) => new SqliteShard(i, path, synchronous, busyTimeoutMs),
    );
    this.batchers = this.shards.map((shard) => new WriteBatcher(shard, this.kind));
    this.dispatcher = new SqliteDispatcher(
      this.shards,
      this.options,
      this.workerId,
      (d) => void this.release(d).catch(() => undefined),
      (d, reason) => {
        (this.logger ?? console).error(
          `sqlite driver: dead-lettered message ${d.id} of ${d.queue}: it cannot be decoded (${reason})`,
        );
        void this.deadLetter(d, `undecodable message: ${reason}`).catch(() => undefined);
      },
    );
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
      const row = newRow(message, now);
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
    this.dispatcher.wake(queue);
    return ids;
  }

  /** The write and the messages in one transaction on shard 0, when all of them belong there. */
  async publishWith<T>(
    queue: string,
    messages: PublishMessage<T>[],
    write: SharedWrite,
  ): Promise<string[] | undefined> {
    if (!this.shared || write.writer !== this.shared) return undefined;
    await this.ready();
    const now = Date.now();
    const rows = messages.map((message) => newRow(message, now));
    if (rows.some((row) => shardOf(row.dedupKey ?? row.id, this.shards.length) !== 0)) {
      return undefined;
    }
    const home = this.home;
    let applied = false;
    const ids = await this.batchers[0].submit(() => {
      applied = write.run();
      return rows.map((row) => home.insert(queue, row, now));
    }, true);
    write.committed(applied);
    this.dispatcher.wake(queue);
    return ids;
  }

  consume<T>(
    queue: string,
    onDelivery: DeliveryCallback<T>,
    options: ConsumeOptions,
  ): ConsumerHandle {
    this.assertOpen();
    return this.dispatcher.consume(queue, onDelivery as DeliveryCallback<unknown>, options);
  }

  ack(delivery: Delivery): Promise<void> {
    return this.settle(delivery, settleStep({ kind: 'ack' }));
  }

  /**
   * The settle and the consumer's outcome in one transaction when the write goes through this
   * driver's shard 0 and the delivery lives there: both commit or neither does. The write is
   * fenced on its own (taskq's task rows by claim token), so it commits even when the settle is
   * refused as stale.
   */
  async settleWith(delivery: Delivery, write: SharedWrite, settle: Settle): Promise<void> {
    const step = settleStep(settle);
    const receipt = decodeReceipt(delivery.receipt);
    if (!this.shared || write.writer !== this.shared || receipt?.shard !== 0) {
      write.committed(await write.commit());
      return this.settle(delivery, step, settle.kind === 'dead');
    }
    let applied: boolean | undefined;
    try {
      await this.settle(
        delivery,
        (shard, ref, now) => {
          const outcome = write.run();
          const settled = step(shard, ref, now);
          applied = outcome;
          return settled;
        },
        true,
      );
    } catch (error) {
      // Refused as stale only after the transaction committed, write included.
      if (error instanceof StaleDeliveryError && applied !== undefined) write.committed(applied);
      throw error;
    }
    write.committed(applied!);
  }

  sharedWriter(path: string): SqliteSharedTransaction | undefined {
    const home = this.options.path;
    if (home === ':memory:' || resolve(path) !== resolve(home)) return undefined;
    this.shared ??= {
      kind: 'sqlite',
      db: this.home.db,
      submit: async <T>(run: () => T, atomic?: boolean): Promise<T> => {
        if (!this.isOpen) await this.ready();
        else this.assertOpen();
        return this.batchers[0].submit(run, atomic);
      },
    };
    return this.shared;
  }

  nack(delivery: Delivery, options: { delayMs?: number } = {}): Promise<void> {
    return this.settle(delivery, settleStep({ kind: 'nack', delayMs: options.delayMs ?? 0 }));
  }

  release(delivery: Delivery): Promise<void> {
    return this.settle(delivery, (shard, ref) => shard.release(ref));
  }

  deadLetter(delivery: Delivery, reason: string): Promise<void> {
    return this.settle(delivery, settleStep({ kind: 'dead', reason }), true);
  }

  async extendLease(delivery: Delivery, ms: number): Promise<void> {
    const { shard, ref } = await this.locate(delivery);
    const extended = await this.batchers[shard.index].submit(() =>
      shard.extend(ref, Date.now() + Math.max(0, ms)),
    );
    if (!extended) throw new StaleDeliveryError(delivery.queue, delivery.id);
  }

  /** One write per shard holding any of them, each joining that shard's next group commit. */
  async extendLeases(deliveries: Delivery[], ms: number): Promise<Delivery[]> {
    await this.ready();
    const lost: Delivery[] = [];
    const byShard = new Map<number, { delivery: Delivery; ref: LeaseRef }[]>();
    for (const delivery of deliveries) {
      const receipt = decodeReceipt(delivery.receipt);
      if (!receipt || !this.shards[receipt.shard]) {
        lost.push(delivery);
        continue;
      }
      const ref = { seq: receipt.seq, id: delivery.id, token: receipt.token };
      const group = byShard.get(receipt.shard);
      if (group) group.push({ delivery, ref });
      else byShard.set(receipt.shard, [{ delivery, ref }]);
    }
    await Promise.all(
      [...byShard].map(async ([index, group]) => {
        const shard = this.shards[index];
        const extended = await this.batchers[index].submit(() => {
          const until = Date.now() + Math.max(0, ms);
          return group.map(({ ref }) => shard.extend(ref, until));
        });
        group.forEach(({ delivery }, i) => {
          if (!extended[i]) lost.push(delivery);
        });
      }),
    );
    return lost;
  }

  async missingKeys(queue: string, keys: string[]): Promise<string[]> {
    await this.ready();
    const byShard = new Map<number, string[]>();
    for (const key of keys) {
      const shard = shardOf(key, this.shards.length);
      const group = byShard.get(shard);
      if (group) group.push(key);
      else byShard.set(shard, [key]);
    }
    const missing: string[] = [];
    for (const [index, group] of byShard) {
      const live = this.shards[index].liveKeys(queue, group);
      for (const key of group) if (!live.has(key)) missing.push(key);
    }
    return missing;
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
    this.dispatcher.wake(queue);
  }

  async ping(): Promise<void> {
    await this.ready();
    const failure = this.dispatcher.lastError ?? probe(this.home);
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
    this.dispatcher.start();
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
    if (freed > 0) this.dispatcher.wakeAll();
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
    const slot = this.dispatcher.settling(delivery.receipt);
    let settled: boolean;
    try {
      settled = await this.batchers[shard.index].submit(
        () => write(shard, ref, Date.now()),
        atomic,
      );
    } catch (error) {
      // The lease may still be ours: the caller can settle again.
      slot?.failed();
      throw error;
    }
    slot?.ended();
    if (!settled) throw new StaleDeliveryError(delivery.queue, delivery.id);
  }

  private async shutdown(): Promise<void> {
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.dispatcher.stop();
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
    // Each file closes on its own; one failure must not keep the others open.
    await Promise.allSettled(this.shards.map((shard) => shard.close()));
  }
}

/** The statement that ends a lease the way `settle` says; true if the lease was still ours. */
function settleStep(settle: Settle): (shard: SqliteShard, ref: LeaseRef, now: number) => boolean {
  if (settle.kind === 'ack') return (shard, ref) => shard.ack(ref);
  if (settle.kind === 'nack') {
    const delayMs = Math.max(0, settle.delayMs);
    return (shard, ref, now) => shard.nack(ref, now + delayMs, now);
  }
  // Two statements (copy to queue_dead, then delete): its callers run it atomically.
  return (shard, ref, now) => shard.bury(ref, settle.reason, now);
}

function newRow(message: PublishMessage<unknown>, now: number): NewRow {
  return {
    id: randomUUID(),
    body: JSON.stringify(message.body) ?? 'null',
    headers: JSON.stringify(message.headers ?? {}),
    priority: message.priority ?? 0,
    attempt: message.attempt ?? 1,
    dedupKey: message.deduplicationKey ?? null,
    availableAt: now + Math.max(0, message.delayMs ?? 0),
  };
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
