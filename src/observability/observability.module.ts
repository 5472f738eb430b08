import { type DynamicModule, Global, Module } from '@nestjs/common';
import { APP_INTERCEPTOR } from '@nestjs/core';
import type { AppConfig } from '../config/app.config';
import { HandlersModule } from '../handlers/handlers.module';
import { PersistenceModule } from '../persistence/persistence.module';
import { RouteMarker } from './http-metrics';
import { MetricsController } from './metrics.controller';
import { TaskMetrics } from './metrics';
import { tracingStarted } from './tracing';

/**
 * Metrics (one registry per application), and `GET /metrics` unless METRICS_ENABLED=false.
 * Global: the processor, the task use cases and the callbacks count into TaskMetrics.
 */
@Global()
@Module({})
export class ObservabilityModule {
  static forRoot(config: AppConfig): DynamicModule {
    const enabled = config.observability.metricsEnabled;
    return {
      module: ObservabilityModule,
      imports: [PersistenceModule, HandlersModule],
      controllers: enabled ? [MetricsController] : [],
      providers: [
        TaskMetrics,
        // Request spans, only when tracing was started (main.ts does before building the app).
        ...(tracingStarted() ? [{ provide: APP_INTERCEPTOR, useClass: RouteMarker }] : []),
      ],
      exports: [TaskMetrics],
    };
  }
}
