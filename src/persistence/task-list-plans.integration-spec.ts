import type { Database, Statement } from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { migratedPgSchema, type MigratedPgSchema } from '../../test/helpers/pg-schema';
import { describeWithService, postgresServiceAt } from '../../test/helpers/service-available';
import { migrations } from './migrations';
import { pgPool } from './pg-task-statements';
import { betterSqliteHandle } from './sqlite-task-statements';
import type { ListTasksFilter, TaskStatements } from './task-statements';
import { createTaskStatements } from './task-statements.factory';
import { TaskStatus } from './task-status.enum';
import { TaskEntity } from './task.entity';

/**
 * `GET /tasks` must find its page through an index whatever the filters and the limit: at 213k
 * rows a full scan plus a sort cost 180 ms a request. These checks run the store's own list
 * statements (captured as they are sent) through EXPLAIN on a table large enough that the
 * planner's choice is real.
 */
const ROWS = 200_000;
const BASE = 1_700_000_000_000;
const STATUSES = Object.values(TaskStatus);
const LIMITS = [1, 2, 3, 10, 100];

/**
 * Every combination of the list filters, each with every limit, within one tenant: the API
 * always lists one tenant's tasks (rows made here take the column's default tenant).
 */
function filters(): ListTasksFilter[] {
  const all: ListTasksFilter[] = [];
  for (let mask = 0; mask < 32; mask++) {
    for (const limit of LIMITS) {
      all.push({
        tenant: 'default',
        ...(mask & 1 ? { status: TaskStatus.Completed } : {}),
        ...(mask & 2 ? { action: 'a3' } : {}),
        ...(mask & 4 ? { createdAfter: BASE + 1_000 } : {}),
        ...(mask & 8 ? { createdBefore: BASE + ROWS / 2 } : {}),
        ...(mask & 16 ? { before: { createdAt: BASE + ROWS / 4, id: 'f' } } : {}),
        limit,
      });
    }
  }
  return all;
}

const describeFilter = (f: ListTasksFilter) =>
  JSON.stringify({ ...f, before: f.before ? 'cursor' : undefined });

describe('GET /tasks plans on SQLite', () => {
  let dir: string;
  let dataSource: DataSource;
  let db: Database;
  let store: TaskStatements;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'taskq-plans-'));
    dataSource = await new DataSource({
      type: 'better-sqlite3',
      database: join(dir, 'tasks.db'),
      entities: [TaskEntity],
      migrations,
      migrationsRun: true,
    }).initialize();
    db = betterSqliteHandle(dataSource)!;
    db.exec(`INSERT INTO tasks (id, action, payload, status, max_attempts, queue, created_at, updated_at)
      WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ${ROWS - 1})
      SELECT lower(hex(randomblob(16))), 'a' || (i % 7), '{}',
        CASE i % 5 ${STATUSES.map((s, k) => `WHEN ${k} THEN '${s}'`).join(' ')} END,
        3, 'tasks', ${BASE} + i / 2, ${BASE} + i / 2 FROM n`);
    store = createTaskStatements(dataSource);
  });

  afterAll(async () => {
    await dataSource?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  /** The statements list() runs, with their parameters, captured as prepared and run. */
  async function sent(filter: ListTasksFilter): Promise<{ sql: string; params: unknown }[]> {
    const seen: { sql: string; params: unknown }[] = [];
    const prepare = db.prepare.bind(db);
    const spy = jest.spyOn(db, 'prepare').mockImplementation((sql: string) => {
      const stmt = prepare(sql) as Statement;
      const all = stmt.all.bind(stmt);
      (stmt as { all: (params: unknown) => unknown[] }).all = (params: unknown) => {
        seen.push({ sql, params });
        return all(params);
      };
      return stmt;
    });
    try {
      // A store of its own: the shared one keeps its statements, so it would prepare nothing.
      await createTaskStatements(dataSource).list(filter);
    } finally {
      spy.mockRestore();
    }
    return seen;
  }

  it.each([
    ['without statistics', false],
    ['after ANALYZE', true],
  ])('uses an index, and no sort, for every filter and limit %s', async (_, analyse) => {
    if (analyse) db.exec('ANALYZE');
    for (const filter of filters()) {
      const statements = await sent(filter);
      expect(statements).toHaveLength(1);
      const { sql, params } = statements[0];
      const plan = (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(params) as { detail: string }[])
        .map((row) => row.detail)
        .join(' | ');
      expect({ filter: describeFilter(filter), plan }).toEqual({
        filter: describeFilter(filter),
        plan: expect.stringMatching(/^(SCAN|SEARCH) tasks USING (COVERING )?INDEX idx_tasks_\w+/),
      });
      expect({ filter: describeFilter(filter), plan }).not.toEqual({
        filter: describeFilter(filter),
        plan: expect.stringMatching(/TEMP B-TREE|\| (SCAN|SEARCH) /),
      });
    }
  });

  it('pages through the rows in order, ties on created_at broken by id', async () => {
    const seen: string[] = [];
    let before: ListTasksFilter['before'];
    for (let page = 0; page < 5; page++) {
      const rows = await store.list({ tenant: 'default', action: 'a1', limit: 3, before });
      seen.push(...rows.map((row) => `${row.createdAt}:${row.id}`));
      const last = rows[rows.length - 1];
      before = { createdAt: last.createdAt, id: last.id };
    }
    const sorted = [...seen].sort((a, b) => {
      const [at, id] = a.split(':');
      const [bt, bid] = b.split(':');
      return Number(bt) - Number(at) || (bid < id ? -1 : bid > id ? 1 : 0);
    });
    expect(new Set(seen).size).toBe(15);
    expect(seen).toEqual(sorted);
  });
});

