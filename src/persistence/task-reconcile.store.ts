import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { In, Repository } from 'typeorm';
import { TaskStatus } from './task-status.enum';
import { TaskEntity } from './task.entity';

/**
 * Header of a message the reconciler publishes for a running task whose delivery is gone: the
 * claim token it saw. Only a row still held under that token may be taken over (see reclaim).
 */
export const RECLAIM_HEADER = 'x-taskq-reclaim';

/** Where a queued task sits in the start-up sweep's order, and which queue it belongs to. */
export interface TaskKey {
  id: string;
  queue: string;
  createdAt: number;
}

/**
 * The reconciler's reads and writes of the task table: finding tasks whose message may be
 * missing, and the fenced takeover of a running row whose holder is gone.
 */
@Injectable()
export class TaskReconcileStore {
  constructor(@InjectRepository(TaskEntity) private readonly repo: Repository<TaskEntity>) {}

  /**
   * Queued rows of `queue` untouched since `before` and due since then (a delayed task waiting
   * for its time is not suspect), oldest first; from just after `after` when given.
   */
  staleQueued(
    queue: string,
    before: number,
    limit: number,
    after?: { updatedAt: number; id: string },
  ): Promise<TaskEntity[]> {
    const query = this.repo
      .createQueryBuilder('task')
      .where('task.status = :queued AND task.queue = :queue', { queued: TaskStatus.Queued, queue })
      .andWhere('task.updated_at < :before', { before })
      .andWhere('(task.run_at IS NULL OR task.run_at < :before)', { before })
      .orderBy('task.updated_at', 'ASC')
      .addOrderBy('task.id', 'ASC')
      .limit(limit);
    if (after) {
      query.andWhere(
        '(task.updated_at > :afterAt OR (task.updated_at = :afterAt AND task.id > :afterId))',
        { afterAt: after.updatedAt, afterId: after.id },
      );
    }
    return query.getMany();
  }

  /** Running rows of `queue` whose claim has not been touched (claimed, progress) since `before`. */
  staleRunning(queue: string, before: number, limit: number): Promise<TaskEntity[]> {
    return this.repo
      .createQueryBuilder('task')
      .where('task.status = :running AND task.queue = :queue', {
        running: TaskStatus.Running,
        queue,
      })
      .andWhere('task.updated_at < :before', { before })
      .orderBy('task.updated_at', 'ASC')
      .limit(limit)
      .getMany();
  }

  /** Queued rows of `queue` that are due now (what a broker should be holding as ready). */
  countQueuedDue(queue: string, now: number): Promise<number> {
    return this.repo
      .createQueryBuilder('task')
      .where('task.status = :queued AND task.queue = :queue', { queued: TaskStatus.Queued, queue })
      .andWhere('(task.run_at IS NULL OR task.run_at <= :now)', { now })
      .getCount();
  }

  /**
   * Takes over a running row for `attempt` under `token`, only if it is still held under
   * `staleToken` by an earlier attempt: if its holder finished, failed or was replaced meanwhile,
   * nothing changes and false is returned.
   */
  async reclaim(id: string, staleToken: string, attempt: number, token: string): Promise<boolean> {
    const now = Date.now();
    const result = await this.repo
      .createQueryBuilder()
      .update(TaskEntity)
      .set({ attempt, claimToken: token, startedAt: now, updatedAt: now })
      .where(
        'id = :id AND status = :running AND claim_token = :staleToken AND attempt < :attempt',
        {
          id,
          running: TaskStatus.Running,
          staleToken,
          attempt,
        },
      )
      .execute();
    return result.affected === 1;
  }

  /**
   * Puts the running rows of `queues` back to queued. Only safe where no other process can hold
   * their claims: queues of a driver that keeps nothing across a restart (memory), at start-up.
   */
  async requeueRunning(queues: string[]): Promise<number> {
    if (queues.length === 0) return 0;
    const result = await this.repo.update(
      { status: TaskStatus.Running, queue: In(queues) },
      { status: TaskStatus.Queued, claimToken: null, updatedAt: Date.now() },
    );
    return result.affected ?? 0;
  }

  /**
   * Queued tasks oldest first, a page at a time (keyset on created_at, id): only their keys,
   * so a sweep over a long backlog reads little and builds no entities.
   */
  async queuedKeys(limit: number, after?: TaskKey): Promise<TaskKey[]> {
    const query = this.repo
      .createQueryBuilder('task')
      .select(['task.id AS id', 'task.queue AS queue', 'task.created_at AS "createdAt"'])
      .where('task.status = :queued', { queued: TaskStatus.Queued })
      .orderBy('task.created_at', 'ASC')
      .addOrderBy('task.id', 'ASC')
      .limit(limit);
    if (after) {
      query.andWhere(
        '(task.created_at > :createdAt OR (task.created_at = :createdAt AND task.id > :id))',
        { createdAt: after.createdAt, id: after.id },
      );
    }
    const rows = await query.getRawMany<{
      id: string;
      queue: string;
      createdAt: number | string;
    }>();
    // PostgreSQL answers bigint columns as strings.
    return rows.map((row) => ({ ...row, createdAt: Number(row.createdAt) }));
  }

  /** The queued ones among `ids`. */
  queuedByIds(ids: string[]): Promise<TaskEntity[]> {
    if (ids.length === 0) return Promise.resolve([]);
    return this.repo.findBy({ id: In(ids), status: TaskStatus.Queued });
  }

  async exists(id: string): Promise<boolean> {
    return (await this.repo.countBy({ id })) > 0;
  }
}
