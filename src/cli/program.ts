import { Presets, SingleBar } from 'cli-progress';
import { Command, InvalidArgumentError, Option } from 'commander';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiError, type Queue, type Task, type TaskEvent, TaskqClient } from './client';
import { eventLine, parseJsonLines, table } from './format';

const DEFAULT_URL = 'http://127.0.0.1:8080';
/** 429 answers (QUEUE_MAX_DEPTH) are retried this many times, after their Retry-After. */
const MAX_FULL_RETRIES = 20;

/** Standard streams, so tests and embedders can run the program on their own. */
export interface CliIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  stdin: NodeJS.ReadableStream;
}

interface GlobalOptions {
  url: string;
  apiKey?: string;
}

function positiveInt(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1) throw new InvalidArgumentError('expected a positive integer');
  return n;
}

function isoTime(value: string): string {
  const ms = Date.parse(value);
  if (Number.isNaN(ms))
    throw new InvalidArgumentError('expected a date-time, e.g. 2026-01-31T12:00:00Z');
  return new Date(ms).toISOString();
}

/**
 * `taskq`: the operator's command line. Every command talks to the HTTP API (`--url` or
 * TASKQ_URL, `--api-key` or TASKQ_API_KEY), so it works against a remote deployment.
 */
export function buildProgram(io: CliIo): Command {
  const print = (text: string): void => void io.stdout.write(`${text}\n`);
  const note = (text: string): void => void io.stderr.write(`${text}\n`);
  const program = new Command('taskq');
  program
    .description('Operate a taskq deployment through its HTTP API.')
    .addOption(new Option('--url <url>', 'the API base URL').env('TASKQ_URL').default(DEFAULT_URL))
    .addOption(new Option('--api-key <key>', 'sent as Authorization: Bearer').env('TASKQ_API_KEY'))
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => io.stderr.write(text),
    })
    .showHelpAfterError();

  const client = (): TaskqClient => {
    const { url, apiKey } = program.opts<GlobalOptions>();
    return new TaskqClient(url, apiKey);
  };

  /** A progress bar on stderr (drawn only on a terminal) with accepted/refused counters. */
  const progressBar = (label: string, total: number): SingleBar => {
    const bar = new SingleBar(
      {
        format: `${label} [{bar}] {value}/{total} | ok {ok} | refused {refused}`,
        stream: io.stderr,
        hideCursor: true,
      },
      Presets.shades_classic,
    );
    bar.start(total, 0, { ok: 0, refused: 0 });
    return bar;
  };

  /** Runs `work` over `items` with `concurrency` in flight. */
  const pool = async <T>(items: T[], concurrency: number, work: (item: T) => Promise<void>) => {
    let next = 0;
    await Promise.all(
      Array.from({ length: Math.min(concurrency, items.length) }, async () => {
        while (next < items.length) await work(items[next++]);
      }),
    );
  };

  /** Asks on stderr, reads one line from stdin; anything but y/yes (or no answer) is a no. */
  const confirm = (question: string): Promise<boolean> =>
    new Promise((resolve) => {
      const rl = createInterface({ input: io.stdin, output: io.stderr, terminal: false });
      let answered = false;
      io.stderr.write(`${question} [y/N] `);
      rl.once('line', (line) => {
        answered = true;
        rl.close();
        resolve(/^y(es)?$/i.test(line.trim()));
      });
      rl.once('close', () => {
        if (!answered) resolve(false);
      });
    });

  program
    .command('submit')
    .description('Submit tasks from a JSON-lines file (or stdin): one POST /tasks body per line')
    .argument('[file]', 'the file; - or none reads stdin')
    .option('-c, --concurrency <n>', 'requests in flight', positiveInt, 8)
    .option('--json', 'print the summary as JSON')
    .action(async (file: string | undefined, options: { concurrency: number; json?: boolean }) => {
      if ((!file || file === '-') && (io.stdin as { isTTY?: boolean }).isTTY) {
        note('taskq: reading tasks from stdin, one JSON object per line (Ctrl-D ends)');
      }
      const text = file && file !== '-' ? readFileSync(file, 'utf8') : await readAll(io.stdin);
      const entries = parseJsonLines(text);
      const accepted: { line: number; id: string }[] = [];
      const rejected: { line: number; reason: string }[] = [];
      const bar = progressBar('submitting', entries.length);
      const api = client();
      await pool(entries, options.concurrency, async (entry) => {
        if (entry.problem) rejected.push({ line: entry.line, reason: entry.problem });
        else {
          try {
            const task = await withRoom(() =>
              api.request<{ id: string }>('POST', '/tasks', entry.body),
            );
            accepted.push({ line: entry.line, id: task.id });
          } catch (error) {
            if (!(error instanceof ApiError) || error.status >= 500 || error.status === 401) {
              bar.stop();
              throw error;
            }
            rejected.push({ line: entry.line, reason: error.message });
          }
        }
        bar.increment(1, { ok: accepted.length, refused: rejected.length });
      });
      bar.stop();
      accepted.sort((a, b) => a.line - b.line);
      rejected.sort((a, b) => a.line - b.line);
      if (options.json) print(JSON.stringify({ accepted, rejected }));
      else {
        print(`accepted ${accepted.length}, rejected ${rejected.length}`);
        for (const { line, reason } of rejected) print(`  line ${line}: ${reason}`);
      }
      if (rejected.length > 0) process.exitCode = 1;
    });

  program
    .command('tail')
    .description('Print task status and progress changes as they happen (GET /tasks/events)')
    .option('--task-id <id>', 'only this task')
    .option('--action <action>', 'only tasks of this action')
    .option('--json', 'one JSON event per line')
    .action(async (options: { taskId?: string; action?: string; json?: boolean }) => {
      const api = client();
      const stop = new AbortController();
      const onSignal = (): void => stop.abort();
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      let pause = 1000;
      while (!stop.signal.aborted) {
        try {
          await api.events(
            { taskId: options.taskId, action: options.action },
            (event: TaskEvent) => print(options.json ? JSON.stringify(event) : eventLine(event)),
            stop.signal,
            () => {
              pause = 1000;
              note(`taskq: following ${api.url}/tasks/events`);
            },
          );
          if (stop.signal.aborted) break;
          note('taskq: the stream ended; reconnecting');
        } catch (error) {
          if (error instanceof ApiError && error.status < 500) throw error;
          note(`taskq: ${(error as Error).message}; reconnecting in ${pause / 1000} s`);
        }
        await sleep(pause, undefined, { signal: stop.signal }).catch(() => undefined);
        pause = Math.min(pause * 2, 10_000);
      }
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    });

  program
    .command('queues')
    .description('Every queue with its counts and state (GET /queues)')
    .option('--json', 'print the API answer as JSON')
    .action(async (options: { json?: boolean }) => {
      const { queues } = await client().request<{ queues: Queue[] }>('GET', '/queues');
      if (options.json) return print(JSON.stringify(queues));
      print(
        table(
          ['queue', 'driver', 'waiting', 'in flight', 'delayed', 'failed', 'state'],
          queues.map((q) => [
            q.name,
            q.driver,
            q.waiting,
            q.inFlight,
            q.delayed,
            q.failed,
            q.paused ? 'paused' : 'running',
          ]),
        ),
      );
    });

  /** The bulk form of retry and cancel: list what matches, confirm, act on each. */
  const bulk = async (
    verb: 'retry' | 'cancel',
    tasks: Task[],
    describe: string,
    options: { yes?: boolean; concurrency: number },
  ): Promise<void> => {
    if (tasks.length === 0) return print(`no ${describe}`);
    const question = `${verb === 'retry' ? 'Retry' : 'Cancel'} ${tasks.length} ${describe}?`;
    if (!options.yes && !(await confirm(question))) {
      print('nothing done');
      process.exitCode = 1;
      return;
    }
    const api = client();
    const done: string[] = [];
    const refused: { id: string; reason: string }[] = [];
    const bar = progressBar(verb === 'retry' ? 'retrying' : 'cancelling', tasks.length);
    await pool(tasks, options.concurrency, async (task) => {
      try {
        await api.request('POST', `/tasks/${encodeURIComponent(task.id)}/${verb}`);
        done.push(task.id);
      } catch (error) {
        if (!(error instanceof ApiError) || error.status >= 500 || error.status === 401) {
          bar.stop();
          throw error;
        }
        refused.push({ id: task.id, reason: error.message });
      }
      bar.increment(1, { ok: done.length, refused: refused.length });
    });
    bar.stop();
    print(
      `${verb === 'retry' ? 'retried' : 'cancelled'} ${done.length}, refused ${refused.length}`,
    );
    for (const { id, reason } of refused) print(`  ${id}: ${reason}`);
    if (refused.length > 0) process.exitCode = 1;
  };

  const filterOptions = (command: Command, statuses: string[], fallback?: string): Command =>
    command
      .addOption(
        new Option('--status <status>', 'tasks in this status').choices(statuses).default(fallback),
      )
      .option('--action <action>', 'only tasks of this action')
      .option('--created-after <time>', 'only tasks created after this time', isoTime)
      .option('--created-before <time>', 'only tasks created before this time', isoTime)
      .option('-y, --yes', 'do not ask for confirmation')
      .option('-c, --concurrency <n>', 'requests in flight', positiveInt, 8);

  interface FilterOptions {
    status?: string;
    action?: string;
    createdAfter?: string;
    createdBefore?: string;
    yes?: boolean;
    concurrency: number;
  }
  const describeFilter = (options: FilterOptions): string =>
    `${options.status} task(s)${options.action ? ` of action ${options.action}` : ''}` +
    `${options.createdAfter ? ` created after ${options.createdAfter}` : ''}` +
    `${options.createdBefore ? ` created before ${options.createdBefore}` : ''}`;
  const matching = (options: FilterOptions): Promise<Task[]> =>
    client().allTasks({
      status: options.status,
      action: options.action,
      createdAfter: options.createdAfter,
      createdBefore: options.createdBefore,
    });

  filterOptions(
    program
      .command('retry')
      .description(
        'Queue failed (or cancelled) tasks again with fresh attempts, after a confirmation',
      ),
    ['failed', 'cancelled'],
    'failed',
  ).action(async (options: FilterOptions) => {
    await bulk('retry', await matching(options), describeFilter(options), options);
  });

  filterOptions(
    program
      .command('cancel')
      .description('Cancel tasks by id, or every queued (or running) task matching the filters')
      .argument('[ids...]', 'task ids; without them, the filters choose (with a confirmation)'),
    ['queued', 'running'],
  ).action(async (ids: string[], options: FilterOptions) => {
    if (ids.length > 0) {
      if (options.status || options.action || options.createdAfter || options.createdBefore) {
        program.error('taskq cancel: give task ids or filters, not both');
      }
      const tasks = ids.map((id) => ({ id }) as Task);
      return bulk('cancel', tasks, 'task(s)', { ...options, yes: true });
    }
    if (!options.status) program.error('taskq cancel: give task ids, or --status queued|running');
    await bulk('cancel', await matching(options), describeFilter(options), options);
  });

  program
    .command('stats')
    .description('Health and queue totals; with --sample, task throughput from the event stream')
    .option('--sample <seconds>', 'listen to the event stream this long', positiveInt)
    .option('--json', 'print as JSON')
    .action(async (options: { sample?: number; json?: boolean }) => {
      const api = client();
      const health = await api
        .request<Record<string, string>>('GET', '/health')
        .catch((error: unknown) => {
          if (error instanceof ApiError && error.status === 503) return { status: error.message };
          throw error;
        });
      const { queues } = await api.request<{ queues: Queue[] }>('GET', '/queues');
      const sum = (key: 'waiting' | 'inFlight' | 'delayed' | 'failed'): number =>
        queues.reduce((n, q) => n + q[key], 0);
      const totals = {
        queues: queues.length,
        paused: queues.filter((q) => q.paused).length,
        waiting: sum('waiting'),
        inFlight: sum('inFlight'),
        delayed: sum('delayed'),
        failed: sum('failed'),
      };
      let rates: Record<string, number> | undefined;
      if (options.sample) {
        const counts: Record<string, number> = { queued: 0, completed: 0, failed: 0, cancelled: 0 };
        const stop = new AbortController();
        const timer = setTimeout(() => stop.abort(), options.sample * 1000);
        await api.events(
          {},
          (event) => {
            if (event.type === 'status' && event.status in counts) counts[event.status] += 1;
          },
          stop.signal,
        );
        clearTimeout(timer);
        rates = Object.fromEntries(
          Object.entries(counts).map(([status, n]) => [status, n / options.sample!]),
        );
      }
      if (options.json) return print(JSON.stringify({ health, ...totals, perSecond: rates }));
      const parts = Object.entries(health)
        .filter(([key]) => key !== 'status')
        .map(([key, value]) => `${key} ${value}`);
      print(`${api.url}: ${health.status}${parts.length ? ` (${parts.join(', ')})` : ''}`);
      print(
        `queues ${totals.queues} (${totals.paused} paused): waiting ${totals.waiting}, ` +
          `in flight ${totals.inFlight}, delayed ${totals.delayed}, failed ${totals.failed}`,
      );
      if (rates) {
        print(
          `last ${options.sample} s, per second: ` +
            Object.entries(rates)
              .map(([status, rate]) => `${status} ${rate.toFixed(2)}`)
              .join(', '),
        );
      }
    });

  return program;
}

/** Retries a request answered 429 (queue full) after its Retry-After, a bounded number of times. */
async function withRoom<T>(send: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await send();
    } catch (error) {
      if (!(error instanceof ApiError) || error.status !== 429 || attempt >= MAX_FULL_RETRIES) {
        throw error;
      }
      await sleep((error.retryAfterS ?? 1) * 1000);
    }
  }
}

function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => (text += chunk));
    stream.on('end', () => resolve(text));
    stream.on('error', reject);
  });
}
