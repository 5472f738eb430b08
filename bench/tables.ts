/**
 * The task table as the queue, against the libraries that do the same, side by side in one run
 * (issue 10): taskq's postgres driver against pg-boss 10 (`work`, batchSize 64), and taskq's
 * sqlite default against plainjob on the same better-sqlite3. Each (system, test, round) runs
 * in a child process of its own (fresh heap, fresh schema or file); rounds alternate which
 * system goes first, so a busy spell on the shared machine hits both sides.
 *
 *   npm run bench:tables                                  # both pairs
 *   npm run bench:tables -- --only postgres --tasks 5000 --backlog 100000 --rounds 2
 *   npm run bench:tables -- --tests processes,backlog          # some tests only
 *
 * `npm run build` first: the `processes` rows start the built service (dist/main.js).
 *
 * Rows: enqueue one at a time (64 concurrent for taskq and pg-boss, sequential for plainjob,
 * whose add() is synchronous) and in batches of 500; the whole pipeline (64 producers while the
 * consumers run, until every task is recorded done); processing a preloaded queue; pickup
 * (create → handler start) in an open loop at --rate tasks/s; and for the postgres driver the
 * rate of the first 10k tasks with 10k and with --backlog waiting (the claim's cost; for sqlite
 * also one worker process's peak RSS with --backlog waiting).
 * PostgreSQL: DATABASE_URL or postgres://postgres@127.0.0.1:5432/test, a schema per job,
 * dropped after it. Results go to bench/results/tables-<time>.{md,json}.
 */
import Database from 'better-sqlite3';
import { execFileSync, fork, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Client as PgClient } from 'pg';
import PgBoss from 'pg-boss';
import type { CreateTaskDto } from '../src/tasks';
import { type BenchApp, createBenchApp, handlerStarts, recordStarts } from './lib/bench-app';
import { createBenchSchema } from './lib/pg-schema';
import {
  freePort,
  intArg,
  mapLimit,
  openLoop,
  parseArgs,
  quantile,
  RssSampler,
  sleep,
} from './lib/util';
import type { Row } from './bench';

const ROOT = resolve(__dirname, '..');
type System = 'taskq-postgres' | 'pg-boss' | 'taskq-sqlite' | 'plainjob';
type Test = 'enqueue' | 'pipeline' | 'process' | 'pickup' | 'backlog' | 'processes';

interface Job {
  system: System;
  test: Test;
  n: number;
  concurrency: number;
  rate: number;
  seconds: number;
  backlog: number;
  round: number;
  /** `processes`: worker processes of the built service sharing the database. */
  workers?: number;
  /** `processes`: tasks waiting when the workers start (default n); they run the first n. */
  waiting?: number;
  /** PostgreSQL: the job's schema URL (search_path) and schema name. */
  url?: string;
  schema?: string;
}

const BATCH = 500;
/** Pickup: the warm-up's sequence numbers start here, apart from the measured ones. */
const WARM_UP_SEQ = 1_000_000_000;
const PRODUCERS = 64;
const ms = (v: number): number => Math.round(v * 100) / 100;
const sorted = (values: number[]): Float64Array => Float64Array.from(values).sort();

function makeRow(job: Job, scenario: string, tasks: number, seconds: number, extra: Partial<Row>) {
  const lat = extra.p50Ms !== undefined;
  return {
    driver: job.system,
    scenario,
    concurrency: extra.concurrency ?? job.concurrency,
    tasks,
    seconds: ms(seconds),
    tasksPerSec: Math.round(tasks / seconds),
    p50Ms: lat ? ms(extra.p50Ms!) : null,
    p99Ms: lat ? ms(extra.p99Ms!) : null,
    rssMB: Math.round(extra.rssMB ?? 0),
    note: `round ${job.round}${extra.note ? `; ${extra.note}` : ''}`,
  } satisfies Row;
}

async function waitUntil(probe: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 600_000;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await sleep(2);
  }
}

// =============================================================================================
// The systems, behind one shape: enqueue one, enqueue a batch, start consuming (counting what
// is recorded done, and calling onStart at each handler start), close.

