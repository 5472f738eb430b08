/**
 * Benchmark: not a test, a measurement. Prints a markdown table, one row as each
 * scenario completes; writes bench/results/bench-<time>.{md,json}, and `--json FILE` too.
 *
 *   npm run bench                                  # every driver the config accepts
 *   npm run bench -- --drivers memory --json out.json
 *   npm run bench -- --backlog 1000000             # the full large-backlog measurement
 *   npm run bench -- --small                       # tiny sizes, a smoke run
 *   npm run bench -- --db postgres                 # tasks in PostgreSQL (DATABASE_URL, default
 *                                                  # postgres://postgres@127.0.0.1:5432/test),
 *                                                  # a fresh schema per scenario, dropped after
 *
 * The environment passes through (REDIS_URL, AMQP_URL, ...); the bench sets QUEUE_DRIVER,
 * QUEUE_NAME, DATABASE_PATH (a temporary file), HOST, PORT, LOG_LEVEL and, except for the HTTP
 * rows (service defaults), WORKER_CONCURRENCY and WORKER_PREFETCH.
 *
 * Each scenario runs in its own child process (fresh heap, fresh temporary database), so its
 * RSS is its own and one scenario's garbage does not slow the next. The app is the real one,
 * built by createApp() with a bench module added (a `noop` handler and a bare 202 route).
 */
import autocannon from 'autocannon';
import { execFileSync, fork } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { loadAppConfig } from '../src/app.config.loader';
import type { CreateTaskDto } from '../src/tasks';
import { type BenchApp, createBenchApp, handlerStarts, recordStarts } from './lib/bench-app';
import {
  BROKER_ARGS,
  type BrokerJob,
  brokerJobs,
  brokerSummary,
  runBrokerJob,
} from './lib/brokers';
import { removeQueueFromBroker } from '../src/queue/testing/broker-cleanup';
import { createBenchSchema } from './lib/pg-schema';
import { runAuthPair } from './lib/auth-pair';
import { hashKey } from '../src/auth/api-key';
import { timeServiceDrain } from './lib/service-process';
import { intArg, mapLimit, openLoop, parseArgs, quantile, RssSampler, sleep } from './lib/util';

const ROOT = resolve(__dirname, '..');
const KNOWN_DRIVERS = ['memory', 'sqlite', 'redis', 'amqp', 'postgres'];

export interface Row {
  driver: string;
  scenario: string;
  concurrency: number | null;
  tasks: number;
  seconds: number;
  tasksPerSec: number;
  p50Ms: number | null;
  p99Ms: number | null;
  /** Peak RSS of the process that ran the scenario (the server, for HTTP rows). */
  rssMB: number;
  note: string;
}

type Job =
  | { kind: 'enqueue'; driver: string; n: number }
  | { kind: 'process'; driver: string; n: number; concurrency: number }
  | { kind: 'latency'; driver: string; rate: number; seconds: number; concurrency: number }
  | { kind: 'backlog'; driver: string; backlog: number; measure: number; concurrency: number }
  /** GET /metrics scrape time with `backlog` tasks waiting (queue paused). */
  | { kind: 'metrics'; driver: string; backlog: number; scrapes: number }
  | {
      kind: 'http';
      driver: string;
      adapter: 'express' | 'fastify';
      seconds: number;
      /** `api`: HTTP only, as behind a load balancer with workers elsewhere. Default `all`. */
      role?: 'all' | 'api';
      /** API keys on: API_KEYS_FILE holds this key's hash (see lib/auth-pair.ts). */
      apiKey?: string;
    }
  /** POST /tasks with API keys off and on, two children loaded in turn (parent side only). */
  | {
      kind: 'auth';
      driver: string;
      adapter: 'express' | 'fastify';
      seconds: number;
      rounds: number;
    }
  | BrokerJob;

type ChildMessage =
  | { type: 'row'; row: Row }
  | { type: 'listening'; port: number }
  | {
      type: 'rss';
      rssMB: number;
      completed: number;
      loopDelayP99Ms: number;
      loopDelayMaxMs: number;
      /** CPU time (user + system) the process used from listening to stop. */
      cpuMs?: number;
    };

// =============================================================================================
// Child side: one job, in a fresh process.

/** A queue of its own per scenario (each runs in its own process), removed from the broker after. */
const SCENARIO_QUEUE = `bench-${process.pid}-${Date.now()}`;

