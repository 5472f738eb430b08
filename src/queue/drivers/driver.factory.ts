import { Logger } from '@nestjs/common';
import type { QueueDriver } from '../interfaces/queue-driver.interface';
import type { DriverDefinition } from '../interfaces/queue-module-options.interface';
import { AmqpQueueDriver, type AmqpDriverOptions } from './amqp/amqp.driver';
import { MemoryQueueDriver } from './memory/memory.driver';
import { RedisQueueDriver, type RedisDriverOptions } from './redis/redis.driver';
import { SqliteQueueDriver } from './sqlite/sqlite.driver';
import { resolveSqliteDriverOptions } from './sqlite/sqlite-driver.options';

/**
 * Builds a driver from its definition; an unknown kind fails the boot. Drivers do not connect
 * here: QueueDriverRegistry connects them all at module init, so a bad server fails the boot.
 */
export function createDriver(definition: DriverDefinition): QueueDriver {
  // Drivers log their own connection troubles; their messages never contain the URL.
  const logger = new Logger(`QueueDriver:${definition.name}`);
  switch (definition.kind) {
    case 'memory':
      return new MemoryQueueDriver();
    case 'sqlite':
      return new SqliteQueueDriver(resolveSqliteDriverOptions(definition.options));
    case 'redis':
      return new RedisQueueDriver({
        ...(definition.options as Partial<RedisDriverOptions>),
        logger,
      });
    case 'amqp':
      return new AmqpQueueDriver({
        ...(definition.options as Partial<AmqpDriverOptions>),
        logger,
      });
    default:
      throw new Error(
        `driver ${definition.name}: unsupported kind ${String((definition as { kind: unknown }).kind)}`,
      );
  }
}

/**
 * Opens the driver's connection and checks the server (Redis: no key eviction), so a wrong URL
 * or a misconfigured server stops the boot instead of the first publish.
 */
export async function connectDriver(driver: QueueDriver): Promise<void> {
  if (driver instanceof RedisQueueDriver) await driver.connect();
  else await driver.ping();
}
