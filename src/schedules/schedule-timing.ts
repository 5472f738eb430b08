import { CronExpressionParser } from 'cron-parser';

/** The shortest `every`: below this a schedule would be a busy loop, not a schedule. */
export const MIN_EVERY_MS = 1000;

/** Ticks walked per computation before jumping ahead (see dueTicks). */
const SCAN_LIMIT = 1000;

/** When a schedule's ticks fall: a cron expression in a time zone, or a fixed period. */
export interface ScheduleTiming {
  /** 5 fields (minute first) or 6 (seconds first), or a predefined `@daily`-style alias. */
  cron?: string | null;
  everyMs?: number | null;
  /** IANA name; cron ticks are wall-clock times there. */
  timezone: string;
  /** No tick before this (epoch ms); also the anchor of `every`. */
  startAt?: number | null;
  /** No tick after this (epoch ms). */
  endAt?: number | null;
  /**
   * Seeds cron's `H` (hashed) fields. It must be the same in every process, or each would pick
   * its own minute and the ticks would no longer be shared: the schedule's name is used.
   */
  seed: string;
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const EVERY_PATTERN = /^(?:\d+(?:ms|s|m|h|d))+$/;

/**
 * `every` as milliseconds: one or more `<integer><unit>` parts, unit ms, s, m, h or d, e.g.
 * `30s`, `15m`, `1h30m`. Strict on purpose: `'15'` or `'1.5h'` are refused rather than guessed.
 * Returns an error text instead when it is not one.
 */
export function parseEvery(every: string): number | string {
  const text = every.trim();
  if (!EVERY_PATTERN.test(text)) {
    return 'every must be a duration such as 30s, 15m, 1h30m or 2d (units ms, s, m, h, d)';
  }
  let total = 0;
  for (const [, amount, unit] of text.matchAll(/(\d+)(ms|s|m|h|d)/g)) {
    total += Number(amount) * UNITS[unit];
  }
  if (!Number.isSafeInteger(total)) return 'every is too long';
  if (total < MIN_EVERY_MS) return `every must be at least ${MIN_EVERY_MS / 1000}s`;
  return total;
}

/** Null when `timezone` is an IANA zone name this runtime knows, else an error text. */
export function checkTimezone(timezone: string): string | null {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: timezone });
    return null;
  } catch {
    return `timezone "${timezone}" is not an IANA time zone name (e.g. UTC, Europe/Berlin)`;
  }
}

/** Null when `cron` is a valid 5- or 6-field expression (or an alias), else an error text. */
export function checkCron(cron: string, timezone = 'UTC'): string | null {
  const text = cron.trim();
  const fields = text.split(/\s+/).length;
  // The library pads short expressions with `*`; a 3- or 4-field typo must not become a
  // schedule that fires every minute.
  if (!text.startsWith('@') && fields !== 5 && fields !== 6) {
    return `cron must have 5 fields (minute hour day month weekday) or 6 (seconds first), not ${fields}`;
  }
  try {
    CronExpressionParser.parse(text, { tz: timezone, currentDate: 0, hashSeed: 'check' }).next();
    return null;
  } catch (error) {
    return `cron "${text}" is invalid: ${(error as Error).message}`;
  }
}

/**
 * The first tick strictly after `after`, within startAt..endAt, or null when there is none.
 * Cron ticks follow the library's rules across daylight-saving changes: a wall-clock time the
 * spring-forward skips (02:30 in Europe/Berlin on the last Sunday of March) runs at the same
 * minutes of the next hour (03:30, summer time), once; a time the fall-back repeats runs once,
 * at its first occurrence (summer time).
 */
export function nextTick(timing: ScheduleTiming, after: number): number | null {
  return ticksAfter(timing, after)();
}

/**
 * The ticks strictly after `after`, one per call, null once there are no more. Parsing a cron
 * expression costs far more than stepping it, so a walk over many ticks parses once.
 */
export function ticksAfter(timing: ScheduleTiming, after: number): () => number | null {
  const from = timing.startAt != null ? Math.max(after, timing.startAt - 1) : after;
  const step = timing.cron ? cronSteps(timing, from) : everySteps(timing, from);
  let done = false;
  return () => {
    if (done) return null;
    const tick = step();
    if (tick === null || (timing.endAt != null && tick > timing.endAt)) {
      done = true;
      return null;
    }
    return tick;
  };
}

