import { Module } from '@nestjs/common';
import { HandlersModule } from '../handlers/handlers.module';
import { MaintenanceModule } from '../maintenance/maintenance.module';
import { PersistenceModule } from '../persistence/persistence.module';
import { TasksModule } from '../tasks/tasks.module';
import { TaskProcessor } from './task.processor';
import { TaskWorkerService } from './task-worker.service';

/** The worker roles: consumers on every declared queue, running handlers through the processor. */
@Module({
  imports: [PersistenceModule, HandlersModule, TasksModule, MaintenanceModule],
  providers: [TaskProcessor, TaskWorkerService],
  exports: [TaskProcessor],
})
export class WorkerModule {}