function appEnv(
  driver: string,
  dir: string,
  extra: Record<string, string>,
): Record<string, string> {
  return {
    QUEUE_DRIVER: driver,
    // The bench's Redis may run without persistence; it measures speed, not durability.
    REDIS_ALLOW_VOLATILE: process.env.REDIS_ALLOW_VOLATILE ?? 'true',
    // A queue of its own per scenario, so a broker (redis, amqp) carries nothing over between runs.
    QUEUE_NAME: SCENARIO_QUEUE,
    DATABASE_PATH: join(dir, 'tasks.db'),
    HOST: '127.0.0.1',
    PORT: '0',
    LOG_LEVEL: 'warn',
    RATE_LIMIT: '0', // the load generator is one client on purpose
    ...extra,
  };
}

const workers = (concurrency: number): Record<string, string> => ({
  WORKER_CONCURRENCY: String(concurrency),
  WORKER_PREFETCH: String(Math.max(10, concurrency * 2)),
});

const ms = (value: number): number => Math.round(value * 100) / 100;

function row(partial: Omit<Row, 'tasksPerSec' | 'seconds'> & { seconds: number }): Row {
  return {
    ...partial,
    seconds: ms(partial.seconds),
    tasksPerSec: Math.round(partial.tasks / partial.seconds),
    p50Ms: partial.p50Ms === null ? null : ms(partial.p50Ms),
    p99Ms: partial.p99Ms === null ? null : ms(partial.p99Ms),
    rssMB: Math.round(partial.rssMB),
  };
}

/**
 * CPU time (user + system) of this process since `since`, per task: on a shared machine the
 * wall-clock rate depends on what else runs, this much less so.
 */
function cpuPerTask(since: NodeJS.CpuUsage, tasks: number): string {
  const used = process.cpuUsage(since);
  return `cpu ${Math.round((used.user + used.system) / tasks)} µs/task`;
}

function sortedLatencies(values: number[]): Float64Array {
  return Float64Array.from(values).sort();
}

