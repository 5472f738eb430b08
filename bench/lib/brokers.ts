/**
 * Broker-only rows: the redis and amqp drivers alone, without task rows, side by side
 * with what the same broker does without taskq in the same run: BullMQ on Redis and a bare
 * amqplib loop on RabbitMQ. Each (system, test, round) is one bench job, so one child process;
 * the rounds interleave the systems, so a busy spell on the shared machine hits both sides.
 *
 *   npm run bench -- --drivers redis,amqp --only brokers [--broker-tasks 30000] [--rounds 3]
 *
 * - throughput: publish N in batches of 500 (each batch resolved on the broker's confirm, as
 *   driver.publish does), then consume them with a no-op handler at concurrency 64 and prefetch
 *   128, acknowledging each; then publish N more while that consumer runs (the loop). Three
 *   rows: the publish, consume and loop rates.
 * - pickup: an open loop publishes one message at a time at a steady rate; the latency is from
 *   the publish call to the delivery callback (handler start for BullMQ).
 */
import { Queue, Worker } from 'bullmq';
import { connect, type ConfirmChannel } from 'amqplib';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { performance } from 'node:perf_hooks';
import Redis from 'ioredis';
import { AmqpQueueDriver } from '../../src/queue/drivers/amqp/amqp.driver';
import { RedisQueueDriver } from '../../src/queue/drivers/redis/redis.driver';
import type { QueueDriver } from '../../src/queue/interfaces/queue-driver.interface';
import type { Delivery } from '../../src/queue/interfaces/queue-message.interface';
import type { Row } from '../bench';
import { intArg, openLoop, quantile, type RssSampler, sleep } from './util';

export type BrokerDriver = 'redis' | 'amqp';
/** Who moves the messages: taskq's driver, or the broker's usual client as the baseline. */
export type BrokerSystem = 'taskq' | 'bullmq' | 'amqplib';

export interface BrokerJob {
  kind: 'brokers';
  driver: BrokerDriver;
  system: BrokerSystem;
  test: 'throughput' | 'pickup';
  n: number;
  concurrency: number;
  prefetch: number;
  rate: number;
  seconds: number;
  round: number;
  rounds: number;
}

/** Options the parent accepts for these rows (merged into bench.ts's parseArgs table). */
export const BROKER_ARGS = { 'broker-tasks': 'string', rounds: 'string' } as const;

const BATCH = 500;
const CONCURRENCY = 64;
const PREFETCH = 2 * CONCURRENCY;
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const AMQP_URL = process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const BASELINE: Record<BrokerDriver, BrokerSystem> = { redis: 'bullmq', amqp: 'amqplib' };
const LABEL: Record<BrokerSystem, string> = {
  taskq: 'taskq driver alone',
  bullmq: 'BullMQ',
  amqplib: 'bare amqplib',
};

/** The jobs for one driver: every round runs the driver and its baseline, alternating first. */
export function brokerJobs(
  driver: string,
  args: Record<string, string | boolean>,
  opts: { small: boolean; rate: number; seconds: number },
): BrokerJob[] {
  if (driver !== 'redis' && driver !== 'amqp') return [];
  const n = intArg(args, 'broker-tasks', opts.small ? 2000 : 30_000, 1);
  const rounds = intArg(args, 'rounds', opts.small ? 1 : 3, 1);
  const jobs: BrokerJob[] = [];
  for (let round = 1; round <= rounds; round += 1) {
    const pair: BrokerSystem[] = ['taskq', BASELINE[driver]];
    if (round % 2 === 0) pair.reverse();
    for (const test of ['throughput', 'pickup'] as const) {
      for (const system of pair) {
        jobs.push({
          kind: 'brokers',
          driver,
          system,
          test,
          n,
          concurrency: CONCURRENCY,
          prefetch: PREFETCH,
          rate: opts.rate,
          seconds: opts.seconds,
          round,
          rounds,
        });
      }
    }
  }
  return jobs;
}

// =============================================================================================
// Child side.

interface Measured {
  publish?: { seconds: number; batchMs: number[] };
  consume?: { seconds: number };
  loop?: { seconds: number };
  pickup?: { seconds: number; latencies: number[]; sent: number };
}

/** Something that can publish one body or a batch, and consume with a no-op handler. */
interface System {
  publish(bodies: unknown[]): Promise<void>;
  /** Calls `onMessage` with each body; settles each once the handler returned. */
  consume(onMessage: (body: unknown) => void): Promise<void>;
  close(): Promise<void>;
}

