import { Module } from '@nestjs/common';
import { HandlersModule } from '../handlers/handlers.module';
import { PersistenceModule } from '../persistence/persistence.module';
import { TaskEvents } from './task-events.service';
import { TasksService } from './tasks.service';

/**
 * The task use cases every role shares: create and publish (API, reconciler), read, cancel,
 * retry, and the in-process stream of task changes.
 */
@Module({
  imports: [PersistenceModule, HandlersModule],
  providers: [TasksService, TaskEvents],
  exports: [TasksService, TaskEvents],
})
export class TasksModule {}
