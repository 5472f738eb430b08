import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Brackets, In, Repository } from 'typeorm';
import { TaskStatus } from './task-status.enum';
import { TaskEntity } from './task.entity';

export interface ListTasksFilter {
  status?: TaskStatus;
  limit: number;
}

/**
 * Every read and write of the task table. Each state change is a conditional update, so a
 * duplicate or stale delivery changes nothing: the outcome of an attempt is recorded once.
 */
@Injectable()
export class TaskStore {
  constructor(@InjectRepository(TaskEntity) private readonly repo: Repository<TaskEntity>) {}

  async insert(task: TaskEntity): Promise<void> {
    await this.repo.insert(task);
  }

  findById(id: string): Promise<TaskEntity | null> {
    return this.repo.findOneBy({ id });
  }

  /** Newest first; ties broken by id so the order is stable. */
  list(filter: ListTasksFilter): Promise<TaskEntity[]> {
    return this.repo.find({
      where: filter.status ? { status: filter.status } : {},
      order: { createdAt: 'DESC', id: 'DESC' },
      take: filter.limit,
    });
  }

  /**
   * Claims the row for `attempt` under a new fencing `token`: a queued row from an earlier
   * attempt, or, when the broker redelivered the message (its holder died), a running row of
   * this same attempt. False means the delivery is a duplicate or stale.
   */
  async claim(id: string, attempt: number, token: string, redelivered: boolean): Promise<boolean> {
    const now = Date.now();
    const result = await this.repo
      .createQueryBuilder()
      .update(TaskEntity)
      .set({
        status: TaskStatus.Running,
        attempt,
        claimToken: token,
        startedAt: now,
        updatedAt: now,
      })
      .where('id = :id', { id })
      .andWhere(
        new Brackets((where) => {
          where.where('(status = :queued AND attempt < :attempt)', {
            queued: TaskStatus.Queued,
            attempt,
          });
          if (redelivered) {
            where.orWhere('(status = :running AND attempt = :attempt)', {
              running: TaskStatus.Running,
            });
          }
        }),
      )
      .execute();
    return result.affected === 1;
  }

  /** Records success; false if the claim was lost (taken over or cancelled). */
  complete(id: string, token: string, result: unknown): Promise<boolean> {
    const now = Date.now();
    return this.updateClaimed(id, token, {
      status: TaskStatus.Completed,
      result: JSON.stringify(result ?? null),
      error: null,
      processedAt: now,
      updatedAt: now,
      claimToken: null,
    });
  }

  /** Records a failed attempt: back to queued for a retry, or failed for good. */
  fail(id: string, token: string, error: string, final: boolean): Promise<boolean> {
    const now = Date.now();
    return this.updateClaimed(id, token, {
      status: final ? TaskStatus.Failed : TaskStatus.Queued,
      error,
      processedAt: final ? now : null,
      updatedAt: now,
      claimToken: null,
    });
  }

  /** Stores progress while the claim holds. */
  progress(id: string, token: string, percent: number): Promise<boolean> {
    return this.updateClaimed(id, token, { progress: percent, updatedAt: Date.now() });
  }

  /**
   * Puts every running row back to queued. Only safe where no other process can hold a claim:
   * the single-process memory driver at start-up, whose messages died with the last process.
   */
  async requeueAllRunning(): Promise<number> {
    const result = await this.repo.update(
      { status: TaskStatus.Running },
      { status: TaskStatus.Queued, claimToken: null, updatedAt: Date.now() },
    );
    return result.affected ?? 0;
  }

  /** Queued rows oldest first, a page at a time (keyset on created_at, id). */
  queuedPage(limit: number, before?: { createdAt: number; id: string }): Promise<TaskEntity[]> {
    const query = this.repo
      .createQueryBuilder('task')
      .where('task.status = :queued', { queued: TaskStatus.Queued })
      .orderBy('task.created_at', 'ASC')
      .addOrderBy('task.id', 'ASC')
      .take(limit);
    if (before) {
      query.andWhere(
        '(task.created_at > :createdAt OR (task.created_at = :createdAt AND task.id > :id))',
        before,
      );
    }
    return query.getMany();
  }

  countByStatus(statuses: TaskStatus[]): Promise<number> {
    return this.repo.countBy({ status: In(statuses) });
  }

  private async updateClaimed(
    id: string,
    token: string,
    values: Partial<TaskEntity>,
  ): Promise<boolean> {
    const result = await this.repo
      .createQueryBuilder()
      .update(TaskEntity)
      .set(values)
      .where('id = :id AND claim_token = :token AND status = :running', {
        id,
        token,
        running: TaskStatus.Running,
      })
      .execute();
    return result.affected === 1;
  }
}
