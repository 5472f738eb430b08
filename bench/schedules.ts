/**
 * Schedules benchmark: N schedules every minute, run by P worker processes of the built service
 * (`node dist/main.js`, APP_ROLE=worker) on one database. Measures, per tick, how many tasks were
 * created (exactly N expected: one per schedule, none twice) and how late: a task's created_at
 * minus its tick (from its idempotency key `schedule:<name>:<tick>`).
 *
 *   npm run bench:schedules                                   # 10,000 schedules, 3 processes, 2 ticks, SQLite
 *   npm run bench:schedules -- --db postgres                  # PostgreSQL (DATABASE_URL, default
 *                                                             # postgres://postgres@127.0.0.1:5432/test), fresh schema
 *   npm run bench:schedules -- --schedules 1000 --ticks 1 --processes 2
 */
import BetterSqlite3 from 'better-sqlite3';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Client } from 'pg';
import { createBenchSchema } from './lib/pg-schema';
import { freePort, intArg, parseArgs, quantile, sleep } from './lib/util';

const ROOT = resolve(__dirname, '..');
const MAIN = join(ROOT, 'dist', 'main.js');
const MIGRATE = join(ROOT, 'dist', 'persistence', 'migrate.js');
const MINUTE = 60_000;

interface Db {
  exec(sql: string, params?: unknown[]): Promise<void>;
  rows<T>(sql: string): Promise<T[]>;
  close(): Promise<void>;
}

async function openDb(env: Record<string, string>): Promise<Db> {
  if (env.DATABASE_URL) {
    const client = new Client({ connectionString: env.DATABASE_URL });
    await client.connect();
    return {
      exec: async (sql, params) => void (await client.query(sql, params)),
      rows: async <T>(sql: string) => (await client.query(sql)).rows as T[],
      close: () => client.end(),
    };
  }
  const db = new BetterSqlite3(env.DATABASE_PATH);
  db.pragma('busy_timeout = 5000');
  return {
    exec: async (sql, params) => void db.prepare(sql).run(...(params ?? [])),
    rows: async <T>(sql: string) => db.prepare(sql).all() as T[],
    close: async () => void db.close(),
  };
}

/** N minutely schedules, due first at `firstTick`, inserted as the API would store them. */
async function insertSchedules(db: Db, count: number, firstTick: number): Promise<void> {
  const now = Date.now();
  const chunk = 500;
  for (let start = 0; start < count; start += chunk) {
    const values: string[] = [];
    const params: unknown[] = [];
    for (let i = start; i < Math.min(count, start + chunk); i += 1) {
      const base = params.length;
      // CAST: PostgreSQL types untyped VALUES parameters as text.
      values.push(
        `($${base + 1}, CAST($${base + 2} AS bigint), CAST($${base + 3} AS bigint), CAST($${base + 4} AS bigint), $${base + 5})`,
      );
      params.push(`bench-${String(i).padStart(6, '0')}`, firstTick, now, now, 'bench');
    }
    await db.exec(
      `INSERT INTO schedules (name, next_run_at, created_at, updated_at, definition_hash,
         action, payload, cron, timezone, missed, overlap, source, state)
       SELECT v.column1, v.column2, v.column3, v.column4, v.column5,
         'bench-tick', '{}', '* * * * *', 'UTC', 'latest', 1, 'api', 'active'
       FROM (VALUES ${values.join(', ')}) AS v`,
      params,
    );
  }
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2), {
    schedules: 'string',
    ticks: 'string',
    processes: 'string',
    db: 'string',
  });
  const count = intArg(args, 'schedules', 10_000);
  const ticks = intArg(args, 'ticks', 2);
  const processes = intArg(args, 'processes', 3);
  const postgres = args.db === 'postgres';

  const dir = mkdtempSync(join(tmpdir(), 'taskq-bench-sched-'));
  const schema = postgres ? await createBenchSchema() : undefined;
  const env: Record<string, string> = {
    DATABASE_PATH: join(dir, 'tasks.db'),
    ...(schema ? { DATABASE_URL: schema.url } : {}),
    QUEUE_DRIVER: process.env.QUEUE_DRIVER ?? 'sqlite',
    // The bench's Redis may run without persistence; it measures speed, not durability.
    REDIS_ALLOW_VOLATILE: process.env.REDIS_ALLOW_VOLATILE ?? 'true',
    LOG_LEVEL: 'warn',
    HOST: '127.0.0.1',
  };
  const children: ChildProcess[] = [];
  try {
    execFileSync(process.execPath, [MIGRATE], { env: { ...process.env, ...env } });
    const db = await openDb(env);
    const firstTick = Math.ceil((Date.now() + 25_000) / MINUTE) * MINUTE;
    const started = Date.now();
    await insertSchedules(postgres ? db : sqliteNumbered(db), count, firstTick);
    console.log(
      `${count} schedules inserted in ${Date.now() - started} ms; first tick ${new Date(firstTick).toISOString()}`,
    );

    for (let i = 0; i < processes; i += 1) {
      const port = await freePort();
      const child = spawn(process.execPath, [MAIN], {
        env: { ...process.env, ...env, APP_ROLE: 'worker', PORT: String(port) },
        stdio: ['ignore', 'inherit', 'inherit'],
      });
      children.push(child);
    }

    const lastTick = firstTick + (ticks - 1) * MINUTE;
    const lastKey = `schedule:%:${new Date(lastTick).toISOString()}`;
    const deadline = lastTick + 50_000;
    for (;;) {
      await sleep(2000);
      const [{ n }] = await db.rows<{ n: number | string }>(
        `SELECT count(*) AS n FROM tasks WHERE idempotency_key LIKE '${lastKey}'`,
      );
      if (Number(n) >= count || Date.now() > deadline) break;
    }
    const load = loadavg()[0];

    const rows = await db.rows<{ k: string; c: number | string }>(
      `SELECT idempotency_key AS k, created_at AS c FROM tasks WHERE idempotency_key LIKE 'schedule:%'`,
    );
    await db.close();
    const byTick = new Map<number, number[]>();
    for (const row of rows) {
      // The tick is the key's last 24 characters, an ISO time (names may hold colons).
      const tick = Date.parse(row.k.slice(-24));
      const lateness = Number(row.c) - tick;
      byTick.set(tick, [...(byTick.get(tick) ?? []), lateness]);
    }
    const all = [...byTick.values()].flat().sort((a, b) => a - b);
    const distinct = new Set(rows.map((r) => r.k)).size;
    console.log(
      `\n| database | schedules | processes | ticks | tasks per tick | duplicates | lateness p50 / p99 / max | load |`,
    );
    console.log(`| --- | --- | --- | --- | --- | --- | --- | --- |`);
    console.log(
      `| ${postgres ? 'postgres' : 'sqlite'} | ${count} | ${processes} | ${byTick.size} | ${[
        ...byTick.entries(),
      ]
        .sort(([a], [b]) => a - b)
        .map(([, l]) => l.length)
        .join(
          ' / ',
        )} | ${rows.length - distinct} | ${quantile(all, 0.5)} / ${quantile(all, 0.99)} / ${
        all[all.length - 1]
      } ms | ${load.toFixed(1)} |`,
    );
  } finally {
    for (const child of children) child.kill('SIGTERM');
    for (const child of children) {
      if (child.exitCode === null) await new Promise((r) => child.once('exit', r));
    }
    await schema?.drop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** `$1`-style placeholders as `?` for better-sqlite3 (each appears once, in order). */
function sqliteNumbered(db: Db): Db {
  return { ...db, exec: (sql, params) => db.exec(sql.replace(/\$\d+/g, '?'), params) };
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
