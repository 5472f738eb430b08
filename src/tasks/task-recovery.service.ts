import { Inject, Injectable, Logger } from '@nestjs/common';
import { QUEUE_DRIVER, type QueueDriver, QueueDriverRegistry } from '../queue';
import { type TaskKey, TaskStore } from './task.store';
import { TasksService } from './tasks.service';

/** Keys read per page; rows are loaded only for the tasks whose message is missing. */
const PAGE = 5000;
/** Rows per load and publish. */
const CHUNK = 500;

/**
 * Start-up sweep: every task left queued whose message is gone is published again, so a crash
 * between committing a row and publishing its message loses nothing. The task id is the
 * message's deduplication key, so a task whose message is still waiting, delayed or in flight
 * gets no second one. Drivers that can say which keys they hold (missingKeys) are asked first,
 * so a long backlog costs an index probe per task rather than a publish; for the others every
 * queued task is offered to the deduplication.
 * Drivers that keep nothing across a crash (memory) also lose what was running: those rows are
 * put back to queued first. Durable drivers redeliver running work themselves (lease expiry).
 */
@Injectable()
export class TaskRecoveryService {
  private readonly logger = new Logger(TaskRecoveryService.name);

  constructor(
    private readonly store: TaskStore,
    private readonly tasks: TasksService,
    private readonly queues: QueueDriverRegistry,
    @Inject(QUEUE_DRIVER) private readonly driver: QueueDriver,
  ) {}

  /** Returns how many tasks were published again. */
  async recover(): Promise<number> {
    const requeued = this.driver.capabilities.durable ? 0 : await this.store.requeueAllRunning();
    let published = 0;
    let after: TaskKey | undefined;
    for (;;) {
      const page = await this.store.queuedKeys(PAGE, after);
      if (page.length === 0) break;
      after = page[page.length - 1];
      for (const [queue, ids] of groupByQueue(page)) {
        const driver = this.queues.driverFor(queue);
        const missing = driver.missingKeys ? await driver.missingKeys(queue, ids) : ids;
        for (let i = 0; i < missing.length; i += CHUNK) {
          const rows = await this.store.queuedByIds(missing.slice(i, i + CHUNK));
          await this.tasks.publish(rows);
          published += rows.length;
        }
      }
    }
    if (published > 0) {
      this.logger.log(
        `republished ${published} queued task(s) (${requeued} had been running when the last process stopped)`,
      );
    }
    return published;
  }
}

function groupByQueue(keys: TaskKey[]): Map<string, string[]> {
  const byQueue = new Map<string, string[]>();
  for (const { id, queue } of keys) {
    const ids = byQueue.get(queue);
    if (ids) ids.push(id);
    else byQueue.set(queue, [id]);
  }
  return byQueue;
}
