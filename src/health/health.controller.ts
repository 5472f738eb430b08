import {
  BeforeApplicationShutdown,
  Controller,
  Get,
  ServiceUnavailableException,
} from '@nestjs/common';
import {
  ApiOkResponse,
  ApiOperation,
  ApiServiceUnavailableResponse,
  ApiTags,
} from '@nestjs/swagger';
import { DataSource } from 'typeorm';
import { within } from '../common/within';
import { QueueDriverRegistry } from '../queue';

/** Each dependency gets this long to answer, so /health answers even when one hangs. */
export const HEALTH_CHECK_TIMEOUT_MS = 2000;

/**
 * Liveness for load balancers: database and every driver that carries a queue reachable, not
 * shutting down.
 */
@ApiTags('health')
@Controller('health')
export class HealthController implements BeforeApplicationShutdown {
  private shuttingDown = false;

  constructor(
    private readonly dataSource: DataSource,
    private readonly registry: QueueDriverRegistry,
  ) {}

  beforeApplicationShutdown(): void {
    this.shuttingDown = true;
  }

  @Get()
  @ApiOperation({ summary: 'Health of this process' })
  @ApiOkResponse({ description: '`{status: "ok", database: "up", queue: "up"}`' })
  @ApiServiceUnavailableResponse({ description: 'Shutting down, or a dependency is down.' })
  async check(): Promise<Record<string, string>> {
    const [database, queue] = await Promise.all([
      within(this.dataSource.query('SELECT 1'), HEALTH_CHECK_TIMEOUT_MS, 'database').then(
        () => 'up',
        (error: Error) => `down: ${error.message}`,
      ),
      this.queueDrivers(),
    ]);
    const status = this.shuttingDown
      ? 'shutting_down'
      : database === 'up' && queue === 'up'
        ? 'ok'
        : 'error';
    const body = { status, database, queue };
    if (status !== 'ok') throw new ServiceUnavailableException(body);
    return body;
  }

  /** `up` when every driver carrying a queue answers, else `down: ` and each failing driver. */
  private async queueDrivers(): Promise<string> {
    // A driver no queue uses carries no work, so its state does not make this process unhealthy.
    const carrying = new Set(this.registry.queueNames().map((q) => this.registry.driverFor(q)));
    const failures = await Promise.all(
      [...this.registry.allDrivers()]
        .filter(([, driver]) => carrying.has(driver))
        .map(([name, driver]) =>
          within(driver.ping(), HEALTH_CHECK_TIMEOUT_MS, 'ping').then(
            () => undefined,
            (error: Error) => `${name}: ${error.message}`,
          ),
        ),
    );
    const down = failures.filter((failure) => failure !== undefined);
    return down.length === 0 ? 'up' : `down: ${down.join('; ')}`;
  }
}
