import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import Redis from 'ioredis';
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
import { RedisConsumer } from './redis-consumer';
import { RedisEvictionPolicyError } from './redis-eviction-policy.error';
import { decodeReceipt, type RedisReceipt } from './redis-receipt';
import {
  FETCH_SCRIPT,
  PUBLISH_SCRIPT,
  RESUME_SCRIPT,
  SETTLE_SCRIPT,
  STATS_SCRIPT,
} from './redis-scripts';

export interface RedisDriverOptions {
  /** Default redis://127.0.0.1:6379. May carry credentials; it is never logged. */
  url?: string;
  /** Prefix of every key this driver writes. Default 'taskq'. */
  keyPrefix?: string;
  /** A delivery not settled or extended within this time goes to another consumer. Default 30 s. */
  leaseMs?: number;
  /** Longest a consumer waits in one blocking read before it looks again. Default 2 s. */
  blockMs?: number;
  logger?: { error(message: string, stack?: string): void };
}

type Script = (...args: (string | number)[]) => Promise<unknown>;
type ScriptedRedis = Redis & {
  taskqPublish: Script;
  taskqFetch: Script;
  taskqSettle: Script;
  taskqStats: Script;
  taskqResume: Script;
};

const SCRIPTS = {
  taskqPublish: { lua: PUBLISH_SCRIPT, numberOfKeys: 1 },
  taskqFetch: { lua: FETCH_SCRIPT, numberOfKeys: 1 },
  taskqSettle: { lua: SETTLE_SCRIPT, numberOfKeys: 1 },
  taskqStats: { lua: STATS_SCRIPT, numberOfKeys: 1 },
  taskqResume: { lua: RESUME_SCRIPT, numberOfKeys: 1 },
};

type SettleOp = 'a' | 'n' | 'r' | 'd' | 'x';

interface PendingSettle {
  op: SettleOp;
  receipt: RedisReceipt;
  extra: string;
  resolve(ok: boolean): void;
  reject(error: unknown): void;
}

/**
 * Redis streams with consumer groups. One stream per priority level, read highest first; a
 * sorted set holds delayed messages until a consumer's fetch moves them (atomically, in Lua) to
 * their stream. A delivery is a pending entry of the group: its lease is the entry's idle time,
 * and XAUTOCLAIM hands entries idle longer than `leaseMs` to a live consumer.
 *
 * Settles from many workers are gathered for one event-loop turn and sent as one script call.
 * Every settle checks the entry's pending record (owner and delivery count) before it acts, so
 * a delivery that was reclaimed meanwhile is refused with StaleDeliveryError.
 */
export class RedisQueueDriver implements QueueDriver {
  readonly kind = 'redis';
  readonly capabilities: DriverCapabilities = { durable: true, leases: true };
  readonly leaseMs: number;
  readonly blockMs: number;

  private readonly prefix: string;
  private readonly client: ScriptedRedis;
  private readonly consumers = new Map<string, RedisConsumer>();
  private readonly pending = new Map<string, PendingSettle[]>();
  private flushScheduled = false;
  private connecting?: Promise<void>;
  private closing?: Promise<void>;

  constructor(private readonly options: RedisDriverOptions = {}) {
    this.prefix = options.keyPrefix ?? 'taskq';
    this.leaseMs = options.leaseMs ?? 30_000;
    this.blockMs = options.blockMs ?? 2_000;
    this.client = new Redis(options.url ?? 'redis://127.0.0.1:6379', {
      lazyConnect: true,
      connectionName: `${this.prefix}:driver`,
      scripts: SCRIPTS,
      retryStrategy: (times) => Math.min(times * 100, 2000),
    }) as ScriptedRedis;
    // ioredis reports each failed reconnect here; calls surface the outage as rejections.
    this.client.on('error', () => undefined);
  }

  /**
   * Connects and checks the server: it must not evict keys. Called by every other method;
   * call it at boot to fail early. Rejects with RedisEvictionPolicyError or DriverUnavailableError.
   */
  connect(): Promise<void> {
    this.connecting ??= this.doConnect();
    return this.connecting;
  }

  private async doConnect(): Promise<void> {
    try {
      await this.client.connect();
    } catch (error) {
      this.connecting = undefined;
      throw this.unavailable(error);
    }
    // INFO works where CONFIG is disabled (managed Redis services).
    const info = await this.client.info('memory');
    const policy = /^maxmemory_policy:(\S+)/m.exec(info)?.[1] ?? 'unknown';
    if (policy !== 'noeviction') throw new RedisEvictionPolicyError(policy);
  }

