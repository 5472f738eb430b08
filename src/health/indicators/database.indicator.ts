import { Injectable, Optional } from '@nestjs/common';
import { type HealthIndicatorFunction, HealthIndicatorService } from '@nestjs/terminus';
import { DataSource } from 'typeorm';
import { DatabaseFileMonitor } from '../../persistence/database-file.monitor';
import type { ReadinessIndicator } from './readiness-indicator';

/** `database`: the task database answers `SELECT 1`, and (SQLite) is still the file at DATABASE_PATH. */
@Injectable()
export class DatabaseIndicator implements ReadinessIndicator {
  constructor(
    private readonly dataSource: DataSource,
    private readonly health: HealthIndicatorService,
    @Optional() private readonly databaseFile?: DatabaseFileMonitor,
  ) {}

  checks(timeoutMs: number): HealthIndicatorFunction[] {
    return [
      () =>
        this.health
          .check('database')
          .attempt(async () => {
            const fileProblem = this.databaseFile?.problem();
            if (fileProblem) throw new Error(fileProblem);
            await this.dataSource.query('SELECT 1');
          })
          .withTimeout(timeoutMs),
    ];
  }
}
