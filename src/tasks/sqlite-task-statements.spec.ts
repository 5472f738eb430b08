import { DataSource, QueryFailedError } from 'typeorm';
import { migrations } from '../database/migrations';
import { betterSqliteHandle } from './sqlite-task-statements';
import { TaskStatus } from './task-status.enum';
import { TaskEntity } from './task.entity';
import { newTask } from './task.factory';
import { TaskStore } from './task.store';

/** The prepared-statement path of TaskStore on SQLite, checked against TypeORM's own reads. */
describe('TaskStore on better-sqlite3 (prepared statements)', () => {
  let dataSource: DataSource;
  let store: TaskStore;

  beforeEach(async () => {
    dataSource = await new DataSource({
      type: 'better-sqlite3',
      database: ':memory:',
      entities: [TaskEntity],
      migrations,
      migrationsRun: true,
    }).initialize();
    store = new TaskStore(dataSource.getRepository(TaskEntity));
  });

  afterEach(() => dataSource.destroy());

  const task = (extra: Partial<Parameters<typeof newTask>[0]> = {}) =>
    newTask({ action: 'a', data: { x: 1 }, queue: 'q', maxAttempts: 3, ...extra });
  const typeorm = (id: string) => dataSource.getRepository(TaskEntity).findOneBy({ id });

  it('uses the raw connection', () => {
    expect(betterSqliteHandle(dataSource)).toBeDefined();
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