const PG_URL =
  process.env.DATABASE_URL ??
  process.env.TEST_DATABASE_URL ??
  'postgres://postgres@127.0.0.1:5432/test';

describeWithService(postgresServiceAt(PG_URL), 'GET /tasks plans on PostgreSQL', () => {
  let pgSchema: MigratedPgSchema;
  let dataSource: DataSource;
  let store: TaskStatements;

  beforeAll(async () => {
    pgSchema = await migratedPgSchema('plans', PG_URL);
    dataSource = pgSchema.dataSource;
    await dataSource.query(`INSERT INTO tasks (id, action, payload, status, max_attempts, queue, created_at, updated_at)
      SELECT md5(i::text), 'a' || (i % 7), '{}',
        (ARRAY[${STATUSES.map((s) => `'${s}'`).join(', ')}])[i % 5 + 1],
        3, 'tasks', ${BASE} + i / 2, ${BASE} + i / 2 FROM generate_series(0, ${ROWS - 1}) AS i`);
    await dataSource.query('ANALYZE tasks');
    store = createTaskStatements(dataSource);
  });

  afterAll(() => pgSchema?.drop());

  it('uses an index for every filter and limit, and never sorts the whole match', async () => {
    const pool = pgPool(dataSource)!;
    for (const filter of filters()) {
      const spy = jest.spyOn(pool, 'query');
      let calls: unknown[][];
      try {
        await store.list(filter);
        calls = [...spy.mock.calls];
      } finally {
        spy.mockRestore();
      }
      expect(calls).toHaveLength(1);
      const { text, values } = calls[0][0] as { text: string; values: unknown[] };
      const plan = JSON.stringify(await dataSource.query(`EXPLAIN (FORMAT JSON) ${text}`, values));
      const nodes = [...plan.matchAll(/"Node Type":"([^"]+)"/g)].map((m) => m[1]);
      expect({ filter: describeFilter(filter), nodes }).toEqual({
        filter: describeFilter(filter),
        nodes: expect.arrayContaining([expect.stringMatching(/Index/)]),
      });
      // Not even an Incremental Sort: the index gives the whole order, ties included.
      expect({ filter: describeFilter(filter), nodes }).toEqual({
        filter: describeFilter(filter),
        nodes: expect.not.arrayContaining([expect.stringMatching(/Seq Scan|Sort/)]),
      });
    }
  });
});
