import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { randomUUID } from 'node:crypto';
import { DataSource } from 'typeorm';
import type {
  ClaimedSchedule,
  MissedPolicy,
  Schedule,
  ScheduleSource,
  ScheduleState,
} from './schedule.model';

type Row = Record<string, unknown>;

/** What one scheduler pass did to a claimed schedule, written under its claim token. */
export interface ScheduleRunRecord {
  nextRunAt: number | null;
  state: ScheduleState;
  ran: number;
  missed: number;
  overlapSkipped: number;
  lastRunAt: number | null;
  lastTaskId: string | null;
}

const COLUMNS = `name, action, payload, cron, every_ms, timezone, missed, overlap, priority,
  max_attempts, timeout_ms, callback_url, start_at, end_at, run_limit, source, definition_hash,
  state, next_run_at, run_count, missed_count, overlap_skipped, last_run_at, last_task_id,
  claim_token, created_at, updated_at`;

/**
 * Every read and write of the `schedules` table, as plain parametrised SQL that runs on SQLite
 * and PostgreSQL alike (written with `?`, numbered for PostgreSQL). Each statement stands alone:
 * claims and their follow-up writes are conditional updates, so no transaction spans them.
 */
@Injectable()
export class ScheduleStore {
  private readonly postgres: boolean;

  constructor(@InjectDataSource() private readonly dataSource: DataSource) {
    this.postgres = dataSource.options.type === 'postgres';
  }

  async insert(schedule: Schedule): Promise<void> {
    await this.run(
      `INSERT INTO schedules (${COLUMNS}) VALUES (${Array(27).fill('?').join(', ')})`,
      [
        ...definitionValues(schedule),
        ...stateValues(schedule),
        null,
        schedule.createdAt,
        schedule.updatedAt,
      ],
    );
  }

  async find(name: string): Promise<Schedule | null> {
    const { rows } = await this.run(`SELECT ${COLUMNS} FROM schedules WHERE name = ?`, [name]);
    return rows[0] ? toSchedule(rows[0]) : null;
  }

  /** By name, from just after `after`. */
  async list(limit: number, after?: string, source?: ScheduleSource): Promise<Schedule[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (after !== undefined) {
      where.push('name > ?');
      params.push(after);
    }
    if (source !== undefined) {
      where.push('source = ?');
      params.push(source);
    }
    const { rows } = await this.run(
      `SELECT ${COLUMNS} FROM schedules ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
       ORDER BY name LIMIT ?`,
      [...params, limit],
    );
    return rows.map(toSchedule);
  }

  /**
   * Rewrites a schedule's definition and where it stands. Any claim is dropped, so a scheduler
   * pass that claimed the old definition cannot record its runs over the new one.
   */
  async replace(schedule: Schedule): Promise<boolean> {
    const { affected } = await this.run(
      `UPDATE schedules SET action = ?, payload = ?, cron = ?, every_ms = ?, timezone = ?,
         missed = ?, overlap = ?, priority = ?, max_attempts = ?, timeout_ms = ?,
         callback_url = ?, start_at = ?, end_at = ?, run_limit = ?, source = ?,
         definition_hash = ?, state = ?, next_run_at = ?, claim_token = NULL,
         claimed_until = NULL, updated_at = ?
       WHERE name = ?`,
      [
        ...definitionValues(schedule).slice(1),
        schedule.state,
        schedule.nextRunAt,
        schedule.updatedAt,
        schedule.name,
      ],
    );
    return affected > 0;
  }

  /** Sets the state and next run, only from one of `from` (pause, resume, disable). */
  async setState(
    name: string,
    from: ScheduleState[],
    state: ScheduleState,
    nextRunAt: number | null,
    now: number,
  ): Promise<boolean> {
    const { affected } = await this.run(
      `UPDATE schedules SET state = ?, next_run_at = ?, claim_token = NULL, claimed_until = NULL,
         updated_at = ?
       WHERE name = ? AND state IN (${from.map(() => '?').join(', ')})`,
      [state, nextRunAt, now, name, ...from],
    );
    return affected > 0;
  }

  /** A run outside the schedule's ticks (`POST /schedules/:name/trigger`). */
  async recordTrigger(name: string, at: number, taskId: string): Promise<void> {
    await this.run(
      `UPDATE schedules SET last_run_at = ?, last_task_id = ?, updated_at = ? WHERE name = ?`,
      [at, taskId, at, name],
    );
  }

  async delete(name: string): Promise<boolean> {
    const { affected } = await this.run(`DELETE FROM schedules WHERE name = ?`, [name]);
    return affected > 0;
  }

  /**
   * When the scheduler must look again: the earliest next run of a schedule nobody holds.
   * Reads the head of the next_run_at index.
   */
  async nextDueAt(now: number): Promise<number | null> {
    const { rows } = await this.run(
      `SELECT next_run_at FROM schedules
       WHERE next_run_at IS NOT NULL AND (claimed_until IS NULL OR claimed_until < ?)
       ORDER BY next_run_at LIMIT 1`,
      [now],
    );
    return rows[0] ? Number(rows[0].next_run_at) : null;
  }