async function waitUntil(probe: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${what}`);
    await sleep(2);
  }
}

/** Pre-loads `n` queued noop tasks in bulk (rows in one transaction per chunk, then publish). */
async function preload(bench: BenchApp, n: number, chunk = 2000): Promise<void> {
  for (let done = 0; done < n; done += chunk) {
    const rows = Array.from({ length: Math.min(chunk, n - done) }, () => bench.row('noop', {}));
    await bench.bulkEnqueue(rows);
  }
}

/** Wraps TaskProcessor.process to time each delivery: claim → handler → result recorded. */
function timeProcessing(bench: BenchApp): number[] {
  const times: number[] = [];
  const processor = bench.processor;
  const original = processor.process.bind(processor);
  processor.process = async (delivery, signal) => {
    const started = performance.now();
    const outcome = await original(delivery, signal);
    if (!outcome) {
      times.push(performance.now() - started);
      return outcome;
    }
    // The result is written by the worker pool after process() returns (with or before the
    // ack): the outcome must be handed on, and the time ends when it has been committed.
    return {
      ...outcome,
      committed: (applied: boolean) => {
        times.push(performance.now() - started);
        outcome.committed(applied);
      },
    };
  };
  return times;
}

async function runJob(job: Job, send: (message: ChildMessage) => void): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'taskq-bench-'));
  const rss = new RssSampler(20);
  try {
    switch (job.kind) {
      case 'enqueue':
        return await enqueueJob(job, dir, rss, send);
      case 'process':
        return await processJob(job, dir, rss, send);
      case 'latency':
        return await latencyJob(job, dir, rss, send);
      case 'backlog':
        return await backlogJob(job, dir, rss, send);
      case 'http':
        return await httpJob(job, dir, rss, send);
      case 'metrics':
        return await metricsJob(job, dir, rss, send);
      case 'brokers':
        return await runBrokerJob(job, rss, (r) => send({ type: 'row', row: r }));
      case 'auth':
        throw new Error('the auth comparison runs in the parent');
    }
  } finally {
    rss.stop();
    rmSync(dir, { recursive: true, force: true });
    if (job.kind !== 'brokers' && job.kind !== 'auth') {
      await removeQueueFromBroker(job.driver, SCENARIO_QUEUE, {
        redisUrl: process.env.REDIS_URL,
        amqpUrl: process.env.AMQP_URL,
      });
    }
  }
}

async function enqueueJob(
  job: Extract<Job, { kind: 'enqueue' }>,
  dir: string,
  rss: RssSampler,
  send: (message: ChildMessage) => void,
): Promise<void> {
  const bench = await createBenchApp(appEnv(job.driver, dir, workers(1)));
  // Publishing only: no consumer takes messages meanwhile.
  await bench.driver.pauseQueue(bench.queue);
  const dto = { action: 'noop', data: {} } as CreateTaskDto;
  for (let i = 0; i < 200; i += 1) await bench.tasks.create(dto); // warm-up
  rss.peakMB(true);

  // (a) single: 64 concurrent publishers, one TasksService.create (row + message) per task.
  const latencies: number[] = [];
  let cpu = process.cpuUsage();
  let started = performance.now();
  await mapLimit(new Array<number>(job.n), 64, async () => {
    const t0 = performance.now();
    await bench.tasks.create(dto);
    latencies.push(performance.now() - t0);
  });
  let seconds = (performance.now() - started) / 1000;
  let sorted = sortedLatencies(latencies);
  send({
    type: 'row',
    row: row({
      driver: job.driver,
      scenario: `enqueue single: TasksService.create`,
      concurrency: 64,
      tasks: job.n,
      seconds,
      p50Ms: quantile(sorted, 0.5),
      p99Ms: quantile(sorted, 0.99),
      rssMB: rss.peakMB(true),
      note: `64 publishers; p = per create(); ${cpuPerTask(cpu, job.n)}`,
    }),
  });

  // (a) bulk: TasksService.createMany, all-or-nothing batches (rows in one insert, one publish).
  const batch = 500;
  latencies.length = 0;
  cpu = process.cpuUsage();
  started = performance.now();
  for (let done = 0; done < job.n; done += batch) {
    const dtos = Array.from({ length: Math.min(batch, job.n - done) }, () => dto);
    const t0 = performance.now();
    await bench.tasks.createMany(dtos);
    latencies.push(performance.now() - t0);
  }
  seconds = (performance.now() - started) / 1000;
  sorted = sortedLatencies(latencies);
  send({
    type: 'row',
    row: row({
      driver: job.driver,
      scenario: `enqueue bulk: TasksService.createMany`,
      concurrency: 1,
      tasks: job.n,
      seconds,
      p50Ms: quantile(sorted, 0.5),
      p99Ms: quantile(sorted, 0.99),
      rssMB: rss.peakMB(true),
      note: `batches of ${batch}; p = per batch; ${cpuPerTask(cpu, job.n)}`,
    }),
  });

  // (a) bulk, driver only: messages without task rows, the transport's own ceiling.
  latencies.length = 0;
  cpu = process.cpuUsage();
  started = performance.now();
  for (let done = 0; done < job.n; done += batch) {
    const messages = Array.from({ length: Math.min(batch, job.n - done) }, (_, i) => ({
      body: { taskId: `bench-${done + i}`, action: 'noop', data: {} },
    }));
    const t0 = performance.now();
    await bench.driver.publish(bench.queue, messages);
    latencies.push(performance.now() - t0);
  }
  seconds = (performance.now() - started) / 1000;
  sorted = sortedLatencies(latencies);
  send({
    type: 'row',
    row: row({
      driver: job.driver,
      scenario: `enqueue bulk: driver.publish only (no rows)`,
      concurrency: 1,
      tasks: job.n,
      seconds,
      p50Ms: quantile(sorted, 0.5),
      p99Ms: quantile(sorted, 0.99),
      rssMB: rss.peakMB(true),
      note: `batches of ${batch}; transport ceiling, not a task enqueue; p = per batch; ${cpuPerTask(cpu, job.n)}`,
    }),
  });
  await bench.close();
}

async function processJob(
  job: Extract<Job, { kind: 'process' }>,
  dir: string,
  rss: RssSampler,
  send: (message: ChildMessage) => void,
): Promise<void> {
  const bench = await createBenchApp(appEnv(job.driver, dir, workers(job.concurrency)));
  await bench.driver.pauseQueue(bench.queue);
  await preload(bench, job.n);
  const times = timeProcessing(bench);
  const before = bench.succeeded();
  const cpu = process.cpuUsage();
  const started = performance.now();
  await bench.driver.resumeQueue(bench.queue);
  await waitUntil(() => bench.succeeded() - before >= job.n, 600_000, 'processing');
  const cpuNote = cpuPerTask(cpu, job.n);
  const seconds = (performance.now() - started) / 1000;
  const sorted = sortedLatencies(times);
  send({
    type: 'row',
    row: row({
      driver: job.driver,
      scenario: `process noop, ${job.n} waiting`,
      concurrency: job.concurrency,
      tasks: job.n,
      seconds,
      p50Ms: quantile(sorted, 0.5),
      p99Ms: quantile(sorted, 0.99),
      rssMB: rss.peakMB(),
      note: `prefetch ${bench.config.worker.prefetch}; p = claim→result recorded; ${cpuNote}`,
    }),
  });
  await bench.close();
}

async function latencyJob(
  job: Extract<Job, { kind: 'latency' }>,
  dir: string,
  rss: RssSampler,
  send: (message: ChildMessage) => void,
): Promise<void> {
  const bench = await createBenchApp(appEnv(job.driver, dir, workers(job.concurrency)));
  const total = job.rate * job.seconds;
  recordStarts.enabled = true;
  const {
    sent,
    seconds: sendSeconds,
    failures,
  } = await openLoop(job.rate, total, (seq) =>
    bench.tasks.create({ action: 'noop', data: { seq } }),
  );
  await waitUntil(() => handlerStarts.size + failures() >= total, 60_000, 'handlers to start');
  const latencies: number[] = [];
  for (const [seq, at] of handlerStarts) latencies.push(at - sent[seq]);
  const sorted = sortedLatencies(latencies);
  send({
    type: 'row',
    row: row({
      driver: job.driver,
      scenario: `latency create→handler start @ ${job.rate}/s`,
      concurrency: job.concurrency,
      tasks: total,
      seconds: sendSeconds,
      p50Ms: quantile(sorted, 0.5),
      p99Ms: quantile(sorted, 0.99),
      rssMB: rss.peakMB(),
      note: `open loop ${job.seconds} s; tasks/s = offered rate achieved${failures() ? `; ${failures()} create() failed` : ''}`,
    }),
  });
  await bench.close();
}

async function backlogJob(
  job: Extract<Job, { kind: 'backlog' }>,
  dir: string,
  rss: RssSampler,
  send: (message: ChildMessage) => void,
): Promise<void> {
  const env = appEnv(job.driver, dir, workers(job.concurrency));
  const scenario = `process noop, ${job.backlog} waiting (first ${job.measure})`;
  const base = { driver: job.driver, scenario, concurrency: job.concurrency, tasks: job.measure };
  const loadStarted = performance.now();
  if (job.driver !== 'memory') {
    // Durable drivers: one process writes the backlog and exits; then the built service
    // (`node dist/main.js`, no bench code in it) starts on those files as a restarted service
    // would and drains it. Its rate, CPU and peak RSS are the service's own.
    await preloadElsewhere(env, job.backlog);
    const loadSeconds = (performance.now() - loadStarted) / 1000;
    // The file at rest, as a restarted service finds it: the kernel's write-back of the
    // freshly loaded file must not compete with the service's own commits and checkpoints.
    execFileSync('sync');
    const drained = await timeServiceDrain(env, env.QUEUE_NAME, job.measure);
    send({
      type: 'row',
      row: row({
        ...base,
        seconds: drained.seconds,
        p50Ms: null,
        p99Ms: null,
        rssMB: drained.rssMB,
        note: `backlog loaded in ${loadSeconds.toFixed(1)} s by another process; measured in node dist/main.js (fallback handler); RSS = that service's peak (VmHWM); cpu ${Math.round(drained.cpuMicrosPerTask)} µs/task`,
      }),
    });
    return;
  }
  // The memory driver keeps nothing across processes: it loads its backlog itself.
  const bench = await createBenchApp(env);
  await bench.driver.pauseQueue(bench.queue);
  await preload(bench, job.backlog, 5000);
  const loadSeconds = (performance.now() - loadStarted) / 1000;
  const times = timeProcessing(bench);
  const before = bench.succeeded();
  const cpu = process.cpuUsage();
  const started = performance.now();
  await bench.driver.resumeQueue(bench.queue);
  await waitUntil(() => bench.succeeded() - before >= job.measure, 600_000, 'processing');
  const seconds = (performance.now() - started) / 1000;
  const cpuNote = cpuPerTask(cpu, job.measure);
  const sorted = sortedLatencies(times);
  send({
    type: 'row',
    row: row({
      ...base,
      seconds,
      p50Ms: quantile(sorted, 0.5),
      p99Ms: quantile(sorted, 0.99),
      rssMB: rss.peakMB(),
      note: `backlog loaded in ${loadSeconds.toFixed(1)} s in this process; p = claim→result recorded; ${cpuNote}`,
    }),
  });
  // The rest of the backlog is left behind: pause so close() does not wait on it.
  await bench.driver.pauseQueue(bench.queue);
  await bench.close();
}

