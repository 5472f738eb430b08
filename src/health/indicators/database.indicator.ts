import { Injectable } from '@nestjs/common';
import { type HealthIndicatorFunction, HealthIndicatorService } from '@nestjs/terminus';
import { DataSource } from 'typeorm';
import type { ReadinessIndicator } from './readiness-indicator';

/** `database`: the task database answers `SELECT 1`. */
@Injectable()
export class DatabaseIndicator implements ReadinessIndicator {
  constructor(
    private readonly dataSource: DataSource,
    private readonly health: HealthIndicatorService,
  ) {}

  checks(timeoutMs: number): HealthIndicatorFunction[] {
    return [
      () =>
        this.health
          .check('database')
          .attempt(async () => {
            await this.dataSource.query('SELECT 1');
          })
          .withTimeout(timeoutMs),
    ];
  }
}
