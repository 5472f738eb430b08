import type { QueueDriver } from '../interfaces/queue-driver.interface';
import type { DriverDefinition } from '../interfaces/queue-module-options.interface';
import { MemoryQueueDriver } from './memory/memory.driver';
import { SqliteQueueDriver } from './sqlite/sqlite.driver';
import { resolveSqliteDriverOptions } from './sqlite/sqlite-driver.options';

/** Builds a driver from its definition; an unknown kind fails the boot. */
export function createDriver(definition: DriverDefinition): QueueDriver {
  switch (definition.kind) {
    case 'memory':
      return new MemoryQueueDriver();
    case 'sqlite':
      return new SqliteQueueDriver(resolveSqliteDriverOptions(definition.options));
    default:
      throw new Error(
        `driver ${definition.name}: unsupported kind ${String((definition as { kind: unknown }).kind)}`,
      );
  }
}
