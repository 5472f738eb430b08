import { Injectable, Module } from '@nestjs/common';
import Database from 'better-sqlite3';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { TaskHandler } from '../../src/handlers';
import { CLAIM_LEASE_MS, ScheduleClock, Scheduler, SchedulesService } from '../../src/schedules';
import { ScheduleStore } from '../../src/schedules/schedule.store';
import { startTestApp, tempDir, type TestApp, withPg } from '../helpers/create-test-app';
import { freshPgSchema, type PgSchema } from '../helpers/pg-schema';
import { describeWithService, type RequiredService } from '../helpers/service-available';
import { probe, TestHandlersModule } from '../helpers/test-handlers';
import { waitFor } from '../helpers/wait-for';

const at = (iso: string): number => Date.parse(iso);

/**
 * A clock the test moves: every given app's schedules service and scheduler read it. The
 * schedulers' timers are stopped, so ticks run only when the test steps them: nothing depends
 * on real minutes or on when a timer fires.
 */
async function controlledClock(apps: TestApp[], start: number) {
  let now = start;
  for (const t of apps) {
    jest.spyOn(t.app.get(ScheduleClock), 'now').mockImplementation(() => now);
    await t.app.get(Scheduler).stop();
  }
  return {
    get now(): number {
      return now;
    },
    set(ms: number): void {
      now = ms;
    },
    /** One scheduler pass in each app, all at once. */
    step: () => Promise.all(apps.map((t) => t.app.get(Scheduler).runOnce())),
  };
}

/** The tick times (ISO) of the tasks a schedule has created, from their idempotency keys. */
async function tickKeys(t: TestApp, name: string): Promise<string[]> {
  const prefix = `schedule:${name}:`;
  const sql = `SELECT idempotency_key AS k FROM tasks WHERE idempotency_key LIKE '${prefix}%' ORDER BY idempotency_key`;
  let keys: string[];
  if (t.config.databaseUrl) {
    keys = await withPg(
      async (client) => (await client.query<{ k: string }>(sql)).rows.map((r) => r.k),
      t.config.databaseUrl,
    );
  } else {
    const db = new Database(t.dbPath, { readonly: true });
    try {
      keys = (db.prepare(sql).all() as { k: string }[]).map((r) => r.k);
    } finally {
      db.close();
    }
  }
  return keys.map((k) => k.slice(prefix.length));
}

async function schedule(t: TestApp, name: string): Promise<Record<string, unknown>> {
  return (await t.http.get(`/schedules/${name}`).expect(200)).body;
}

