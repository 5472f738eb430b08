import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AppConfig } from '../config/app.config';
import type { TaskHandlerExplorer } from '../handlers/task-handler.explorer';
import type { TaskStatements } from '../persistence/task-statements';
import type { QueueConsumerService, QueueDriverRegistry, QueueStats } from '../queue';
import { TaskMetrics } from './metrics';

const ROOT = join(__dirname, '..', '..');

function setUp(stats: (queue: string) => Promise<QueueStats>, oldest: number | null) {
  const registry = {
    queueNames: () => ['tasks', 'reports'],
    driverFor: () => ({ stats }),
  } as unknown as QueueDriverRegistry;
  const consumers = {
    stats: () => [
      { queue: 'tasks', concurrency: 4, busy: 3, staleSettles: 2 },
      { queue: 'tasks', concurrency: 2, busy: 0, staleSettles: 1 },
    ],
  } as unknown as QueueConsumerService;
  const store = {
    oldestQueuedAt: jest.fn(() => Promise.resolve(oldest)),
  } as unknown as TaskStatements;
  const handlers = {
    actions: () => ['uppercase', 'report', '*'],
    resolve: (action: string) => (action === 'report' ? { queue: 'reports' } : {}),
  } as unknown as TaskHandlerExplorer;
  const config = { queue: { name: 'tasks' } } as AppConfig;
  return { metrics: new TaskMetrics(registry, consumers, store, handlers, config), store };
}

const line = (text: string, sample: string) =>
  text.split('\n').find((l) => l.startsWith(`${sample} `));

describe(TaskMetrics.name, () => {
  it('reads queue gauges at scrape time, once per queue per scrape', async () => {
    const stats = jest.fn((queue: string) =>
      Promise.resolve({ queue, ready: 7, inFlight: 2, delayed: 1, dead: 3, paused: true }),
    );
    const { metrics, store } = setUp(stats, Date.now() - 5000);
    const text = await metrics.scrape();
    expect(line(text, 'taskq_queue_waiting{queue="tasks"}')).toBe(
      'taskq_queue_waiting{queue="tasks"} 7',
    );
    expect(line(text, 'taskq_queue_paused{queue="reports"}')).toBe(
      'taskq_queue_paused{queue="reports"} 1',
    );
    expect(line(text, 'taskq_queue_dead_letters{queue="tasks"}')).toMatch(/ 3$/);
    const age = Number(
      line(text, 'taskq_queue_oldest_waiting_age_seconds{queue="tasks"}')?.split(' ')[1],
    );
    expect(age).toBeGreaterThanOrEqual(5);
    // Consumers are summed per queue.
    expect(line(text, 'taskq_consumer_busy_workers{queue="tasks"}')).toMatch(/ 3$/);
    expect(line(text, 'taskq_consumer_concurrency{queue="tasks"}')).toMatch(/ 6$/);
    expect(line(text, 'taskq_settles_stale_total{queue="tasks"}')).toMatch(/ 3$/);
    // Seven gauges, one reading: each store is asked once per queue.
    expect(stats).toHaveBeenCalledTimes(2);
    expect(store.oldestQueuedAt).toHaveBeenCalledTimes(2);
  });

  it('starts every counter at 0 for each action on its queue, not for the fallback', async () => {
    const { metrics } = setUp(() => Promise.reject(new Error('not asked')), null);
    metrics.onApplicationBootstrap();
    const text = await metrics.scrape();
    for (const family of ['taskq_tasks_accepted_total', 'taskq_callbacks_failed_total']) {
      expect(line(text, `${family}{queue="tasks",action="uppercase"}`)).toMatch(/ 0$/);
      expect(line(text, `${family}{queue="reports",action="report"}`)).toMatch(/ 0$/);
    }
    expect(text).not.toContain('action="*"');
  });

  it('reports a driver that does not answer as down instead of failing the scrape', async () => {
    const { metrics } = setUp(() => Promise.reject(new Error('connection refused')), null);
    const text = await metrics.scrape();
    expect(line(text, 'taskq_queue_up{queue="tasks"}')).toMatch(/ 0$/);
    expect(line(text, 'taskq_queue_waiting{queue="tasks"}')).toBeUndefined();
    expect(line(text, 'taskq_queue_oldest_waiting_age_seconds{queue="tasks"}')).toMatch(/ 0$/);
  });

  it('documents every family in the README, and the Grafana dashboard uses only real ones', async () => {
    const { metrics } = setUp(
      (queue) =>
        Promise.resolve({ queue, ready: 0, inFlight: 0, delayed: 0, dead: 0, paused: false }),
      null,
    );
    const families = new Set((await metrics.registry.getMetricsAsJSON()).map((m) => m.name));
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    for (const name of families) {
      if (name.startsWith('taskq_'))
        expect([name, readme.includes(`\`${name}\``)]).toEqual([name, true]);
    }
    const dashboard = readFileSync(join(ROOT, 'examples', 'grafana-dashboard.json'), 'utf8');
    const used = new Set(
      [...dashboard.matchAll(/\b((?:taskq|nodejs|process)_[a-z0-9_]+)/g)].map((m) =>
        m[1].replace(/_(bucket|sum|count)$/, ''),
      ),
    );
    expect(used.size).toBeGreaterThan(20);
    for (const name of used) expect([name, families.has(name)]).toEqual([name, true]);
  });
});