async function metricsJob(
  job: Extract<Job, { kind: 'metrics' }>,
  dir: string,
  rss: RssSampler,
  send: (message: ChildMessage) => void,
): Promise<void> {
  const bench = await createBenchApp(appEnv(job.driver, dir, {}));
  await bench.driver.pauseQueue(bench.queue);
  const loadStarted = performance.now();
  await preload(bench, job.backlog, 5000);
  const loadSeconds = (performance.now() - loadStarted) / 1000;
  await bench.app.listen(0, '127.0.0.1');
  const url = `${await bench.app.getUrl()}/metrics`.replace('[::1]', '127.0.0.1');
  const expected = `taskq_queue_waiting{queue="${bench.queue}"} ${job.backlog}`;
  const scrape = async (): Promise<number> => {
    const started = performance.now();
    const text = await (await fetch(url)).text();
    const elapsed = performance.now() - started;
    if (!text.includes(expected)) throw new Error(`scrape without "${expected}"`);
    return elapsed;
  };
  await scrape(); // warm-up: statement preparation, first page reads
  const times: number[] = [];
  const started = performance.now();
  for (let i = 0; i < job.scrapes; i++) times.push(await scrape());
  const seconds = (performance.now() - started) / 1000;
  // Where a scrape's time goes: the driver's counts and the task table's oldest due row.
  const part = async (read: () => Promise<unknown>): Promise<number> => {
    const t = performance.now();
    await read();
    return performance.now() - t;
  };
  const stats = await part(() => bench.driver.stats(bench.queue));
  const oldest = await part(() => bench.store.oldestQueuedAt(bench.queue, Date.now()));
  const sorted = sortedLatencies(times);
  send({
    type: 'row',
    row: row({
      driver: job.driver,
      scenario: `GET /metrics, ${job.backlog} waiting`,
      concurrency: null,
      tasks: job.scrapes,
      seconds,
      p50Ms: quantile(sorted, 0.5),
      p99Ms: quantile(sorted, 0.99),
      rssMB: rss.peakMB(),
      note: `tasks = scrapes (one at a time, over HTTP); of one scrape: driver stats ${stats.toFixed(1)} ms, oldest due task ${oldest.toFixed(2)} ms; backlog loaded in ${loadSeconds.toFixed(1)} s`,
    }),
  });
  await bench.close();
}

