import { checkUrlOption, defineDriver } from '../driver-kind';
import { RedisQueueDriver, type RedisDriverOptions } from './redis.driver';

export const redisDriver = defineDriver({
  kind: 'redis',
  optionKeys: ['url', 'keyPrefix', 'leaseMs', 'blockMs'],
  envOptions: (env) => ({ url: env.redis.url, leaseMs: env.leaseMs }),
  validateOptions: (options, fail) => {
    checkUrlOption(options, ['redis:', 'rediss:'], fail);
    for (const [key, min] of [
      ['leaseMs', 1000],
      ['blockMs', 10],
    ] as const) {
      const value = options[key];
      if (value !== undefined && (!Number.isInteger(value) || (value as number) < min)) {
        fail(key, `expected an integer of at least ${min}`);
      }
    }
    if (options.keyPrefix !== undefined && typeof options.keyPrefix !== 'string') {
      fail('keyPrefix', 'expected a string');
    }
    return options;
  },
  create: (options, logger) =>
    new RedisQueueDriver({ ...(options as Partial<RedisDriverOptions>), logger }),
  // Also checks that the server does not evict keys, which would lose messages.
  connect: (driver) => driver.connect(),
});