  async publish<T>(queue: string, messages: PublishMessage<T>[]): Promise<string[]> {
    await this.ready();
    if (messages.length === 0) return [];
    const args: (string | number)[] = [messages.length];
    for (const m of messages) {
      args.push(
        randomUUID(),
        Math.trunc(m.priority ?? 0),
        m.attempt ?? 1,
        m.deduplicationKey ?? '',
        JSON.stringify({ body: m.body, headers: m.headers ?? {} }),
        Math.max(0, Math.ceil(m.delayMs ?? 0)),
      );
    }
    return (await this.call(() => this.client.taskqPublish(this.base(queue), ...args))) as string[];
  }

  consume<T>(
    queue: string,
    onDelivery: DeliveryCallback<T>,
    options: ConsumeOptions,
  ): ConsumerHandle {
    this.assertOpen();
    const name = `${hostname()}:${process.pid}:${randomUUID()}`;
    const conn = this.client.duplicate({
      lazyConnect: false,
      connectionName: `${this.prefix}:consumer`,
      // The loop owns retries: a read waits through a reconnect instead of failing.
      maxRetriesPerRequest: null,
    }) as ScriptedRedis;
    conn.on('error', () => undefined);
    const consumer = new RedisConsumer(
      this,
      conn,
      queue,
      name,
      onDelivery as DeliveryCallback<unknown>,
      options.prefetch,
    );
    this.consumers.set(name, consumer);
    return {
      pause: () => consumer.pause(),
      resume: () => consumer.resume(),
      cancel: async () => {
        await consumer.cancel();
        this.consumers.delete(name);
      },
    };
  }

  /** @internal Used by RedisConsumer. */
  async fetch(
    conn: Redis,
    queue: string,
    consumer: string,
    credit: number,
    reclaim: boolean,
  ): Promise<unknown> {
    await this.connect();
    return (conn as ScriptedRedis).taskqFetch(
      this.base(queue),
      consumer,
      credit,
      this.leaseMs,
      reclaim ? '1' : '0',
    );
  }

  /** @internal */
  logError(message: string, error: unknown): void {
    const detail = error instanceof Error ? (error.stack ?? error.message) : String(error);
    if (this.options.logger) this.options.logger.error(`redis driver: ${message}`, detail);
    else console.error(`redis driver: ${message}\n${detail}`);
  }

  ack(delivery: Delivery): Promise<void> {
    return this.settle(delivery, 'a', '');
  }

  nack(delivery: Delivery, options: { delayMs?: number } = {}): Promise<void> {
    return this.settle(delivery, 'n', String(Math.max(0, Math.ceil(options.delayMs ?? 0))));
  }

  release(delivery: Delivery): Promise<void> {
    return this.settle(delivery, 'r', '');
  }

  deadLetter(delivery: Delivery, reason: string): Promise<void> {
    return this.settle(delivery, 'd', reason);
  }

  /** Renews the lease; the idle time is set so the entry expires `ms` from now, at most `leaseMs`. */
  extendLease(delivery: Delivery, ms: number): Promise<void> {
    const idle = Math.max(0, Math.floor(this.leaseMs - ms));
    return this.settle(delivery, 'x', String(idle));
  }

  /** Every renewal joins this turn's settle batch: one script call per queue, fenced per entry. */
  async extendLeases(deliveries: Delivery[], ms: number): Promise<Delivery[]> {
    await this.ready();
    const idle = String(Math.max(0, Math.floor(this.leaseMs - ms)));
    const outcomes = await Promise.all(
      deliveries.map((delivery) => {
        const receipt = decodeReceipt(delivery.receipt);
        if (!receipt) return Promise.resolve(false);
        return this.enqueueSettle(delivery.queue, 'x', receipt, idle);
      }),
    );
    return deliveries.filter((_, i) => !outcomes[i]);
  }

  async stats(queue: string): Promise<QueueStats> {
    await this.ready();
    const [ready, inFlight, delayed, dead, paused] = (await this.call(() =>
      this.client.taskqStats(this.base(queue)),
    )) as number[];
    return { queue, ready, inFlight, delayed, dead, paused: paused === 1 };
  }

