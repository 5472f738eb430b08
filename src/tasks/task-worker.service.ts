import { Injectable, OnApplicationBootstrap } from '@nestjs/common';
import type { AppConfig } from '../config/app.config';
import { InjectAppConfig } from '../config/inject-app-config.decorator';
import { QueueConsumerService } from '../queue';
import { TaskProcessor } from './task.processor';
import { TaskRecoveryService } from './task-recovery.service';

/**
 * Starts task consumption in the worker roles. Runs in onApplicationBootstrap, after every
 * module (and the migrations) finished initialising.
 */
@Injectable()
export class TaskWorkerService implements OnApplicationBootstrap {
  constructor(
    @InjectAppConfig() private readonly config: AppConfig,
    private readonly consumers: QueueConsumerService,
    private readonly processor: TaskProcessor,
    private readonly recovery: TaskRecoveryService,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    if (this.config.role === 'api') return;
    await this.recovery.recover();
    // Every declared queue: QUEUE_NAME, the topology's queues and queues named by handlers.
    this.consumers.consumeDeclared(this.processor);
  }
}
