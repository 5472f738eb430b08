import { connect } from 'amqplib';
import Redis from 'ioredis';
import { deadQueue, mainQueue } from '../drivers/amqp/amqp-topology';

/** Where the brokers are; the tests' and benches' defaults. */
export interface BrokerUrls {
  redisUrl?: string;
  amqpUrl?: string;
  /** The redis driver's key prefix (its default, `taskq`, unless a test set its own). */
  redisKeyPrefix?: string;
}

/**
 * Deletes what a run left of `queue` on its broker: every redis key of the queue, or the
 * RabbitMQ queue and its dead-letter queue (delay queues expire by themselves). For tests and
 * benches that start the real service on a queue of their own; nothing is left on the shared
 * servers, whatever the run's outcome.
 */
export async function removeQueueFromBroker(
  kind: string,
  queue: string,
  urls: BrokerUrls = {},
): Promise<void> {
  if (kind === 'redis') {
    const redis = new Redis(urls.redisUrl ?? 'redis://127.0.0.1:6379', { lazyConnect: true });
    try {
      await redis.connect();
      const pattern = `${urls.redisKeyPrefix ?? 'taskq'}:{${queue}}*`;
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
        if (keys.length > 0) await redis.del(...keys);
        cursor = next;
      } while (cursor !== '0');
    } finally {
      redis.disconnect();
    }
  } else if (kind === 'amqp') {
    const model = await connect(urls.amqpUrl ?? 'amqp://guest:guest@127.0.0.1:5672');
    try {
      const channel = await model.createChannel();
      for (const { name } of [mainQueue(queue), deadQueue(queue)]) await channel.deleteQueue(name);
    } finally {
      await model.close();
    }
  }
}
