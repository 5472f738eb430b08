import { Logger } from '@nestjs/common';
import Redis from 'ioredis';
import { TaskEventBus } from './task-event-bus';

/**
 * The event bus of a deployment with a Redis queue driver: PUBLISH/SUBSCRIBE on
 * `<keyPrefix>:events:<scope>`, where the scope names the task database, so deployments that share
 * a Redis server and key prefix but not a task database do not hear each other. Pub/sub keeps no
 * keys. Two connections of its own: a subscribed connection can do nothing else. ioredis
 * reconnects and subscribes again by itself.
 */
export class RedisEventBus extends TaskEventBus {
  readonly kind = 'redis';
  private readonly logger = new Logger(RedisEventBus.name);
  private readonly publisher: Redis;
  private readonly subscriber: Redis;
  readonly channel: string;
  /** The subscribed connection's CLIENT ID on the server, as first connected. */
  subscriberId?: number;

  /** `url` may carry a password: it is never logged. */
  constructor(url: string, keyPrefix: string, scope: string) {
    super();
    this.channel = `${keyPrefix}:events:${scope}`;
    // Named, so an operator can tell these connections apart in CLIENT LIST.
    const options = { lazyConnect: true, maxRetriesPerRequest: 1, connectionName: 'taskq-events' };
    this.publisher = new Redis(url, options);
    this.subscriber = new Redis(url, options);
    for (const connection of [this.publisher, this.subscriber]) {
      // ioredis retries by itself; without a listener an error would crash the process.
      connection.on('error', (error: Error) =>
        this.logger.warn(`task event connection to Redis: ${error.message}`),
      );
    }
  }

  async start(onMessage: (message: string) => void): Promise<void> {
    this.subscriber.on('message', (channel: string, message: string) => {
      if (channel === this.channel) onMessage(message);
    });
    await Promise.all([this.publisher.connect(), this.subscriber.connect()]);
    this.subscriberId = Number(await this.subscriber.client('ID'));
    await this.subscriber.subscribe(this.channel);
  }

  async publish(message: string): Promise<void> {
    await this.publisher.publish(this.channel, message);
  }

  async close(): Promise<void> {
    await Promise.all(
      [this.publisher, this.subscriber].map((connection) =>
        connection.quit().then(
          () => undefined,
          () => connection.disconnect(),
        ),
      ),
    );
  }
}
