import {
  Controller,
  Get,
  HttpCode,
  HttpStatus,
  Inject,
  ServiceUnavailableException,
} from '@nestjs/common';
import {
  ApiOkResponse,
  ApiOperation,
  ApiServiceUnavailableResponse,
  ApiTags,
} from '@nestjs/swagger';
import { HealthCheck, type HealthCheckResult, HealthCheckService } from '@nestjs/terminus';
import { DataSource } from 'typeorm';
import { QueueDriverRegistry } from '../queue';
import { READINESS_INDICATORS, type ReadinessIndicator } from './indicators/readiness-indicator';
import { ShutdownState } from './shutdown-state';

/** How long readiness waits for each part's answer before calling it down. */
export const READY_TIMEOUT_MS = 3000;

/**
 * Liveness (`/health/live`), readiness (`/health/ready`) and the older summary (`/health`) for
 * load balancers and orchestrators.
 */
@ApiTags('health')
@Controller('health')
export class HealthController {
  constructor(
    private readonly dataSource: DataSource,
    private readonly registry: QueueDriverRegistry,
    private readonly shutdown: ShutdownState,
    private readonly health: HealthCheckService,
    @Inject(READINESS_INDICATORS) private readonly indicators: ReadinessIndicator[],
  ) {}

  @Get('live')
  @HttpCode(HttpStatus.OK)
  @ApiOperation({ summary: 'The process answers (nothing else is checked)' })
  @ApiOkResponse({ description: '`{status: "ok"}`' })
  live(): { status: 'ok' } {
    return { status: 'ok' };
  }

  @Get('ready')
  @HealthCheck({ swaggerDocumentation: false })
  @ApiOperation({
    summary: 'Ready for traffic: the database and every driver carrying a queue answer in time',
  })
  @ApiOkResponse({ description: 'Terminus result: `{status: "ok", info: {database: …}}`' })
  @ApiServiceUnavailableResponse({
    description:
      '`{status: "shutting_down"}` from the moment SIGTERM arrives, or `{status: "error", error: {<part>: {status: "down", message}}}` naming each failing part.',
  })
  async ready(): Promise<HealthCheckResult> {
    if (this.shutdown.shuttingDown) {
      throw new ServiceUnavailableException({ status: 'shutting_down' });
    }
    return this.health.check(this.indicators.flatMap((i) => i.checks(READY_TIMEOUT_MS)));
  }

  @Get()
  @ApiOperation({ summary: 'Health of this process (summary kept for compatibility)' })
  @ApiOkResponse({ description: '`{status: "ok", database: "up", queue: "up"}`' })
  @ApiServiceUnavailableResponse({ description: 'Shutting down, or a dependency is down.' })
  async check(): Promise<Record<string, string>> {
    const [database, queue] = await Promise.all([
      this.dataSource.query('SELECT 1').then(
        () => 'up',
        (error: Error) => `down: ${error.message}`,
      ),
      this.queueDrivers(),
    ]);
    const status = this.shutdown.shuttingDown
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
          driver.ping().then(
            () => undefined,
            (error: Error) => `${name}: ${error.message}`,
          ),
        ),
    );
    const down = failures.filter((failure) => failure !== undefined);
    return down.length === 0 ? 'up' : `down: ${down.join('; ')}`;
  }
}
