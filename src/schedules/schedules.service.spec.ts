import type { AppConfig } from '../config/app.config';
import { InvalidTaskHandlerError } from '../handlers/errors/invalid-task-handler.error';
import type { TaskHandlerSchedule } from '../handlers/task-handler.decorator';
import type { RegisteredTaskHandler, TaskHandlerExplorer } from '../handlers/task-handler.explorer';
import { UnknownActionError } from '../tasks/errors/unknown-action.error';
import type { TasksService } from '../tasks/tasks.service';
import { ScheduleChanges } from './schedule-changes';
import { ScheduleClock } from './schedule-clock';
import { InvalidScheduleError, ScheduleExistsError } from './schedule.errors';
import type { Schedule, ScheduleState } from './schedule.model';
import type { ScheduleStore } from './schedule.store';
import { formatDuration, SchedulesService } from './schedules.service';

/** The store's contract over a Map. */
function memoryStore(): ScheduleStore & { rows: Map<string, Schedule> } {
  const rows = new Map<string, Schedule>();
  const store = {
    rows,
    find: async (name: string) => rows.get(name) ?? null,
    insert: async (schedule: Schedule) => {
      if (rows.has(schedule.name)) throw new Error('duplicate');
      rows.set(schedule.name, { ...schedule });
    },
    replace: async (schedule: Schedule) => rows.set(schedule.name, { ...schedule }) && true,
    list: async (limit: number, after?: string, source?: string) =>
      [...rows.values()]
        .filter((s) => (after === undefined || s.name > after) && (!source || s.source === source))
        .sort((a, b) => a.name.localeCompare(b.name))
        .slice(0, limit),
    setState: async (
      name: string,
      from: ScheduleState[],
      state: ScheduleState,
      nextRunAt: number | null,
    ) => {
      const row = rows.get(name);
      if (!row || !from.includes(row.state)) return false;
      Object.assign(row, { state, nextRunAt });
      return true;
    },
  };
  return store as unknown as ScheduleStore & { rows: Map<string, Schedule> };
}

function handler(action: string, schedule?: TaskHandlerSchedule): RegisteredTaskHandler {
  return { action, label: `Test.${action}`, fn: () => ({}), schedule };
}

function service(handlers: RegisteredTaskHandler[], store = memoryStore()) {
  const byAction = new Map(handlers.map((h) => [h.action, h]));
  const explorer = {
    resolve: (action: string) => byAction.get(action) ?? byAction.get('*'),
    actions: () => [...byAction.keys()].filter((a) => a !== '*'),
    list: () => handlers,
  } as unknown as TaskHandlerExplorer;
  const clock = new ScheduleClock();
  jest.spyOn(clock, 'now').mockReturnValue(Date.parse('2031-01-01T00:00:30Z'));
  const config = { callback: { allowPrivate: false } } as AppConfig;
  const tasks = {} as TasksService;
  return {
    store,
    schedules: new SchedulesService(store, explorer, tasks, clock, new ScheduleChanges(), config),
  };
}

describe('SchedulesService', () => {
  it('refuses an unknown action when there is no fallback handler', async () => {
    const { schedules } = service([handler('report')]);
    await expect(
      schedules.create({ name: 'x', action: 'nope', every: '1m' }),
    ).rejects.toBeInstanceOf(UnknownActionError);
  });

  it('accepts any action when a fallback handler exists', async () => {
    const { schedules } = service([handler('*')]);
    const created = await schedules.create({ name: 'x', action: 'anything', every: '1m' });
    expect(created).toMatchObject({ every: '1m', nextRunAt: '2031-01-01T00:01:00.000Z' });
    await expect(
      schedules.create({ name: 'x', action: 'anything', every: '1m' }),
    ).rejects.toBeInstanceOf(ScheduleExistsError);
  });

  it('collects every field problem in one error', async () => {
    const { schedules } = service([handler('*')]);
    const error = (await schedules
      .create({ name: 'x', action: 'a', cron: 'bad', every: '1s', timezone: 'Nowhere/Land' })
      .catch((e: unknown) => e)) as InvalidScheduleError;
    expect(error).toBeInstanceOf(InvalidScheduleError);
    expect(error.messages).toEqual([
      expect.stringMatching(/^timezone/),
      'cron and every cannot both be set',
      expect.stringMatching(/^cron/),
    ]);
  });

  it('reconciles code-declared schedules: creates, leaves an API one alone, disables the removed', async () => {
    const store = memoryStore();
    const { schedules: first } = service(
      [handler('cleanup', { every: '15m' }), handler('gone', { cron: '0 * * * *' })],
      store,
    );
    await first.reconcileDeclared();
    expect(store.rows.get('cleanup')).toMatchObject({ source: 'code', everyMs: 900_000 });
    const { schedules: api } = service([handler('*')], store);
    await api.create({ name: 'taken', action: 'taken', every: '1h' });

    const { schedules: second } = service(
      [handler('cleanup', { every: '15m' }), handler('taken', { every: '1m' })],
      store,
    );
    await second.reconcileDeclared();
    expect(store.rows.get('gone')).toMatchObject({ state: 'disabled', nextRunAt: null });
    expect(store.rows.get('taken')).toMatchObject({ source: 'api', everyMs: 3_600_000 });
    expect(store.rows.get('cleanup')).toMatchObject({ state: 'active' });
  });

  it('stops the boot naming the handler when a declared schedule is invalid', async () => {
    const { schedules } = service([handler('cleanup', { every: '10ms' })]);
    await expect(schedules.reconcileDeclared()).rejects.toThrow(InvalidTaskHandlerError);
    await expect(schedules.reconcileDeclared()).rejects.toThrow(
      'Test.cleanup: schedule: every must be at least 1s',
    );
  });

  it('checks a declaration as it checks a request', async () => {
    const { schedules } = service([handler('report', { every: '1m', priority: 50 })]);
    await expect(schedules.reconcileDeclared()).rejects.toThrow(
      'Test.report: schedule: priority must not be greater than 10',
    );
  });

  it('formats durations with the largest exact units', () => {
    expect(formatDuration(5_400_000)).toBe('1h30m');
    expect(formatDuration(90_061_001)).toBe('1d1h1m1s1ms');
  });
});
