/**
 * What bounds bulk enqueue on SQLite (issue 10): the raw cost of inserting taskq's task row (its
 * migrated schema: a UUIDv7 text key and the indexes the API and the queue read)
 * beside plainjob's job row (8 columns, integer key, one index), on the same better-sqlite3,
 * WAL, synchronous=NORMAL, 500 rows per transaction, no service code at all. Best of 3.
 *
 *   npm run bench:floor
 */
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { v7 as uuidv7 } from 'uuid';
import { migrate } from '../src/persistence/migrate';

const BATCH = 500;
const BATCHES = 20;

function measure(db: Database.Database, sql: string, row: () => unknown): number {
  const insert = db.prepare(sql);
  const batch = db.transaction((rows: unknown[]) => {
    for (const r of rows) insert.run(r);
  });
  const rows = () => Array.from({ length: BATCH }, row);
  for (let i = 0; i < 5; i += 1) batch(rows());
  let best = Infinity;
  for (let round = 0; round < 3; round += 1) {
    const t0 = performance.now();
    for (let i = 0; i < BATCHES; i += 1) batch(rows());
    best = Math.min(best, performance.now() - t0);
  }
  return (BATCH * BATCHES) / (best / 1000);
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'taskq-floor-'));
  try {
    const path = join(dir, 'tasks.db');
    // As `npm run migrate` would: the schema is the service's own.
    if ((await migrate({ DATABASE_PATH: path })) !== 0) throw new Error('migrating failed');
    const db = new Database(path);
    db.pragma('synchronous = NORMAL');
    const columns = (db.prepare('PRAGMA table_info(tasks)').all() as { name: string }[]).map(
      (c) => c.name,
    );
    const indexes = db
      .prepare(`SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'tasks'`)
      .pluck()
      .get() as number;
    const taskq = measure(
      db,
      `INSERT INTO tasks (${columns.join(', ')}) VALUES (${columns.map(() => '?').join(', ')})`,
      () => {
        const now = Date.now();
        const values: Record<string, unknown> = {
          id: uuidv7(),
          action: 'noop',
          payload: '{}',
          status: 'queued',
          attempt: 0,
          max_attempts: 3,
          priority: 0,
          queue: 'tasks',
          callback_attempts: 0,
          created_at: now,
          updated_at: now,
          tenant: 'default',
          deliveries: 0,
        };
        return columns.map((c) => values[c] ?? null);
      },
    );
    db.close();
    const pj = new Database(join(dir, 'plainjob.db'));
    pj.pragma('journal_mode = WAL');
    pj.pragma('synchronous = NORMAL');
    // plainjob 0.0.14's own table and index (its source, dist/index.js).
    pj.exec(`CREATE TABLE plainjob_jobs (id INTEGER PRIMARY KEY AUTOINCREMENT, type TEXT NOT NULL,
      data TEXT NOT NULL, status INTEGER DEFAULT 0 NOT NULL, failed_at INTEGER, error TEXT,
      next_run_at INTEGER, created_at INTEGER NOT NULL);
      CREATE INDEX idx_jobs_status_type_next_run_at ON plainjob_jobs (status, type, next_run_at)`);
    const plain = measure(
      pj,
      `INSERT INTO plainjob_jobs (type, data, created_at, next_run_at)
       VALUES (@type, @data, @createdAt, @nextRunAt)`,
      () => {
        const now = Date.now();
        return { type: 'noop', data: '{}', createdAt: now, nextRunAt: now };
      },
    );
    pj.close();
    const line = (name: string, rate: number) =>
      console.log(`| ${name} | ${Math.round(rate)} rows/s | ${(1e6 / rate).toFixed(1)} µs/row |`);
    console.log('| row | raw INSERT, 500 per transaction | per row |\n|---|---|---|');
    line(`taskq task (${columns.length} columns, key + ${indexes - 1} indexes)`, taskq);
    line('plainjob job (8 columns, one index)', plain);
    console.log(
      `\nratio ${(taskq / plain).toFixed(2)}x: the ceiling of taskq's bulk enqueue against plainjob's`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

void main();
