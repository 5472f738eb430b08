import {
  BeforeApplicationShutdown,
  Controller,
  Get,
  Inject,
  ServiceUnavailableException,
} from '@nestjs/common';
import {
  ApiOkResponse,
  ApiOperation,
  ApiServiceUnavailableResponse,
  ApiTags,
} from '@nestjs/swagger';
import { DataSource } from 'typeorm';
import { QUEUE_DRIVER, type QueueDriver } from '../queue';

/** Liveness for load balancers: database and queue reachable, not shutting down. */
@ApiTags('health')
@Controller('health')
export class HealthController implements BeforeApplicationShutdown {
  private shuttingDown = false;

  constructor(
    private readonly dataSource: DataSource,
    @Inject(QUEUE_DRIVER) private readonly driver: QueueDriver,
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
      this.dataSource.query('SELECT 1').then(
        () => 'up',
        (error: Error) => `down: ${error.message}`,
      ),
      this.driver.ping().then(
        () => 'up',
        (error: Error) => `down: ${error.message}`,
      ),
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
}
