import type { QueueDriver } from '../interfaces/queue-driver.interface';
import type { DriverDefinition } from '../interfaces/queue-module-options.interface';
import { MemoryQueueDriver } from './memory/memory.driver';

/** Builds a driver from its definition; an unknown kind fails the boot. */
export function createDriver(definition: DriverDefinition): QueueDriver {
  switch (definition.kind) {
    case 'memory':
      return new MemoryQueueDriver();
    default:
      throw new Error(
        `driver ${definition.name}: unsupported kind ${String((definition as { kind: unknown }).kind)}`,
      );
  }
}