  async deadLetters(queue: string, limit = 100): Promise<DeadLetter[]> {
    await this.ready();
    const entries = await this.call(() =>
      this.client.xrevrange(`${this.base(queue)}:dead`, '+', '-', 'COUNT', limit),
    );
    return entries.map(([, raw]) => {
      const f: Record<string, string> = {};
      for (let i = 0; i < raw.length; i += 2) f[raw[i]] = raw[i + 1];
      const data = JSON.parse(f.d) as { body: unknown; headers?: Record<string, string> };
      return {
        id: f.i,
        queue,
        body: data.body,
        headers: data.headers ?? {},
        attempt: Number(f.a),
        reason: f.r,
        deadAt: new Date(Number(f.t)),
      };
    });
  }

  async pauseQueue(queue: string): Promise<void> {
    await this.ready();
    await this.call(() => this.client.set(`${this.base(queue)}:paused`, '1'));
  }

  async resumeQueue(queue: string): Promise<void> {
    await this.ready();
    await this.call(() => this.client.taskqResume(this.base(queue)));
  }

  async ping(): Promise<void> {
    await this.ready();
    await this.call(() => this.client.ping());
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      for (const consumer of this.consumers.values()) {
        try {
          await consumer.cancel();
        } catch (error) {
          this.logError(`cancelling a consumer of ${consumer.queue} failed`, error);
        }
      }
      this.consumers.clear();
      try {
        await this.flush();
        if (this.client.status === 'ready') await this.client.quit();
      } catch (error) {
        this.logError('closing the connection failed', error);
      } finally {
        this.client.disconnect();
      }
    })();
    return this.closing;
  }

  private base(queue: string): string {
    return `${this.prefix}:{${queue}}`;
  }

  private assertOpen(): void {
    if (this.closing) throw new DriverUnavailableError(this.kind, 'closed');
  }

  private async ready(): Promise<void> {
    this.assertOpen();
    await this.connect();
  }

  private async settle(delivery: Delivery, op: SettleOp, extra: string): Promise<void> {
    const receipt = decodeReceipt(delivery.receipt);
    if (!receipt) throw new StaleDeliveryError(delivery.queue, delivery.id);
    try {
      await this.ready();
      const ok = await this.enqueueSettle(delivery.queue, op, receipt, extra);
      if (!ok) throw new StaleDeliveryError(delivery.queue, delivery.id);
    } finally {
      // Credit returns once the settle is done, so Redis never holds more than prefetch
      // pending entries for this consumer.
      if (op !== 'x') this.consumers.get(receipt.consumer)?.settled(delivery.receipt);
    }
  }

  /** @internal Used by RedisConsumer for entries it took after it was cancelled. */
  releaseTaken(entries: { queue: string; receipt: RedisReceipt }[]): void {
    for (const { queue, receipt } of entries) {
      this.enqueueSettle(queue, 'r', receipt, '').catch((error: unknown) =>
        this.logError(`releasing an entry of ${queue} failed`, error),
      );
    }
  }

  /** Gathers settles for one event-loop turn, then sends each queue's batch as one script call. */
  private enqueueSettle(
    queue: string,
    op: SettleOp,
    receipt: RedisReceipt,
    extra: string,
  ): Promise<boolean> {
    return new Promise((resolve, reject) => {
      let batch = this.pending.get(queue);
      if (!batch) this.pending.set(queue, (batch = []));
      batch.push({ op, receipt, extra, resolve, reject });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => void this.flush());
      }
    });
  }

  private async flush(): Promise<void> {
    this.flushScheduled = false;
    const batches = [...this.pending];
    this.pending.clear();
    await Promise.all(
      batches.map(async ([queue, batch]) => {
        const args: string[] = [];
        for (const { op, receipt: r, extra } of batch) {
          args.push(op, r.level, r.entryId, r.consumer, String(r.count), extra);
        }
        try {
          const results = (await this.call(() =>
            this.client.taskqSettle(this.base(queue), ...args),
          )) as number[];
          batch.forEach((s, i) => s.resolve(results[i] === 1));
        } catch (error) {
          for (const s of batch) s.reject(error);
        }
      }),
    );
  }

  /** Runs a command; connection failures become DriverUnavailableError, server replies pass. */
  private async call<R>(command: () => Promise<R>): Promise<R> {
    try {
      return await command();
    } catch (error) {
      if (error instanceof Error && error.name === 'ReplyError') throw error;
      throw this.unavailable(error);
    }
  }

  private unavailable(error: unknown): DriverUnavailableError {
    // ioredis messages name host and port at most, never the URL's credentials.
    return new DriverUnavailableError(
      this.kind,
      error instanceof Error ? error.message : String(error),
    );
  }
}