describe('schedules API', () => {
  const dir = tempDir();
  let t: TestApp;
  let clock: Awaited<ReturnType<typeof controlledClock>>;
  beforeAll(async () => {
    t = await startTestApp({
      dbPath: join(dir.path, 'schedules.db'),
      modules: [TestHandlersModule],
    });
    // Far from the real time, so only the test's steps run ticks.
    clock = await controlledClock([t], at('2031-01-06T10:00:30Z'));
  });
  afterAll(async () => {
    await t.close();
    dir.remove();
  });

  it('creates a schedule and shows it with its next run', async () => {
    const res = await t.http
      .post('/schedules')
      .send({
        name: 'nightly-report',
        action: 'uppercase',
        data: { text: 'report' },
        cron: '0 3 * * *',
        timezone: 'Europe/Berlin',
        priority: 5,
        maxAttempts: 5,
      })
      .expect(201);
    expect(res.body).toMatchObject({
      name: 'nightly-report',
      action: 'uppercase',
      cron: '0 3 * * *',
      every: null,
      timezone: 'Europe/Berlin',
      missed: 'latest',
      overlap: true,
      priority: 5,
      maxAttempts: 5,
      source: 'api',
      state: 'active',
      paused: false,
      nextRunAt: '2031-01-07T02:00:00.000Z',
      lastRunAt: null,
      lastTaskId: null,
      lastTaskStatus: null,
      runCount: 0,
    });
    const list = (await t.http.get('/schedules').expect(200)).body;
    expect(list.schedules.map((s: { name: string }) => s.name)).toContain('nightly-report');
    expect(list.count).toBe(list.schedules.length);
    expect((await schedule(t, 'nightly-report')).nextRunAt).toBe('2031-01-07T02:00:00.000Z');
    await t.http.get('/schedules/none-such').expect(404);
  });

  it('answers 400 naming the field, and 409 for a taken name', async () => {
    const base = { name: 'bad', action: 'uppercase', data: { text: 'x' } };
    const bad = async (body: object): Promise<string> =>
      JSON.stringify((await t.http.post('/schedules').send(body).expect(400)).body.message);
    expect(await bad({ ...base, cron: '61 * * * *' })).toMatch(/cron .*invalid/);
    expect(await bad({ ...base, cron: '* * *' })).toMatch(/cron must have 5 fields/);
    expect(await bad({ ...base, cron: '* * * * *', timezone: 'Mars/Olympus' })).toMatch(
      /timezone .*IANA/,
    );
    expect(await bad({ ...base, every: '500ms' })).toMatch(/every must be at least 1s/);
    expect(await bad({ ...base, every: '15' })).toMatch(/every must be a duration/);
    expect(await bad({ ...base, every: '1m', cron: '* * * * *' })).toMatch(
      /cron and every cannot both be set/,
    );
    expect(await bad(base)).toMatch(/cron or every is required/);
    expect(await bad({ ...base, every: '1m', data: { text: 5 } })).toMatch(/data\.text/);
    expect(await bad({ ...base, name: 'has space', every: '1m' })).toMatch(/name must be/);
    expect(await bad({ ...base, every: '1m', missed: 'some' })).toMatch(/missed must be/);
    expect(await bad({ ...base, every: '1m', limit: 0 })).toMatch(/limit/);
    expect(
      await bad({
        ...base,
        every: '1m',
        startAt: '2031-02-01T00:00:00Z',
        endAt: '2031-01-01T00:00:00Z',
      }),
    ).toMatch(/endAt must be after startAt/);
    await t.http.get('/schedules/bad').expect(404);

    await t.http
      .post('/schedules')
      .send({ ...base, name: 'taken', every: '1m' })
      .expect(201);
    const conflict = await t.http
      .post('/schedules')
      .send({ ...base, name: 'taken', cron: '* * * * *' });
    expect(conflict.status).toBe(409);
    expect(conflict.body.message).toMatch(/taken/);
    await t.http.delete('/schedules/taken').expect(204);
  });

  it('runs one task per tick, shows the last run, and counts runs', async () => {
    clock.set(at('2031-01-06T10:00:30Z'));
    await t.http
      .post('/schedules')
      .send({ name: 'ticker', action: 'uppercase', data: { text: 'tick' }, cron: '* * * * *' })
      .expect(201);
    await clock.step();
    expect(await tickKeys(t, 'ticker')).toEqual([]);

    clock.set(at('2031-01-06T10:01:00.200Z'));
    await clock.step();
    await clock.step(); // a second pass at the same time finds nothing new
    expect(await tickKeys(t, 'ticker')).toEqual(['2031-01-06T10:01:00.000Z']);
    const shown = await waitFor(async () => {
      const s = await schedule(t, 'ticker');
      return s.lastTaskStatus === 'completed' ? s : undefined;
    });
    expect(shown).toMatchObject({
      runCount: 1,
      lastRunAt: '2031-01-06T10:01:00.000Z',
      nextRunAt: '2031-01-06T10:02:00.000Z',
    });
    const task = (await t.http.get(`/tasks/${String(shown.lastTaskId)}`).expect(200)).body;
    expect(task.result).toEqual({ output: 'TICK' });
    await t.http.delete('/schedules/ticker').expect(204);
  });

  it('pauses (no ticks), resumes from the next tick after now, triggers, deletes', async () => {
    clock.set(at('2031-01-06T11:00:30Z'));
    await t.http
      .post('/schedules')
      .send({ name: 'pausable', action: 'uppercase', data: { text: 'p' }, cron: '* * * * *' })
      .expect(201);
    const paused = (await t.http.post('/schedules/pausable/pause').expect(200)).body;
    expect(paused).toMatchObject({ paused: true, state: 'paused', nextRunAt: null });
    await t.http.post('/schedules/pausable/pause').expect(200);

    clock.set(at('2031-01-06T11:05:10Z'));
    await clock.step();
    expect(await tickKeys(t, 'pausable')).toEqual([]);

    const resumed = (await t.http.post('/schedules/pausable/resume').expect(200)).body;
    expect(resumed).toMatchObject({
      paused: false,
      state: 'active',
      nextRunAt: '2031-01-06T11:06:00.000Z',
    });
    await clock.step();
    expect(await tickKeys(t, 'pausable')).toEqual([]); // the paused minutes are not made up

    const run = (await t.http.post('/schedules/pausable/trigger').expect(202)).body;
    expect(run).toEqual({ id: expect.any(String), status: 'queued' });
    const shown = await waitFor(async () => {
      const s = await schedule(t, 'pausable');
      return s.lastTaskStatus === 'completed' ? s : undefined;
    });
    expect(shown).toMatchObject({ lastTaskId: run.id, runCount: 0 });

    await t.http.delete('/schedules/pausable').expect(204);
    await t.http.get('/schedules/pausable').expect(404);
    await t.http.delete('/schedules/pausable').expect(404);
    await t.http.post('/schedules/pausable/trigger').expect(404);
    await t.http.post('/schedules/pausable/pause').expect(404);
  });

  it('skips a tick while the previous run is unfinished with overlap: false, and counts it', async () => {
    probe.reset();
    clock.set(at('2031-01-06T12:00:30Z'));
    await t.http
      .post('/schedules')
      .send({ name: 'no-overlap', action: 'hold', cron: '* * * * *', overlap: false })
      .expect(201);
    clock.set(at('2031-01-06T12:01:00Z'));
    await clock.step();
    const first = (await schedule(t, 'no-overlap')).lastTaskId as string;
    await waitFor(async () => (await t.http.get(`/tasks/${first}`)).body.status === 'running');

    clock.set(at('2031-01-06T12:02:00Z'));
    await clock.step();
    expect(await tickKeys(t, 'no-overlap')).toEqual(['2031-01-06T12:01:00.000Z']);
    expect(await schedule(t, 'no-overlap')).toMatchObject({
      overlapSkipped: 1,
      lastTaskId: first,
      lastTaskStatus: 'running',
      nextRunAt: '2031-01-06T12:03:00.000Z',
    });

    probe.gate.resolve();
    await waitFor(async () => (await t.http.get(`/tasks/${first}`)).body.status === 'completed');
    clock.set(at('2031-01-06T12:03:00Z'));
    await clock.step();
    expect(await tickKeys(t, 'no-overlap')).toEqual([
      '2031-01-06T12:01:00.000Z',
      '2031-01-06T12:03:00.000Z',
    ]);
    expect((await schedule(t, 'no-overlap')).overlapSkipped).toBe(1);
    await t.http.delete('/schedules/no-overlap').expect(204);
  });

  it('stops after limit runs and at endAt', async () => {
    clock.set(at('2031-01-06T13:00:30Z'));
    await t.http
      .post('/schedules')
      .send({
        name: 'limited',
        action: 'uppercase',
        data: { text: 'l' },
        every: '1m',
        limit: 2,
        missed: 'all',
      })
      .expect(201);
    await t.http
      .post('/schedules')
      .send({
        name: 'ending',
        action: 'uppercase',
        data: { text: 'e' },
        every: '1m',
        startAt: '2031-01-06T13:02:00Z',
        endAt: '2031-01-06T13:03:00Z',
        missed: 'all',
      })
      .expect(201);
    expect((await schedule(t, 'ending')).nextRunAt).toBe('2031-01-06T13:02:00.000Z');
    clock.set(at('2031-01-06T13:10:00Z'));
    await clock.step();
    expect(await tickKeys(t, 'limited')).toEqual([
      '2031-01-06T13:09:00.000Z',
      '2031-01-06T13:10:00.000Z',
    ]);
    expect(await tickKeys(t, 'ending')).toEqual([
      '2031-01-06T13:02:00.000Z',
      '2031-01-06T13:03:00.000Z',
    ]);
    for (const name of ['limited', 'ending']) {
      expect(await schedule(t, name)).toMatchObject({ state: 'finished', nextRunAt: null });
      await t.http.post(`/schedules/${name}/pause`).expect(409);
      await t.http.delete(`/schedules/${name}`).expect(204);
    }
  });

  it('follows the time zone across the spring-forward (02:30 Berlin runs at 03:30 CEST)', async () => {
    clock.set(at('2026-03-28T12:00:00Z'));
    await t.http
      .post('/schedules')
      .send({
        name: 'dst',
        action: 'uppercase',
        data: { text: 'd' },
        cron: '30 2 * * *',
        timezone: 'Europe/Berlin',
      })
      .expect(201);
    expect((await schedule(t, 'dst')).nextRunAt).toBe('2026-03-29T01:30:00.000Z');
    clock.set(at('2026-03-29T01:30:01Z'));
    await clock.step();
    expect(await tickKeys(t, 'dst')).toEqual(['2026-03-29T01:30:00.000Z']);
    expect((await schedule(t, 'dst')).nextRunAt).toBe('2026-03-30T00:30:00.000Z');
    await t.http.delete('/schedules/dst').expect(204);
  });

  it('takes over the schedules of a process that died holding their claim, after its lease', async () => {
    clock.set(at('2031-01-06T15:00:30Z'));
    await t.http
      .post('/schedules')
      .send({
        name: 'orphaned',
        action: 'uppercase',
        data: { text: 'o' },
        every: '1m',
        missed: 'all',
      })
      .expect(201);
    clock.set(at('2031-01-06T15:01:00Z'));
    // A process claims the due schedule, submits its tick's task, and dies before recording it.
    const claims = await t.app.get(ScheduleStore).claimDue(clock.now, 100, CLAIM_LEASE_MS);
    expect(claims.map((c) => c.name)).toEqual(['orphaned']);
    const [claimed] = claims;
    await t.app.get(SchedulesService).runTick(claimed, at('2031-01-06T15:01:00Z'));

    await clock.step();
    expect((await schedule(t, 'orphaned')).runCount).toBe(0); // still someone else's

    clock.set(at('2031-01-06T15:01:00Z') + CLAIM_LEASE_MS + 1000);
    await clock.step();
    expect(await tickKeys(t, 'orphaned')).toEqual(['2031-01-06T15:01:00.000Z']);
    expect(await schedule(t, 'orphaned')).toMatchObject({
      runCount: 1,
      nextRunAt: '2031-01-06T15:02:00.000Z',
    });
    await t.http.delete('/schedules/orphaned').expect(204);
  });

  it('creates or replaces with PUT, keeping counters and a pause', async () => {
    clock.set(at('2031-01-06T14:00:30Z'));
    const body = { action: 'uppercase', data: { text: 'u' }, every: '1m' };
    const created = await t.http.put('/schedules/upserted').send(body).expect(201);
    expect(created.body).toMatchObject({
      name: 'upserted',
      every: '1m',
      nextRunAt: '2031-01-06T14:01:00.000Z',
    });
    clock.set(at('2031-01-06T14:01:00Z'));
    await clock.step();

    const replaced = await t.http
      .put('/schedules/upserted')
      .send({ ...body, every: undefined, cron: '*/5 * * * *' })
      .expect(200);
    expect(replaced.body).toMatchObject({
      cron: '*/5 * * * *',
      every: null,
      runCount: 1,
      lastRunAt: '2031-01-06T14:01:00.000Z',
      nextRunAt: '2031-01-06T14:05:00.000Z',
    });
    await t.http.post('/schedules/upserted/pause').expect(200);
    const stillPaused = await t.http.put('/schedules/upserted').send(body).expect(200);
    expect(stillPaused.body).toMatchObject({ every: '1m', paused: true, nextRunAt: null });

    await t.http.put('/schedules/has space').send(body).expect(400);
    await t.http
      .put('/schedules/upserted')
      .send({ ...body, name: 'other' })
      .expect(400);
    await t.http.delete('/schedules/upserted').expect(204);
  });

  it('documents /schedules in Swagger', async () => {
    const doc = (await t.http.get('/docs-json').expect(200)).body;
    for (const path of [
      '/schedules',
      '/schedules/{name}',
      '/schedules/{name}/pause',
      '/schedules/{name}/resume',
      '/schedules/{name}/trigger',
    ]) {
      expect(doc.paths[path]).toBeDefined();
    }
  });
});