interface Harness {
  add(seq: number): Promise<unknown>;
  addMany(count: number): Promise<unknown>;
  /** Loads `count` waiting tasks fast (set-up, not measured) while nothing consumes. */
  preload(count: number): Promise<void>;
  /** Starts the consumers; `done()` counts tasks whose outcome is recorded. */
  consume(onStart?: (seq: number) => void): Promise<void>;
  done(): number;
  /** Resolves when nothing is left waiting or running (the outcome recorded). */
  drained?(): Promise<boolean>;
  close(): Promise<void>;
}

async function taskq(job: Job, dir: string): Promise<Harness> {
  const env: Record<string, string> = {
    QUEUE_DRIVER: job.system === 'taskq-postgres' ? 'postgres' : 'sqlite',
    QUEUE_NAME: `tables-${process.pid}`,
    DATABASE_PATH: join(dir, 'tasks.db'),
    HOST: '127.0.0.1',
    PORT: '0',
    LOG_LEVEL: 'warn',
    WORKER_CONCURRENCY: String(job.concurrency),
    WORKER_PREFETCH: String(Math.max(10, job.concurrency * 2)),
    ...(job.url ? { DATABASE_URL: job.url } : {}),
  };
  if (!job.url) delete process.env.DATABASE_URL;
  const bench: BenchApp = await createBenchApp(env);
  // Nothing is consumed until consume() resumes the queue.
  await bench.driver.pauseQueue(bench.queue);
  const dto = { action: 'noop', data: {} } as CreateTaskDto;
  return {
    add: (seq) => bench.tasks.create({ action: 'noop', data: { seq } }),
    addMany: (count) => bench.tasks.createMany(Array.from({ length: count }, () => dto)),
    preload: async (count) => {
      for (let done = 0; done < count; done += 5000) {
        const rows = Array.from({ length: Math.min(5000, count - done) }, () =>
          bench.row('noop', {}),
        );
        await bench.bulkEnqueue(rows);
      }
    },
    consume: async (onStart) => {
      if (onStart) recordStarts.enabled = true;
      baseline = bench.succeeded();
      await bench.driver.resumeQueue(bench.queue);
    },
    done: () => bench.succeeded() - baseline,
    close: () => bench.close(),
  };
}
/** Tasks the pools had recorded before consume(): warm-up and earlier steps are not counted. */
let baseline = 0;

async function pgBoss(job: Job): Promise<Harness> {
  const boss = new PgBoss({ connectionString: job.url, schema: job.schema, max: 10 });
  boss.on('error', (error) => console.error('pg-boss:', error.message));
  await boss.start();
  const queue = `tables-${process.pid}`;
  await boss.createQueue(queue);
  let done = 0;
  return {
    add: (seq) => boss.send(queue, { seq }),
    addMany: (count) =>
      boss.insert(Array.from({ length: count }, () => ({ name: queue, data: {} }))),
    preload: async (count) => {
      for (let i = 0; i < count; i += 5000) {
        const size = Math.min(5000, count - i);
        await boss.insert(Array.from({ length: size }, () => ({ name: queue, data: {} })));
      }
    },
    consume: async (onStart) => {
      // Its `work` with batch 64 (the issue's baseline) and its shortest polling interval.
      await boss.work<{ seq?: number }>(
        queue,
        { batchSize: 64, pollingIntervalSeconds: 0.5 },
        async (jobs) => {
          if (onStart)
            for (const j of jobs) if (typeof j.data.seq === 'number') onStart(j.data.seq);
          done += jobs.length;
        },
      );
    },
    done: () => done,
    // Handled is not yet recorded: pg-boss completes a batch after its handler returns.
    drained: async () => (await boss.getQueueSize(queue, { before: 'completed' })) === 0,
    close: () => boss.stop({ graceful: false, wait: true }),
  };
}

async function plainjob(dir: string): Promise<Harness> {
  // ES module only; Node 20.19+ requires it synchronously.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const pj = require('plainjob') as typeof import('plainjob');
  const db = new Database(join(dir, 'plainjob.db'));
  const quiet = { error: () => {}, warn: () => {}, info: () => {}, debug: () => {} };
  const queue = pj.defineQueue({ connection: pj.better(db), logger: quiet });
  let done = 0;
  let worker: { stop(): Promise<void> } | undefined;
  return {
    add: async (seq) => queue.add('noop', { seq }),
    addMany: async (count) =>
      queue.addMany(
        'noop',
        Array.from({ length: count }, () => ({})),
      ),
    preload: async (count) => {
      for (let i = 0; i < count; i += 5000) {
        queue.addMany(
          'noop',
          Array.from({ length: Math.min(5000, count - i) }, () => ({})),
        );
      }
    },
    consume: async (onStart) => {
      const w = pj.defineWorker(
        'noop',
        (j) => {
          if (onStart) {
            const seq = (JSON.parse(j.data) as { seq?: number }).seq;
            if (typeof seq === 'number') onStart(seq);
          }
        },
        // A 10 ms poll, as in the issue's measurement (its default is 1 s).
        { queue, logger: quiet, pollIntervall: 10, onCompleted: () => (done += 1) },
      );
      worker = w;
      void w.start();
    },
    done: () => done,
    close: async () => {
      await worker?.stop();
      queue.close();
    },
  };
}

