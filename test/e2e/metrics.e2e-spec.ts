import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { QueuePublisher } from '../../src/queue';
import { startCallbackReceiver } from '../helpers/callback-receiver';
import { E2E_QUEUE_DRIVER, startTestApp, tempDir, type TestApp } from '../helpers/create-test-app';
import { parsePrometheus, type Scrape } from '../helpers/prometheus';
import { waitFor } from '../helpers/wait-for';

/** Every family taskq documents (README, "Operations"), plus the default process metrics. */
const FAMILIES = [
  'taskq_queue_waiting',
  'taskq_queue_in_flight',
  'taskq_queue_delayed',
  'taskq_queue_dead_letters',
  'taskq_queue_paused',
  'taskq_queue_oldest_waiting_age_seconds',
  'taskq_queue_up',
  'taskq_consumer_busy_workers',
  'taskq_consumer_concurrency',
  'taskq_tasks_accepted_total',
  'taskq_tasks_completed_total',
  'taskq_tasks_failed_total',
  'taskq_tasks_retried_total',
  'taskq_tasks_cancelled_total',
  'taskq_tasks_timed_out_total',
  'taskq_deliveries_duplicate_total',
  'taskq_settles_stale_total',
  'taskq_messages_orphaned_total',
  'taskq_callbacks_delivered_total',
  'taskq_callbacks_failed_total',
  'taskq_handler_duration_seconds',
  'taskq_task_pickup_latency_seconds',
  'taskq_task_end_to_end_latency_seconds',
  'taskq_http_request_duration_seconds',
  'nodejs_eventloop_lag_seconds',
  'nodejs_heap_size_used_bytes',
  'nodejs_gc_duration_seconds',
  'process_cpu_seconds_total',
];

