import { Injectable } from '@nestjs/common';
import type { PublishMessage } from './interfaces/queue-message.interface';
import { QueueDriverRegistry } from './queue-driver.registry';

/** Publishes to any declared queue through the driver that carries it. */
@Injectable()
export class QueuePublisher {
  constructor(private readonly registry: QueueDriverRegistry) {}

  /** Resolves with the message ids once the driver holds the messages durably. */
  publish<T>(queue: string, messages: PublishMessage<T>[]): Promise<string[]> {
    return this.registry.driverFor(queue).publish(queue, messages);
  }
}
