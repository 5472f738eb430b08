import {
  BeforeApplicationShutdown,
  Controller,
  Get,
  Optional,
  ServiceUnavailableException,
} from '@nestjs/common';
import {
  ApiOkResponse,
  ApiOperation,
  ApiServiceUnavailableResponse,
  ApiTags,
} from '@nestjs/swagger';
import { DataSource } from 'typeorm';
import { ApiKeyStore } from '../auth/api-key.store';
import { Public } from '../auth/require-scopes.decorator';
import { DatabaseFileMonitor } from '../persistence/database-file.monitor';
import { within } from '../common/within';
import { QueueDriverRegistry } from '../queue';
import { HealthResponseDto } from './health.response.dto';

/** Each dependency gets this long to answer, so /health answers even when one hangs. */
export const HEALTH_CHECK_TIMEOUT_MS = 2000;

/**
 * Liveness for load balancers: database and every driver that carries a queue reachable, not
 * shutting down.
 */
@ApiTags('health')
@Controller('health')
@Public()
export class HealthController implements BeforeApplicationShutdown {
  private shuttingDown = false;

  constructor(
    private readonly dataSource: DataSource,
    private readonly registry: QueueDriverRegistry,
    private readonly keys: ApiKeyStore,
    /** The SQLite file still the one at DATABASE_PATH (absent for PostgreSQL in unit tests). */
    @Optional() private readonly databaseFile?: DatabaseFileMonitor,
  ) {}

  beforeApplicationShutdown(): void {
    this.shuttingDown = true;
  }

  @Get()
  @ApiOperation({ summary: 'Health of this process' })
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
    const status = this.shuttingDown
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