export async function runBrokerJob(
  job: BrokerJob,
  rss: RssSampler,
  sendRow: (row: Row) => void,
): Promise<void> {
  const queue = `bench-brokers-${process.pid}-${randomUUID().slice(0, 8)}`;
  const system = await openSystem(job, queue);
  const measured: Measured = {};
  rss.peakMB(true);
  const cpu = process.cpuUsage();
  try {
    if (job.test === 'throughput') await throughput(job, system, measured);
    else await pickup(job, system, measured);
  } finally {
    await system.close();
  }
  const used = process.cpuUsage(cpu);
  const driver = job.system === 'taskq' ? job.driver : job.system;
  const tag = `round ${job.round}/${job.rounds}; ${job.driver === 'redis' ? 'Redis' : 'RabbitMQ'}`;
  const cpuNote = (messages: number): string =>
    `cpu ${Math.round((used.user + used.system) / messages)} µs/msg published and consumed (whole job)`;
  const rssMB = Math.round(rss.peakMB());
  if (measured.publish && measured.consume) {
    const sorted = Float64Array.from(measured.publish.batchMs).sort();
    sendRow(
      brokerRow(job, driver, `${LABEL[job.system]}: publish, batches of ${BATCH}`, {
        concurrency: 1,
        tasks: job.n,
        seconds: measured.publish.seconds,
        p50Ms: quantile(sorted, 0.5),
        p99Ms: quantile(sorted, 0.99),
        rssMB,
        note: `${tag}; p = per confirmed batch; ${cpuNote(2 * job.n)}`,
      }),
    );
    sendRow(
      brokerRow(job, driver, `${LABEL[job.system]}: consume, noop`, {
        concurrency: job.concurrency,
        tasks: job.n,
        seconds: measured.consume.seconds,
        p50Ms: null,
        p99Ms: null,
        rssMB,
        note: `${tag}; ${job.n} waiting, prefetch ${job.prefetch}, ack each`,
      }),
    );
  }
  if (measured.loop) {
    sendRow(
      brokerRow(job, driver, `${LABEL[job.system]}: loop, publish and consume at once`, {
        concurrency: job.concurrency,
        tasks: job.n,
        seconds: measured.loop.seconds,
        p50Ms: null,
        p99Ms: null,
        rssMB,
        note: `${tag}; batches of ${BATCH} published while the consumer runs; time to the last handled`,
      }),
    );
  }
  if (measured.pickup) {
    const sorted = Float64Array.from(measured.pickup.latencies).sort();
    sendRow(
      brokerRow(job, driver, `${LABEL[job.system]}: pickup publish→delivery @ ${job.rate}/s`, {
        concurrency: job.concurrency,
        tasks: measured.pickup.sent,
        seconds: measured.pickup.seconds,
        p50Ms: quantile(sorted, 0.5),
        p99Ms: quantile(sorted, 0.99),
        rssMB,
        note: `${tag}; open loop, one message per publish; ${cpuNote(measured.pickup.sent)}`,
      }),
    );
  }
}

function brokerRow(
  job: BrokerJob,
  driver: string,
  scenario: string,
  r: Omit<Row, 'driver' | 'scenario' | 'tasksPerSec'>,
): Row {
  const round = (v: number): number => Math.round(v * 100) / 100;
  return {
    driver,
    scenario,
    ...r,
    seconds: round(r.seconds),
    tasksPerSec: Math.round(r.tasks / r.seconds),
    p50Ms: r.p50Ms === null ? null : round(r.p50Ms),
    p99Ms: r.p99Ms === null ? null : round(r.p99Ms),
  };
}

/** Publishes n messages in batches, each awaited; returns each batch's time (ms). */
async function publishAll(system: System, n: number): Promise<number[]> {
  const batchMs: number[] = [];
  for (let done = 0; done < n; done += BATCH) {
    // The shape TasksService publishes (a task id is a UUID): size matters to RabbitMQ, which
    // handles bodies under 64 bytes more cheaply.
    const bodies = Array.from({ length: Math.min(BATCH, n - done) }, () => ({
      taskId: randomUUID(),
      action: 'noop',
      data: {},
    }));
    const t0 = performance.now();
    await system.publish(bodies);
    batchMs.push(performance.now() - t0);
  }
  return batchMs;
}

/**
 * Three phases on one queue: publish N with nobody consuming; consume those N; then, with the
 * consumer still running, publish N more and time until the last is handled (the loop).
 */
async function throughput(job: BrokerJob, system: System, out: Measured): Promise<void> {
  let started = performance.now();
  const batchMs = await publishAll(system, job.n);
  out.publish = { seconds: (performance.now() - started) / 1000, batchMs };

  let received = 0;
  let target = job.n;
  let finish!: () => void;
  let finished = new Promise<void>((resolve) => (finish = resolve));
  started = performance.now();
  await system.consume(() => {
    received += 1;
    if (received === target) finish();
  });
  await finished;
  out.consume = { seconds: (performance.now() - started) / 1000 };

  target = 2 * job.n;
  finished = new Promise<void>((resolve) => (finish = resolve));
  started = performance.now();
  await publishAll(system, job.n);
  await finished;
  out.loop = { seconds: (performance.now() - started) / 1000 };
}

