/**
 * Chaos proof: "a task the API accepted is never lost, and its result is right".
 *
 * Starts the real service (`node dist/main.js`, built by `npm run build`) as a child process on
 * a free loopback port with a temporary database, submits tasks over HTTP, SIGKILLs the process
 * at random moments and restarts it on the same database, then checks through the API that every
 * accepted task (POST answered 202) completed exactly with its expected result.
 *
 *   npm run chaos                         # 3000 tasks, 5 kills, default driver
 *   npm run chaos -- --small              # 300 tasks, 5 kills (CI)
 *   npm run chaos -- --driver memory --tasks 5000 --kills 10
 *
 * Exit 0: nothing lost or wrong. 1: something lost, wrong or failed. 2: deadline or a harness
 * error (the service would not start, ...). Children are killed on every way out.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { createBenchSchema } from './lib/pg-schema';
import { removeQueueFromBroker } from '../src/queue/testing/broker-cleanup';
import { freePort, intArg, mapLimit, parseArgs, sleep } from './lib/util';

const ROOT = resolve(__dirname, '..');
type ConfigLoader = typeof import('../src/app.config.loader');
const DRIVERS = ['memory', 'sqlite', 'redis', 'amqp', 'postgres'] as const;
type Driver = (typeof DRIVERS)[number];

const args = parseArgs(process.argv.slice(2), {
  driver: 'string',
  tasks: 'string',
  kills: 'string',
  small: 'boolean',
  submitters: 'string',
  'jitter-ms': 'string',
  'lease-ms': 'string',
  'wait-s': 'string',
  'deadline-s': 'string',
  concurrency: 'string',
  keep: 'boolean',
  db: 'string',
});
// The postgres driver's queue is the task table: it implies --db postgres.
const DB =
  typeof args.db === 'string' ? args.db : args.driver === 'postgres' ? 'postgres' : 'sqlite';
if (DB !== 'sqlite' && DB !== 'postgres') throw new Error('--db must be sqlite or postgres');
const small = args.small === true;
const TASKS = intArg(args, 'tasks', small ? 300 : 3000, 1);
const KILLS = intArg(args, 'kills', 5, 0);
const SUBMITTERS = intArg(args, 'submitters', 16, 1);
/** Random extra delay before each kill, once its point in the submission is reached. */
const JITTER_MS = intArg(args, 'jitter-ms', 300);
const WAIT_MS = intArg(args, 'wait-s', small ? 60 : 120) * 1000;
/** Lease-based drivers redeliver a killed worker's messages after this (QUEUE_LEASE_MS). */
const LEASE_MS = intArg(args, 'lease-ms', 2000, 1000);
const DEADLINE_MS = intArg(args, 'deadline-s', small ? 110 : 300, 1) * 1000;
const WORKER_CONCURRENCY = intArg(args, 'concurrency', 8, 1);

/** Asks the built service's own config (the copy that will run) which drivers it accepts. */
function pickDriver(requested: string | boolean | undefined, dist: string): Driver {
  // The copy finds the repository's packages (yaml, ...) through NODE_PATH, as the service does.
  process.env.NODE_PATH = join(ROOT, 'node_modules');
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  (require('node:module') as { _initPaths(): void })._initPaths();
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { loadAppConfig } = require(join(dist, 'app.config.loader.js')) as ConfigLoader;
  const accepts = (driver: string): boolean => {
    try {
      loadAppConfig({
        QUEUE_DRIVER: driver,
        DATABASE_PATH: join(tmpdir(), 'taskq-chaos-probe.db'),
      });
      return true;
    } catch {
      return false;
    }
  };
  if (typeof requested === 'string') {
    if (!(DRIVERS as readonly string[]).includes(requested)) {
      throw new Error(`--driver must be one of ${DRIVERS.join(', ')}`);
    }
    if (!accepts(requested)) {
      throw new Error(`--driver ${requested}: the service's config does not accept it yet`);
    }
    return requested as Driver;
  }
  return accepts('sqlite') ? 'sqlite' : 'memory';
}

// ---------------------------------------------------------------------------------------------
// The tasks: quick ones with known results, and sleeps of 5-50 ms.

interface Spec {
  action: 'uppercase' | 'sum' | 'sleep';
  data: Record<string, unknown>;
  expected: unknown;
}