/** Runs `--preload`: a service process that writes a paused backlog of noop tasks and exits. */
function preloadElsewhere(env: Record<string, string>, backlog: number): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const child = fork(__filename, ['--preload', JSON.stringify({ env, backlog })], {
      execArgv: process.execArgv,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    child.once('exit', (code, signal) =>
      code === 0
        ? resolvePromise()
        : reject(new Error(`backlog preload exited with ${code ?? signal}`)),
    );
  });
}

async function preloadMain(env: Record<string, string>, backlog: number): Promise<void> {
  const bench = await createBenchApp(env);
  await bench.driver.pauseQueue(bench.queue);
  await preload(bench, backlog, 5000);
  await bench.close();
}

const cpuMs = ({ user, system }: NodeJS.CpuUsage): number => (user + system) / 1000;

async function httpJob(
  job: Extract<Job, { kind: 'http' }>,
  dir: string,
  rss: RssSampler,
  send: (message: ChildMessage) => void,
): Promise<void> {
  // The service as configured by default (worker concurrency and prefetch untouched), so the
  // consumers process what the POSTs queue, as they would in production (APP_ROLE=all).
  const keys: Record<string, string> = {};
  if (job.apiKey) {
    keys.API_KEYS_FILE = join(dir, 'keys.json');
    const entry = {
      name: 'bench',
      hash: hashKey(job.apiKey),
      scopes: ['tasks:write', 'tasks:read'],
    };
    writeFileSync(keys.API_KEYS_FILE, JSON.stringify([{ ...entry, actions: ['uppercase'] }]));
  }
  const bench = await createBenchApp(
    appEnv(job.driver, dir, { HTTP_ADAPTER: job.adapter, APP_ROLE: job.role ?? 'all', ...keys }),
  );
  await bench.app.listen(0, '127.0.0.1');
  const address = (bench.app.getHttpServer() as import('node:net').Server).address();
  const port = typeof address === 'object' && address ? address.port : 0;
  rss.peakMB(true);
  const cpuAtStart = process.cpuUsage();
  const loop = monitorEventLoopDelay({ resolution: 10 });
  loop.enable();
  const stop = new Promise<void>((done) => {
    process.on('message', (message: { type?: string }) => {
      if (message.type === 'stop') done();
    });
  });
  send({ type: 'listening', port });
  await stop;
  loop.disable();
  send({
    type: 'rss',
    rssMB: rss.peakMB(),
    completed: bench.succeeded(),
    loopDelayP99Ms: loop.percentile(99) / 1e6,
    loopDelayMaxMs: loop.max / 1e6,
    cpuMs: cpuMs(process.cpuUsage(cpuAtStart)),
  });
  await bench.close();
}

