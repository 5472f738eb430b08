import BetterSqlite3 from 'better-sqlite3';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Client } from 'pg';
import { freePort, sleep } from './util';

const MAIN = resolve(__dirname, '..', '..', 'dist', 'main.js');

/** Counts the tasks that reached `completed`, in SQLite (DATABASE_PATH) or PostgreSQL (DATABASE_URL). */
async function completedCounter(
  env: Record<string, string>,
): Promise<{ count(): Promise<number>; close(): Promise<void> }> {
  const sql = `SELECT count(*) AS n FROM tasks WHERE status = 'completed'`;
  if (env.DATABASE_URL) {
    const client = new Client({ connectionString: env.DATABASE_URL });
    await client.connect();
    return {
      count: async () => Number((await client.query<{ n: string }>(sql)).rows[0].n),
      close: () => client.end(),
    };
  }
  const db = new BetterSqlite3(env.DATABASE_PATH, { readonly: true });
  const statement = db.prepare(sql).pluck();
  return {
    count: () => Promise.resolve(statement.get() as number),
    close: () => Promise.resolve(void db.close()),
  };
}

/** user + system CPU of a process so far, in microseconds (Linux /proc). */
function cpuMicros(pid: number): number {
  // Fields 14 and 15 of /proc/<pid>/stat, after the parenthesised command name.
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return ((Number(fields[11]) + Number(fields[12])) / 100) * 1e6;
}

/** The process's peak resident set so far (VmHWM), in MB. */
function peakRssMB(pid: number): number {
  const line = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return line ? Number(line[1]) / 1024 : NaN;
}

/**
 * Starts the built service (`node dist/main.js`, as `npm start` runs it) on an existing
 * database whose queue is paused, resumes the queue over HTTP, and times the first `measure`
 * completions. Answers the service's own numbers: no bench code, transpiler or preload in it.
 */
export async function timeServiceDrain(
  env: Record<string, string>,
  queue: string,
  measure: number,
): Promise<{ seconds: number; rssMB: number; cpuMicrosPerTask: number }> {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run npm run build first`);
  const port = await freePort();
  const child = spawn(process.execPath, [MAIN], {
    env: { ...process.env, ...env, PORT: String(port), HOST: '127.0.0.1', APP_ROLE: 'all' },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  const base = `http://127.0.0.1:${port}`;
  const counter = await completedCounter(env);
  try {
    for (let tries = 0; ; tries += 1) {
      const ok = await fetch(`${base}/health`).then(
        (r) => r.ok,
        () => false,
      );
      if (ok) break;
      if (tries > 600 || child.exitCode !== null) throw new Error('the service did not start');
      await sleep(100);
    }
    const before = await counter.count();
    const cpu = cpuMicros(child.pid!);
    const started = performance.now();
    const resumed = await fetch(`${base}/queues/${encodeURIComponent(queue)}/resume`, {
      method: 'POST',
    });
    if (!resumed.ok) throw new Error(`resume answered ${resumed.status}`);
    while ((await counter.count()) - before < measure) {
      if (performance.now() - started > 600_000) throw new Error('timed out draining');
      await sleep(10);
    }
    const seconds = (performance.now() - started) / 1000;
    const cpuMicrosPerTask = (cpuMicros(child.pid!) - cpu) / measure;
    return { seconds, rssMB: peakRssMB(child.pid!), cpuMicrosPerTask };
  } finally {
    await counter.close();
    child.kill('SIGTERM');
    await exited;
  }
}
