import { Logger } from '@nestjs/common';
import type { QueueDriver } from '../interfaces/queue-driver.interface';
import type { DriverDefinition } from '../interfaces/queue-module-options.interface';
import { DRIVER_KINDS, driverKindDefinition } from '.';

/**
 * Builds a driver from its definition; an unknown kind fails the boot. Drivers do not connect
 * here: QueueDriverRegistry connects them all at module init, so a bad server fails the boot.
 */
export function createDriver(definition: DriverDefinition): QueueDriver {
  const kind = driverKindDefinition(definition.kind);
  if (!kind) {
    throw new Error(
      `driver ${definition.name}: unsupported kind ${String(definition.kind)} (known kinds: ${DRIVER_KINDS.join(', ')})`,
    );
  }
  // Drivers log their own connection troubles; their messages never contain the URL.
  return kind.create(definition.options ?? {}, new Logger(`QueueDriver:${definition.name}`));
}

/**
 * Opens the driver's connection and checks the server, so a wrong URL or a misconfigured server
 * stops the boot instead of the first publish.
 */
export async function connectDriver(driver: QueueDriver): Promise<void> {
  const definition = driverKindDefinition(driver.kind);
  if (definition?.connect) await definition.connect(driver);
  else await driver.ping();
}