function makeSpec(i: number): Spec {
  const pick = Math.random();
  if (pick < 0.4) {
    const text = `chaos task ${i} ${Math.random().toString(36).slice(2, 8)}`;
    return { action: 'uppercase', data: { text }, expected: { output: text.toUpperCase() } };
  }
  if (pick < 0.7) {
    const numbers = Array.from({ length: 1 + (i % 7) }, () => Math.floor(Math.random() * 1000));
    return {
      action: 'sum',
      data: { numbers },
      expected: { output: numbers.reduce((a, b) => a + b, 0) },
    };
  }
  const ms = 5 + Math.floor(Math.random() * 46);
  return { action: 'sleep', data: { ms }, expected: { output: 'slept', sleptMs: ms } };
}

// ---------------------------------------------------------------------------------------------
// The service under test, as a child process that is killed and restarted.

class Service {
  private child?: ChildProcess;
  private upWaiters: (() => void)[] = [];
  /** The child's last output lines, shown when a start fails. */
  private tail: string[] = [];
  up = false;
  starts = 0;

  constructor(
    private readonly entry: string,
    private readonly env: NodeJS.ProcessEnv,
    private readonly base: string,
    private readonly log: WriteStream,
  ) {}

  async start(): Promise<void> {
    this.starts += 1;
    this.log.write(`\n===== start #${this.starts} at ${new Date().toISOString()} =====\n`);
    const child = spawn(process.execPath, [this.entry], {
      cwd: ROOT,
      env: this.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    for (const stream of [child.stdout, child.stderr]) {
      stream?.on('data', (chunk: Buffer) => {
        this.log.write(chunk);
        this.tail = [...this.tail, ...chunk.toString().split('\n')].slice(-15);
      });
    }
    const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
    const generation = this.starts;
    child.once('exit', (code, signal) => {
      this.log.write(`===== #${generation} exited: ${code ?? signal} =====\n`);
      if (this.child === child && this.up && signal !== 'SIGKILL') {
        console.error(`chaos: the service exited unasked (${code ?? signal})`);
        this.up = false;
      }
    });
    const startedAt = Date.now();
    for (;;) {
      const code = await Promise.race([exited, sleep(50).then(() => undefined)]);
      if (code !== undefined) {
        throw new Error(
          `the service exited with ${code} during start-up; its last output:\n${this.tail.join('\n')}`,
        );
      }
      if (Date.now() - startedAt > 30_000) throw new Error('the service did not start in 30 s');
      try {
        const res = await fetch(`${this.base}/health`, { signal: AbortSignal.timeout(1000) });
        await res.arrayBuffer();
        if (res.ok) break;
      } catch {
        // Not listening yet.
      }
    }
    this.up = true;
    for (const wake of this.upWaiters.splice(0)) wake();
  }

  whenUp(): Promise<void> {
    return this.up ? Promise.resolve() : new Promise((wake) => this.upWaiters.push(wake));
  }

  /** SIGKILL, no warning: no shutdown hook runs, in-flight work dies with the process. */
  async kill(): Promise<void> {
    const child = this.child;
    this.up = false;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((done) => child.once('exit', done));
    child.kill('SIGKILL');
    await exited;
  }

  /** For exit paths: synchronous best effort. */
  killNow(): void {
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}

// ---------------------------------------------------------------------------------------------

interface TaskView {
  id: string;
  status: string;
  result: unknown;
  attempt: number;
  error: string | null;
}

async function main(): Promise<number> {
  const began = Date.now();
  const work = await mkdtemp(join(tmpdir(), 'taskq-chaos-'));
  // A private copy of dist/, so a colleague's rebuild (nest build empties dist/) cannot pull the
  // code out from under a restart; NODE_PATH finds the repository's node_modules from there.
  await cp(join(ROOT, 'dist'), join(work, 'dist'), { recursive: true });
  const DRIVER = pickDriver(args.driver, join(work, 'dist'));
  // --db postgres: the tasks in a fresh schema of DATABASE_URL's database, dropped at the end.
  const schema = DB === 'postgres' ? await createBenchSchema() : undefined;
  const logPath = join(work, 'service.log');
  const log = createWriteStream(logPath);
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  // Its own queue, so a broker (redis, amqp) brings nothing in from an earlier run.
  const queueName = `chaos-${process.pid}-${Date.now()}`;
  const service = new Service(
    join(work, 'dist', 'main.js'),
    {
      ...process.env,
      NODE_PATH: join(ROOT, 'node_modules'),
      PORT: String(port),
      HOST: '127.0.0.1',
      RATE_LIMIT: '0', // one client submits thousands of tasks a second on purpose
      DATABASE_PATH: join(work, 'tasks.db'),
      ...(schema ? { DATABASE_URL: schema.url } : {}),
      QUEUE_DRIVER: DRIVER,
      // The shared Redis runs without persistence; the chaos run kills taskq, not the broker.
      REDIS_ALLOW_VOLATILE: process.env.REDIS_ALLOW_VOLATILE ?? 'true',
      QUEUE_NAME: queueName,
      LOG_LEVEL: 'warn',
      WORKER_CONCURRENCY: String(WORKER_CONCURRENCY),
      WORKER_PREFETCH: String(WORKER_CONCURRENCY * 2),
      TASK_BACKOFF_MS: '100',
      QUEUE_LEASE_MS: String(LEASE_MS),
      SHUTDOWN_TIMEOUT_MS: '1000',
    },
    base,
    log,
  );

  let finished = false;
  const cleanup = (): void => {
    service.killNow();
  };
  process.once('exit', cleanup);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      cleanup();
      process.exit(130);
    });
  }
  const hardDeadline = setTimeout(() => {
    if (finished) return;
    console.error(
      `chaos: hard deadline of ${DEADLINE_MS / 1000} s reached; service log: ${logPath}`,
    );
    cleanup();
    process.exit(2);
  }, DEADLINE_MS);
  hardDeadline.unref();

