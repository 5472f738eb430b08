import { randomBytes } from 'node:crypto';
import { Pool } from 'pg';
import { DataSource, QueryFailedError } from 'typeorm';
import { describeWithService } from '../../test/helpers/service-available';
import { migrations } from './migrations';
import { PgTaskStatements, pgPool } from './pg-task-statements';
import { TaskStatus } from './task-status.enum';
import { TaskEntity } from './task.entity';
import { newTask } from '../tasks/task.factory';

const URL_BASE = process.env.E2E_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const server = new URL(URL_BASE);
const POSTGRES = {
  name: 'PostgreSQL',
  host: server.hostname,
  port: Number(server.port || 5432),
};

/** The batched prepared-statement path of TaskStore on PostgreSQL, against a real server. */
describeWithService(POSTGRES, 'PgTaskStatements (TaskStore on PostgreSQL)', () => {
  // Generated, never input: safe as an identifier.
  const schema = `unit_pg_${randomBytes(6).toString('hex')}`;
  let dataSource: DataSource;
  let pg: PgTaskStatements;
  /** Connections of their own, outside TypeORM's pool: they see only what has been committed. */
  let outside: Pool;

  beforeAll(async () => {
    outside = new Pool({ connectionString: URL_BASE, max: 4 });
    await outside.query(`CREATE SCHEMA ${schema}`);
    const url = new URL(URL_BASE);
    url.searchParams.set('options', `-c search_path=${schema}`);
    dataSource = await new DataSource({
      type: 'postgres',
      url: url.toString(),
      entities: [TaskEntity],
      migrations,
      migrationsRun: true,
    }).initialize();
    pg = new PgTaskStatements(
      pgPool(dataSource)!,
      dataSource.driver,
      dataSource.getRepository(TaskEntity).metadata,
    );
  });

  afterAll(async () => {
    await dataSource?.destroy();
    await outside?.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await outside?.end();
  });

  const task = (extra: Partial<Parameters<typeof newTask>[0]> = {}) =>
    newTask({ action: 'a', data: { x: 1 }, queue: 'q', maxAttempts: 3, ...extra });
  const typeorm = (id: string) => dataSource.getRepository(TaskEntity).findOneBy({ id });
  const committed = async (id: string) =>
    (
      await outside.query<{ status: string; claim_token: string | null; result: string | null }>(
        `SELECT status, claim_token, result FROM ${schema}.tasks WHERE id = $1`,
        [id],
      )
    ).rows[0];
  /** Counts the statements sent to the pool while `work` runs. */
  async function statements<T>(work: () => Promise<T>): Promise<{ value: T; sent: number }> {
    const spy = jest.spyOn(pgPool(dataSource)!, 'query');
    try {
      const value = await work();
      return { value, sent: spy.mock.calls.length };
    } finally {
      spy.mockRestore();
    }
  }

  it("finds TypeORM's pg pool", () => {
    expect(pgPool(dataSource)).toBe((dataSource.driver as unknown as { master: unknown }).master);
  });

  it('reads rows exactly as TypeORM hydrates them', async () => {
    const row = task({ callbackUrl: 'https://example.com/cb', runAt: 123, timeoutMs: 5 });
    await pg.insert([row]);
    const fast = await pg.findById(row.id);
    expect(fast).toBeInstanceOf(TaskEntity);
    expect(fast).toEqual(await typeorm(row.id));
    expect(fast).toEqual(row);
    expect(await pg.findById('missing')).toBeNull();
  });

  it('claims one turn in one statement; duplicates, stale and missing ones get false', async () => {
    const [a, b, stale, taken] = [task(), task(), task(), task()];
    await pg.insert([a, b, stale, taken]);
    expect(await pg.claim(stale.id, 2, 's2', false)).toBe(true); // attempt 2 already holds it
    const { value, sent } = await statements(() =>
      Promise.all([
        pg.claim(a.id, 1, 'a1', false),
        pg.claim(b.id, 1, 'b1', false),
        pg.claim(stale.id, 1, 's1', false), // an older attempt's message
        pg.claim(stale.id, 1, 's1b', true), // redelivered, but of an older attempt
        pg.claim('missing', 1, 'm1', false),
        pg.claim(taken.id, 1, 't1', false),
        pg.claim(a.id, 1, 'a2', false), // a duplicate delivery of a's message
        pg.claim(taken.id, 1, 't2', true), // redelivered: takes the claim over
      ]),
    );
    expect(value).toEqual([true, true, false, false, false, true, false, true]);
    // Two writes to one row never share a statement: the later ones wait for the next one.
    expect(sent).toBe(2);
    expect(await committed(a.id)).toMatchObject({ status: 'running', claim_token: 'a1' });
    expect(await committed(stale.id)).toMatchObject({ claim_token: 's2' });
    expect(await committed(taken.id)).toMatchObject({ claim_token: 't2' });
    expect(await typeorm(taken.id)).toMatchObject({ attempt: 1, status: TaskStatus.Running });
  });

  it('records outcomes only under the current token, and queues callbacks', async () => {
    const plain = task();
    const withCallback = task({ callbackUrl: 'https://example.com/cb' });
    await pg.insert([plain, withCallback]);
    await Promise.all([
      pg.claim(plain.id, 1, 'p1', false),
      pg.claim(withCallback.id, 1, 'w1', false),
    ]);
    const { value, sent } = await statements(() =>
      Promise.all([
        pg.complete(plain.id, 'wrong', '{"no":1}', 1000),
        pg.complete(withCallback.id, 'w1', '{"ok":true}', 2000),
        pg.complete('missing', 'x', 'null', 2000),
      ]),
    );
    expect(value).toEqual([false, true, false]);
    expect(sent).toBe(1);
    expect(await pg.complete(withCallback.id, 'w1', '{"again":1}', 3000)).toBe(false); // once
    expect(await typeorm(withCallback.id)).toMatchObject({
      status: TaskStatus.Completed,
      result: '{"ok":true}',
      claimToken: null,
      processedAt: 2000,
      updatedAt: 2000,
      callbackStatus: 'pending',
      callbackNextAt: 2000,
    });
    expect(await typeorm(plain.id)).toMatchObject({
      status: TaskStatus.Running,
      result: null,
      claimToken: 'p1',
      callbackStatus: null,
    });
  });

  it('fails for a retry or for good, and stores progress, all fenced', async () => {
    const retried = task({ callbackUrl: 'https://example.com/cb' });
    const dead = task({ callbackUrl: 'https://example.com/cb' });
    await pg.insert([retried, dead]);
    await Promise.all([pg.claim(retried.id, 1, 'r1', false), pg.claim(dead.id, 3, 'd3', false)]);
    expect(
      await Promise.all([
        pg.progress(retried.id, 'r1', 40, 'almost half'),
        pg.progress(dead.id, 'wrong', 99, null),
      ]),
    ).toEqual([true, false]);
    expect(await typeorm(retried.id)).toMatchObject({
      progress: 40,
      progressMessage: 'almost half',
    });
    expect(
      await Promise.all([
        pg.fail(retried.id, 'r1', 'boom', false, 5000),
        pg.fail(dead.id, 'wrong', 'boom', true, 5000),
      ]),
    ).toEqual([true, false]);
    expect(await pg.fail(dead.id, 'd3', 'gave up', true, 6000)).toBe(true);
    expect(await typeorm(retried.id)).toMatchObject({
      status: TaskStatus.Queued,
      error: 'boom',
      processedAt: null,
      claimToken: null,
      callbackStatus: null,
      callbackNextAt: null,
    });
    expect(await typeorm(dead.id)).toMatchObject({
      status: TaskStatus.Failed,
      error: 'gave up',
      processedAt: 6000,
      callbackStatus: 'pending',
      callbackNextAt: 6000,
    });
    // A retry's next attempt claims the queued row again.
    expect(await pg.claim(retried.id, 2, 'r2', false)).toBe(true);
  });

  it('inserts one turn in one statement; a failing caller is rejected alone, all or none', async () => {
    const first = task({ idempotencyKey: `key-${randomBytes(4).toString('hex')}` });
    await pg.insert([first]);
    const ok1 = [task(), task()];
    const clash = [task(), task({ idempotencyKey: first.idempotencyKey })];
    const ok2 = [task()];
    const { value, sent } = await statements(() =>
      Promise.allSettled([pg.insert(ok1), pg.insert(clash), pg.insert(ok2)]),
    );
    expect(value.map((outcome) => outcome.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(sent).toBe(4); // the shared INSERT failed, then one per caller
    const error = (value[1] as PromiseRejectedResult).reason as QueryFailedError;
    expect(error).toBeInstanceOf(QueryFailedError);
    // What TasksService's duplicate-key check looks at.
    expect((error.driverError as { code?: string }).code).toBe('23505');
    for (const row of [...ok1, ...ok2]) expect(await committed(row.id)).toBeDefined();
    // The clashing caller's other row did not go in either.
    for (const row of clash) expect(await committed(row.id)).toBeUndefined();

    const { sent: together } = await statements(() =>
      Promise.all([pg.insert([task()]), pg.insert([task(), task()]), pg.insert([task()])]),
    );
    expect(together).toBe(1);
  });

  it('settles each write only once it is committed', async () => {
    const rows = Array.from({ length: 50 }, () => task());
    await Promise.all(
      rows.map(async (row) => {
        await pg.insert([row]);
        expect(await committed(row.id)).toMatchObject({ status: 'queued' });
        const token = row.id.replace(/^./, 'c');
        expect(await pg.claim(row.id, 1, token, false)).toBe(true);
        expect(await committed(row.id)).toMatchObject({ claim_token: token });
        expect(await pg.complete(row.id, token, '1', Date.now())).toBe(true);
        expect(await committed(row.id)).toMatchObject({ status: 'completed', result: '1' });
      }),
    );
  });

  it('under concurrent duplicate deliveries, records each outcome exactly once', async () => {
    const rows = Array.from({ length: 300 }, () => task());
    await pg.insert(rows);
    let recorded = 0;
    await Promise.all(
      rows.flatMap((row) =>
        [1, 2, 3].map(async (copy) => {
          const token = `${copy}${row.id.slice(1)}`;
          // Every copy after the first arrives as a plain duplicate.
          if (!(await pg.claim(row.id, 1, token, false))) return;
          if (await pg.complete(row.id, token, String(copy), Date.now())) recorded += 1;
        }),
      ),
    );
    expect(recorded).toBe(rows.length);
    const counts = await outside.query<{ status: string; n: string }>(
      `SELECT status, count(*) AS n FROM ${schema}.tasks WHERE id = ANY($1) GROUP BY status`,
      [rows.map((row) => row.id)],
    );
    expect(counts.rows).toEqual([{ status: 'completed', n: String(rows.length) }]);
  });

  it('sends a statement again when PostgreSQL chose it as a deadlock victim', async () => {
    const row = task();
    await pg.insert([row]);
    const pool = pgPool(dataSource)!;
    const deadlock = Object.assign(new Error('deadlock detected'), { code: '40P01' });
    const spy = jest.spyOn(pool, 'query').mockRejectedValueOnce(deadlock as never);
    try {
      expect(await pg.claim(row.id, 1, 'd1', false)).toBe(true);
      expect(spy).toHaveBeenCalledTimes(2);
    } finally {
      spy.mockRestore();
    }
    expect(await committed(row.id)).toMatchObject({ claim_token: 'd1' });
  });

  it('finds the rows of every UPDATE by primary key, never by scanning a status', async () => {
    // Thousands queued, none analysed yet: the case in which plain status conditions made the
    // planner read every queued (or ever-running) row's index entry for each batch.
    await pg.insert(Array.from({ length: 3000 }, () => task()));
    const ids = Array.from({ length: 16 }, () => task().id);
    const texts = (pg as unknown as { sql: Record<string, { text: string }> }).sql;
    const client = await outside.connect();
    try {
      await client.query(`SET search_path = ${schema}`);
      const plan = async (name: string, values: unknown[][]) =>
        JSON.stringify(
          (await client.query(`EXPLAIN (FORMAT JSON) ${texts[name].text}`, values)).rows,
        );
      const s = ids.map(() => 'x');
      const n = ids.map(() => 1);
      for (const [name, values] of [
        ['claim', [ids, n, s, n, ids.map(() => true)]],
        ['complete', [ids, s, s, n]],
        ['fail', [ids, s, s, n, ids.map(() => false)]],
        ['progress', [ids, s, n, s, n]],
      ] as const) {
        expect(await plan(name, values as unknown as unknown[][])).not.toContain(
          'idx_tasks_status_created',
        );
      }
    } finally {
      await client.query('RESET search_path');
      client.release();
    }
  });

  it('refuses a bad value to its own caller only, as QueryFailedError', async () => {
    const huge = task();
    huge.status = 'x'.repeat(100) as TaskStatus; // longer than varchar(16)
    await expect(pg.insert([huge])).rejects.toBeInstanceOf(QueryFailedError);
    expect(await committed(huge.id)).toBeUndefined();
    const [a, b] = [task(), task()];
    await pg.insert([a, b]);
    const outcomes = await Promise.allSettled([
      pg.claim(a.id, 1, 'a'.repeat(40), false), // longer than claim_token's varchar(36)
      pg.claim(b.id, 1, 'b1', false),
    ]);
    expect(outcomes[0]).toMatchObject({ status: 'rejected', reason: expect.any(QueryFailedError) });
    expect(outcomes[1]).toEqual({ status: 'fulfilled', value: true });
    expect(await committed(a.id)).toMatchObject({ status: 'queued', claim_token: null });
  });
});