describe('missed ticks after the scheduler was stopped', () => {
  const dir = tempDir();
  afterAll(() => dir.remove());

  it('skip runs none, latest the most recent, all each of them', async () => {
    const dbPath = join(dir.path, 'missed.db');
    const first = await startTestApp({ dbPath });
    await controlledClock([first], at('2031-02-03T10:00:30Z'));
    for (const missed of ['skip', 'latest', 'all']) {
      await first.http
        .post('/schedules')
        .send({
          name: `missed-${missed}`,
          action: 'uppercase',
          data: { text: missed },
          cron: '* * * * *',
          missed,
        })
        .expect(201);
    }
    await first.close();

    // Down from 10:00:30 to 10:06:45: ticks 10:01 to 10:06 passed, the newest 45 s ago.
    const second = await startTestApp({ dbPath });
    try {
      const clock = await controlledClock([second], at('2031-02-03T10:06:45Z'));
      await clock.step();
      expect(await tickKeys(second, 'missed-skip')).toEqual([]);
      expect(await tickKeys(second, 'missed-latest')).toEqual(['2031-02-03T10:06:00.000Z']);
      expect(await tickKeys(second, 'missed-all')).toEqual(
        [1, 2, 3, 4, 5, 6].map((m) => `2031-02-03T10:0${m}:00.000Z`),
      );
      expect(await schedule(second, 'missed-skip')).toMatchObject({ missedCount: 6, runCount: 0 });
      expect(await schedule(second, 'missed-latest')).toMatchObject({
        missedCount: 5,
        runCount: 1,
      });
      expect(await schedule(second, 'missed-all')).toMatchObject({ missedCount: 0, runCount: 6 });
      for (const missed of ['skip', 'latest', 'all']) {
        expect((await schedule(second, `missed-${missed}`)).nextRunAt).toBe(
          '2031-02-03T10:07:00.000Z',
        );
      }

      // Running again: a tick only a little late still runs under skip.
      clock.set(at('2031-02-03T10:07:05Z'));
      await clock.step();
      expect(await tickKeys(second, 'missed-skip')).toEqual(['2031-02-03T10:07:00.000Z']);
    } finally {
      await second.close();
    }
  });
});

