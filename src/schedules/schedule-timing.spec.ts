import {
  checkCron,
  checkTimezone,
  dueTicks,
  nextTick,
  parseEvery,
  type ScheduleTiming,
  ticksAfter,
} from './schedule-timing';

const at = (iso: string): number => Date.parse(iso);
const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

const cron = (expression: string, extra: Partial<ScheduleTiming> = {}): ScheduleTiming => ({
  cron: expression,
  timezone: 'UTC',
  seed: 'test',
  ...extra,
});

/** The next `count` ticks after `from`, as ISO strings. */
function ticks(timing: ScheduleTiming, from: string, count: number): (string | null)[] {
  const out: (string | null)[] = [];
  let after = at(from);
  for (let i = 0; i < count; i += 1) {
    const tick = nextTick(timing, after);
    out.push(iso(tick));
    if (tick === null) break;
    after = tick;
  }
  return out;
}

describe('parseEvery', () => {
  it('reads durations with units, combined parts included', () => {
    expect(parseEvery('30s')).toBe(30_000);
    expect(parseEvery('15m')).toBe(900_000);
    expect(parseEvery('1h30m')).toBe(5_400_000);
    expect(parseEvery('2d')).toBe(172_800_000);
    expect(parseEvery('1500ms')).toBe(1500);
  });

  it('refuses what it would have to guess, and anything under a second', () => {
    for (const bad of ['15', '1.5h', 'm', '', '15 minutes', '-1s', '1w']) {
      expect(typeof parseEvery(bad)).toBe('string');
    }
    expect(parseEvery('999ms')).toBe('every must be at least 1s');
    expect(parseEvery('0s')).toBe('every must be at least 1s');
  });
});

describe('checkCron / checkTimezone', () => {
  it('accepts 5 and 6 fields and aliases', () => {
    expect(checkCron('*/5 * * * *')).toBeNull();
    expect(checkCron('*/10 * * * * *')).toBeNull();
    expect(checkCron('@hourly')).toBeNull();
  });

  it('names what is wrong', () => {
    expect(checkCron('* * * *')).toMatch(/5 fields .* not 4/);
    expect(checkCron('* * * * * * *')).toMatch(/not 7/);
    expect(checkCron('61 * * * *')).toMatch(/invalid/);
    expect(checkCron('0 0 31 2 *')).toMatch(/invalid/);
  });

  it('knows IANA zones', () => {
    expect(checkTimezone('Europe/Berlin')).toBeNull();
    expect(checkTimezone('UTC')).toBeNull();
    expect(checkTimezone('Mars/Olympus')).toMatch(/IANA/);
  });
});