// =============================================================================================
// Parent side: plans the jobs, runs each in a child, prints rows.

/** Per driver: the rate with the largest backlog waiting, as a share of the smallest's. */
function backlogSummary(rows: Row[]): string[] {
  const byDriver = new Map<string, Row[]>();
  for (const r of rows) {
    if (!r.scenario.includes(' waiting (first ')) continue;
    byDriver.set(r.driver, [...(byDriver.get(r.driver) ?? []), r]);
  }
  const lines: string[] = [];
  for (const [driver, group] of byDriver) {
    if (group.length < 2) continue;
    const waiting = (r: Row) => Number(/(\d+) waiting/.exec(r.scenario)?.[1] ?? 0);
    group.sort((a, b) => waiting(a) - waiting(b));
    const [low, high] = [group[0], group[group.length - 1]];
    const share = Math.round((high.tasksPerSec / low.tasksPerSec) * 100);
    lines.push(
      `${driver}: ${high.tasksPerSec} tasks/s with ${waiting(high)} waiting = ${share}% of ${low.tasksPerSec} with ${waiting(low)} waiting; service RSS ${high.rssMB} MB`,
    );
  }
  return lines;
}

function forkChild(job: Job): import('node:child_process').ChildProcess {
  return fork(__filename, ['--child', JSON.stringify(job)], {
    execArgv: process.execArgv,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
}

function runChild(job: Job, timeoutMs: number, onRow: (row: Row) => void): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const child = forkChild(job);
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${job.kind} (${job.driver}) timed out after ${timeoutMs / 1000} s`));
    }, timeoutMs);
    let httpRows: Promise<void> | undefined;
    child.on('message', (message: ChildMessage) => {
      if (message.type === 'row') onRow(message.row);
      if (message.type === 'listening' && job.kind === 'http') {
        httpRows = loadHttp(job, message.port, child, onRow).catch((error: unknown) => {
          child.kill('SIGKILL');
          reject(error instanceof Error ? error : new Error(String(error)));
        });
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      void (httpRows ?? Promise.resolve()).then(() =>
        code === 0
          ? resolvePromise()
          : reject(new Error(`${job.kind} (${job.driver}) exited with ${code ?? signal}`)),
      );
    });
  });
}

/** Runs autocannon against the child's POST /tasks and its bare 202 route, then stops it. */
async function loadHttp(
  job: Extract<Job, { kind: 'http' }>,
  port: number,
  child: import('node:child_process').ChildProcess,
  onRow: (row: Row) => void,
): Promise<void> {
  const fire = (path: string, body: string, duration: number): Promise<autocannon.Result> =>
    autocannon({
      url: `http://127.0.0.1:${port}${path}`,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
      connections: 100,
      duration,
    });
  const routes = [
    {
      path: '/tasks',
      scenario: 'HTTP POST /tasks (uppercase)',
      body: JSON.stringify({ action: 'uppercase', data: { text: 'hello bench' } }),
    },
    { path: '/bench/bare', scenario: 'HTTP POST bare 202 route (floor)', body: '{}' },
  ];
  const results: { scenario: string; result: autocannon.Result }[] = [];
  for (const route of routes) {
    await fire(route.path, route.body, 1); // warm-up
    results.push({
      scenario: route.scenario,
      result: await fire(route.path, route.body, job.seconds),
    });
  }
  const done = new Promise<Extract<ChildMessage, { type: 'rss' }>>((resolveRss) => {
    child.on('message', (message: ChildMessage) => {
      if (message.type === 'rss') resolveRss(message);
    });
  });
  child.send({ type: 'stop' });
  const { rssMB, loopDelayP99Ms, loopDelayMaxMs } = await done;
  const loop = `server event-loop delay over both routes p99 ${Math.round(loopDelayP99Ms)} ms, max ${Math.round(loopDelayMaxMs)} ms`;
  for (const { scenario, result } of results) {
    const ok = result.requests.total - result.non2xx - result.errors - result.timeouts;
    onRow({
      driver: job.driver,
      scenario: `${scenario}, ${job.adapter}${job.role === 'api' ? ', APP_ROLE=api' : ''}`,
      concurrency: 100,
      tasks: ok,
      seconds: result.duration,
      tasksPerSec: Math.round(ok / result.duration),
      p50Ms: result.latency.p50,
      p99Ms: result.latency.p99,
      rssMB: Math.round(rssMB),
      note: `autocannon 100 conns ${job.seconds} s; non-2xx ${result.non2xx}, errors ${result.errors}; RSS = server peak over both routes; ${loop}`,
    });
  }
}

