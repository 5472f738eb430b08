import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import Redis from 'ioredis';
import { DriverUnavailableError } from '../../errors/driver-unavailable.error';
import { StaleDeliveryError } from '../../errors/stale-delivery.error';
import type {
  BrokerRecovery,
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
import { parseData } from './redis-data';
import { decodeReceipt, type RedisReceipt } from './redis-receipt';
import {
  EPOCH_SCRIPT,
  FETCH_SCRIPT,
  MISSING_SCRIPT,
  PUBLISH_SCRIPT,
  RESUME_SCRIPT,
  SETTLE_SCRIPT,
  STATS_SCRIPT,
} from './redis-scripts';
import { type AppendFsync, RedisVolatileError, volatility } from './redis-volatile.error';

export interface RedisDriverOptions {
  /** Default redis://127.0.0.1:6379. May carry credentials; it is never logged. */
  url?: string;
  /** Prefix of every key this driver writes. Default 'taskq'. */
  keyPrefix?: string;
  /** A delivery not settled or extended within this time goes to another consumer. Default 30 s. */
  leaseMs?: number;
  /** Longest a consumer waits in one blocking read before it looks again. Default 2 s. */
  blockMs?: number;
  /**
   * Accept a server that can lose accepted messages (no append-only file, or appendfsync weaker
   * than `appendfsync`). Default false: connect refuses it with RedisVolatileError.
   */
  allowVolatile?: boolean;
  /** The weakest appendfsync policy accepted. Default everysec (at most ~1 s of writes lost). */
  appendfsync?: AppendFsync;
  /**
   * TTL of a consumer's heartbeat key, renewed three times per TTL. A consumer whose key expired
   * (its process died) has its deliveries taken over by the others within about this time, not
   * after the lease. Default 3 s.
   */
  livenessMs?: number;
  /** How often each queue's epoch key is compared, to notice a server that lost data. Default 1 s. */
  epochCheckMs?: number;
  logger?: { error(message: string, stack?: string): void; warn?(message: string): void };
}

type Script = (...args: (string | number)[]) => Promise<unknown>;
type ScriptedRedis = Redis & {
  taskqPublish: Script;
  taskqFetch: Script;
  taskqSettle: Script;
  taskqStats: Script;
  taskqResume: Script;
  taskqMissing: Script;
  taskqEpoch: Script;
};

const SCRIPTS = {
  taskqPublish: { lua: PUBLISH_SCRIPT, numberOfKeys: 1 },
  taskqFetch: { lua: FETCH_SCRIPT, numberOfKeys: 1 },
  taskqSettle: { lua: SETTLE_SCRIPT, numberOfKeys: 1 },
  taskqStats: { lua: STATS_SCRIPT, numberOfKeys: 1 },
  taskqResume: { lua: RESUME_SCRIPT, numberOfKeys: 1 },
  taskqMissing: { lua: MISSING_SCRIPT, numberOfKeys: 1 },
  taskqEpoch: { lua: EPOCH_SCRIPT, numberOfKeys: 1 },
};

/** Whether this process has already warned about a volatile server it was allowed to use. */
let volatileWarned = false;

/** Keys asked about per missingKeys script call. */
const MISSING_CHUNK = 1000;

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
 *
 * Durability: connect refuses a server without an append-only file (unless allowVolatile).
 * Each queue the driver uses gets an epoch key; when it is gone or changed (checked every
 * epochCheckMs and after every reconnect) the server lost the queue's data, and recovery
 * listeners are told so the application can publish its queued work again. Liveness: each
 * consumer keeps a heartbeat key with a TTL; a dead process's deliveries go to another
 * consumer once its key expires (livenessMs), long before the lease.
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
  readonly livenessMs: number;
  private readonly epochCheckMs: number;
  /** Per queue used, the epoch this driver last saw. */
  private readonly epochs = new Map<string, string>();
  private readonly watching = new Map<string, Promise<void>>();
  /** Heartbeat keys of this driver's consumers (also cancelled ones holding deliveries). */
  private readonly heartbeats = new Map<string, string>();
  private readonly recoveryListeners = new Set<(event: BrokerRecovery) => void>();
  private timers: NodeJS.Timeout[] = [];
  private checkingEpochs = false;
  /** A reconnect seen while a check was running: reported by a check right after it. */
  private reconnectPending = false;
  private wasReady = false;

  constructor(private readonly options: RedisDriverOptions = {}) {
    this.prefix = options.keyPrefix ?? 'taskq';
    this.leaseMs = options.leaseMs ?? 30_000;
    this.blockMs = options.blockMs ?? 2_000;
    this.livenessMs = options.livenessMs ?? 3_000;
    this.epochCheckMs = options.epochCheckMs ?? 1_000;
    this.client = new Redis(options.url ?? 'redis://127.0.0.1:6379', {
      lazyConnect: true,
      connectionName: `${this.prefix}:driver`,
      scripts: SCRIPTS,
      retryStrategy: (times) => Math.min(times * 100, 2000),
    }) as ScriptedRedis;
    // ioredis reports each failed reconnect here; calls surface the outage as rejections.
    this.client.on('error', () => undefined);
    this.client.on('ready', () => {
      // A reconnect: what was published during the outage may not have arrived, and the
      // server may have restarted empty.
      if (this.wasReady) void this.checkEpochs(true);
      this.wasReady = true;
    });
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
    try {
      // INFO works where CONFIG is disabled (managed Redis services).
      const info = await this.client.info('memory');
      const policy = /^maxmemory_policy:(\S+)/m.exec(info)?.[1] ?? 'unknown';
      if (policy !== 'noeviction') throw new RedisEvictionPolicyError(policy);
      await this.checkPersistence();
    } catch (error) {
      // A refused server is not used at all; the boot fails with the reason.
      this.client.disconnect();
      throw error;
    }
    this.timers = [
      setInterval(() => void this.checkEpochs(false), this.epochCheckMs),
      setInterval(() => void this.renewHeartbeats(), Math.max(100, this.livenessMs / 3)),
    ];
    for (const timer of this.timers) timer.unref();
  }

  /** Refuses a server that would lose accepted messages on a crash, unless allowed. */
  private async checkPersistence(): Promise<void> {
    let settings: { aof: boolean; appendfsync?: string };
    try {
      const appendonly = (await this.client.config('GET', 'appendonly')) as string[];
      const appendfsync = (await this.client.config('GET', 'appendfsync')) as string[];
      settings = { aof: appendonly[1] === 'yes', appendfsync: appendfsync[1] };
    } catch {
      // CONFIG is disabled on many managed services; INFO still tells whether AOF is on.
      const info = await this.client.info('persistence');
      settings = { aof: /^aof_enabled:1/m.test(info) };
    }
    const problem = volatility(settings, this.options.appendfsync ?? 'everysec');
    if (!problem) return;
    const error = new RedisVolatileError(problem);
    if (!this.options.allowVolatile) throw error;
    // Once per process: every driver (and test) on that server would repeat it.
    if (volatileWarned) return;
    volatileWarned = true;
    this.logWarn(`${error.message} (accepted: allowVolatile / REDIS_ALLOW_VOLATILE is set)`);
  }

  /** Tells `listener` when queues lost their data or the connection came back after an outage. */
  onRecovery(listener: (event: BrokerRecovery) => void): () => void {
    this.recoveryListeners.add(listener);
    return () => this.recoveryListeners.delete(listener);
  }

  /** Learns the epoch of a queue this driver starts using (once per queue). */
  private watch(queue: string): Promise<void> {
    let watching = this.watching.get(queue);
    if (!watching) {
      // Connected first: a command on the lazy client would start a second connect.
      watching = this.connect()
        .then(() => this.client.taskqEpoch(this.base(queue), '', randomUUID()))
        .then((reply) => void this.epochs.set(queue, (reply as [string, number])[0]))
        .catch(() => void this.watching.delete(queue));
      this.watching.set(queue, watching);
    }
    return watching;
  }

  /**
   * Compares every used queue's epoch with the one seen last; a missing or replaced one means
   * the server lost the queue's keys. Skipped while disconnected (the reconnect runs it).
   */
  private async checkEpochs(reconnected: boolean): Promise<void> {
    if (this.checkingEpochs) {
      if (reconnected) this.reconnectPending = true;
      return;
    }
    if (this.closing || this.client.status !== 'ready') return;
    this.checkingEpochs = true;
    try {
      const lost: string[] = [];
      await Promise.all(
        [...this.epochs].map(async ([queue, known]) => {
          const [current, changed] = (await this.client.taskqEpoch(
            this.base(queue),
            known,
            randomUUID(),
          )) as [string, number];
          this.epochs.set(queue, current);
          if (changed === 1) lost.push(queue);
        }),
      );
      if (lost.length > 0) {
        this.logError(
          `the server lost the data of queue(s) ${lost.join(', ')} (restarted without persistence, or flushed): every waiting, delayed and in-flight message and the dead letters are gone`,
          'epoch key missing or replaced',
        );
        this.emitRecovery({ queues: lost, lost: true, reason: 'the broker lost its data' });
      }
      if (reconnected) {
        const rest = [...this.epochs.keys()].filter((queue) => !lost.includes(queue));
        if (rest.length > 0) {
          this.emitRecovery({ queues: rest, lost: false, reason: 'reconnected after an outage' });
        }
      }
    } catch {
      // The connection dropped meanwhile; the next reconnect checks again.
    } finally {
      this.checkingEpochs = false;
      if (this.reconnectPending) {
        this.reconnectPending = false;
        void this.checkEpochs(true);
      }
    }
  }

  private emitRecovery(event: BrokerRecovery): void {
    for (const listener of this.recoveryListeners) {
      try {
        listener(event);
      } catch (error) {
        this.logError('a recovery listener failed', error);
      }
    }
  }

  /** Renews every consumer's heartbeat key in one round trip. */
  private async renewHeartbeats(): Promise<void> {
    if (this.heartbeats.size === 0 || this.closing || this.client.status !== 'ready') return;
    const pipeline = this.client.pipeline();
    for (const key of this.heartbeats.values()) pipeline.set(key, '1', 'PX', this.livenessMs);
    await pipeline.exec().catch(() => undefined);
  }

  async publish<T>(queue: string, messages: PublishMessage<T>[]): Promise<string[]> {
    await this.ready();
    if (messages.length === 0) return [];
    await this.watch(queue);
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
    this.heartbeats.set(name, `${this.base(queue)}:alive:${name}`);
    void this.watch(queue);
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
    takeOverDead: boolean,
  ): Promise<unknown> {
    await this.connect();
    return (conn as ScriptedRedis).taskqFetch(
      this.base(queue),
      consumer,
      credit,
      this.leaseMs,
      reclaim ? '1' : '0',
      this.livenessMs,
      takeOverDead ? '1' : '0',
    );
  }

  /** @internal Used by RedisConsumer for an entry it cannot decode: kept as a dead letter. */
  deadLetterUndecodable(queue: string, receipt: RedisReceipt, reason: string): void {
    this.logError(
      `dead-lettered an entry of ${queue} it cannot decode: ${reason}`,
      receipt.entryId,
    );
    this.enqueueSettle(queue, 'd', receipt, `undecodable message: ${reason}`).catch(
      (error: unknown) => this.logError(`dead-lettering an entry of ${queue} failed`, error),
    );
  }

  private logWarn(message: string): void {
    if (this.options.logger?.warn) this.options.logger.warn(`redis driver: ${message}`);
    else if (this.options.logger) this.options.logger.error(`redis driver: ${message}`);
    else console.warn(`redis driver: ${message}`);
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
      const data = parseData(f.d);
      return {
        id: f.i,
        queue,
        body: data ? data.body : f.d,
        headers: data?.headers ?? {},
        attempt: Number(f.a) || 1,
        reason: f.r,
        deadAt: new Date(Number(f.t)),
      };
    });
  }

  async missingKeys(queue: string, keys: string[]): Promise<string[]> {
    await this.ready();
    const missing: string[] = [];
    for (let i = 0; i < keys.length; i += MISSING_CHUNK) {
      const chunk = keys.slice(i, i + MISSING_CHUNK);
      missing.push(
        ...((await this.call(() =>
          this.client.taskqMissing(this.base(queue), ...chunk),
        )) as string[]),
      );
    }
    return missing;
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
    // While ioredis reconnects a command waits in its offline queue: say so at once instead.
    if (this.client.status !== 'ready') throw this.unavailable(`connection ${this.client.status}`);
    await this.call(() => this.client.ping());
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      for (const timer of this.timers) clearInterval(timer);
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
        // What this driver still holds goes to other consumers at once, not after the TTL.
        if (this.client.status === 'ready' && this.heartbeats.size > 0) {
          await this.client.del(...this.heartbeats.values());
        }
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