describe('nextTick', () => {
  it('is strictly after the given time, at the cron times', () => {
    expect(ticks(cron('*/15 * * * *'), '2026-01-01T10:00:00Z', 3)).toEqual([
      '2026-01-01T10:15:00.000Z',
      '2026-01-01T10:30:00.000Z',
      '2026-01-01T10:45:00.000Z',
    ]);
    expect(iso(nextTick(cron('*/15 * * * *'), at('2026-01-01T10:14:59.999Z')))).toBe(
      '2026-01-01T10:15:00.000Z',
    );
  });

  it('supports seconds', () => {
    expect(ticks(cron('*/20 * * * * *'), '2026-01-01T10:00:00Z', 2)).toEqual([
      '2026-01-01T10:00:20.000Z',
      '2026-01-01T10:00:40.000Z',
    ]);
  });

  it('reads cron in the time zone', () => {
    expect(
      ticks(cron('0 3 * * *', { timezone: 'Europe/Berlin' }), '2026-01-10T00:00:00Z', 1),
    ).toEqual(['2026-01-10T02:00:00.000Z']);
    expect(
      ticks(cron('0 3 * * *', { timezone: 'Europe/Berlin' }), '2026-07-10T00:00:00Z', 1),
    ).toEqual(['2026-07-10T01:00:00.000Z']);
  });

  it('runs a 02:30 Berlin schedule at 03:30 summer time on spring-forward day, once', () => {
    // 2026-03-29: 02:00 CET jumps to 03:00 CEST, so 02:30 does not exist that night.
    expect(
      ticks(cron('30 2 * * *', { timezone: 'Europe/Berlin' }), '2026-03-27T12:00:00Z', 4),
    ).toEqual([
      '2026-03-28T01:30:00.000Z', // 02:30 CET
      '2026-03-29T01:30:00.000Z', // 03:30 CEST: the skipped 02:30, an hour later
      '2026-03-30T00:30:00.000Z', // 02:30 CEST
      '2026-03-31T00:30:00.000Z',
    ]);
  });

  it('runs a 02:30 Berlin schedule once on fall-back day, at the first 02:30', () => {
    // 2026-10-25: 03:00 CEST goes back to 02:00 CET, so 02:30 happens twice.
    expect(
      ticks(cron('30 2 * * *', { timezone: 'Europe/Berlin' }), '2026-10-23T12:00:00Z', 3),
    ).toEqual([
      '2026-10-24T00:30:00.000Z',
      '2026-10-25T00:30:00.000Z', // 02:30 CEST; the 02:30 CET an hour later does not run
      '2026-10-26T01:30:00.000Z',
    ]);
  });

  it('keeps hourly ticks one hour apart across the spring-forward', () => {
    expect(
      ticks(cron('0 * * * *', { timezone: 'Europe/Berlin' }), '2026-03-29T00:30:00Z', 3),
    ).toEqual(['2026-03-29T01:00:00.000Z', '2026-03-29T02:00:00.000Z', '2026-03-29T03:00:00.000Z']);
  });

  it('runs an hourly Berlin schedule in both 02:00 hours of the fall-back', () => {
    expect(
      ticks(cron('0 * * * *', { timezone: 'Europe/Berlin' }), '2026-10-24T23:30:00Z', 3),
    ).toEqual(['2026-10-25T00:00:00.000Z', '2026-10-25T01:00:00.000Z', '2026-10-25T02:00:00.000Z']);
  });

  it('anchors every at the epoch, or at startAt', () => {
    const every: ScheduleTiming = { everyMs: 15 * 60_000, timezone: 'UTC', seed: 'x' };
    expect(ticks(every, '2026-01-01T10:07:13Z', 2)).toEqual([
      '2026-01-01T10:15:00.000Z',
      '2026-01-01T10:30:00.000Z',
    ]);
    const anchored = { ...every, startAt: at('2026-01-01T10:07:00Z') };
    expect(ticks(anchored, '2026-01-01T09:00:00Z', 3)).toEqual([
      '2026-01-01T10:07:00.000Z',
      '2026-01-01T10:22:00.000Z',
      '2026-01-01T10:37:00.000Z',
    ]);
  });

  it('respects startAt and endAt', () => {
    const timing = cron('0 * * * *', {
      startAt: at('2026-01-01T12:00:00Z'),
      endAt: at('2026-01-01T14:00:00Z'),
    });
    expect(ticks(timing, '2026-01-01T00:00:00Z', 4)).toEqual([
      '2026-01-01T12:00:00.000Z',
      '2026-01-01T13:00:00.000Z',
      '2026-01-01T14:00:00.000Z',
      null,
    ]);
  });

  it('gives hashed fields the same value for the same seed', () => {
    const a = nextTick(cron('H * * * *', { seed: 'report' }), 0);
    const b = nextTick(cron('H * * * *', { seed: 'report' }), 0);
    expect(a).toBe(b);
  });
});

