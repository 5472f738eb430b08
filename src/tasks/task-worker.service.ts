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
    this.consumers.consume(this.config.queue.name, this.processor, {
      concurrency: this.config.worker.concurrency,
      prefetch: this.config.worker.prefetch,
    });
  }
}
