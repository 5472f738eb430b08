import { Injectable } from '@nestjs/common';
import type { PublishMessage } from './interfaces/queue-message.interface';
import type { SharedWrite } from './interfaces/shared-write.interface';
import { QueueDriverRegistry } from './queue-driver.registry';

/** Publishes to any declared queue through the driver that carries it. */
@Injectable()
export class QueuePublisher {
  constructor(private readonly registry: QueueDriverRegistry) {}

  /** Resolves with the message ids once the driver holds the messages durably. */
  publish<T>(queue: string, messages: PublishMessage<T>[]): Promise<string[]> {
    return this.registry.driverFor(queue).publish(queue, messages);
  }

  /**
   * Publishes in one transaction with `write` where the queue's driver can (see
   * QueueDriver.publishWith); undefined, with nothing done, where it cannot.
   */
  publishWith<T>(
    queue: string,
    messages: PublishMessage<T>[],
    write: SharedWrite,
  ): Promise<string[] | undefined> {
    const driver = this.registry.driverFor(queue);
    if (!driver.publishWith) return Promise.resolve(undefined);
    return driver.publishWith(queue, messages, write);
  }
}
