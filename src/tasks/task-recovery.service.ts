import { Inject, Injectable, Logger } from '@nestjs/common';
import { QUEUE_DRIVER, type QueueDriver } from '../queue';
import { TaskStore } from './task.store';
import { TasksService } from './tasks.service';

const PAGE = 500;

/**
 * Start-up sweep: every task left queued is published again, so a crash between committing a
 * row and publishing its message loses nothing. The task id is the message's deduplication
 * key, so a task whose message is still waiting, delayed or in flight gets no second one.
 * Drivers that keep nothing across a crash (memory) also lose what was running: those rows are
 * put back to queued first. Durable drivers redeliver running work themselves (lease expiry).
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
    const requeued = this.driver.capabilities.durable ? 0 : await this.store.requeueAllRunning();
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
        `republished ${published} queued task(s) (${requeued} had been running when the last process stopped)`,
      );
    }
    return published;
  }
}
