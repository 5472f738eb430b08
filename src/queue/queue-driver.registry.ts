import { Inject, Injectable, Logger, OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import { QUEUE_NAME_PATTERN, QUEUE_NAME_RULE } from '../common/queue-rules';
import { redactUrl } from '../common/redact-url';
import { connectDriver, createDriver } from './drivers/driver.factory';
import { UnknownQueueError } from './errors/unknown-queue.error';
import type { QueueDriver } from './interfaces/queue-driver.interface';
import type { QueueModuleOptions } from './interfaces/queue-module-options.interface';
import type { QueueTable } from './interfaces/queue-table.interface';
import { QUEUE_MODULE_OPTIONS } from './queue.module-definition';

/**
 * Owns every driver instance and knows which driver carries which queue. Connects every driver
 * at module init, so an unreachable or misconfigured broker fails the boot with its name.
 */
@Injectable()
export class QueueDriverRegistry implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger(QueueDriverRegistry.name);
  private readonly drivers = new Map<string, QueueDriver>();
  /** Where each driver connects, credentials removed, for boot errors. */
  private readonly endpoints = new Map<string, string>();
  private readonly queues = new Map<string, QueueDriver>();
  private readonly defaultName: string;
  readonly defaultDriver: QueueDriver;

  constructor(@Inject(QUEUE_MODULE_OPTIONS) options: QueueModuleOptions) {
    if (options.drivers.length === 0) throw new Error('queue module: no driver is declared');
    for (const definition of options.drivers) {
      if (this.drivers.has(definition.name)) {
        throw new Error(`queue module: driver ${definition.name} is declared twice`);
      }
      this.drivers.set(definition.name, createDriver(definition));
      const url = definition.options?.url;
      if (typeof url === 'string') this.endpoints.set(definition.name, ` at ${redactUrl(url)}`);
    }
    for (const queue of options.queues) {
      if (this.queues.has(queue.name)) {
        throw new Error(`queue module: queue ${queue.name} is declared twice`);
      }
      this.declareQueue(queue.name, queue.driver);
    }
    this.defaultName = options.defaultDriver ?? options.drivers[0].name;
    const fallback = this.drivers.get(this.defaultName);
    if (!fallback) {
      throw new Error(`queue module: default driver ${this.defaultName} is not declared`);
    }
    this.defaultDriver = fallback;
  }

  async onModuleInit(): Promise<void> {
    await Promise.all(
      [...this.drivers].map(async ([name, driver]) => {
        try {
          await connectDriver(driver);
        } catch (error) {
          // The drivers' messages never contain their URL, so this is safe to print.
          throw new Error(
            `queue driver "${name}" (${driver.kind}${this.endpoints.get(name) ?? ''}) cannot start: ${(error as Error).message}`,
            { cause: error },
          );
        }
      }),
    );
  }

  /**
   * Binds `queue` to a driver (the default one unless named). A queue that is already declared
   * keeps its driver. Used at boot for queues named by handlers rather than by configuration.
   */
  declareQueue(queue: string, driverName: string = this.defaultName): void {
    if (this.queues.has(queue)) return;
    if (!QUEUE_NAME_PATTERN.test(queue)) {
      throw new Error(
        `queue module: queue name ${JSON.stringify(queue)} is invalid: expected ${QUEUE_NAME_RULE}`,
      );
    }
    const driver = this.drivers.get(driverName);
    if (!driver) {
      throw new Error(`queue module: queue ${queue} names unknown driver ${driverName}`);
    }
    this.queues.set(queue, driver);
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

  /**
   * Hands the application's table port to every driver that keeps its queues in that table
   * (postgres). Called once at boot by the table's owner, before the drivers connect.
   */
  bindQueueTable(table: QueueTable): void {
    for (const driver of this.drivers.values()) {
      (driver as { bindTable?: (table: QueueTable) => void }).bindTable?.(table);
    }
  }

  /** Every driver instance, by name. */
  allDrivers(): ReadonlyMap<string, QueueDriver> {
    return this.drivers;
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