@Injectable()
class DeclaredEvery {
  @TaskHandler('sched-cleanup', { schedule: { every: '15m' } })
  cleanup(): { output: string } {
    return { output: 'clean' };
  }
}

@Injectable()
class DeclaredCron {
  @TaskHandler('sched-cleanup', { schedule: { cron: '*/5 * * * *', missed: 'skip' } })
  cleanup(): { output: string } {
    return { output: 'clean' };
  }
}

@Injectable()
class DeclaredNone {
  @TaskHandler('sched-cleanup')
  cleanup(): { output: string } {
    return { output: 'clean' };
  }
}

@Module({ providers: [DeclaredEvery] })
class DeclaredEveryModule {}
@Module({ providers: [DeclaredCron] })
class DeclaredCronModule {}
@Module({ providers: [DeclaredNone] })
class DeclaredNoneModule {}

describe('code-declared schedules', () => {
  const dir = tempDir();
  afterAll(() => dir.remove());

  it('are created at boot, updated when changed, disabled when removed, never duplicated', async () => {
    const dbPath = join(dir.path, 'declared.db');
    const boot = async (module: new () => object) => {
      const t = await startTestApp({ dbPath, modules: [module] });
      const body = (await t.http.get('/schedules').expect(200)).body;
      await t.close();
      return body.schedules as Record<string, unknown>[];
    };

    const created = await boot(DeclaredEveryModule);
    expect(created).toEqual([
      expect.objectContaining({
        name: 'sched-cleanup',
        source: 'code',
        every: '15m',
        cron: null,
        state: 'active',
      }),
    ]);
    expect(await boot(DeclaredEveryModule)).toEqual([
      expect.objectContaining({ name: 'sched-cleanup', updatedAt: created[0].updatedAt }),
    ]);

    const changed = await boot(DeclaredCronModule);
    expect(changed).toEqual([
      expect.objectContaining({
        name: 'sched-cleanup',
        source: 'code',
        cron: '*/5 * * * *',
        every: null,
        missed: 'skip',
        state: 'active',
      }),
    ]);

    const removed = await boot(DeclaredNoneModule);
    expect(removed).toEqual([
      expect.objectContaining({ name: 'sched-cleanup', state: 'disabled', nextRunAt: null }),
    ]);

    const running = await startTestApp({ dbPath, modules: [DeclaredCronModule] });
    try {
      const refused = await running.http
        .put('/schedules/sched-cleanup')
        .send({ action: 'sched-cleanup', every: '1m' })
        .expect(409);
      expect(refused.body.message).toMatch(/declared in code/);
    } finally {
      await running.close();
    }

    expect(await boot(DeclaredCronModule)).toEqual([
      expect.objectContaining({ name: 'sched-cleanup', state: 'active', cron: '*/5 * * * *' }),
    ]);
  });
});

