import { Pool } from 'pg';
import type { DataSource } from 'typeorm';
import { migratedPgSchema, type MigratedPgSchema, withPg } from '../../test/helpers/pg-schema';
import { describeWithService, postgresServiceAt } from '../../test/helpers/service-available';
import { newTask } from '../tasks/task.factory';
import { PostgresQueueDriver } from '../queue/drivers/postgres/postgres.driver';
import type { Delivery, TableDelivery } from '../queue';
import { PgTaskStatements, pgPool } from './pg-task-statements';
import { CLAIMED_HEADER } from './task-statements';
import { TaskEntity } from './task.entity';

const url = process.env.PG_TEST_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const POSTGRES = postgresServiceAt(url);

async function waitFor(probe: () => boolean): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/**
 * The task table as the postgres driver's queue, where the conformance suite (plain messages)
 * does not look: task rows, their outcome writes as settles, the claim's plan, dead owners.
 */
describeWithService(POSTGRES, 'PgQueueTable (the postgres driver on task rows)', () => {
  let pgSchema: MigratedPgSchema;
  let dataSource: DataSource;
  let store: PgTaskStatements;
  const drivers: PostgresQueueDriver[] = [];

  const driver = async (options = {}) => {
    const created = new PostgresQueueDriver({ pollMs: 50, ...options });
    created.bindTable(store.queueTable());
    await created.connect();
    drivers.push(created);
    return created;
  };

  /** The next delivery a consumer of `queue` gets on `on`. */
  const next = (on: PostgresQueueDriver, queue: string, prefetch = 1) =>
    new Promise<TableDelivery>((resolve) => {
      const handle = on.consume(
        queue,
        (delivery) => {
          void handle.cancel();
          resolve(delivery as TableDelivery);
        },
        { prefetch },
      );
    });

  beforeAll(async () => {
    pgSchema = await migratedPgSchema('pgq', url);
    dataSource = pgSchema.dataSource;
    store = new PgTaskStatements(
      pgPool(dataSource)!,
      dataSource.driver,
      dataSource.getMetadata(TaskEntity),
    );
  });

  afterEach(async () => {
    await Promise.all(drivers.splice(0).map((d) => d.close()));
    await dataSource.query('DELETE FROM tasks');
  });

  afterAll(() => pgSchema?.drop());

  it('delivers a stored task claimed under its token, and the completion is the ack', async () => {
    const pg = await driver();
    const task = newTask({ action: 'echo', data: { n: 1 }, queue: 'q', maxAttempts: 3 });
    await store.insert([task]);
    // Publishing a stored task's message writes nothing: the row is the message.
    expect(
      await pg.publish('q', [
        { body: { taskId: task.id, action: 'echo', data: { n: 1 } }, deduplicationKey: task.id },
      ]),
    ).toEqual([task.id]);

    const delivery = await next(pg, 'q');
    expect(delivery).toMatchObject({
      id: task.id,
      body: { taskId: task.id, action: 'echo', data: { n: 1 } },
      attempt: 1,
      deliveryCount: 1,
      settledByOutcome: true,
      headers: { 'x-max-attempts': '3', [CLAIMED_HEADER]: delivery.receipt },
    });
    expect(await store.findById(task.id)).toMatchObject({
      status: 'running',
      attempt: 1,
      claimToken: delivery.receipt,
    });

    let applied: boolean | undefined;
    const write = store.completion(task.id, delivery.receipt, { ok: true }, (a) => (applied = a));
    await pg.settleWith(delivery, write, { kind: 'ack' });
    expect(applied).toBe(true);
    expect(await store.findById(task.id)).toMatchObject({ status: 'completed', claimToken: null });
    expect(await pg.stats('q')).toMatchObject({ ready: 0, inFlight: 0, dead: 0 });
  });

  it('makes a retry write the nack: the row is not claimable before its backoff', async () => {
    const pg = await driver();
    const task = newTask({ action: 'echo', data: {}, queue: 'q', maxAttempts: 3 });
    await store.insert([task]);
    const first = await next(pg, 'q');
    const failedAt = Date.now();
    const write = store.failure(task.id, first.receipt, 'boom', false, () => undefined, 300);
    await pg.settleWith(first, write, { kind: 'nack', delayMs: 300 });
    expect(await pg.stats('q')).toMatchObject({ ready: 0, delayed: 1, inFlight: 0 });

    const second = await next(pg, 'q');
    expect(Date.now() - failedAt).toBeGreaterThanOrEqual(299);
    expect(second).toMatchObject({ id: task.id, attempt: 2, deliveryCount: 2 });
    expect(await store.findById(task.id)).toMatchObject({ status: 'running', error: 'boom' });
  });

  it('makes a final failure the dead letter, listed with its error', async () => {
    const pg = await driver();
    const task = newTask({ action: 'echo', data: { a: 1 }, queue: 'q', maxAttempts: 1 });
    await store.insert([task]);
    const delivery = await next(pg, 'q');
    const write = store.failure(task.id, delivery.receipt, 'gave up', true, () => undefined);
    await pg.settleWith(delivery, write, { kind: 'dead', reason: 'gave up' });
    expect(await pg.deadLetters('q')).toEqual([
      expect.objectContaining({ id: task.id, reason: 'gave up', attempt: 1 }),
    ]);
    expect(await pg.stats('q')).toMatchObject({ dead: 1, inFlight: 0 });
  });

  it('dead-letters a row whose payload is not JSON when it is claimed, with the reason', async () => {
    const table = store.queueTable();
    const [good, bad] = [1, 2].map((n) =>
      newTask({ action: 'echo', data: { n }, queue: 'poison', maxAttempts: 3 }),
    );
    await store.insert([good, bad]);
    // Written around taskq: the payload column holds text that is not JSON.
    await dataSource.query(`UPDATE tasks SET payload = '{not json' WHERE id = $1`, [bad.id]);
    const deliveries = await table.claim('poison', 10, 'owner-a', 30_000, 0);
    expect(deliveries.map((d) => d.id)).toEqual([good.id]);
    const dead = await store.findById(bad.id);
    expect(dead).toMatchObject({ status: 'failed', claimToken: null });
    expect(dead!.error).toMatch(/^undecodable message: /);
    const [letter] = await table.deadLetters('poison', 10);
    expect(letter).toMatchObject({ id: bad.id, body: '{not json' });
  });

  it('takes over a running row another driver claimed, once untouched for a lease', async () => {
    const table = store.queueTable();
    const [old, fresh] = [1, 2].map((n) =>
      newTask({ action: 'echo', data: { n }, queue: 'upgrade', maxAttempts: 3 }),
    );
    await store.insert([old, fresh]);
    const hold = `UPDATE tasks SET status = 'running', attempt = 1, deliveries = 1,
      claim_token = 'theirs', updated_at = $1 WHERE id = $2`;
    await dataSource.query(hold, [Date.now() - 60_000, old.id]);
    await dataSource.query(hold, [Date.now(), fresh.id]);
    const [taken, ...rest] = await table.claim('upgrade', 10, 'owner-a', 30_000, 0);
    expect(rest).toEqual([]);
    expect(taken).toMatchObject({ id: old.id, attempt: 1, deliveryCount: 2 });
    expect(await store.complete(old.id, 'theirs', 1)).toBe(false);
    expect(await store.complete(old.id, taken.receipt, 2)).toBe(true);
  });

  it('frees the claims of a driver that stopped beating at once for another process', async () => {
    const dying = await driver({ leaseMs: 600_000, heartbeatMs: 50, maxStalls: 2 });
    const task = newTask({ action: 'echo', data: {}, queue: 'q', maxAttempts: 3 });
    await store.insert([task]);
    const held: Delivery = await next(dying, 'q');
    // Its lease has ten minutes left; only its silence frees the row.
    await dataSource.query('UPDATE taskq_queue_consumers SET seen_at = 1 WHERE id = $1', [
      dying.owner,
    ]);
    await dying.close();
    const survivor = await driver({ heartbeatMs: 50, maxStalls: 2 });
    const taken = await next(survivor, 'q');
    expect(taken).toMatchObject({ id: task.id, attempt: 1, deliveryCount: 2 });
    // The old holder's outcome is fenced off.
    expect(await store.complete(task.id, held.receipt, 'late')).toBe(false);
    expect(await store.complete(task.id, taken.receipt, 'ok')).toBe(true);
  });

  it('claims from the head of the partial index of queued rows, whatever the backlog', async () => {
    await store.insert(
      Array.from({ length: 2000 }, () =>
        newTask({ action: 'echo', data: {}, queue: 'q', maxAttempts: 1 }),
      ),
    );
    await dataSource.query('ANALYZE tasks');
    const claim = (store.queueTable() as unknown as { names: Map<string, string> }).names;
    const pg = await driver();
    await next(pg, 'q', 64);
    const text = [...claim.keys()].find((sql) => sql.includes('FOR UPDATE OF t SKIP LOCKED'))!;
    const plan = JSON.stringify(
      await dataSource.query(`EXPLAIN (FORMAT JSON) ${text}`, ['q', 64, Date.now(), 1000, 'o', 0]),
    );
    expect(plan).toContain('idx_tasks_queued_claim');
  });

  it('hands new rows to a consumer with room even above its low-water mark', async () => {
    // The pool orders what it holds by priority: a new row must reach its buffer at once, not
    // wait for settles to bring the consumer down to its low-water mark.
    const pg = await driver({ pollMs: 60_000 });
    const task = () => newTask({ action: 'echo', data: {}, queue: 'lw', maxAttempts: 1 });
    await store.insert([task(), task()]);
    const received: Delivery[] = [];
    pg.consume('lw', (delivery) => received.push(delivery), { prefetch: 4, lowWater: 1 });
    await waitFor(() => received.length === 2);
    const late = task();
    await store.insert([late]);
    await pg.publish('lw', [
      { body: { taskId: late.id, action: 'echo', data: {} }, deduplicationKey: late.id },
    ]);
    await waitFor(() => received.length === 3);
    expect(received[2].id).toBe(late.id);
  });

  it("hears other processes' inserts and notifies, not this pool's own (its driver wakes itself)", async () => {
    const table = store.queueTable();
    const woken: string[] = [];
    const stop = await table.listen(
      (queue) => woken.push(queue),
      () => undefined,
    );
    try {
      // This process: an insert (its trigger's NOTIFY) and a settle's notify, on the pool.
      await store.insert([newTask({ action: 'echo', data: {}, queue: 'own', maxAttempts: 1 })]);
      await table.notify('own');
      // Another process: its own session. Notifications arrive in commit order, so once its
      // NOTIFY is heard, ours would have been heard before it.
      await withPg(async (client) => {
        await client.query(`SET search_path = ${pgSchema.schema}`);
        await client.query(
          `INSERT INTO tasks (id, action, payload, status, max_attempts, queue, created_at,
             updated_at) VALUES ($1, 'echo', '{}', 'queued', 1, 'theirs', 1, 1)`,
          [newTask({ action: 'echo', data: {}, queue: 'theirs', maxAttempts: 1 }).id],
        );
      }, url);
      await waitFor(() => woken.length > 0);
      expect(woken).toEqual(['theirs']);
    } finally {
      await stop();
    }
  });

  it('wakes another process when a retry or a delayed row it was told of becomes due, not at its poll', async () => {
    // Another process: a pool of its own (this pool's NOTIFYs are this process's).
    const otherPool = new Pool({ connectionString: pgSchema.url, max: 2 });
    const elsewhere = new PgTaskStatements(
      otherPool,
      dataSource.driver,
      dataSource.getMetadata(TaskEntity),
    );
    const b = new PostgresQueueDriver({ pollMs: 600_000 });
    try {
      b.bindTable(elsewhere.queueTable());
      await b.connect();
      const a = await driver({ pollMs: 600_000 });
      const task = newTask({ action: 'echo', data: {}, queue: 'later', maxAttempts: 3 });
      await store.insert([task]);
      const first = await next(a, 'later'); // a's consumer is gone after this one
      const received: Delivery[] = [];
      b.consume('later', (delivery) => received.push(delivery), { prefetch: 2 });
      await waitFor(() => (b as unknown as { unlisten?: unknown }).unlisten !== undefined);

      const write = store.failure(task.id, first.receipt, 'boom', false, () => undefined, 300);
      await a.settleWith(first, write, { kind: 'nack', delayMs: 300 });
      await waitFor(() => received.length === 1);
      expect(received[0]).toMatchObject({ id: task.id, attempt: 2 });

      // The insert trigger tells of a delayed row's due time too.
      const delayed = newTask({
        action: 'echo',
        data: {},
        queue: 'later',
        maxAttempts: 1,
        runAt: Date.now() + 300,
      });
      await store.insert([delayed]);
      await waitFor(() => received.length === 2);
      expect(received[1].id).toBe(delayed.id);
    } finally {
      await b.close();
      await otherPool.end();
    }
  });

  it('wakes the listeners of other processes when a finished task is retried through the API', async () => {
    const task = newTask({ action: 'echo', data: {}, queue: 'redrive', maxAttempts: 1 });
    await store.insert([task]);
    const first = await next(await driver(), 'redrive');
    expect(await store.fail(task.id, first.receipt, 'boom', true)).toBe(true);
    // Another process's listener: a pool of its own (this pool's NOTIFYs are this process's).
    const otherPool = new Pool({ connectionString: pgSchema.url, max: 1 });
    const elsewhere = new PgTaskStatements(
      otherPool,
      dataSource.driver,
      dataSource.getMetadata(TaskEntity),
    );
    const woken: string[] = [];
    const stop = await elsewhere.queueTable().listen(
      (queue) => woken.push(queue),
      () => undefined,
    );
    try {
      expect(await store.requeueFinished(task.id)).toBe(true);
      await waitFor(() => woken.includes('redrive'));
      expect(await store.requeueFinished(task.id)).toBe(false); // queued already: no change
    } finally {
      await stop();
      await otherPool.end();
    }
  });

  it('keeps a queue paused in every process', async () => {
    const a = await driver();
    const b = await driver();
    await store.insert([newTask({ action: 'echo', data: {}, queue: 'p', maxAttempts: 1 })]);
    await a.pauseQueue('p');
    expect(await b.stats('p')).toMatchObject({ paused: true, ready: 1 });
    const delivered = next(b, 'p');
    const early = await Promise.race([
      delivered.then(() => 'delivered'),
      new Promise((resolve) => setTimeout(() => resolve('quiet'), 300)),
    ]);
    expect(early).toBe('quiet');
    await a.resumeQueue('p');
    expect((await delivered).queue).toBe('p');
  });
});
