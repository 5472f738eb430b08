import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataSource, QueryFailedError } from 'typeorm';
import { migrations } from './migrations';
import type { Delivery, QueueDriverRegistry } from '../queue';
import { SqliteQueueDriver } from '../queue/drivers/sqlite/sqlite.driver';
import { betterSqliteHandle } from './sqlite-task-statements';
import { TaskStatus } from './task-status.enum';
import { TaskEntity } from './task.entity';
import { newTask } from '../tasks/task.factory';
import { TaskStore } from './task.store';

/**
 * Opens the task database one way: alone (TypeORM's connection, an in-memory file), or in a
 * file the sqlite queue driver shares (the default deployment: the driver lends its connection).
 */
type Setup = () => Promise<{ dataSource: DataSource; driver?: SqliteQueueDriver; dir?: string }>;

const alone: Setup = async () => ({
  dataSource: await new DataSource({
    type: 'better-sqlite3',
    database: ':memory:',
    entities: [TaskEntity],
    migrations,
    migrationsRun: true,
  }).initialize(),
});

const besideQueue: Setup = async () => {
  const dir = mkdtempSync(join(tmpdir(), 'taskq-statements-'));
  const database = join(dir, 'tasks.db');
  const dataSource = await new DataSource({
    type: 'better-sqlite3',
    database,
    entities: [TaskEntity],
    migrations,
    migrationsRun: true,
  }).initialize();
  const driver = new SqliteQueueDriver({ path: database, heartbeatMs: 600_000 });
  await driver.ping();
  return { dataSource, driver, dir };
};

