import { Injectable } from '@nestjs/common';
import { type HealthIndicatorFunction, HealthIndicatorService } from '@nestjs/terminus';
import { QueueDriverRegistry } from '../../queue';
import type { ReadinessIndicator } from './readiness-indicator';

/**
 * `driver:<name>`: each driver that carries a queue answers its ping. One check per driver (not
 * per queue: queues on one driver share its connection), listing the queues it carries.
 */
@Injectable()
export class QueueDriversIndicator implements ReadinessIndicator {
  constructor(
    private readonly registry: QueueDriverRegistry,
    private readonly health: HealthIndicatorService,
  ) {}

  checks(timeoutMs: number): HealthIndicatorFunction[] {
    return this.carrying().map(
      ({ name, kind, queues, ping }) =>
        () =>
          this.health
            .check(`driver:${name}`)
            .attempt(async () => {
              await ping();
              return { kind, queues };
            })
            .withTimeout(timeoutMs),
    );
  }

  /** Drivers with at least one queue: a driver no queue uses carries no work. */
  private carrying() {
    const queuesOf = new Map<unknown, string[]>();
    for (const queue of this.registry.queueNames()) {
      const driver = this.registry.driverFor(queue);
      queuesOf.set(driver, [...(queuesOf.get(driver) ?? []), queue]);
    }
    return [...this.registry.allDrivers()]
      .filter(([, driver]) => queuesOf.has(driver))
      .map(([name, driver]) => ({
        name,
        kind: driver.kind,
        queues: queuesOf.get(driver)!,
        ping: () => driver.ping(),
      }));
  }
}
