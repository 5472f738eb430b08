import { Module } from '@nestjs/common';
import { PersistenceModule } from '../persistence/persistence.module';
import { TasksModule } from '../tasks/tasks.module';
import { TaskReconciler } from './task-reconciler.service';
import { TaskRetentionService } from './task-retention.service';

/** Background upkeep of the task table in the worker roles: the reconciler and retention. */
@Module({
  imports: [PersistenceModule, TasksModule],
  providers: [TaskReconciler, TaskRetentionService],
  exports: [TaskReconciler],
})
export class MaintenanceModule {}
