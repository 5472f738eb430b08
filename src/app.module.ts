import { type DynamicModule, Module, type Type } from '@nestjs/common';
import type { AppConfig } from './config/app.config';
import { ConfigModule } from './config/config.module';
import { DatabaseModule } from './database/database.module';
import { HandlersModule } from './handlers/handlers.module';
import { HealthModule } from './health/health.module';
import { QueueModule } from './queue';
import { TasksModule } from './tasks';

/**
 * Composes the application for one role (`all`, `api` or `worker`) from the parsed config.
 * `extraModules` adds modules of your own, e.g. providers with more `@TaskHandler` methods.
 */
@Module({})
export class AppModule {
  static forRoot(config: AppConfig, extraModules: Type[] = []): DynamicModule {
    return {
      module: AppModule,
      imports: [
        ConfigModule.forRoot(config),
        DatabaseModule,
        QueueModule.forRoot({
          isGlobal: true,
          drivers: [
            {
              name: 'default',
              kind: config.queue.driver,
              options:
                config.queue.driver === 'sqlite'
                  ? { ...config.queue.sqlite, leaseMs: config.queue.leaseMs }
                  : undefined,
            },
          ],
          queues: [{ name: config.queue.name, driver: 'default' }],
          consumerDefaults: {
            concurrency: config.worker.concurrency,
            prefetch: config.worker.prefetch,
            maxAttempts: config.task.maxAttempts,
            backoff: { baseMs: config.task.backoffMs, maxMs: config.task.backoffMaxMs },
            leaseMs: config.queue.leaseMs,
          },
          shutdownTimeoutMs: config.shutdownTimeoutMs,
        }),
        TasksModule.forRole(config.role),
        HandlersModule,
        HealthModule,
        ...extraModules,
      ],
    };
  }
}
