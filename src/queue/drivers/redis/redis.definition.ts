import { checkUrlOption, defineDriver } from '../driver-kind';
import { RedisQueueDriver, type RedisDriverOptions } from './redis.driver';
import { APPENDFSYNC_POLICIES } from './redis-volatile.error';

export const redisDriver = defineDriver({
  kind: 'redis',
  optionKeys: [
    'url',
    'keyPrefix',
    'leaseMs',
    'blockMs',
    'allowVolatile',
    'appendfsync',
    'livenessMs',
    'epochCheckMs',
  ],
  // The durability settings appear only when they differ from the driver's defaults.
  envOptions: (env) => ({
    url: env.redis.url,
    leaseMs: env.leaseMs,
    ...(env.redis.allowVolatile ? { allowVolatile: true } : {}),
    ...(env.redis.appendfsync && env.redis.appendfsync !== 'everysec'
      ? { appendfsync: env.redis.appendfsync }
      : {}),
  }),
  validateOptions: (options, fail) => {
    checkUrlOption(options, ['redis:', 'rediss:'], fail);
    for (const [key, min] of [
      ['leaseMs', 1000],
      ['blockMs', 10],
      ['livenessMs', 300],
      ['epochCheckMs', 100],
    ] as const) {
      const value = options[key];
      if (value !== undefined && (!Number.isInteger(value) || (value as number) < min)) {
        fail(key, `expected an integer of at least ${min}`);
      }
    }
    if (options.keyPrefix !== undefined && typeof options.keyPrefix !== 'string') {
      fail('keyPrefix', 'expected a string');
    }
    if (options.allowVolatile !== undefined && typeof options.allowVolatile !== 'boolean') {
      fail('allowVolatile', 'expected true or false');
    }
    if (
      options.appendfsync !== undefined &&
      !(APPENDFSYNC_POLICIES as readonly unknown[]).includes(options.appendfsync)
    ) {
      fail('appendfsync', `expected one of ${APPENDFSYNC_POLICIES.join(', ')}`);
    }
    return options;
  },
  create: (options, logger) =>
    new RedisQueueDriver({ ...(options as Partial<RedisDriverOptions>), logger }),
  // Also checks that the server does not evict keys and keeps an append-only file (unless
  // allowVolatile), either of which would lose messages.
  connect: (driver) => driver.connect(),
});
