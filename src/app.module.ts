import { type DynamicModule, Module, type Type } from '@nestjs/common';
import { ApiModule } from './api/api.module';
import { AuthModule } from './auth/auth.module';
import { CallbacksModule } from './callbacks/callbacks.module';
import type { BootConfig } from './app.config.loader';
import type { AppRole } from './config/app.config';
import { ConfigModule } from './config/config.module';
import { DashboardModule } from './dashboard/dashboard.module';
import { HandlersModule } from './handlers/handlers.module';
import { HealthModule } from './health/health.module';
import { loggingModule } from './observability/logging';
import { ObservabilityModule } from './observability/observability.module';
import { PersistenceModule } from './persistence/persistence.module';
import { QueueModule } from './queue';
import { QueuesModule } from './queues/queues.module';
import { SchedulerModule } from './schedules/scheduler.module';
import { SchedulesApiModule } from './schedules/schedules-api.module';
import { TasksModule } from './tasks/tasks.module';
import { WorkerModule } from './worker/worker.module';

/**
 * The modules each role constructs. An `api` process has no processor, consumers, reconciler,
 * retention, callback dispatcher or scheduler; a `worker` process has no REST API (only /health).
 */
export function roleModules(role: AppRole): Type[] {
  const api = [ApiModule, QueuesModule, SchedulesApiModule, DashboardModule];
  // The maintenance module (reconciler, retention) comes with WorkerModule, which needs its
  // start-up sweep before consuming.
  const worker = [WorkerModule, CallbacksModule, SchedulerModule];
  if (role === 'api') return api;
  if (role === 'worker') return worker;
  return [...api, ...worker];
}

/**
 * Composes the application for one role (`all`, `api` or `worker`) from the parsed config.
 * `extraModules` adds modules of your own, e.g. providers with more `@TaskHandler` methods.
 */
@Module({})
export class AppModule {
  static forRoot(config: BootConfig, extraModules: Type[] = []): DynamicModule {
    const { topology } = config.queue;
    return {
      module: AppModule,
      imports: [
        ConfigModule.forRoot(config),
        loggingModule(config),
        PersistenceModule,
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
        ObservabilityModule.forRoot(config),
        HandlersModule,
        AuthModule,
        TasksModule,
        ...roleModules(config.role),
        HealthModule,
        ...extraModules,
      ],
    };
  }
}
