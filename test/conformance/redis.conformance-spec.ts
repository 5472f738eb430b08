import { randomUUID } from 'node:crypto';
import Redis from 'ioredis';
import {
  RedisQueueDriver,
  type RedisDriverOptions,
} from '../../src/queue/drivers/redis/redis.driver';
import { describeWithService, REDIS_SERVICE } from '../helpers/service-available';
import { describeQueueDriverConformance } from '../../src/queue/testing';

/** One key prefix for the file, so drivers built for one test share their queues. */
const keyPrefix = `taskq-conformance-${randomUUID()}`;
const shortLeaseMs = 1000;
const build = (options: RedisDriverOptions = {}) =>
  // The shared test Redis runs without persistence: allowVolatile accepts it.
  Promise.resolve(
    new RedisQueueDriver({ keyPrefix, blockMs: 500, allowVolatile: true, ...options }),
  );

describeWithService(REDIS_SERVICE, 'redis conformance', () => {
  afterAll(async () => {
    const admin = new Redis('redis://127.0.0.1:6379');
    const keys = await admin.keys(`${keyPrefix}:*`);
    if (keys.length > 0) await admin.del(...keys);
    await admin.quit();
  });

  describeQueueDriverConformance('redis', () => build(), {
    shortLease: { factory: () => build({ leaseMs: shortLeaseMs }), leaseMs: shortLeaseMs },
  });
});