async function open(job: Job, dir: string): Promise<Harness> {
  if (job.system === 'pg-boss') return pgBoss(job);
  if (job.system === 'plainjob') return plainjob(dir);
  return taskq(job, dir);
}

// =============================================================================================
// Child side: one job.

async function runJob(job: Job, send: (row: Row) => void): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'taskq-tables-'));
  const rss = new RssSampler(20);
  const harness = await open(job, dir);
  const sequential = job.system === 'plainjob';
  try {
    if (job.test === 'enqueue') {
      for (let i = 0; i < 200; i += 1) await harness.add(i); // warm-up
      rss.peakMB(true);
      const lat: number[] = [];
      let t0 = performance.now();
      await mapLimit(new Array<number>(job.n), sequential ? 1 : PRODUCERS, async (_, i) => {
        const s = performance.now();
        await harness.add(i);
        lat.push(performance.now() - s);
      });
      let seconds = (performance.now() - t0) / 1000;
      let q = sorted(lat);
      send(
        makeRow(job, 'enqueue one at a time', job.n, seconds, {
          concurrency: sequential ? 1 : PRODUCERS,
          p50Ms: quantile(q, 0.5),
          p99Ms: quantile(q, 0.99),
          rssMB: rss.peakMB(true),
          note: sequential ? 'sequential add() (synchronous)' : `${PRODUCERS} concurrent producers`,
        }),
      );
      lat.length = 0;
      t0 = performance.now();
      for (let done = 0; done < job.n; done += BATCH) {
        const s = performance.now();
        await harness.addMany(Math.min(BATCH, job.n - done));
        lat.push(performance.now() - s);
      }
      seconds = (performance.now() - t0) / 1000;
      q = sorted(lat);
      send(
        makeRow(job, `enqueue bulk, batches of ${BATCH}`, job.n, seconds, {
          concurrency: 1,
          p50Ms: quantile(q, 0.5),
          p99Ms: quantile(q, 0.99),
          rssMB: rss.peakMB(true),
          note: 'p = per batch',
        }),
      );
    } else if (job.test === 'process' || job.test === 'backlog') {
      const waiting = job.test === 'backlog' ? job.backlog : job.n;
      const loadStart = performance.now();
      await harness.preload(waiting);
      const loadSeconds = (performance.now() - loadStart) / 1000;
      rss.peakMB(true);
      const cpu = process.cpuUsage();
      const t0 = performance.now();
      await harness.consume();
      await waitUntil(() => harness.done() >= job.n, 'processing');
      if (harness.drained && job.test === 'process') {
        await waitUntil(() => harness.drained!(), 'the outcomes recorded');
      }
      const seconds = (performance.now() - t0) / 1000;
      const used = process.cpuUsage(cpu);
      const scenario =
        job.test === 'backlog'
          ? `process noop, first ${job.n} of ${waiting} waiting`
          : `process noop, ${job.n} waiting`;
      send(
        makeRow(job, scenario, job.n, seconds, {
          rssMB: rss.peakMB(),
          note: `${job.system === 'pg-boss' ? 'work batchSize 64' : job.system === 'plainjob' ? 'one worker' : `concurrency ${job.concurrency}`}; loaded in ${loadSeconds.toFixed(1)} s; cpu ${Math.round((used.user + used.system) / job.n)} µs/task`,
        }),
      );
    } else if (job.test === 'processes') {
      const waiting = job.waiting ?? job.n;
      await harness.preload(waiting);
      // Holds the event loop open: closing the in-process sqlite app leaves nothing that does,
      // and Node would end this child mid-close (exit code 0, no row).
      const keepAlive = setInterval(() => undefined, 1000);
      await harness.close();
      const { seconds, cpuMicrosPerTask, peakRssMB } = await drainWithWorkers(job, dir).finally(
        () => clearInterval(keepAlive),
      );
      const of = waiting === job.n ? '' : `first ${job.n} of ${waiting} waiting, `;
      send(
        makeRow(job, `process noop, ${of}${job.workers} worker process(es)`, job.n, seconds, {
          concurrency: job.concurrency,
          rssMB: peakRssMB,
          note: `node dist/main.js APP_ROLE=worker ×${job.workers}, concurrency ${job.concurrency} each; cpu ${Math.round(cpuMicrosPerTask)} µs/task over all workers; RSS = the largest worker's peak`,
        }),
      );
      return;
    } else if (job.test === 'pipeline') {
      await harness.consume();
      rss.peakMB(true);
      const t0 = performance.now();
      await mapLimit(new Array<number>(job.n), sequential ? 1 : PRODUCERS, (_, i) =>
        harness.add(i),
      );
      await waitUntil(() => harness.done() >= job.n, 'the pipeline');
      if (harness.drained) await waitUntil(() => harness.drained!(), 'the outcomes recorded');
      const seconds = (performance.now() - t0) / 1000;
      send(
        makeRow(job, 'whole pipeline: enqueue while consuming, until all done', job.n, seconds, {
          rssMB: rss.peakMB(),
          note: `${PRODUCERS} producers; ${job.system === 'pg-boss' ? 'work batchSize 64' : `concurrency ${job.concurrency}`}`,
        }),
      );
    } else {
      const starts = new Map<number, number>();
      const hook = (seq: number): void => void starts.set(seq, performance.now());
      await harness.consume(hook);
      const total = job.rate * job.seconds;
      const source = job.system.startsWith('taskq') ? handlerStarts : starts;
      const measured = (): [number, number][] => [...source].filter(([seq]) => seq < total);
      // One second at the rate first, not measured (JIT, first statements and pages), on both.
      await openLoop(job.rate, job.rate, (seq) => harness.add(WARM_UP_SEQ + seq));
      const { sent, seconds, failures } = await openLoop(job.rate, total, (seq) =>
        harness.add(seq),
      );
      await waitUntil(() => measured().length + failures() >= total, 'handlers to start');
      const lat = measured().map(([seq, at]) => at - sent[seq]);
      const q = sorted(lat);
      send(
        makeRow(job, `pickup: create → handler start @ ${job.rate}/s`, total, seconds, {
          p50Ms: quantile(q, 0.5),
          p99Ms: quantile(q, 0.99),
          rssMB: rss.peakMB(),
          note: `open loop ${job.seconds} s after 1 s of warm-up${job.system === 'pg-boss' ? '; work batchSize 64, polling 0.5 s (its minimum)' : ''}`,
        }),
      );
    }
  } finally {
    rss.stop();
    if (job.test !== 'processes') await harness.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Starts `job.workers` processes of the built service on the database `harness` loaded (queue
 * paused), resumes the queue in the database and times until every task is completed.
 */
async function drainWithWorkers(
  job: Job,
  dir: string,
): Promise<{ seconds: number; cpuMicrosPerTask: number; peakRssMB: number }> {
  const main = join(ROOT, 'dist', 'main.js');
  const env: Record<string, string> = {
    ...(process.env as Record<string, string>),
    QUEUE_DRIVER: job.system === 'taskq-postgres' ? 'postgres' : 'sqlite',
    QUEUE_NAME: `tables-${process.pid}`,
    DATABASE_PATH: join(dir, 'tasks.db'),
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    APP_ROLE: 'worker',
    WORKER_CONCURRENCY: String(job.concurrency),
    WORKER_PREFETCH: String(job.concurrency * 2),
    ...(job.url ? { DATABASE_URL: job.url } : {}),
  };
  if (!job.url) delete env.DATABASE_URL;
  // This child's IPC channel is not theirs: a worker that inherited it would read our messages.
  delete env.NODE_CHANNEL_FD;
  delete env.NODE_CHANNEL_SERIALIZATION_MODE;
  const sql = `SELECT count(*) AS n FROM tasks WHERE status = 'completed'`;
  const pg = job.url ? new PgClient({ connectionString: job.url }) : undefined;
  const lite = job.url ? undefined : new Database(env.DATABASE_PATH);
  if (lite) lite.pragma('busy_timeout = 5000');
  await pg?.connect();
  const completed = async (): Promise<number> =>
    pg
      ? Number((await pg.query<{ n: string }>(sql)).rows[0].n)
      : (lite!.prepare(sql).get() as { n: number }).n;
  const children = [];
  try {
    for (let i = 0; i < job.workers!; i += 1) {
      const port = await freePort();
      const child = spawn(process.execPath, [main], {
        env: { ...env, PORT: String(port) },
        stdio: ['ignore', 'inherit', 'inherit'],
      });
      children.push({ child, port });
    }
    for (const { child, port } of children) {
      await waitUntil(
        () =>
          child.exitCode !== null
            ? Promise.reject(new Error('a worker exited'))
            : fetch(`http://127.0.0.1:${port}/health`).then(
                (r) => r.ok,
                () => false,
              ),
        'the workers to start',
      );
    }
    const cpu = children.reduce((sum, { child }) => sum + cpuMicros(child.pid!), 0);
    const t0 = performance.now();
    if (pg) {
      await pg.query('DELETE FROM taskq_queue_paused');
      await pg.query(`SELECT pg_notify('taskq:' || current_schema(), $1)`, [env.QUEUE_NAME]);
    } else {
      // The workers hear of the commit through the file's change counter.
      lite!.prepare('DELETE FROM taskq_queue_paused').run();
    }
    await waitUntil(async () => (await completed()) >= job.n, 'the workers to drain');
    const seconds = (performance.now() - t0) / 1000;
    const used = children.reduce((sum, { child }) => sum + cpuMicros(child.pid!), 0) - cpu;
    const peakRssMB = Math.max(...children.map(({ child }) => peakRss(child.pid!)));
    return { seconds, cpuMicrosPerTask: used / job.n, peakRssMB };
  } finally {
    await Promise.all(
      children.map(
        ({ child }) =>
          new Promise<void>((done) => {
            if (child.exitCode !== null) return done();
            child.once('exit', () => done());
            child.kill('SIGTERM');
          }),
      ),
    );
    await pg?.end();
    lite?.close();
  }
}

/** The peak resident set of a process so far, in MB (Linux /proc: VmHWM). */
function peakRss(pid: number): number {
  const kb = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return Number(kb ?? 0) / 1024;
}

/** user + system CPU of a process so far, in microseconds (Linux /proc). */
function cpuMicros(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return ((Number(fields[11]) + Number(fields[12])) / 100) * 1e6;
}

// =============================================================================================
// Parent side.

function plan(args: Record<string, string | boolean>): Job[] {
  const small = args.small === true;
  const n = intArg(args, 'tasks', small ? 1000 : 10_000, 1);
  const backlog = intArg(args, 'backlog', small ? 20_000 : 100_000, 1);
  const rate = intArg(args, 'rate', 500, 1);
  const seconds = intArg(args, 'seconds', small ? 2 : 5, 1);
  const rounds = intArg(args, 'rounds', 1, 1);
  const only = typeof args.only === 'string' ? args.only : undefined;
  const base = { n, rate, seconds, backlog, concurrency: 64 };
  const jobs: Job[] = [];
  for (let round = 1; round <= rounds; round += 1) {
    const flip = <T>(pair: T[]): T[] => (round % 2 === 0 ? [...pair].reverse() : pair);
    if (only !== 'sqlite') {
      for (const test of ['enqueue', 'pipeline', 'process', 'pickup'] as const) {
        for (const system of flip<System>(['taskq-postgres', 'pg-boss'])) {
          jobs.push({ ...base, system, test, round, concurrency: test === 'pickup' ? 16 : 64 });
        }
      }
      for (const workers of [1, 2, 4]) {
        jobs.push({
          ...base,
          system: 'taskq-postgres',
          test: 'processes',
          workers,
          concurrency: 16,
          round,
        });
      }
      // The claim's cost: the same 10k with 10k waiting and with the large backlog.
      for (const size of [Math.min(n, backlog), backlog]) {
        jobs.push({
          ...base,
          system: 'taskq-postgres',
          test: 'backlog',
          backlog: size,
          round,
          concurrency: 16,
        });
      }
    }
    if (only !== 'postgres') {
      for (const system of flip<System>(['taskq-sqlite', 'plainjob'])) {
        jobs.push({ ...base, system, test: 'enqueue', round });
      }
      for (const concurrency of [1, 16, 64]) {
        jobs.push({ ...base, system: 'taskq-sqlite', test: 'process', concurrency, round });
      }
      jobs.push({ ...base, system: 'plainjob', test: 'process', concurrency: 1, round });
      for (const workers of [1, 2, 4]) {
        jobs.push({
          ...base,
          system: 'taskq-sqlite',
          test: 'processes',
          workers,
          concurrency: 16,
          round,
        });
      }
      for (const system of flip<System>(['taskq-sqlite', 'plainjob'])) {
        jobs.push({ ...base, system, test: 'pickup', concurrency: 16, round });
      }
      // The claim's cost, and the service's memory, with a small and a large backlog.
      for (const size of [Math.min(n, backlog), backlog]) {
        jobs.push({
          ...base,
          system: 'taskq-sqlite',
          test: 'backlog',
          backlog: size,
          round,
          concurrency: 16,
        });
      }
      // The service's own memory (one worker process) with the large backlog waiting; the
      // 1-worker row above is its 10k-waiting twin.
      jobs.push({
        ...base,
        system: 'taskq-sqlite',
        test: 'processes',
        workers: 1,
        waiting: backlog,
        concurrency: 16,
        round,
      });
    }
  }
  const tests = typeof args.tests === 'string' ? args.tests.split(',') : undefined;
  return tests ? jobs.filter((job) => tests.includes(job.test)) : jobs;
}

function runChild(job: Job, onRow: (row: Row) => void): Promise<void> {
  return new Promise((done, fail) => {
    const child = fork(__filename, ['--child', JSON.stringify(job)], {
      execArgv: process.execArgv,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 900_000);
    child.on('message', (row: Row) => onRow(row));
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) done();
      else fail(new Error(`${job.system} ${job.test} exited with ${code ?? signal}`));
    });
  });
}

