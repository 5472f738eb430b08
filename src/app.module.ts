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
    const { topology } = config.queue;
    return {
      module: AppModule,
      imports: [
        ConfigModule.forRoot(config),
        DatabaseModule,
        QueueModule.forRoot({
          isGlobal: true,
          // From QUEUE_TOPOLOGY's file, or the one driver and queue the environment describes.
          drivers: topology.drivers,
          queues: topology.queues,
          consumers: topology.consumers,
          defaultDriver: topology.queues.find((q) => q.name === topology.defaultQueue)?.driver,
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