const COLUMNS: [keyof Row, string][] = [
  ['driver', 'driver'],
  ['scenario', 'scenario'],
  ['concurrency', 'conc'],
  ['tasks', 'tasks'],
  ['tasksPerSec', 'tasks/s'],
  ['p50Ms', 'p50 ms'],
  ['p99Ms', 'p99 ms'],
  ['rssMB', 'RSS MB'],
  ['note', 'note'],
];

const header = (): string =>
  `| ${COLUMNS.map(([, title]) => title).join(' | ')} |\n|${COLUMNS.map(() => '---').join('|')}|`;
const line = (r: Row): string =>
  `| ${COLUMNS.map(([key]) => (r[key] === null ? '' : String(r[key]))).join(' | ')} |`;

/** The commit measured, and whether the working tree differed from it (others' edits). */
function revision(): string {
  try {
    const run = (args: string[]): string =>
      execFileSync('git', args, { cwd: ROOT, encoding: 'utf8' }).trim();
    const dirty = run(['status', '--porcelain', '--', 'src']) !== '';
    return `${run(['rev-parse', '--short', 'HEAD'])}${dirty ? ' (src/ has uncommitted changes)' : ''}`;
  } catch {
    return 'unknown revision';
  }
}

async function parent(): Promise<number> {
  const args = parseArgs(process.argv.slice(2), {
    drivers: 'string',
    json: 'string',
    small: 'boolean',
    tasks: 'string',
    enqueue: 'string',
    backlog: 'string',
    'backlog-measure': 'string',
    rate: 'string',
    'latency-seconds': 'string',
    'auth-rounds': 'string',
    'http-seconds': 'string',
    only: 'string',
    ...BROKER_ARGS,
    db: 'string',
  });
  const db = args.db ?? 'sqlite';
  if (db !== 'sqlite' && db !== 'postgres') throw new Error(`--db must be sqlite or postgres`);
  const small = args.small === true;
  const accepts = (driver: string): boolean => {
    try {
      loadAppConfig({
        QUEUE_DRIVER: driver,
        DATABASE_PATH: join(tmpdir(), 'taskq-bench-probe.db'),
      });
      return true;
    } catch {
      return false;
    }
  };
  const drivers =
    typeof args.drivers === 'string'
      ? args.drivers.split(',').map((d) => d.trim())
      : // Brokers need servers: redis and amqp run only when asked for by name.
        ['memory', 'sqlite'].filter(accepts);
  for (const driver of drivers) {
    if (!KNOWN_DRIVERS.includes(driver) || !accepts(driver)) {
      throw new Error(`driver ${driver} is not accepted by the config (QUEUE_DRIVER)`);
    }
  }
  const n = intArg(args, 'tasks', small ? 1000 : 10_000, 1);
  const enqueueN = intArg(args, 'enqueue', small ? 1000 : 10_000, 1);
  const backlog = intArg(args, 'backlog', small ? 5000 : 100_000, 1);
  const measure = Math.min(backlog, intArg(args, 'backlog-measure', small ? 1000 : 10_000, 1));
  const rate = intArg(args, 'rate', 500, 1);
  const latencySeconds = intArg(args, 'latency-seconds', small ? 2 : 5, 1);
  const httpSeconds = intArg(args, 'http-seconds', small ? 2 : 5, 1);
  const authRounds = intArg(args, 'auth-rounds', small ? 2 : 4, 1);
  const only = typeof args.only === 'string' ? args.only.split(',') : undefined;

  const jobs: Job[] = [];
  for (const driver of drivers) {
    jobs.push({ kind: 'enqueue', driver, n: enqueueN });
    for (const concurrency of [1, 16, 64]) jobs.push({ kind: 'process', driver, n, concurrency });
    jobs.push({ kind: 'latency', driver, rate, seconds: latencySeconds, concurrency: 16 });
    // The same measurement over a small and a large backlog: their ratio is what matters.
    for (const size of new Set([Math.min(10_000, backlog), backlog])) {
      const sized = Math.min(size, measure);
      jobs.push({ kind: 'backlog', driver, backlog: size, measure: sized, concurrency: 16 });
    }
    // Scrape cost must not grow with the backlog: a small and a large one.
    for (const size of new Set([Math.min(10_000, backlog), backlog])) {
      jobs.push({ kind: 'metrics', driver, backlog: size, scrapes: small ? 5 : 20 });
    }
    for (const adapter of ['express', 'fastify'] as const) {
      jobs.push({ kind: 'http', driver, adapter, seconds: httpSeconds });
      // The API alone: what one API process accepts when the workers run elsewhere (not on
      // memory, whose messages never leave the process).
      if (driver !== 'memory') {
        jobs.push({ kind: 'http', driver, adapter, seconds: httpSeconds, role: 'api' });
      }
      // What authentication costs POST /tasks (target: under 5%).
      jobs.push({ kind: 'auth', driver, adapter, seconds: httpSeconds, rounds: authRounds });
    }
    jobs.push(...brokerJobs(driver, args, { small, rate, seconds: latencySeconds }));
  }
  const planned = jobs.filter((job) => !only || only.includes(job.kind));

  const rows: Row[] = [];
  const started = Date.now();
  const load = (): string =>
    loadavg()
      .map((value) => value.toFixed(2))
      .join(' ');
  const context = `taskq bench at ${revision()}: drivers ${drivers.join(', ')}; database ${db}; node ${process.version}; ${cpus().length} CPUs; ${new Date().toISOString()}; load average at start ${load()}`;
  console.log(`${context}\n`);
  console.log(header());
  let failed = 0;
  for (const job of planned) {
    const timeoutMs =
      job.kind === 'backlog' || job.kind === 'metrics' ? 120_000 + job.backlog * 2 : 180_000;
    // The child inherits DATABASE_URL: a schema of its own on PostgreSQL, none on SQLite.
    const schema = db === 'postgres' ? await createBenchSchema() : undefined;
    if (schema) process.env.DATABASE_URL = schema.url;
    else delete process.env.DATABASE_URL;
    try {
      const onRow = (r: Row): void => {
        if (schema) r.driver = `${r.driver}+postgres`;
        rows.push(r);
        console.log(line(r));
      };
      if (job.kind === 'auth') await runAuthPair(job, forkChild, onRow);
      else await runChild(job, timeoutMs, onRow);
    } catch (error) {
      failed += 1;
      console.log(`| ${job.driver} | ${job.kind} FAILED: ${(error as Error).message} |`);
    } finally {
      await schema?.drop();
    }
  }
  const peak = new Map<string, number>();
  for (const r of rows) peak.set(r.driver, Math.max(peak.get(r.driver) ?? 0, r.rssMB));
  const summary = [...peak].map(([driver, mb]) => `${driver} ${mb} MB`).join(', ');
  console.log(`\npeak RSS of any scenario process: ${summary}`);
  for (const line of backlogSummary(rows)) console.log(line);
  const ratios = brokerSummary(rows);
  for (const ratio of ratios) console.log(ratio);
  const total = `total ${((Date.now() - started) / 1000).toFixed(0)} s; load average at end ${load()}`;
  console.log(total);

  const dir = join(ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  writeFileSync(
    join(dir, `bench-${stamp}.md`),
    `${context}\n\n${header()}\n${rows.map(line).join('\n')}\n\n${ratios.map((r) => `${r}\n`).join('')}peak RSS: ${summary}; ${total}\n`,
  );
  const json = JSON.stringify(rows, null, 2);
  writeFileSync(join(dir, `bench-${stamp}.json`), json);
  if (typeof args.json === 'string') writeFileSync(resolve(args.json), json);
  console.log(`results: bench/results/bench-${stamp}.{md,json}`);
  return failed === 0 ? 0 : 1;
}

if (process.argv[2] === '--preload') {
  const { env, backlog } = JSON.parse(process.argv[3]) as {
    env: Record<string, string>;
    backlog: number;
  };
  preloadMain(env, backlog).then(
    () => process.exit(0),
    (error: unknown) => {
      console.error('bench backlog preload failed:', error);
      process.exit(1);
    },
  );
} else if (process.argv[2] === '--child') {
  const job = JSON.parse(process.argv[3]) as Job;
  // IPC sends are asynchronous: exit only once every row has left the process.
  const sending: Promise<void>[] = [];
  const send = (message: ChildMessage): void => {
    if (!process.send) {
      // Run by hand (`--child '<job json>'`, e.g. under --cpu-prof): print instead.
      console.log(JSON.stringify(message));
      return;
    }
    const ipc = process.send.bind(process);
    sending.push(new Promise((done) => ipc(message, () => done())));
  };
  runJob(job, send).then(
    () => Promise.all(sending).then(() => process.exit(0)),
    (error: unknown) => {
      console.error(`bench child ${job.kind} (${job.driver}) failed:`, error);
      process.exit(1);
    },
  );
} else {
  parent().then(
    (code) => process.exit(code),
    (error: unknown) => {
      console.error('bench:', error instanceof Error ? error.message : error);
      process.exit(2);
    },
  );
}
