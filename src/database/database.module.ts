import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import type { AppConfig } from '../config/app.config';
import { APP_CONFIG } from '../config/config.constants';
import { buildDataSourceOptions } from './data-source.options';

/**
 * The TypeORM connection. Pending migrations run while the DataSource initialises, which Nest
 * finishes before any `onApplicationBootstrap` hook, so consumers never start on an old schema.
 */
@Module({
  imports: [
    TypeOrmModule.forRootAsync({
      inject: [APP_CONFIG],
      useFactory: (config: AppConfig) => ({
        ...buildDataSourceOptions(config),
        migrationsRun: config.migrationsRun,
        logging: ['error', 'warn', 'migration'],
        retryAttempts: 0,
      }),
    }),
  ],
})
export class DatabaseModule {}