async function pickup(job: BrokerJob, system: System, out: Measured): Promise<void> {
  const total = job.rate * job.seconds;
  const sent = new Float64Array(total);
  const latencies: number[] = [];
  await system.consume((body) => {
    const seq = (body as { seq: number }).seq;
    if (seq >= 0) latencies.push(performance.now() - sent[seq]);
  });
  // A few messages first, so connections and channels are warm before timing starts.
  for (let i = 0; i < 20; i += 1) await system.publish([{ seq: -1 }]);
  await sleep(100);
  latencies.length = 0;
  const { seconds, failures } = await openLoop(
    job.rate,
    total,
    (i) => system.publish([{ seq: i }]),
    sent,
  );
  const deadline = Date.now() + 30_000;
  while (latencies.length + failures() < total && Date.now() < deadline) await sleep(5);
  if (latencies.length + failures() < total) {
    throw new Error(`pickup: ${total - latencies.length - failures()} messages never arrived`);
  }
  out.pickup = { seconds, latencies, sent: total };
}

async function openSystem(job: BrokerJob, queue: string): Promise<System> {
  switch (job.system) {
    case 'taskq':
      return taskqSystem(job, queue);
    case 'bullmq':
      return bullmqSystem(job, queue);
    case 'amqplib':
      return amqplibSystem(job, queue);
  }
}

/**
 * The driver through the QueueDriver contract, with a minimal worker pool in front: deliveries
 * wait in a buffer, at most `concurrency` run the no-op handler at once, and a worker is busy
 * until its ack resolved (as in taskq's WorkerPool).
 */
async function taskqSystem(job: BrokerJob, queue: string): Promise<System> {
  const prefix = `bench-brokers-${randomUUID().slice(0, 8)}`;
  const driver: QueueDriver & { connect?(): Promise<void> } =
    job.driver === 'redis'
      ? // The bench's Redis may run without persistence; it measures speed, not durability.
        new RedisQueueDriver({ url: REDIS_URL, keyPrefix: prefix, allowVolatile: true })
      : new AmqpQueueDriver({ url: AMQP_URL });
  await driver.ping();
  const handles: { cancel(): Promise<void> }[] = [];
  return {
    publish: async (bodies) => {
      await driver.publish(
        queue,
        bodies.map((body) => ({ body })),
      );
    },
    consume: async (onMessage) => {
      const buffer: Delivery[] = [];
      let head = 0;
      let busy = 0;
      const run = (delivery: Delivery): void => {
        busy += 1;
        void Promise.resolve()
          .then(() => onMessage(delivery.body))
          .then(() => driver.ack(delivery))
          .then(
            () => {
              busy -= 1;
              pump();
            },
            (error: unknown) => {
              console.error('bench: ack failed', error);
              process.exit(1);
            },
          );
      };
      const pump = (): void => {
        while (busy < job.concurrency && head < buffer.length) run(buffer[head++]);
        if (head > 1024 && head === buffer.length) buffer.length = head = 0;
      };
      handles.push(
        driver.consume(
          queue,
          (delivery) => {
            buffer.push(delivery);
            pump();
          },
          { prefetch: job.prefetch },
        ),
      );
    },
    close: async () => {
      for (const handle of handles) await handle.cancel();
      await driver.close();
      if (job.driver === 'redis') await deleteRedisKeys(`${prefix}:*`);
      else await deleteAmqpQueues([queue, `${queue}.dead`]);
    },
  };
}

function redisConnection(): { host: string; port: number; password?: string; db?: number } {
  const url = new URL(REDIS_URL);
  return {
    host: url.hostname,
    port: Number(url.port || 6379),
    password: url.password ? decodeURIComponent(url.password) : undefined,
    db: url.pathname.length > 1 ? Number(url.pathname.slice(1)) : undefined,
  };
}

/** BullMQ with its defaults, a no-op processor at the same concurrency, jobs removed when done. */
async function bullmqSystem(job: BrokerJob, queue: string): Promise<System> {
  const prefix = `bench-bullmq-${randomUUID().slice(0, 8)}`;
  const connection = { ...redisConnection(), maxRetriesPerRequest: null };
  const producer = new Queue(queue, { connection, prefix });
  await producer.waitUntilReady();
  let worker: Worker | undefined;
  return {
    publish: async (bodies) => {
      if (bodies.length === 1) await producer.add('noop', bodies[0], { removeOnComplete: true });
      else
        await producer.addBulk(
          bodies.map((data) => ({ name: 'noop', data, opts: { removeOnComplete: true } })),
        );
    },
    consume: async (onMessage) => {
      worker = new Worker(
        queue,
        async (j) => {
          onMessage(j.data);
        },
        { connection, prefix, concurrency: job.concurrency },
      );
      await worker.waitUntilReady();
    },
    close: async () => {
      await worker?.close();
      await producer.obliterate({ force: true }).catch(() => undefined);
      await producer.close();
      await deleteRedisKeys(`${prefix}:*`);
    },
  };
}