  console.log(
    `chaos: driver ${DRIVER}, database ${DB}, ${TASKS} tasks, ${KILLS} kills, port ${port}, work dir ${work}`,
  );
  await service.start();

  // --- submit, while a killer SIGKILLs and restarts the service ------------------------------
  const accepted = new Map<string, Spec>();
  let postsFailed = 0;
  let postsRejected = 0;
  let next = 0;
  let submitting = true;

  let inFlight = 0;
  const submitter = async (): Promise<void> => {
    while (accepted.size < TASKS) {
      await service.whenUp();
      if (accepted.size + inFlight >= TASKS) {
        await sleep(5);
        continue;
      }
      const spec = makeSpec(next);
      next += 1;
      inFlight += 1;
      try {
        const res = await fetch(`${base}/tasks`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ action: spec.action, data: spec.data }),
          signal: AbortSignal.timeout(10_000),
        });
        const body = (await res.json()) as { id?: string; status?: string };
        if (res.status === 202 && body.id) {
          // The 202 arrived: this task is accepted and must complete.
          accepted.set(body.id, spec);
        } else {
          postsRejected += 1;
          if (postsRejected <= 3) console.error(`chaos: POST answered ${res.status}`, body);
        }
      } catch {
        // The process died under the request: not accepted (the row may or may not exist).
        postsFailed += 1;
      } finally {
        inFlight -= 1;
      }
    }
  };

  // Kill points are spread over the submission, one per stratum of the accepted count (kill k
  // falls at a random count in [k/K, (k+1)/K) of the tasks), then a random 0..JITTER ms more, so
  // the process dies while taking POSTs, running handlers, or still sweeping after a restart.
  let kills = 0;
  const killer = async (): Promise<void> => {
    while (kills < KILLS) {
      const threshold = Math.floor(((kills + Math.random()) / KILLS) * TASKS);
      while (accepted.size < threshold && submitting) await sleep(5);
      await service.whenUp();
      await sleep(Math.random() * JITTER_MS);
      await service.kill();
      kills += 1;
      const state = submitting ? 'while submitting' : 'while draining';
      console.log(`chaos: kill ${kills}/${KILLS} ${state} (${accepted.size} accepted so far)`);
      await service.start();
    }
  };

  const killing = killer();
  await Promise.all(Array.from({ length: SUBMITTERS }, submitter));
  submitting = false;
  const submittedAt = Date.now();
  console.log(
    `chaos: ${accepted.size} accepted in ${((submittedAt - began) / 1000).toFixed(1)} s (${postsFailed} POSTs cut by a kill)`,
  );
  await killing;
  await service.whenUp();

  // --- wait for every accepted task to finish ------------------------------------------------
  const waitUntil = Date.now() + WAIT_MS;
  const getJson = async <T>(path: string): Promise<{ status: number; body: T }> => {
    const res = await fetch(`${base}${path}`, { signal: AbortSignal.timeout(10_000) });
    return { status: res.status, body: (await res.json()) as T };
  };
  // Every accepted task, one GET each, 32 at a time; those not finished are asked again.
  // (Not `GET /tasks?status=queued`: rows whose POST was cut by a kill may sit there too.)
  const views = new Map<string, TaskView | null>();
  let pending = [...accepted.keys()];
  while (pending.length > 0) {
    const answers = await mapLimit(pending, 32, async (id) => {
      const { status, body } = await getJson<TaskView>(`/tasks/${id}`);
      return status === 200 ? body : null;
    });
    answers.forEach((view, index) => views.set(pending[index], view));
    pending = pending.filter((id) => {
      const view = views.get(id);
      return !view || view.status === 'queued' || view.status === 'running';
    });
    if (pending.length === 0 || Date.now() >= waitUntil) break;
    await sleep(300);
  }
  // Rows nobody was promised (their POST died with the process) but still queued: the service
  // should still run them (design: a row written before its publish is published by recovery).
  const leftQueued = await getJson<{ tasks: { id: string }[] }>('/tasks?status=queued&limit=100');
  const orphans = leftQueued.body.tasks.filter((task) => !accepted.has(task.id)).length;
  finished = true;

  // --- verdict -------------------------------------------------------------------------------
  let completed = 0;
  let wrong = 0;
  let failed = 0;
  let lost = 0;
  // Handler runs beyond one per task, from the row's `attempt`. `attempt` is set by each claim
  // (queued → running) and each claim is followed by one handler call unless the process dies
  // first. No task here fails, so an attempt above 1 means the task was started again after a
  // kill: (attempt - 1) summed over the accepted tasks. What it does and does not see:
  // - memory driver: recovery requeues rows left running and republishes them as attempt + 1, so
  //   every re-run is counted; a claim killed before its handler began counts too (upper bound).
  // - lease drivers (sqlite, ...): a message redelivered after its lease expired re-claims the
  //   row with the SAME attempt, so those re-runs are invisible here (a lower bound, often 0).
  // Deliveries the claim fence turned away never reach a handler and are not runs.
  let extraRuns = 0;
  let tasksRunTwice = 0;
  const examples: string[] = [];
  for (const [id, spec] of accepted) {
    const view = views.get(id);
    if (!view || view.status === 'queued' || view.status === 'running') {
      lost += 1;
      if (examples.length < 5) examples.push(`lost ${id}: ${view ? view.status : 'not found'}`);
      continue;
    }
    if (view.status !== 'completed') {
      failed += 1;
      if (examples.length < 5) examples.push(`${view.status} ${id}: ${view.error ?? ''}`);
      continue;
    }
    completed += 1;
    if (!isDeepStrictEqual(view.result, spec.expected)) {
      wrong += 1;
      if (examples.length < 5) {
        examples.push(
          `wrong ${id}: got ${JSON.stringify(view.result)}, expected ${JSON.stringify(spec.expected)}`,
        );
      }
    }
    if (view.attempt > 1) {
      extraRuns += view.attempt - 1;
      tasksRunTwice += 1;
    }
  }

  const seconds = (Date.now() - began) / 1000;
  console.log('');
  console.log(`driver                            ${DRIVER}`);
  console.log(`kills (SIGKILL) / starts          ${kills} / ${service.starts}`);
  console.log(`accepted                          ${accepted.size}`);
  console.log(`completed                         ${completed}`);
  console.log(`lost                              ${lost}`);
  console.log(`wrong results                     ${wrong}`);
  console.log(`failed or cancelled               ${failed}`);
  console.log(
    `handler runs beyond one per task  ${extraRuns} (in ${tasksRunTwice} tasks; see the comment for what it can see)`,
  );
  console.log(`POSTs cut by a kill (not accepted) ${postsFailed}; other non-202: ${postsRejected}`);
  console.log(
    `unaccepted rows still queued      ${orphans}${orphans === 100 ? '+' : ''} (POST cut by a kill after the insert; not a failure here)`,
  );
  console.log(`elapsed                           ${seconds.toFixed(1)} s`);
  for (const line of examples) console.log(`  ${line}`);

  service.killNow();
  log.end();
  await removeQueueFromBroker(DRIVER, queueName, {
    redisUrl: process.env.REDIS_URL,
    amqpUrl: process.env.AMQP_URL,
  });
  const ok = lost === 0 && wrong === 0 && failed === 0 && kills === KILLS;
  if (ok && args.keep !== true) {
    await rm(work, { recursive: true, force: true });
  } else {
    console.log(`work dir kept: ${work} (service log: ${logPath})`);
  }
  if (ok) await schema?.drop();
  else if (schema) console.log(`schema kept: ${schema.url}`);
  console.log(ok ? 'chaos: PASS' : 'chaos: FAIL');
  return ok ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error('chaos: harness error:', error);
    process.exit(2);
  },
);