  /**
   * Claims up to `limit` due schedules for `leaseMs`: one conditional update, so of several
   * processes each due schedule goes to one (PostgreSQL skips rows another claim has locked;
   * SQLite runs one writer at a time). A claim whose holder dies expires and is taken again.
   */
  async claimDue(now: number, limit: number, leaseMs: number): Promise<ClaimedSchedule[]> {
    const token = randomUUID();
    const { rows } = await this.run(
      `UPDATE schedules SET claim_token = ?, claimed_until = ?
       WHERE name IN (
         SELECT name FROM schedules
         WHERE next_run_at <= ? AND (claimed_until IS NULL OR claimed_until < ?)
         ORDER BY next_run_at LIMIT ?${this.postgres ? ' FOR UPDATE SKIP LOCKED' : ''}
       )
       RETURNING ${COLUMNS}`,
      [token, now + leaseMs, now, now, limit],
    );
    return rows.map((row) => ({ ...toSchedule(row), claimToken: token }));
  }

  /**
   * Records what a pass did to each schedule of one claim, in one statement: its runs and next
   * tick, written only while the claim is still this pass's. An API change in between (pause,
   * delete, redefinition) dropped the claim, and then that schedule's row is left as it is.
   * Returns how many rows were written.
   */
  async recordRuns(
    claimToken: string,
    records: (ScheduleRunRecord & { name: string })[],
    now: number,
  ): Promise<number> {
    if (records.length === 0) return 0;
    // A CTE of typed VALUES joined in UPDATE ... FROM: the same text runs on PostgreSQL and on
    // SQLite (3.33+). The CASTs type PostgreSQL's parameters; SQLite takes them as they are.
    const row =
      '(?, CAST(? AS bigint), ?, CAST(? AS int), CAST(? AS bigint), CAST(? AS int), CAST(? AS bigint), ?)';
    const { affected } = await this.run(
      `WITH r (name, next_run_at, state, ran, missed, skipped, last_run_at, last_task_id) AS (
         VALUES ${records.map(() => row).join(', ')}
       )
       UPDATE schedules SET next_run_at = r.next_run_at, state = r.state,
         run_count = schedules.run_count + r.ran,
         missed_count = schedules.missed_count + r.missed,
         overlap_skipped = schedules.overlap_skipped + r.skipped,
         last_run_at = COALESCE(r.last_run_at, schedules.last_run_at),
         last_task_id = COALESCE(r.last_task_id, schedules.last_task_id),
         claim_token = NULL, claimed_until = NULL, updated_at = ?
       FROM r
       WHERE schedules.name = r.name AND schedules.claim_token = ?`,
      [
        ...records.flatMap((r) => [
          r.name,
          r.nextRunAt,
          r.state,
          r.ran,
          r.missed,
          r.overlapSkipped,
          r.lastRunAt,
          r.lastTaskId,
        ]),
        now,
        claimToken,
      ],
    );
    return affected;
  }

  /** Runs one statement; `rows` for reads and RETURNING, `affected` for writes. */
  private async run(sql: string, params: unknown[]): Promise<{ rows: Row[]; affected: number }> {
    let text = sql;
    if (this.postgres) {
      let n = 0;
      text = sql.replace(/\?/g, () => `$${(n += 1)}`);
    }
    const runner = this.dataSource.createQueryRunner();
    try {
      const result = await runner.query(text, params, true);
      const rows = (result.records ?? []) as Row[];
      return { rows, affected: result.affected ?? rows.length };
    } finally {
      await runner.release();
    }
  }
}

function definitionValues(s: Schedule): unknown[] {
  return [
    s.name,
    s.action,
    JSON.stringify(s.data),
    s.cron,
    s.everyMs,
    s.timezone,
    s.missed,
    s.overlap ? 1 : 0,
    s.priority,
    s.maxAttempts,
    s.timeoutMs,
    s.callbackUrl,
    s.startAt,
    s.endAt,
    s.limit,
    s.source,
    s.definitionHash,
  ];
}

function stateValues(s: Schedule): unknown[] {
  return [
    s.state,
    s.nextRunAt,
    s.runCount,
    s.missedCount,
    s.overlapSkipped,
    s.lastRunAt,
    s.lastTaskId,
  ];
}

/** PostgreSQL returns bigint columns as strings. */
const num = (value: unknown): number | null =>
  value === null || value === undefined ? null : Number(value);

function toSchedule(row: Row): Schedule {
  return {
    name: String(row.name),
    action: String(row.action),
    data: JSON.parse(String(row.payload)) as Record<string, unknown>,
    cron: (row.cron as string | null) ?? null,
    everyMs: num(row.every_ms),
    timezone: String(row.timezone),
    missed: row.missed as MissedPolicy,
    overlap: Number(row.overlap) === 1,
    priority: num(row.priority),
    maxAttempts: num(row.max_attempts),
    timeoutMs: num(row.timeout_ms),
    callbackUrl: (row.callback_url as string | null) ?? null,
    startAt: num(row.start_at),
    endAt: num(row.end_at),
    limit: num(row.run_limit),
    source: row.source as ScheduleSource,
    definitionHash: String(row.definition_hash),
    state: row.state as ScheduleState,
    nextRunAt: num(row.next_run_at),
    runCount: Number(row.run_count),
    missedCount: Number(row.missed_count),
    overlapSkipped: Number(row.overlap_skipped),
    lastRunAt: num(row.last_run_at),
    lastTaskId: (row.last_task_id as string | null) ?? null,
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
  };
}