describe(`GET /metrics (${E2E_QUEUE_DRIVER} driver)`, () => {
  const dir = tempDir();
  const apps: TestApp[] = [];
  const closers: (() => Promise<void>)[] = [];
  afterEach(async () => {
    await Promise.all(apps.splice(0).map((t) => t.close()));
    await Promise.all(closers.splice(0).map((close) => close()));
  });
  afterAll(() => dir.remove());

  async function start(
    env: Record<string, string> = {},
    adapter: 'express' | 'fastify' = 'express',
  ): Promise<TestApp> {
    const t = await startTestApp({
      adapter,
      dbPath: join(dir.path, `${randomUUID()}.db`),
      env: { CALLBACK_ALLOW_PRIVATE: 'true', WORKER_CONCURRENCY: '4', ...env },
    });
    apps.push(t);
    return t;
  }

  async function scrape(t: TestApp): Promise<Scrape> {
    const res = await t.http.get('/metrics').expect(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    return parsePrometheus(res.text);
  }

  const submit = async (t: TestApp, body: Record<string, unknown>): Promise<string> =>
    ((await t.http.post('/tasks').send(body).expect(202)).body as { id: string }).id;

  const settled = (t: TestApp, id: string, status: string) =>
    waitFor(
      async () => ((await t.http.get(`/tasks/${id}`).expect(200)).body.status === status ? id : ''),
      { timeoutMs: 30_000, what: `task ${id} to be ${status}` },
    );

  it('exposes every family, and each moves as tasks flow', async () => {
    // Arrange
    const t = await start({ CALLBACK_MAX_ATTEMPTS: '1' });
    const ok = await startCallbackReceiver(() => 200);
    const refusing = await startCallbackReceiver(() => 500);
    closers.push(ok.close, refusing.close);
    const before = await scrape(t);
    const q = { queue: 'tasks' };
    for (const family of FAMILIES)
      expect([family, before.families.has(family)]).toEqual([family, true]);
    expect(before.value('taskq_queue_up', q)).toBe(1);
    expect(before.value('taskq_consumer_concurrency', q)).toBe(4);

    // Act 1: a paused queue with a backlog.
    await t.http.post('/queues/tasks/pause').expect(200);
    const held = [
      await submit(t, { action: 'uppercase', data: { text: 'a' } }),
      await submit(t, { action: 'uppercase', data: { text: 'b' } }),
    ];
    // Assert: the gauges read the backlog at scrape time.
    const paused = await waitFor(
      async () => {
        const s = await scrape(t);
        return s.value('taskq_queue_waiting', q) >= 2 &&
          s.value('taskq_queue_oldest_waiting_age_seconds', q) > 0
          ? s
          : undefined;
      },
      { what: 'the paused backlog in the gauges' },
    );
    expect(paused.value('taskq_queue_paused', q)).toBe(1);
    await t.http.post('/queues/tasks/resume').expect(200);
    for (const id of held) await settled(t, id, 'completed');

    // Act 2: one task of each kind of outcome.
    const slow = await submit(t, { action: 'sleep', data: { ms: 1500 } });
    const running = await waitFor(
      async () => {
        const s = await scrape(t);
        return s.value('taskq_consumer_busy_workers', q) >= 1 ? s : undefined;
      },
      { what: 'a busy worker in the gauges' },
    );
    expect(running.value('taskq_queue_in_flight', q)).toBeGreaterThanOrEqual(1);
    const completed = await submit(t, {
      action: 'uppercase',
      data: { text: 'c' },
      callbackUrl: ok.url,
    });
    const failed = await submit(t, {
      action: 'fail',
      data: { times: 5 },
      maxAttempts: 2,
      callbackUrl: refusing.url,
    });
    const timedOut = await submit(t, {
      action: 'sleep',
      data: { ms: 20_000 },
      timeoutMs: 50,
      maxAttempts: 1,
    });
    const delayed = await submit(t, {
      action: 'uppercase',
      data: { text: 'later' },
      delayMs: 600_000,
    });
    await waitFor(async () => (await scrape(t)).value('taskq_queue_delayed', q) >= 1, {
      what: 'the delayed task in the gauges',
    });
    await t.http.post(`/tasks/${delayed}/cancel`).expect(200);
    await settled(t, completed, 'completed');
    await settled(t, failed, 'failed');
    await settled(t, timedOut, 'failed');
    await settled(t, slow, 'completed');
    // A second message for a finished task (a duplicate delivery) and one naming no task.
    const publisher = t.app.get(QueuePublisher);
    await publisher.publish('tasks', [
      { body: { taskId: completed, action: 'uppercase', data: {} } },
      { body: { taskId: randomUUID(), action: 'uppercase', data: {} } },
    ]);

    // Assert: every counter and histogram moved by what happened.
    const after = await waitFor(
      async () => {
        const s = await scrape(t);
        return s.value('taskq_callbacks_delivered_total') >= 1 &&
          s.value('taskq_callbacks_failed_total') >= 1 &&
          s.value('taskq_messages_orphaned_total') >= 1 &&
          s.value('taskq_deliveries_duplicate_total') >= 1
          ? s
          : undefined;
      },
      { timeoutMs: 30_000, what: 'the callback and delivery counters' },
    );
    const moved = (name: string, labels: Record<string, string> = {}) =>
      after.value(name, labels) - before.value(name, labels);
    const up = { queue: 'tasks', action: 'uppercase' };
    expect(moved('taskq_tasks_accepted_total', up)).toBe(4);
    expect(moved('taskq_tasks_accepted_total')).toBe(7);
    expect(moved('taskq_tasks_completed_total', up)).toBe(3);
    expect(moved('taskq_tasks_completed_total', { action: 'sleep' })).toBe(1);
    expect(moved('taskq_tasks_retried_total', { action: 'fail' })).toBe(1);
    expect(moved('taskq_tasks_failed_total', { action: 'fail' })).toBe(1);
    expect(moved('taskq_tasks_failed_total', { action: 'sleep' })).toBe(1);
    expect(moved('taskq_tasks_timed_out_total', { action: 'sleep' })).toBe(1);
    expect(moved('taskq_tasks_cancelled_total', up)).toBe(1);
    expect(moved('taskq_deliveries_duplicate_total', up)).toBe(1);
    expect(moved('taskq_messages_orphaned_total', up)).toBe(1);
    expect(moved('taskq_callbacks_delivered_total', up)).toBe(1);
    expect(moved('taskq_callbacks_failed_total', { action: 'fail' })).toBe(1);
    expect(moved('taskq_queue_dead_letters', q)).toBe(2);
    // Histograms: one handler run per attempt, by outcome.
    expect(moved('taskq_handler_duration_seconds_count', { ...up, outcome: 'completed' })).toBe(3);
    expect(
      moved('taskq_handler_duration_seconds_count', { action: 'fail', outcome: 'failed' }),
    ).toBe(2);
    expect(
      moved('taskq_handler_duration_seconds_count', { action: 'sleep', outcome: 'timed_out' }),
    ).toBe(1);
    expect(
      moved('taskq_handler_duration_seconds_sum', { action: 'sleep', outcome: 'completed' }),
    ).toBeGreaterThanOrEqual(1.5);
    // Pickup: first attempts only (5 tasks ran, the delayed one was cancelled before it was due).
    expect(moved('taskq_task_pickup_latency_seconds_count')).toBe(6);
    expect(moved('taskq_task_end_to_end_latency_seconds_count', { status: 'completed' })).toBe(4);
    expect(moved('taskq_task_end_to_end_latency_seconds_count', { status: 'failed' })).toBe(2);
    expect(
      moved('taskq_http_request_duration_seconds_count', {
        method: 'POST',
        route: '/tasks',
        status: '202',
      }),
    ).toBe(7);
    expect(
      after.has('taskq_http_request_duration_seconds_count', {
        route: '/tasks/:id',
        status: '200',
      }),
    ).toBe(true);
    expect(after.has('taskq_settles_stale_total', q)).toBe(true);
    expect(after.value('taskq_queue_paused', q)).toBe(0);
    expect(after.value('taskq_queue_waiting', q)).toBe(0);
    expect(after.value('taskq_queue_oldest_waiting_age_seconds', q)).toBe(0);
    expect(after.value('process_cpu_seconds_total')).toBeGreaterThan(0);
  });

  it('keeps the metrics of each application apart (one registry per app)', async () => {
    const first = await start();
    const second = await start();
    await settled(
      first,
      await submit(first, { action: 'uppercase', data: { text: 'a' } }),
      'completed',
    );
    expect((await scrape(first)).value('taskq_tasks_accepted_total')).toBe(1);
    expect((await scrape(second)).value('taskq_tasks_accepted_total')).toBe(0);
  });

  it.each(['express', 'fastify'] as const)(
    'labels HTTP requests by route template on %s, unmatched ones as such',
    async (adapter) => {
      const t = await start({}, adapter);
      await submit(t, { action: 'uppercase', data: { text: 'a' } });
      await t.http.get(`/tasks/${randomUUID()}`).expect(404);
      await t.http.get('/no/such/route').expect(404);
      const s = await scrape(t);
      const count = (labels: Record<string, string>) =>
        s.value('taskq_http_request_duration_seconds_count', labels);
      expect(count({ method: 'POST', route: '/tasks', status: '202' })).toBe(1);
      expect(count({ method: 'GET', route: '/tasks/:id', status: '404' })).toBe(1);
      expect(count({ method: 'GET', route: 'unmatched', status: '404' })).toBe(1);
    },
  );

  it('serves no /metrics with METRICS_ENABLED=false', async () => {
    const t = await start({ METRICS_ENABLED: 'false' });
    await t.http.get('/metrics').expect(404);
    await t.http.get('/health/ready').expect(200);
  });
});
