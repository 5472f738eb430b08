import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Repository } from 'typeorm';
import type { CallbackStatus } from './task-status.enum';
import { TaskEntity } from './task.entity';

/** A callback this process holds: the row as claimed, and the lease that fences its outcome. */
export interface ClaimedCallback {
  task: TaskEntity;
  /** 1-based; already counted in the row. */
  attempt: number;
  leaseUntil: number;
}

type Outcome = {
  status: CallbackStatus;
  error: string | null;
  nextAt: number | null;
};

/**
 * The callback columns of the task table. Every change is conditional on the values this
 * process last saw (attempts and next time), so two processes never send one callback at the
 * same moment and a process whose lease ran out cannot overwrite a newer outcome.
 */
@Injectable()
export class CallbackStore {
  constructor(@InjectRepository(TaskEntity) private readonly repo: Repository<TaskEntity>) {}

  /** Pending callbacks due by `now`, the longest-waiting first. */
  due(now: number, limit: number): Promise<TaskEntity[]> {
    return this.repo
      .createQueryBuilder('task')
      .where('task.callback_status = :pending', { pending: 'pending' })
      .andWhere('task.callback_next_at <= :now', { now })
      .orderBy('task.callback_next_at', 'ASC')
      .limit(limit)
      .getMany();
  }

  /**
   * Takes `task`'s callback for one attempt: counts the attempt and pushes its next time to
   * `leaseUntil`, so nobody else picks it up meanwhile (and, should this process die, somebody
   * does after the lease). Null when another process got there first.
   */
  async claim(task: TaskEntity, leaseUntil: number): Promise<ClaimedCallback | null> {
    const attempt = task.callbackAttempts + 1;
    const result = await this.repo
      .createQueryBuilder()
      .update(TaskEntity)
      .set({ callbackAttempts: attempt, callbackNextAt: leaseUntil })
      .where('id = :id AND callback_status = :pending', { id: task.id, pending: 'pending' })
      .andWhere('callback_attempts = :attempts AND callback_next_at = :nextAt', {
        attempts: task.callbackAttempts,
        nextAt: task.callbackNextAt,
      })
      .execute();
    if (result.affected !== 1) return null;
    return {
      task: { ...task, callbackAttempts: attempt, callbackNextAt: leaseUntil },
      attempt,
      leaseUntil,
    };
  }

  /** Marks a callback that has used its attempts (without sending again) as failed. */
  async abandon(task: TaskEntity, error: string): Promise<boolean> {
    const result = await this.repo
      .createQueryBuilder()
      .update(TaskEntity)
      .set({ callbackStatus: 'failed', callbackError: error, callbackNextAt: null })
      .where('id = :id AND callback_status = :pending', { id: task.id, pending: 'pending' })
      .andWhere('callback_attempts = :attempts AND callback_next_at = :nextAt', {
        attempts: task.callbackAttempts,
        nextAt: task.callbackNextAt,
      })
      .execute();
    return result.affected === 1;
  }

  /** Records an attempt's outcome; false when the claim was lost meanwhile. */
  async settle(claimed: ClaimedCallback, outcome: Outcome): Promise<boolean> {
    const result = await this.repo
      .createQueryBuilder()
      .update(TaskEntity)
      .set({
        callbackStatus: outcome.status,
        callbackError: outcome.error,
        callbackNextAt: outcome.nextAt,
      })
      .where('id = :id AND callback_status = :pending', { id: claimed.task.id, pending: 'pending' })
      .andWhere('callback_attempts = :attempts AND callback_next_at = :leaseUntil', {
        attempts: claimed.attempt,
        leaseUntil: claimed.leaseUntil,
      })
      .execute();
    return result.affected === 1;
  }
}