/** The taskq row over its baseline's, per scenario and round. */
function ratios(rows: Row[]): string[] {
  const pairs: [string, string][] = [
    ['taskq-postgres', 'pg-boss'],
    ['taskq-sqlite', 'plainjob'],
  ];
  const lines: string[] = [];
  for (const [ours, theirs] of pairs) {
    for (const r of rows.filter(
      (x) =>
        x.driver === ours &&
        !x.scenario.includes('first') &&
        !x.scenario.includes('worker process'),
    )) {
      const same = rows.find(
        (x) =>
          x.driver === theirs &&
          x.note.split(';')[0] === r.note.split(';')[0] &&
          (x.scenario === r.scenario ||
            (r.scenario.startsWith('process noop') && x.scenario.startsWith('process noop'))),
      );
      if (!same) continue;
      const lat =
        r.p50Ms !== null && same.p50Ms !== null
          ? `; p50 ${r.p50Ms} vs ${same.p50Ms} ms, p99 ${r.p99Ms} vs ${same.p99Ms} ms`
          : '';
      lines.push(
        `${ours} / ${theirs}, ${r.scenario} (conc ${r.concurrency}): ${(r.tasksPerSec / same.tasksPerSec).toFixed(2)}x (${r.tasksPerSec} vs ${same.tasksPerSec}/s)${lat}`,
      );
    }
  }
  /** The backlog a row ran with (`first N of M waiting`), 0 for the others. */
  const of = (r: Row): number => Number(/of (\d+) waiting/.exec(r.scenario)?.[1] ?? 0);
  for (const system of ['taskq-postgres', 'taskq-sqlite']) {
    const scaled = rows.filter(
      (r) => r.driver === system && r.scenario.includes('worker process') && of(r) === 0,
    );
    if (scaled.length > 0) {
      lines.push(
        `${system} worker processes: ${scaled.map((r) => `${/(\d+) worker/.exec(r.scenario)?.[1]} → ${r.tasksPerSec}/s`).join(', ')}`,
      );
    }
  }
  // The claim's cost with a small and a large backlog: the same system, the same kind of row
  // (in process, or one worker process), averaged over rounds.
  const rate = (list: Row[]): number =>
    Math.round(list.reduce((sum, r) => sum + r.tasksPerSec, 0) / list.length);
  for (const system of ['taskq-postgres', 'taskq-sqlite']) {
    const mine = rows.filter((r) => r.driver === system);
    const inProcess = mine.filter(
      (r) => r.scenario.startsWith('process noop, first') && !r.scenario.includes('worker'),
    );
    const oneWorker = mine.filter((r) => r.scenario.includes(', 1 worker process'));
    const groups: [string, Row[], Row[]][] = [
      [
        'in process',
        inProcess.filter((r) => of(r) === Math.min(...inProcess.map(of))),
        inProcess.filter((r) => of(r) === Math.max(...inProcess.map(of))),
      ],
      ['one worker process', oneWorker.filter((r) => of(r) === 0), oneWorker.filter(of)],
    ];
    for (const [kind, small, large] of groups) {
      if (small.length === 0 || large.length === 0 || of(small[0]) === of(large[0])) continue;
      lines.push(
        `${system} claim cost (${kind}): ${rate(large)}/s with ${of(large[0])} waiting = ${Math.round((rate(large) / rate(small)) * 100)}% of ${rate(small)}/s with ${of(small[0]) || small[0].tasks} waiting`,
      );
    }
  }
  return lines;
}

