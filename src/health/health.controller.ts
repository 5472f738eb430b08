import {
  Controller,
  Get,
  HttpCode,
  HttpStatus,
  Inject,
  Optional,
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
import { ApiKeyStore } from '../auth/api-key.store';
import { Public } from '../auth/require-scopes.decorator';
import { within } from '../common/within';
import { DatabaseFileMonitor } from '../persistence/database-file.monitor';
import { QueueDriverRegistry } from '../queue';
import { READINESS_INDICATORS, type ReadinessIndicator } from './indicators/readiness-indicator';
import { HealthResponseDto } from './health.response.dto';
import { ShutdownState } from './shutdown-state';

/** How long readiness waits for each part's answer before calling it down. */
export const READY_TIMEOUT_MS = 3000;
/** Each dependency gets this long to answer the summary, so /health answers even when one hangs. */
export const HEALTH_CHECK_TIMEOUT_MS = 2000;

/**
 * Liveness (`/health/live`), readiness (`/health/ready`) and the older summary (`/health`) for
 * load balancers and orchestrators.
 */
@ApiTags('health')
@Controller('health')
@Public()
export class HealthController {
  constructor(
    private readonly dataSource: DataSource,
    private readonly registry: QueueDriverRegistry,
    private readonly shutdown: ShutdownState,
    private readonly health: HealthCheckService,
    @Inject(READINESS_INDICATORS) private readonly indicators: ReadinessIndicator[],
    private readonly keys: ApiKeyStore,
    /** The SQLite file still the one at DATABASE_PATH (absent for PostgreSQL in unit tests). */
    @Optional() private readonly databaseFile?: DatabaseFileMonitor,
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
  @ApiOkResponse({
    type: HealthResponseDto,
    description: 'Up: `{status: "ok", database: "up", queue: "up", auth: "keys" | "open"}`.',
  })
  @ApiServiceUnavailableResponse({
    type: HealthResponseDto,
    description: 'Shutting down, or a dependency is down (named in `database` or `queue`).',
  })
  async check(): Promise<Record<string, string>> {
    const fileProblem = this.databaseFile?.problem();
    const [database, queue] = await Promise.all([
      within(
        fileProblem ? Promise.reject(new Error(fileProblem)) : this.dataSource.query('SELECT 1'),
        HEALTH_CHECK_TIMEOUT_MS,
        'database',
      ).then(
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
    // `auth: open` says loudly that no API key is configured (every route is anonymous).
    const body = { status, database, queue, auth: this.keys.mode };
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