const PG_URL = process.env.E2E_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const POSTGRES_SERVICE: RequiredService = { name: 'PostgreSQL', host: '127.0.0.1', port: 5432 };

/** Three app instances on one database, each with a scheduler. */
async function threeApps(dbPath: string, env: Record<string, string> = {}): Promise<TestApp[]> {
  const apps: TestApp[] = [];
  // One after the other: the first runs the migrations.
  for (let i = 0; i < 3; i += 1) apps.push(await startTestApp({ dbPath, env }));
  return apps;
}

/** Every tick of `every` from `first` to `last`, as ISO strings. */
function everyTick(first: number, last: number, stepMs: number): string[] {
  const out: string[] = [];
  for (let tick = first; tick <= last; tick += stepMs) out.push(new Date(tick).toISOString());
  return out;
}

function exactlyOnceSuite(
  database: () => Promise<{ dbPath: string; env: Record<string, string> }>,
): void {
  let apps: TestApp[] = [];
  afterEach(async () => {
    await Promise.all(apps.map((t) => t.close()));
    apps = [];
  });

  it('three schedulers stepping together create one task per tick (controlled clock)', async () => {
    const { dbPath, env } = await database();
    apps = await threeApps(dbPath, env);
    const clock = await controlledClock(apps, at('2031-03-01T00:00:00.500Z'));
    await apps[0].http
      .post('/schedules')
      .send({
        name: 'shared',
        action: 'uppercase',
        data: { text: 's' },
        every: '1s',
        missed: 'all',
      })
      .expect(201);
    for (let i = 1; i <= 20; i += 1) {
      // Irregular steps, some over several ticks, so passes catch up too.
      clock.set(at('2031-03-01T00:00:00.500Z') + i * 1000 + (i % 3) * 700);
      await clock.step();
    }
    const keys = await tickKeys(apps[0], 'shared');
    expect(keys).toEqual(everyTick(at('2031-03-01T00:00:01Z'), clock.now, 1000));
    const shown = await schedule(apps[1], 'shared');
    expect(shown.runCount).toBe(keys.length);
  });

  it('three schedulers on the real clock create one task per second of a 6-field cron', async () => {
    const { dbPath, env } = await database();
    apps = await threeApps(dbPath, env);
    await apps[0].http
      .post('/schedules')
      .send({
        name: 'realtime',
        action: 'uppercase',
        data: { text: 'r' },
        cron: '* * * * * *',
        missed: 'all',
      })
      .expect(201);
    const keys = await waitFor(
      async () => {
        const found = await tickKeys(apps[0], 'realtime');
        return found.length >= 4 ? found : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 200, what: 'four ticks' },
    );
    await apps[0].http.post('/schedules/realtime/pause').expect(200);
    await Promise.all(apps.map((t) => t.app.get(Scheduler).runOnce()));
    const all = await tickKeys(apps[0], 'realtime');
    // Consecutive seconds, none twice: every process took part, no tick was doubled or lost.
    expect(all.length).toBeGreaterThanOrEqual(keys.length);
    expect(all).toEqual(everyTick(at(all[0]), at(all[all.length - 1]), 1000));
  });
}

describe('exactly once per tick with three schedulers on one SQLite file', () => {
  const dir = tempDir();
  afterAll(() => dir.remove());
  exactlyOnceSuite(async () => ({ dbPath: join(dir.path, `${randomUUID()}.db`), env: {} }));
});

describeWithService(
  POSTGRES_SERVICE,
  'exactly once per tick with three schedulers on PostgreSQL',
  () => {
    const dir = tempDir();
    const schemas: PgSchema[] = [];
    afterAll(async () => {
      for (const schema of schemas) await schema.drop();
      dir.remove();
    });
    exactlyOnceSuite(async () => {
      const created = await freshPgSchema('e2e_sched', PG_URL);
      schemas.push(created);
      return { dbPath: join(dir.path, `${created.schema}.db`), env: { DATABASE_URL: created.url } };
    });
  },
);
