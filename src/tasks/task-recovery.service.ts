import { Inject, Injectable, Logger } from '@nestjs/common';
import { QUEUE_DRIVER, type QueueDriver } from '../queue';
import { TaskStore } from './task.store';
import { TasksService } from './tasks.service';

const PAGE = 500;

/**
 * Start-up sweep for drivers that keep nothing across a crash (memory): every task left queued
 * or running by a process that died is published again, so no accepted task is lost. Duplicates
 * this may create are harmless: the row claim lets only one delivery run an attempt.
 */
@Injectable()
export class TaskRecoveryService {
  private readonly logger = new Logger(TaskRecoveryService.name);

  constructor(
    private readonly store: TaskStore,
    private readonly tasks: TasksService,
    @Inject(QUEUE_DRIVER) private readonly driver: QueueDriver,
  ) {}

  /** Returns how many tasks were published again. */
  async recover(): Promise<number> {
    if (this.driver.capabilities.durable) return 0;
    const requeued = await this.store.requeueAllRunning();
    let published = 0;
    let after: { createdAt: number; id: string } | undefined;
    for (;;) {
      const page = await this.store.queuedPage(PAGE, after);
      if (page.length === 0) break;
      await this.tasks.publish(page);
      published += page.length;
      const last = page[page.length - 1];
      after = { createdAt: last.createdAt, id: last.id };
    }
    if (published > 0) {
      this.logger.log(
        `recovered ${published} unfinished task(s) (${requeued} were running when the last process stopped)`,
      );
    }
    return published;
  }
}