describe('dueTicks', () => {
  const minutely = cron('* * * * *');
  const first = at('2026-01-01T10:00:00Z');

  it('lists every due tick up to now, newest kept', () => {
    const due = dueTicks(minutely, first, at('2026-01-01T10:04:30Z'), 10);
    expect(due.run.map(iso)).toEqual([
      '2026-01-01T10:00:00.000Z',
      '2026-01-01T10:01:00.000Z',
      '2026-01-01T10:02:00.000Z',
      '2026-01-01T10:03:00.000Z',
      '2026-01-01T10:04:00.000Z',
    ]);
    expect(due.passed).toBe(0);
    expect(iso(due.next)).toBe('2026-01-01T10:05:00.000Z');
  });

  it('answers the next tick as nextTick does, for every and past endAt too', () => {
    const every: ScheduleTiming = { everyMs: 60_000, timezone: 'UTC', seed: 'x' };
    const now = at('2026-01-01T10:04:30Z');
    expect(dueTicks(every, first, now, 1).next).toBe(nextTick(every, now));
    const ended = cron('* * * * *', { endAt: at('2026-01-01T10:02:00Z') });
    expect(dueTicks(ended, first, now, 5).next).toBeNull();
  });

  it('walks two schedules of one expression at once without mixing them up', () => {
    const a = cron('*/10 * * * *', { seed: 'same' });
    const walkA = ticksAfter(a, at('2026-01-01T10:00:00Z'));
    const walkB = ticksAfter(a, at('2026-01-01T12:00:00Z'));
    expect([walkA(), walkB(), walkA(), walkB()].map(iso)).toEqual([
      '2026-01-01T10:10:00.000Z',
      '2026-01-01T12:10:00.000Z',
      '2026-01-01T10:20:00.000Z',
      '2026-01-01T12:20:00.000Z',
    ]);
  });

  it('keeps only the newest and counts the rest', () => {
    const due = dueTicks(minutely, first, at('2026-01-01T10:04:00Z'), 2);
    expect(due.run.map(iso)).toEqual(['2026-01-01T10:03:00.000Z', '2026-01-01T10:04:00.000Z']);
    expect(due.passed).toBe(3);
  });

  it('computes every arithmetically', () => {
    const every: ScheduleTiming = { everyMs: 1000, timezone: 'UTC', seed: 'x' };
    const due = dueTicks(every, first, first + 86_400_000, 3);
    expect(due.run).toEqual([first + 86_398_000, first + 86_399_000, first + 86_400_000]);
    expect(due.passed).toBe(86_398);
  });

  it('stays cheap after a long outage of a per-second cron, estimating what it passed', () => {
    const started = Date.now();
    const due = dueTicks(cron('* * * * * *'), first, first + 7 * 86_400_000, 1);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(due.run).toEqual([first + 7 * 86_400_000]);
    expect(due.passed).toBeGreaterThan(7 * 86_400 * 0.99);
    expect(due.passed).toBeLessThan(7 * 86_400 * 1.01);
  });

  it('stops at endAt', () => {
    const due = dueTicks(
      cron('* * * * *', { endAt: at('2026-01-01T10:01:00Z') }),
      first,
      at('2026-01-01T10:09:00Z'),
      10,
    );
    expect(due.run.map(iso)).toEqual(['2026-01-01T10:00:00.000Z', '2026-01-01T10:01:00.000Z']);
  });

  it('runs the substituted spring-forward tick itself when it is the stored next run', () => {
    const timing = cron('30 2 * * *', { timezone: 'Europe/Berlin' });
    const first = nextTick(timing, at('2026-03-28T12:00:00Z'))!;
    expect(iso(first)).toBe('2026-03-29T01:30:00.000Z');
    expect(dueTicks(timing, first, first + 1000, 1).run).toEqual([first]);
  });

  it('includes the spring-forward day in a Berlin backfill', () => {
    const timing = cron('30 2 * * *', { timezone: 'Europe/Berlin' });
    const due = dueTicks(timing, at('2026-03-28T01:30:00Z'), at('2026-03-30T12:00:00Z'), 10);
    expect(due.run.map(iso)).toEqual([
      '2026-03-28T01:30:00.000Z',
      '2026-03-29T01:30:00.000Z',
      '2026-03-30T00:30:00.000Z',
    ]);
  });
});
