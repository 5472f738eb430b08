import { Injectable, OnApplicationBootstrap } from '@nestjs/common';
import { QueueConsumerService } from '../queue';
import { TaskReconciler } from '../maintenance/task-reconciler.service';
import { TaskProcessor } from './task.processor';

/**
 * Starts task consumption. Runs in onApplicationBootstrap, after every module (and the
 * migrations) finished initialising, and only once the reconciler's start-up sweep has put the
 * task table and the broker back in step.
 */
@Injectable()
export class TaskWorkerService implements OnApplicationBootstrap {
  constructor(
    private readonly consumers: QueueConsumerService,
    private readonly processor: TaskProcessor,
    private readonly reconciler: TaskReconciler,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    await this.reconciler.sweepAtStart();
    // Every declared queue: QUEUE_NAME, the topology's queues and queues named by handlers.
    this.consumers.consumeDeclared(this.processor);
  }
}
