import { Module } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { APP_CONFIG } from '../config/config.constants';
import { HandlersModule } from '../handlers/handlers.module';
import { PersistenceModule } from '../persistence/persistence.module';
import { TaskEventBus } from './events/task-event-bus';
import { createTaskEventBus, type EventBusConfig } from './events/task-event-bus.factory';
import { TaskEvents } from './task-events.service';
import { TasksService } from './tasks.service';

/**
 * The task use cases every role shares: create and publish (API, reconciler), read, cancel,
 * retry, and the stream of task changes (with the bus that carries it between processes).
 */
@Module({
  imports: [PersistenceModule, HandlersModule],
  providers: [
    TasksService,
    TaskEvents,
    {
      provide: TaskEventBus,
      inject: [APP_CONFIG, DataSource],
      useFactory: (config: EventBusConfig, dataSource: DataSource) =>
        createTaskEventBus(config, dataSource),
    },
  ],
  exports: [TasksService, TaskEvents],
})
export class TasksModule {}
