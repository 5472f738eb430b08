import { type DynamicModule, Module } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { TypeOrmModule } from '@nestjs/typeorm';
import type { AppRole } from '../config/app.config';
import { TaskHandlerExplorer } from './task-handler.explorer';
import { TaskProcessor } from './task.processor';
import { TaskRecoveryService } from './task-recovery.service';
import { TaskReconcileStore } from './task-reconcile.store';
import { TaskReconciler } from './task-reconciler.service';
import { TaskWorkerService } from './task-worker.service';
import { TaskEntity } from './task.entity';
import { TaskEvents } from './task-events.service';
import { TaskEventsController } from './task-events.controller';
import { TaskRetentionService } from './task-retention.service';
import { CallbackDispatcher, CallbackStore } from './callbacks';
import { TaskStore } from './task.store';
import { QueuesController } from '../queues/queues.controller';
import { TasksController } from './tasks.controller';
import { TasksService } from './tasks.service';

/** Tasks: the REST API (api roles), the processor and its consumers (worker roles). */
@Module({})
export class TasksModule {
  static forRole(role: AppRole): DynamicModule {
    return {
      module: TasksModule,
      imports: [TypeOrmModule.forFeature([TaskEntity]), DiscoveryModule],
      // Events first: express matches in order, and GET /tasks/:id would take /tasks/events.
      controllers:
        role === 'worker' ? [] : [TaskEventsController, TasksController, QueuesController],
      providers: [
        TaskStore,
        TaskHandlerExplorer,
        TasksService,
        TaskProcessor,
        TaskRecoveryService,
        TaskReconcileStore,
        TaskReconciler,
        TaskWorkerService,
        TaskEvents,
        CallbackStore,
        CallbackDispatcher,
        TaskRetentionService,
      ],
      exports: [TaskHandlerExplorer, TasksService, TaskStore, TaskProcessor, TaskEvents],
    };
  }
}