/** The prepared-statement path of TaskStore on SQLite, checked against TypeORM's own reads. */
describe.each([
  ['on its own connection', alone],
  ['on the sqlite queue driver connection', besideQueue],
])('TaskStore on better-sqlite3 (prepared statements) %s', (_, setup) => {
  let dataSource: DataSource;
  let driver: SqliteQueueDriver | undefined;
  let dir: string | undefined;
  let store: TaskStore;

  beforeEach(async () => {
    ({ dataSource, driver, dir } = await setup());
    const drivers = {
      sharedWriter: (path: string) => driver?.sharedWriter(path),
    } as unknown as QueueDriverRegistry;
    store = new TaskStore(dataSource.getRepository(TaskEntity), drivers);
  });

  afterEach(async () => {
    await driver?.close();
    await dataSource.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const task = (extra: Partial<Parameters<typeof newTask>[0]> = {}) =>
    newTask({ action: 'a', data: { x: 1 }, queue: 'q', maxAttempts: 3, ...extra });
  const typeorm = (id: string) => dataSource.getRepository(TaskEntity).findOneBy({ id });

  it("uses the raw connection: the driver's when it shares the file", async () => {
    expect(betterSqliteHandle(dataSource)).toBeDefined();
    const effect = store.completion('t', 'x', null, () => undefined);
    expect(effect.writer).toBe(driver?.sharedWriter(betterSqliteHandle(dataSource)!.name));
    expect(await effect.commit()).toBe(false); // no such task
  });

  it('records a completion in the transaction that acks its message, when it can', async () => {
    const row = task();
    await store.insert([row]);
    expect(await store.claim(row.id, 1, 't1', false)).toBe(true);
    const committed = jest.fn();
    const effect = store.completion(row.id, 't1', { ok: 1 }, committed);
    if (driver) {
      await driver.publish('q', [{ body: row.id }]);
      const delivery = await new Promise<Delivery>((resolve) => {
        const handle = driver!.consume(
          'q',
          (d) => {
            void handle.cancel();
            resolve(d);
          },
          { prefetch: 1 },
        );
      });
      const ack = jest.spyOn(driver, 'ack');
      await driver.settleWith(delivery, effect, { kind: 'ack' });
      expect(ack).not.toHaveBeenCalled(); // one transaction, not the commit-then-ack fallback
      expect(await driver.stats('q')).toMatchObject({ ready: 0, inFlight: 0 });
    } else {
      expect(effect.writer).toBeUndefined();
      effect.committed(await effect.commit());
    }
    expect(committed).toHaveBeenCalledWith(true);
    expect(await typeorm(row.id)).toMatchObject({
      status: TaskStatus.Completed,
      result: '{"ok":1}',
    });
    // Fenced: a second completion under the same token changes nothing.
    expect(await store.completion(row.id, 't1', { ok: 2 }, committed).commit()).toBe(false);
  });

  it('reads rows exactly as TypeORM hydrates them', async () => {
    const row = task({ callbackUrl: 'https://example.com/cb', runAt: 123, timeoutMs: 5 });
    await store.insert([row]);
    const fast = await store.findById(row.id);
    expect(fast).toBeInstanceOf(TaskEntity);
    expect(fast).toEqual(await typeorm(row.id));
    expect(fast).toEqual(row);
    expect(await store.findById('missing')).toBeNull();
  });

  it('claims, completes and queues the callback with the same conditions', async () => {
    const plain = task();
    const withCallback = task({ callbackUrl: 'https://example.com/cb' });
    await store.insert([plain, withCallback]);
    expect(await store.claim(plain.id, 1, 't1', false)).toBe(true);
    expect(await store.claim(plain.id, 1, 't2', false)).toBe(false); // duplicate
    expect(await store.claim(plain.id, 1, 't2', true)).toBe(true); // redelivered: takes over
    expect(await store.complete(plain.id, 't1', { no: 1 })).toBe(false); // fenced out
    expect(await store.progress(plain.id, 't2', 50, 'half')).toBe(true);
    expect(await store.complete(plain.id, 't2', { ok: true })).toBe(true);
    expect(await store.complete(plain.id, 't2', { ok: true })).toBe(false); // once
    const done = await typeorm(plain.id);
    expect(done).toMatchObject({
      status: TaskStatus.Completed,
      result: '{"ok":true}',
      claimToken: null,
      attempt: 1,
      progress: 50,
      progressMessage: 'half',
      callbackStatus: null,
      callbackNextAt: null,
    });
    expect(done!.processedAt).toEqual(expect.any(Number));

    expect(await store.claim(withCallback.id, 1, 'c', false)).toBe(true);
    expect(await store.fail(withCallback.id, 'c', 'boom', false)).toBe(true);
    expect(await typeorm(withCallback.id)).toMatchObject({
      status: TaskStatus.Queued,
      error: 'boom',
      processedAt: null,
      callbackStatus: null,
    });
    expect(await store.claim(withCallback.id, 1, 'd', false)).toBe(false); // attempt not newer
    expect(await store.claim(withCallback.id, 2, 'd', false)).toBe(true);
    expect(await store.fail(withCallback.id, 'd', 'again', true)).toBe(true);
    const failed = await typeorm(withCallback.id);
    expect(failed).toMatchObject({ status: TaskStatus.Failed, callbackStatus: 'pending' });
    expect(failed!.callbackNextAt).toBe(failed!.processedAt);
  });

  it('inserts many all or none, and reports a unique violation as TypeORM does', async () => {
    const first = task({ idempotencyKey: 'k' });
    await store.insert([first]);
    const batch = [task(), task({ idempotencyKey: 'k' }), task()];
    const error = await store.insert(batch).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(QueryFailedError);
    expect((error as QueryFailedError).driverError).toMatchObject({
      code: 'SQLITE_CONSTRAINT_UNIQUE',
    });
    expect(await typeorm(batch[0].id)).toBeNull();
    // Writes of the same turn share a commit, but one failing write fails alone.
    const [ok, dup] = await Promise.allSettled([
      store.insert([task()]),
      store.insert([task({ idempotencyKey: 'k' })]),
    ]);
    expect(ok.status).toBe('fulfilled');
    expect(dup.status).toBe('rejected');
  });

  it('never joins a TypeORM transaction left open across awaits', async () => {
    const row = task();
    await store.insert([row]);
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const outer = dataSource
      .transaction(async (manager) => {
        await manager.update(TaskEntity, { id: row.id }, { priority: 7 });
        await held;
        throw new Error('roll back');
      })
      .catch(() => undefined);
    await new Promise((resolve) => setTimeout(resolve, 5));
    let claimed = false;
    const claim = store.claim(row.id, 1, 't', false).then((ok) => (claimed = ok));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(claimed).toBe(false); // waiting for the transaction to end
    release();
    await outer;
    await claim;
    expect(claimed).toBe(true);
    expect(await typeorm(row.id)).toMatchObject({ status: TaskStatus.Running, priority: 0 });
  });
});
