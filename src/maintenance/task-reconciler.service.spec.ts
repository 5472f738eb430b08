import type { AppConfig } from '../config/app.config';
import type { QueueDriver, QueueDriverRegistry } from '../queue';
import type { TaskEntity } from '../persistence/task.entity';
import type { TaskStatements } from '../persistence/task-statements';
import { TaskReconciler } from './task-reconciler.service';
import type { TasksService } from '../tasks/tasks.service';

describe(TaskReconciler.name, () => {
  /** 1200 stale queued rows, oldest first; only one of them, far back, lost its message. */
  const rows = Array.from(
    { length: 1200 },
    (_, i) => ({ id: `t${String(i).padStart(4, '0')}`, updatedAt: 1000 + i }) as TaskEntity,
  );
  const lost = rows[1100].id;

  function setup() {
    const store = {
      staleQueued: jest.fn(
        (_queue: string, _before: number, limit: number, after?: { updatedAt: number }) =>
          Promise.resolve(
            rows.filter((r) => !after || r.updatedAt > after.updatedAt).slice(0, limit),
          ),
      ),
      staleRunning: jest.fn(() => Promise.resolve([])),
    };
    const driver = {
      capabilities: { durable: true, leases: true, deduplication: 'exact' },
      missingKeys: jest.fn((_queue: string, keys: string[]) =>
        Promise.resolve(keys.filter((key) => key === lost)),
      ),
    } as unknown as QueueDriver;
    const queues = {
      queueNames: () => ['q'],
      driverFor: () => driver,
    } as unknown as QueueDriverRegistry;
    const tasks = { publish: jest.fn(() => Promise.resolve()) };
    const config = { role: 'all', reconcile: { intervalMs: 0, afterMs: 1 } } as AppConfig;
    const sut = new TaskReconciler(
      config,
      store as unknown as TaskStatements,
      tasks as unknown as TasksService,
      queues,
    );
    return { sut, store, tasks };
  }

  it('pages on across passes, so a long healthy backlog cannot hide a lost message behind it', async () => {
    const { sut, store, tasks } = setup();
    expect(await sut.reconcile(10_000)).toEqual({ queued: 0, running: 0 }); // rows 0..499
    expect(await sut.reconcile(10_000)).toEqual({ queued: 0, running: 0 }); // 500..999
    expect(await sut.reconcile(10_000)).toEqual({ queued: 1, running: 0 }); // 1000..1199
    expect(tasks.publish).toHaveBeenCalledTimes(1);
    expect((tasks.publish.mock.calls[0] as unknown as [TaskEntity[]])[0].map((t) => t.id)).toEqual([
      lost,
    ]);
    // The short last page wraps the cursor: the next pass starts from the oldest again.
    await sut.reconcile(10_000);
    expect(store.staleQueued.mock.calls[3][3]).toBeUndefined();
  });

  it('on a recovery event, publishes at once every queued task of those queues without a message', async () => {
    // 12,000 queued keys over two queues; the broker of `lost` kept none of its messages.
    const keys = Array.from({ length: 12_000 }, (_, i) => ({
      id: `k${String(i).padStart(5, '0')}`,
      queue: i % 2 === 0 ? 'lost' : 'fine',
      createdAt: i,
    }));
    const store = {
      queuedKeys: jest.fn((limit: number, after?: { id: string }) =>
        Promise.resolve(keys.filter((k) => !after || k.id > after.id).slice(0, limit)),
      ),
      queuedByIds: jest.fn((ids: string[]) =>
        Promise.resolve(ids.map((id) => ({ id, queue: 'lost' }) as TaskEntity)),
      ),
    };
    let listener:
      ((event: { queues: string[]; lost: boolean; reason: string }) => void) | undefined;
    const driver = {
      capabilities: { durable: true, leases: true },
      missingKeys: jest.fn((queue: string, ids: string[]) =>
        Promise.resolve(queue === 'lost' ? ids : []),
      ),
      onRecovery: jest.fn((l: typeof listener) => {
        listener = l;
        return () => (listener = undefined);
      }),
    } as unknown as QueueDriver;
    const queues = {
      queueNames: () => ['lost', 'fine'],
      driverFor: () => driver,
    } as unknown as QueueDriverRegistry;
    const tasks = { publish: jest.fn((_rows: TaskEntity[]) => Promise.resolve()) };
    const config = { role: 'all', reconcile: { intervalMs: 0, afterMs: 1 } } as AppConfig;
    const sut = new TaskReconciler(
      config,
      store as unknown as TaskStatements,
      tasks as unknown as TasksService,
      queues,
    );
    sut.onApplicationBootstrap();
    expect(listener).toBeDefined();

    listener!({ queues: ['lost'], lost: true, reason: 'the broker lost its data' });
    await sut.recover([]); // waits for the pass the event started

    const published = tasks.publish.mock.calls.flatMap(([rows]) => rows.map((r) => r.id));
    expect(published).toHaveLength(6000);
    expect(new Set(published)).toEqual(
      new Set(keys.filter((k) => k.queue === 'lost').map((k) => k.id)),
    );
    expect(driver.missingKeys).not.toHaveBeenCalledWith('fine', expect.anything());
    await sut.beforeApplicationShutdown();
    expect(listener).toBeUndefined();
  });
});