export interface DueTicks {
  /** The ticks to run, oldest first: at most `keep`, the most recent ones. */
  run: number[];
  /** The first tick after `now` (null past endAt): what nextTick(timing, now) answers. */
  next: number | null;
  /** Due ticks not run (older than those in `run`); estimated past a long outage. */
  passed: number;
}

/**
 * The ticks from `first` (a tick) up to and including `now`, keeping the newest `keep` to run.
 * The cost is bounded: past SCAN_LIMIT ticks (a per-second cron after a long outage) it jumps
 * close to `now` and estimates how many it stepped over, so catching up never walks months of
 * ticks one by one.
 */
export function dueTicks(
  timing: ScheduleTiming,
  first: number,
  now: number,
  keep: number,
): DueTicks {
  const last = timing.endAt != null ? Math.min(now, timing.endAt) : now;
  if (first > last || keep < 1) return { run: [], passed: 0, next: nextTick(timing, now) };
  if (!timing.cron && timing.everyMs) {
    const count = Math.floor((last - first) / timing.everyMs) + 1;
    const kept = Math.min(keep, count);
    const run = Array.from(
      { length: kept },
      (_, i) => first + (count - kept + i) * timing.everyMs!,
    );
    const next = first + count * timing.everyMs;
    return {
      run,
      passed: count - kept,
      next: timing.endAt != null && next > timing.endAt ? null : next,
    };
  }
  const run: number[] = [];
  let passed = 0;
  // `first` is a stored next run, so a tick by definition. It is not found again by stepping
  // from just before it: on a spring-forward day the library maps a skipped 02:30 to 03:30 only
  // when stepping from before the gap.
  let next = ticksAfter(timing, first);
  let tick: number | null = first;
  let scanned = 0;
  let jumped = false;
  while (tick !== null && tick <= last) {
    if (!jumped && scanned === SCAN_LIMIT) {
      jumped = true;
      // Resume one scanned span before the end: the newest ticks lie there, and the ones
      // stepped over are estimated at the density just seen.
      const span = tick - first;
      const resume = last - span;
      if (resume > tick) {
        passed += run.length + Math.round(((resume - tick) / span) * SCAN_LIMIT);
        run.length = 0;
        next = ticksAfter(timing, resume - 1);
        tick = next();
        continue;
      }
    }
    run.push(tick);
    if (run.length > keep) {
      run.shift();
      passed += 1;
    }
    scanned += 1;
    tick = next();
  }
  // The walk stopped at the first tick past `last`; past endAt there is none.
  return { run, passed, next: last === now ? tick : null };
}

type Expression = ReturnType<typeof CronExpressionParser.parse>;

/** Parsed expressions by cron, zone and seed: parsing costs several steps' worth of CPU. */
const parsed = new Map<string, { expression: Expression; user: object | null }>();
const PARSED_MAX = 10_000;

function cronSteps(timing: ScheduleTiming, after: number): () => number | null {
  const key = `${timing.cron!.trim()}\u0000${timing.timezone}\u0000${timing.seed}`;
  let entry = parsed.get(key);
  if (!entry) {
    try {
      entry = {
        expression: CronExpressionParser.parse(timing.cron!.trim(), {
          currentDate: after,
          tz: timing.timezone,
          hashSeed: timing.seed,
        }),
        user: null,
      };
    } catch {
      return () => null;
    }
    if (parsed.size >= PARSED_MAX) parsed.delete(parsed.keys().next().value!);
    parsed.set(key, entry);
  }
  const cached = entry;
  const self = {};
  let cursor = after;
  return () => {
    // The expression is shared: move it to this walk's position unless this walk used it last.
    if (cached.user !== self) {
      cached.expression.reset(new Date(cursor));
      cached.user = self;
    }
    try {
      cursor = cached.expression.next().getTime();
      return cursor;
    } catch {
      // An expression that never matches (30 February) has no next tick.
      return null;
    }
  };
}

/**
 * `every` ticks are `anchor + k × every`, anchored at startAt or else the epoch, so every
 * process (and every restart) agrees on them.
 */
function everySteps(timing: ScheduleTiming, after: number): () => number {
  const every = timing.everyMs!;
  const anchor = timing.startAt ?? 0;
  let tick = after < anchor ? anchor : anchor + (Math.floor((after - anchor) / every) + 1) * every;
  return () => {
    const current = tick;
    tick += every;
    return current;
  };
}