/**
 * amqplib as its documentation shows it: a durable queue, persistent messages published on a
 * confirm channel (a batch resolves on waitForConfirms), a consumer channel with basic.qos =
 * prefetch and a manual ack per message. No headers; the queue has the same x-max-priority as
 * the driver's, so the broker does the same work per message.
 */
async function amqplibSystem(job: BrokerJob, queue: string): Promise<System> {
  // noDelay as in the driver, so latencies compare the clients, not Nagle's algorithm.
  const model = await connect(AMQP_URL, { noDelay: true });
  const pub: ConfirmChannel = await model.createConfirmChannel();
  await pub.assertQueue(queue, { durable: true, arguments: { 'x-max-priority': 10 } });
  const options = { persistent: true, contentType: 'application/json' };
  return {
    publish: async (bodies) => {
      for (const body of bodies) {
        if (!pub.sendToQueue(queue, Buffer.from(JSON.stringify(body)), options)) {
          await once(pub, 'drain');
        }
      }
      await pub.waitForConfirms();
    },
    consume: async (onMessage) => {
      const sub = await model.createChannel();
      await sub.prefetch(job.prefetch);
      await sub.consume(queue, (message) => {
        if (!message) return;
        onMessage(JSON.parse(message.content.toString('utf8')));
        sub.ack(message);
      });
    },
    close: async () => {
      await pub.deleteQueue(queue).catch(() => undefined);
      await model.close();
    },
  };
}

async function deleteRedisKeys(pattern: string): Promise<void> {
  const redis = new Redis(REDIS_URL);
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await redis.unlink(...keys);
    } while (cursor !== '0');
  } finally {
    await redis.quit();
  }
}

async function deleteAmqpQueues(queues: string[]): Promise<void> {
  const model = await connect(AMQP_URL);
  try {
    const channel = await model.createChannel();
    for (const queue of queues) await channel.deleteQueue(queue);
  } finally {
    await model.close();
  }
}

// =============================================================================================
// Parent side: ratios of the driver to its baseline, per round and as medians.

export function brokerSummary(rows: Row[]): string[] {
  const lines: string[] = [];
  for (const driver of ['redis', 'amqp'] as const) {
    const baseline = BASELINE[driver];
    for (const kind of ['publish', 'consume', 'loop', 'pickup'] as const) {
      const pick = (who: string, system: BrokerSystem): Row[] =>
        rows.filter(
          (r) =>
            r.driver.split('+')[0] === who && r.scenario.startsWith(`${LABEL[system]}: ${kind}`),
        );
      const ours = pick(driver, 'taskq');
      const theirs = pick(baseline, baseline);
      if (ours.length === 0 || theirs.length === 0) continue;
      const roundOf = (r: Row): string => /round (\d+)/.exec(r.note)?.[1] ?? '?';
      const median = (values: number[]): number => {
        const s = [...values].sort((a, b) => a - b);
        return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
      };
      if (kind === 'pickup') {
        const fmt = (rs: Row[]): string =>
          `p50 ${median(rs.map((r) => r.p50Ms ?? NaN)).toFixed(2)} ms, p99 ${median(rs.map((r) => r.p99Ms ?? NaN)).toFixed(2)} ms`;
        lines.push(
          `${driver} pickup (median of ${ours.length}): taskq ${fmt(ours)}; ${LABEL[baseline]} ${fmt(theirs)}`,
        );
        continue;
      }
      const perRound = ours
        .map((o) => {
          const t = theirs.find((r) => roundOf(r) === roundOf(o));
          return t ? (o.tasksPerSec / t.tasksPerSec).toFixed(2) : undefined;
        })
        .filter((v) => v !== undefined);
      const ratio =
        median(ours.map((r) => r.tasksPerSec)) / median(theirs.map((r) => r.tasksPerSec));
      lines.push(
        `${driver} ${kind}: taskq/${LABEL[baseline]} = ${ratio.toFixed(2)}x of medians (${Math.round(median(ours.map((r) => r.tasksPerSec)))} vs ${Math.round(median(theirs.map((r) => r.tasksPerSec)))}/s); per round ${perRound.join(', ')}`,
      );
    }
  }
  return lines;
}
