import { Inject, Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import { createDriver } from './drivers/driver.factory';
import { UnknownQueueError } from './errors/unknown-queue.error';
import type { QueueDriver } from './interfaces/queue-driver.interface';
import type { QueueModuleOptions } from './interfaces/queue-module-options.interface';
import { QUEUE_MODULE_OPTIONS } from './queue.module-definition';

/** Owns every driver instance and knows which driver carries which queue. */
@Injectable()
export class QueueDriverRegistry implements OnApplicationShutdown {
  private readonly logger = new Logger(QueueDriverRegistry.name);
  private readonly drivers = new Map<string, QueueDriver>();
  private readonly queues = new Map<string, QueueDriver>();
  readonly defaultDriver: QueueDriver;

  constructor(@Inject(QUEUE_MODULE_OPTIONS) options: QueueModuleOptions) {
    if (options.drivers.length === 0) throw new Error('queue module: no driver is declared');
    for (const definition of options.drivers) {
      if (this.drivers.has(definition.name)) {
        throw new Error(`queue module: driver ${definition.name} is declared twice`);
      }
      this.drivers.set(definition.name, createDriver(definition));
    }
    for (const queue of options.queues) {
      const driver = this.drivers.get(queue.driver);
      if (!driver) {
        throw new Error(`queue module: queue ${queue.name} names unknown driver ${queue.driver}`);
      }
      if (this.queues.has(queue.name)) {
        throw new Error(`queue module: queue ${queue.name} is declared twice`);
      }
      this.queues.set(queue.name, driver);
    }
    const defaultName = options.defaultDriver ?? options.drivers[0].name;
    const fallback = this.drivers.get(defaultName);
    if (!fallback) throw new Error(`queue module: default driver ${defaultName} is not declared`);
    this.defaultDriver = fallback;
  }

  /** The driver carrying `queue`; throws UnknownQueueError for an undeclared queue. */
  driverFor(queue: string): QueueDriver {
    const driver = this.queues.get(queue);
    if (!driver) throw new UnknownQueueError(queue, this.queueNames());
    return driver;
  }

  queueNames(): string[] {
    return [...this.queues.keys()];
  }

  async onApplicationShutdown(): Promise<void> {
    // Each driver closes on its own, so one failing close does not keep the others open.
    for (const [name, driver] of this.drivers) {
      try {
        await driver.close();
      } catch (error) {
        this.logger.error(`closing driver ${name} failed`, (error as Error).stack);
      }
    }
  }
}