const COLUMNS: (keyof Row)[] = [
  'driver',
  'scenario',
  'concurrency',
  'tasks',
  'tasksPerSec',
  'p50Ms',
  'p99Ms',
  'rssMB',
  'note',
];
const header = `| system | scenario | conc | tasks | tasks/s | p50 ms | p99 ms | RSS MB | note |\n|${COLUMNS.map(() => '---').join('|')}|`;
const line = (r: Row): string =>
  `| ${COLUMNS.map((k) => (r[k] === null ? '' : String(r[k]))).join(' | ')} |`;

async function parent(): Promise<number> {
  const args = parseArgs(process.argv.slice(2), {
    small: 'boolean',
    tasks: 'string',
    backlog: 'string',
    rate: 'string',
    seconds: 'string',
    rounds: 'string',
    only: 'string',
    tests: 'string',
  });
  const jobs = plan(args);
  const load = (): string =>
    loadavg()
      .map((v) => v.toFixed(2))
      .join(' ');
  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], {
      cwd: ROOT,
      encoding: 'utf8',
    }).trim();
  } catch {
    // not a git checkout
  }
  const context = `taskq bench:tables at ${commit}; node ${process.version}; ${cpus().length} CPUs; ${new Date().toISOString()}; load average at start ${load()}`;
  console.log(`${context}\n\n${header}`);
  const rows: Row[] = [];
  let failed = 0;
  for (const job of jobs) {
    const schema =
      job.system === 'taskq-postgres' || job.system === 'pg-boss'
        ? await createBenchSchema()
        : undefined;
    if (schema) {
      job.url = schema.url;
      job.schema = /search_path=(\w+)/.exec(decodeURIComponent(schema.url))?.[1];
    }
    try {
      await runChild(job, (r) => {
        rows.push(r);
        console.log(line(r));
      });
    } catch (error) {
      failed += 1;
      console.log(`| ${job.system} | ${job.test} FAILED: ${(error as Error).message} |`);
    } finally {
      await schema?.drop();
    }
  }
  const summary = ratios(rows);
  console.log('');
  for (const s of summary) console.log(s);
  const end = `load average at end ${load()}`;
  console.log(end);
  const dir = join(ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  writeFileSync(
    join(dir, `tables-${stamp}.md`),
    `${context}\n\n${header}\n${rows.map(line).join('\n')}\n\n${summary.join('\n')}\n${end}\n`,
  );
  writeFileSync(join(dir, `tables-${stamp}.json`), JSON.stringify(rows, null, 2));
  console.log(`results: bench/results/tables-${stamp}.{md,json}`);
  return failed === 0 ? 0 : 1;
}

if (process.argv[2] === '--child') {
  const job = JSON.parse(process.argv[3]) as Job;
  const sending: Promise<void>[] = [];
  runJob(job, (row) => {
    if (!process.send) return void console.log(JSON.stringify(row));
    const ipc = process.send.bind(process);
    sending.push(new Promise((done) => ipc(row, () => done())));
  }).then(
    () => Promise.all(sending).then(() => process.exit(0)),
    (error: unknown) => {
      console.error(`bench:tables child ${job.system} ${job.test} failed:`, error);
      process.exit(1);
    },
  );
} else {
  parent().then(
    (code) => process.exit(code),
    (error: unknown) => {
      console.error('bench:tables:', error instanceof Error ? error.message : error);
      process.exit(2);
    },
  );
}
